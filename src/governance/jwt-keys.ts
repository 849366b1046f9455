// CCF's JWT key management as KV writes (the effect of ccf.setJwtPublicSigningKeys and
// ccf.removeJwtPublicSigningKeys, which CCF's set_jwt_issuer, set_jwt_public_signing_keys and
// remove_jwt_issuer actions call): each JWK's public key (DER SubjectPublicKeyInfo, base64 in
// JSON) is recorded under its kid with the issuer, as CCF's OpenIDJWKMetadata list.
import { createPublicKey, type JsonWebKey, X509Certificate } from "node:crypto";
import type { KvAccess } from "../js/index.js";

export const JWT_PUBLIC_SIGNING_KEYS_METADATA = "public:ccf.gov.jwt.public_signing_keys_metadata_v2";

/** CCF's OpenIDJWKMetadata as stored. */
export interface OpenIdJwkMetadata {
  public_key: string;
  issuer: string;
  constraint?: string;
}

interface Jwk { kid?: unknown; kty?: unknown; x5c?: unknown; n?: unknown; e?: unknown; x?: unknown; y?: unknown; crv?: unknown; issuer?: unknown }

const enc = (text: string): Uint8Array => Buffer.from(text, "utf8");

function readList(kv: KvAccess, kid: Uint8Array): OpenIdJwkMetadata[] {
  const raw = kv.get(JWT_PUBLIC_SIGNING_KEYS_METADATA, kid);
  return raw === undefined || raw.length === 0 ? [] : JSON.parse(Buffer.from(raw).toString("utf8")) as OpenIdJwkMetadata[];
}

function publicKeyDer(jwk: Jwk, issuer: string): Buffer {
  if (Array.isArray(jwk.x5c) && jwk.x5c.length > 0) {
    if (typeof jwk.x5c[0] !== "string") throw new Error(`JWKS for issuer ${issuer}: x5c[0] must be a base64 DER certificate`);
    return new X509Certificate(Buffer.from(jwk.x5c[0], "base64")).publicKey.export({ type: "spki", format: "der" });
  }
  if ((jwk.kty === "RSA" && typeof jwk.n === "string" && typeof jwk.e === "string") ||
      (jwk.kty === "EC" && typeof jwk.x === "string" && typeof jwk.y === "string" && typeof jwk.crv === "string")) {
    return createPublicKey({ key: jwk as JsonWebKey, format: "jwk" }).export({ type: "spki", format: "der" });
  }
  throw new Error(`JWKS for issuer ${issuer}: key ${String(jwk.kid)} has neither x5c, RSA n/e nor EC x/y/crv`);
}

/** Removes every key recorded for `issuer` (other issuers' keys under the same kid stay). */
export function removeJwtPublicSigningKeys(kv: KvAccess, issuer: string): void {
  const updates: [Uint8Array, OpenIdJwkMetadata[]][] = [];
  kv.forEach(JWT_PUBLIC_SIGNING_KEYS_METADATA, (value, key) => {
    const list = value.length === 0 ? [] : JSON.parse(Buffer.from(value).toString("utf8")) as OpenIdJwkMetadata[];
    if (list.some((m) => m.issuer === issuer)) updates.push([Uint8Array.from(key), list.filter((m) => m.issuer !== issuer)]);
  });
  for (const [key, rest] of updates) {
    if (rest.length === 0) kv.delete(JWT_PUBLIC_SIGNING_KEYS_METADATA, key);
    else kv.set(JWT_PUBLIC_SIGNING_KEYS_METADATA, key, enc(JSON.stringify(rest)));
  }
}

/** Replaces `issuer`'s keys with those of `jwks` ({keys: [...]}); throws on a malformed or duplicate kid. */
export function setJwtPublicSigningKeys(kv: KvAccess, issuer: string, jwks: unknown): void {
  if (typeof issuer !== "string") throw new TypeError("setJwtPublicSigningKeys: issuer must be a string");
  const keys = (jwks as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new TypeError(`setJwtPublicSigningKeys: JWKS for issuer ${issuer} must have a keys array`);
  const fresh = new Map<string, OpenIdJwkMetadata>();
  for (const jwk of keys as Jwk[]) {
    if (typeof jwk?.kid !== "string") throw new Error(`JWKS for issuer ${issuer}: every key needs a string kid`);
    if (fresh.has(jwk.kid)) throw new Error(`JWKS for issuer ${issuer} has duplicate kid ${jwk.kid}`);
    const entry: OpenIdJwkMetadata = { public_key: publicKeyDer(jwk, issuer).toString("base64"), issuer };
    if (typeof jwk.issuer === "string") entry.constraint = jwk.issuer;
    fresh.set(jwk.kid, entry);
  }
  removeJwtPublicSigningKeys(kv, issuer);
  for (const [kid, entry] of fresh) {
    const key = enc(kid);
    kv.set(JWT_PUBLIC_SIGNING_KEYS_METADATA, key, enc(JSON.stringify([...readList(kv, key), entry])));
  }
}
