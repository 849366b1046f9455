// The `jwt` authentication policy (CCF's JwtAuthnPolicy): a bearer token signed by a key that
// governance recorded with set_jwt_issuer (public:ccf.gov.jwt.public_signing_keys_metadata_v2,
// kid → [{ public_key, issuer, constraint? }], see src/governance/jwt-keys.ts). `jose` decodes
// the token (structure, base64url, JSON); the signature is checked synchronously with
// node:crypto so that authentication stays on the synchronous request path.
import { type KeyObject, constants, createPublicKey, verify as nodeVerify } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from "jose";
import type { Transaction } from "../kv/index.js";

export const JWT_PUBLIC_SIGNING_KEYS_METADATA = "public:ccf.gov.jwt.public_signing_keys_metadata_v2";
/** CCF sends this with a 401 from the jwt policy. */
export const JWT_WWW_AUTHENTICATE = 'Bearer realm="JWT bearer token access", error="invalid_token"';
/** Tokens are a few KB; a larger Authorization header is refused before any decoding. */
const JWT_TOKEN_BYTES_MAX = 16 * 1024;
/** Parsed public keys by their base64 DER; dropped whole when full. */
const KEY_CACHE_ENTRIES_MAX = 1024;

/** What `request.caller.jwt` holds in CCF: the recorded issuer of the key, and the token's parts. */
export interface JwtIdentity {
  readonly keyIssuer: string;
  readonly header: ProtectedHeaderParameters;
  readonly payload: JWTPayload;
}

interface KeyMetadata {
  public_key: string;
  issuer: string;
  constraint?: string;
}

interface JwsAlgorithm {
  hash: string | null;
  keyTypes: readonly string[];
  padding?: number;
  saltLength?: number;
  curve?: string;
}

// RFC 7518 section 3.1, minus "none" and the HMAC algorithms (no shared secrets in the KV).
const ALGORITHMS: ReadonlyMap<string, JwsAlgorithm> = new Map([
  ["RS256", { hash: "sha256", keyTypes: ["rsa"], padding: constants.RSA_PKCS1_PADDING }],
  ["RS384", { hash: "sha384", keyTypes: ["rsa"], padding: constants.RSA_PKCS1_PADDING }],
  ["RS512", { hash: "sha512", keyTypes: ["rsa"], padding: constants.RSA_PKCS1_PADDING }],
  ["PS256", { hash: "sha256", keyTypes: ["rsa", "rsa-pss"], padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
  ["PS384", { hash: "sha384", keyTypes: ["rsa", "rsa-pss"], padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }],
  ["PS512", { hash: "sha512", keyTypes: ["rsa", "rsa-pss"], padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 }],
  ["ES256", { hash: "sha256", keyTypes: ["ec"], curve: "prime256v1" }],
  ["ES384", { hash: "sha384", keyTypes: ["ec"], curve: "secp384r1" }],
  ["ES512", { hash: "sha512", keyTypes: ["ec"], curve: "secp521r1" }],
  ["EdDSA", { hash: null, keyTypes: ["ed25519", "ed448"] }],
]);

const keyCache = new Map<string, KeyObject>();

function publicKey(base64Der: string): KeyObject {
  let key = keyCache.get(base64Der);
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.from(base64Der, "base64"), format: "der", type: "spki" });
    if (keyCache.size >= KEY_CACHE_ENTRIES_MAX) keyCache.clear();
    keyCache.set(base64Der, key);
  }
  return key;
}

/** The token of `Authorization: Bearer <token>`, or a reason why there is none. */
export function bearerToken(authorization: string | string[] | undefined): { token: string } | { reason: string } {
  if (typeof authorization !== "string") return { reason: "Missing Authorization header" };
  if (!/^bearer /i.test(authorization)) return { reason: "Authorization header is not a Bearer token" };
  const token = authorization.slice(7).trim();
  if (token.length === 0 || token.length > JWT_TOKEN_BYTES_MAX) return { reason: "Bearer token is empty or too large" };
  return { token };
}

function signatureValid(token: string, algorithm: JwsAlgorithm, key: KeyObject): boolean {
  if (!algorithm.keyTypes.includes(key.asymmetricKeyType ?? "")) return false;
  if (algorithm.curve !== undefined && key.asymmetricKeyDetails?.namedCurve !== algorithm.curve) return false;
  const lastDot = token.lastIndexOf(".");
  const signingInput = Buffer.from(token.slice(0, lastDot), "ascii");
  const signature = Buffer.from(token.slice(lastDot + 1), "base64url");
  try {
    return nodeVerify(algorithm.hash, signingInput, {
      key,
      ...(algorithm.padding !== undefined ? { padding: algorithm.padding } : {}),
      ...(algorithm.saltLength !== undefined ? { saltLength: algorithm.saltLength } : {}),
      ...(algorithm.curve !== undefined ? { dsaEncoding: "ieee-p1363" as const } : {}),
    }, signature);
  } catch {
    return false;
  }
}

/** A key's issuer constraint (set_jwt_issuer's per-key `issuer`) admits the token's `iss`. */
function issuerAllowed(constraint: string | undefined, payload: JWTPayload): boolean {
  if (constraint === undefined) return true;
  // Microsoft Entra multi-tenant keys carry "{tenantid}", filled from the token's tid claim.
  const expected = constraint.includes("{tenantid}") && typeof payload.tid === "string" ? constraint.replace("{tenantid}", payload.tid) : constraint;
  return payload.iss === expected;
}

/**
 * Validates a bearer token against the recorded keys: kid lookup, signature, `nbf` and `exp`
 * (required) against `nowSeconds`, and the key's issuer constraint. Returns the identity or the
 * reason for refusal, worded as CCF words it.
 */
export function verifyJwt(token: string, tx: Transaction, nowSeconds: number): JwtIdentity | { reason: string } {
  let header: ProtectedHeaderParameters;
  let payload: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    payload = decodeJwt(token);
  } catch (error) {
    return { reason: `Malformed JWT: ${(error as Error).message}` };
  }
  if (token.split(".").length !== 3) return { reason: "Malformed JWT: expected a compact JWS of three parts" };
  const algorithm = typeof header.alg === "string" ? ALGORITHMS.get(header.alg) : undefined;
  if (algorithm === undefined) return { reason: `JWT algorithm ${String(header.alg)} is not supported` };
  if (typeof header.kid !== "string") return { reason: "JWT header has no kid" };
  const raw = tx.get(JWT_PUBLIC_SIGNING_KEYS_METADATA, Buffer.from(header.kid, "utf8"));
  if (raw === undefined) return { reason: "JWT signing key not found" };
  let candidates: KeyMetadata[];
  try {
    candidates = JSON.parse(raw.toString("utf8")) as KeyMetadata[];
  } catch {
    return { reason: "JWT signing key metadata is unreadable" };
  }
  let reason = "JWT signature is invalid";
  for (const metadata of candidates) {
    let key: KeyObject;
    try {
      key = publicKey(metadata.public_key);
    } catch {
      continue;
    }
    if (!signatureValid(token, algorithm, key)) continue;
    if (typeof payload.nbf === "number" && nowSeconds < payload.nbf) {
      return { reason: `Current time ${nowSeconds} is before token's Not Before (nbf) claim ${payload.nbf}` };
    }
    if (typeof payload.exp !== "number") return { reason: "JWT has no Expiration Time (exp) claim" };
    if (nowSeconds > payload.exp) return { reason: `Current time ${nowSeconds} is after token's Expiration Time (exp) claim ${payload.exp}` };
    if (!issuerAllowed(metadata.constraint, payload)) {
      reason = `JWT issuer ${String(payload.iss)} does not match the key's issuer constraint`;
      continue;
    }
    return { keyIssuer: metadata.issuer, header, payload };
  }
  return { reason };
}
