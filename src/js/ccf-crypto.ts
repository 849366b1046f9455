// Host side of `ccf.crypto` (CCF's src/js/extensions/ccf/crypto.cpp): signing, verification,
// key generation, key wrapping, JWK conversion and X.509 chain checks, all delegated to
// node:crypto. Arguments come from untrusted guest code, so each is checked before use, and
// every failure is a TypeError / RangeError / Error with a message that names the function.
import {
  KeyObject, X509Certificate, constants, createCipheriv, createDecipheriv, createHash, createHmac,
  createPrivateKey, createPublicKey, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes,
  sign as nodeSign, timingSafeEqual, verify as nodeVerify, type JsonWebKey as NodeJsonWebKey,
} from "node:crypto";
import { splitPemBundle } from "../crypto/index.js";

/** CCF's DigestAlgorithm names → node:crypto hash names. */
const DIGESTS: ReadonlyMap<string, string> = new Map([["SHA-256", "sha256"], ["SHA-384", "sha384"], ["SHA-512", "sha512"]]);
/** CCF's generateEcdsaKeyPair curve names → OpenSSL names. */
const ECDSA_CURVES: ReadonlyMap<string, string> = new Map([["secp256r1", "prime256v1"], ["secp384r1", "secp384r1"], ["secp521r1", "secp521r1"]]);
const RSA_MODULUS_BITS_MIN = 2048;
/** Generating larger keys takes seconds, longer than any call's time limit. */
const RSA_MODULUS_BITS_MAX = 8192;
/** RFC 5649 alternative initial value: the IV node:crypto's `id-aes*-wrap-pad` ciphers expect. */
const AES_KWP_IV = Buffer.from("a65959a6", "hex");
const AES_KEY_BITS = new Set([128, 192, 256]);

export interface CryptoKeyPairPem {
  privateKey: string;
  publicKey: string;
}

/** Which JWK conversion of `ccf.crypto` is meant: key family and public / private. */
export type JwkKind = "ec-public" | "ec-private" | "rsa-public" | "rsa-private" | "eddsa-public" | "eddsa-private";
const JWK_KINDS = new Set<string>(["ec-public", "ec-private", "rsa-public", "rsa-private", "eddsa-public", "eddsa-private"]);

function text(value: unknown, what: string): string {
  if (typeof value !== "string") throw new TypeError(`${what} must be a string`);
  return value;
}

export function bytesOf(value: unknown, what: string): Buffer {
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`${what} must be an ArrayBuffer`);
}

function hashName(value: unknown, what: string): string {
  const hash = typeof value === "string" ? DIGESTS.get(value) : undefined;
  if (hash === undefined) throw new RangeError(`${what}: unsupported hash algorithm ${String(value)}, supported: SHA-256, SHA-384, SHA-512`);
  return hash;
}

/** `ccf.crypto.digest`: CCF supports SHA-256; SHA-384 and SHA-512 are in the types, so accepted too. */
export function digest(algorithm: unknown, data: unknown): Buffer {
  return createHash(hashName(algorithm, "crypto.digest")).update(bytesOf(data, "crypto.digest data")).digest();
}

function privateKey(pem: string, what: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (error) {
    throw new TypeError(`${what}: key is not a PEM private key (${(error as Error).message})`);
  }
}

function publicKey(pem: string, what: string): KeyObject {
  try {
    // A certificate is accepted too, as CCF's verifySignature does.
    return pem.includes("-----BEGIN CERTIFICATE") ? new X509Certificate(pem).publicKey : createPublicKey(pem);
  } catch (error) {
    throw new TypeError(`${what}: key is not a PEM public key or certificate (${(error as Error).message})`);
  }
}

function requireKeyType(key: KeyObject, types: readonly string[], algorithm: string, what: string): void {
  if (!types.includes(key.asymmetricKeyType ?? "")) {
    throw new TypeError(`${what}: a ${key.asymmetricKeyType ?? "symmetric"} key cannot be used with ${algorithm}`);
  }
}

const RSA_TYPES = ["rsa", "rsa-pss"] as const;
const EDDSA_TYPES = ["ed25519", "ed448"] as const;

function saltLength(value: unknown): number {
  if (value === undefined) return 0; // CCF reads a missing saltLength as 0
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) throw new RangeError("RSA-PSS saltLength must be a non-negative integer");
  return value;
}

/**
 * `ccf.crypto.sign`: ECDSA signatures are IEEE P1363 (r‖s, as WebCrypto and CCF ≥ 4 produce),
 * RSA-PSS uses `saltLength`, EdDSA signs the message itself, HMAC takes the key string's bytes.
 */
export function sign(name: unknown, hash: unknown, salt: unknown, keyPem: unknown, data: unknown): Buffer {
  const what = "crypto.sign";
  const key = text(keyPem, `${what} key`);
  const message = bytesOf(data, `${what} plaintext`);
  switch (name) {
    case "EdDSA": {
      const k = privateKey(key, what);
      requireKeyType(k, EDDSA_TYPES, "EdDSA", what);
      return nodeSign(null, message, k);
    }
    case "ECDSA": {
      const k = privateKey(key, what);
      requireKeyType(k, ["ec"], "ECDSA", what);
      return nodeSign(hashName(hash, what), message, { key: k, dsaEncoding: "ieee-p1363" });
    }
    case "RSA-PSS": {
      const k = privateKey(key, what);
      requireKeyType(k, RSA_TYPES, "RSA-PSS", what);
      return nodeSign(hashName(hash, what), message, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: saltLength(salt) });
    }
    case "HMAC":
      return createHmac(hashName(hash, what), Buffer.from(key, "utf8")).update(message).digest();
    default:
      throw new RangeError(`${what}: unsupported signing algorithm ${String(name)}, supported: RSA-PSS, ECDSA, EdDSA, HMAC`);
  }
}

/** `ccf.crypto.verifySignature`: `key` is a public key or certificate PEM (HMAC: the shared key). */
export function verifySignature(name: unknown, hash: unknown, salt: unknown, keyPem: unknown, signature: unknown, data: unknown): boolean {
  const what = "crypto.verifySignature";
  const key = text(keyPem, `${what} key`);
  const sig = bytesOf(signature, `${what} signature`);
  const message = bytesOf(data, `${what} plaintext`);
  switch (name) {
    case "EdDSA": {
      const k = publicKey(key, what);
      requireKeyType(k, EDDSA_TYPES, "EdDSA", what);
      return nodeVerify(null, message, k, sig);
    }
    case "ECDSA": {
      const k = publicKey(key, what);
      requireKeyType(k, ["ec"], "ECDSA", what);
      return nodeVerify(hashName(hash, what), message, { key: k, dsaEncoding: "ieee-p1363" }, sig);
    }
    case "RSA-PSS": {
      const k = publicKey(key, what);
      requireKeyType(k, RSA_TYPES, "RSA-PSS", what);
      return nodeVerify(hashName(hash, what), message, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: saltLength(salt) }, sig);
    }
    case "HMAC": {
      const expected = createHmac(hashName(hash, what), Buffer.from(key, "utf8")).update(message).digest();
      return expected.length === sig.length && timingSafeEqual(expected, sig);
    }
    default:
      throw new RangeError(`${what}: unsupported signing algorithm ${String(name)}, supported: RSA-PSS, ECDSA, EdDSA, HMAC`);
  }
}

export function generateAesKey(size: unknown): Buffer {
  if (typeof size !== "number" || !AES_KEY_BITS.has(size)) throw new RangeError("crypto.generateAesKey: invalid key size (not one of 128, 192, 256)");
  return randomBytes(size / 8);
}

function pemPair(pair: { privateKey: KeyObject; publicKey: KeyObject }): CryptoKeyPairPem {
  return {
    privateKey: pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    publicKey: pair.publicKey.export({ type: "spki", format: "pem" }) as string,
  };
}

export function generateRsaKeyPair(size: unknown, exponent: unknown): CryptoKeyPairPem {
  if (typeof size !== "number" || !Number.isInteger(size) || size < RSA_MODULUS_BITS_MIN || size > RSA_MODULUS_BITS_MAX) {
    throw new RangeError(`crypto.generateRsaKeyPair: size must be an integer number of bits in [${RSA_MODULUS_BITS_MIN}, ${RSA_MODULUS_BITS_MAX}]`);
  }
  const publicExponent = exponent === undefined ? 65537 : exponent;
  if (typeof publicExponent !== "number" || !Number.isInteger(publicExponent) || publicExponent < 3 || publicExponent % 2 === 0) {
    throw new RangeError("crypto.generateRsaKeyPair: exponent must be an odd integer ≥ 3 (default 65537)");
  }
  return pemPair(generateKeyPairSync("rsa", { modulusLength: size, publicExponent }));
}

export function generateEcdsaKeyPair(curve: unknown): CryptoKeyPairPem {
  const namedCurve = typeof curve === "string" ? ECDSA_CURVES.get(curve) : undefined;
  if (namedCurve === undefined) throw new RangeError("crypto.generateEcdsaKeyPair: unsupported curve id, supported: secp256r1, secp384r1, secp521r1");
  return pemPair(generateKeyPairSync("ec", { namedCurve }));
}

export function generateEddsaKeyPair(curve: unknown): CryptoKeyPairPem {
  if (curve === "curve25519") return pemPair(generateKeyPairSync("ed25519"));
  if (curve === "x25519") return pemPair(generateKeyPairSync("x25519"));
  throw new RangeError("crypto.generateEddsaKeyPair: unsupported curve id, supported: curve25519, x25519");
}

function aesKwp(mode: "wrap" | "unwrap", aesKey: Buffer, data: Buffer): Buffer {
  if (!AES_KEY_BITS.has(aesKey.length * 8)) throw new RangeError("AES-KWP: the wrapping key must be an AES key of 128, 192 or 256 bits");
  const cipher = `id-aes${aesKey.length * 8}-wrap-pad`;
  const c = mode === "wrap" ? createCipheriv(cipher, aesKey, AES_KWP_IV) : createDecipheriv(cipher, aesKey, AES_KWP_IV);
  return Buffer.concat([c.update(data), c.final()]);
}

function oaepOptions(key: KeyObject, label: Buffer | undefined) {
  // CCF's ckm_rsa_pkcs_oaep_wrap: OAEP with SHA-256 and MGF1-SHA-256; an empty label is no label.
  return { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", ...(label !== undefined && label.length > 0 ? { oaepLabel: label } : {}) };
}

function rsaKey(pemBytes: Buffer, kind: "public" | "private", what: string): KeyObject {
  const pem = pemBytes.toString("utf8");
  const key = kind === "public" ? publicKey(pem, what) : privateKey(pem, what);
  requireKeyType(key, RSA_TYPES, "RSA-OAEP", what);
  return key;
}

function aesKeyBytes(bits: unknown, what: string): number {
  if (typeof bits !== "number" || !AES_KEY_BITS.has(bits)) throw new RangeError(`${what}: aesKeySize must be 128, 192 or 256`);
  return bits / 8;
}

/**
 * `ccf.crypto.wrapKey`. RSA-OAEP: `wrappingKey` is an RSA public key PEM (as bytes). AES-KWP
 * (RFC 5649): an AES key. RSA-OAEP-AES-KWP (PKCS#11 CKM_RSA_AES_KEY_WRAP): a fresh AES key
 * wrapped with RSA-OAEP, followed by `key` wrapped with that AES key.
 */
export function wrapKey(keyValue: unknown, wrappingKeyValue: unknown, name: unknown, aesKeySize: unknown, labelValue: unknown): Buffer {
  const what = "crypto.wrapKey";
  const key = bytesOf(keyValue, `${what} key`);
  const wrappingKey = bytesOf(wrappingKeyValue, `${what} wrappingKey`);
  const label = labelValue === undefined || labelValue === null ? undefined : bytesOf(labelValue, `${what} label`);
  switch (name) {
    case "RSA-OAEP":
      return publicEncrypt(oaepOptions(rsaKey(wrappingKey, "public", what), label), key);
    case "AES-KWP":
      return aesKwp("wrap", wrappingKey, key);
    case "RSA-OAEP-AES-KWP": {
      const ephemeral = randomBytes(aesKeyBytes(aesKeySize, what));
      const head = publicEncrypt(oaepOptions(rsaKey(wrappingKey, "public", what), label), ephemeral);
      return Buffer.concat([head, aesKwp("wrap", ephemeral, key)]);
    }
    default:
      throw new RangeError(`${what}: unsupported key wrapping algorithm ${String(name)}, supported: RSA-OAEP, AES-KWP, RSA-OAEP-AES-KWP`);
  }
}

/** `ccf.crypto.unwrapKey`: the inverse of wrapKey, with the RSA private key or the AES key. */
export function unwrapKey(wrappedValue: unknown, unwrappingKeyValue: unknown, name: unknown, labelValue: unknown): Buffer {
  const what = "crypto.unwrapKey";
  const wrapped = bytesOf(wrappedValue, `${what} key`);
  const unwrappingKey = bytesOf(unwrappingKeyValue, `${what} unwrappingKey`);
  const label = labelValue === undefined || labelValue === null ? undefined : bytesOf(labelValue, `${what} label`);
  switch (name) {
    case "RSA-OAEP":
      return privateDecrypt(oaepOptions(rsaKey(unwrappingKey, "private", what), label), wrapped);
    case "AES-KWP":
      return aesKwp("unwrap", unwrappingKey, wrapped);
    case "RSA-OAEP-AES-KWP": {
      const key = rsaKey(unwrappingKey, "private", what);
      const modulusBytes = (key.asymmetricKeyDetails?.modulusLength ?? 0) / 8;
      if (wrapped.length <= modulusBytes) throw new RangeError(`${what}: wrapped key is too short for RSA-OAEP-AES-KWP`);
      const ephemeral = privateDecrypt(oaepOptions(key, label), wrapped.subarray(0, modulusBytes));
      return aesKwp("unwrap", ephemeral, wrapped.subarray(modulusBytes));
    }
    default:
      throw new RangeError(`${what}: unsupported key unwrapping algorithm ${String(name)}, supported: RSA-OAEP, AES-KWP, RSA-OAEP-AES-KWP`);
  }
}

function certificates(pem: string): X509Certificate[] | undefined {
  try {
    return splitPemBundle(pem).map((c) => new X509Certificate(c));
  } catch {
    return undefined;
  }
}

function isCurrent(cert: X509Certificate, nowMs: number): boolean {
  return Date.parse(cert.validFrom) <= nowMs && nowMs <= Date.parse(cert.validTo);
}

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/**
 * `ccf.crypto.isValidX509CertChain`: `chain` is the target certificate followed by
 * intermediates, `trusted` the roots. True when a path of valid-now certificates, each signed by
 * a CA certificate, leads from the target to a trusted one (or the target is itself trusted).
 */
export function isValidX509CertChain(chainValue: unknown, trustedValue: unknown, nowMs: number): boolean {
  if (typeof chainValue !== "string" || typeof trustedValue !== "string") return false;
  const chain = certificates(chainValue);
  const trusted = certificates(trustedValue);
  if (chain === undefined || trusted === undefined || chain.length === 0 || trusted.length === 0) return false;
  let current = chain[0]!;
  const intermediates = chain.slice(1);
  // Each step consumes one intermediate, so the loop is bounded by the chain's length.
  for (let depth = 0; depth <= intermediates.length; depth++) {
    if (!isCurrent(current, nowMs)) return false;
    if (trusted.some((root) => root.fingerprint256 === current.fingerprint256)) return true;
    const root = trusted.find((t) => t.ca && isCurrent(t, nowMs) && signedBy(current, t));
    if (root !== undefined) return true;
    const index = intermediates.findIndex((c) => c.ca && signedBy(current, c));
    if (index === -1) return false;
    current = intermediates.splice(index, 1)[0]!;
  }
  return false;
}

const JWK_FAMILY: Readonly<Record<string, { kty: string; types: readonly string[] }>> = {
  ec: { kty: "EC", types: ["ec"] },
  rsa: { kty: "RSA", types: ["rsa"] },
  eddsa: { kty: "OKP", types: ["ed25519", "x25519"] },
};

function jwkKind(value: unknown): { family: { kty: string; types: readonly string[] }; isPrivate: boolean; name: string } {
  if (typeof value !== "string" || !JWK_KINDS.has(value)) throw new TypeError(`unknown JWK conversion ${String(value)}`);
  const [family, visibility] = value.split("-") as [string, string];
  return { family: JWK_FAMILY[family]!, isPrivate: visibility === "private", name: value };
}

/** The `*PemToJwk` functions of `ccf.crypto`: a PEM key to a JWK, with `kid` if given. */
export function pemToJwk(kindValue: unknown, pemValue: unknown, kid: unknown): Record<string, string> {
  const { family, isPrivate, name } = jwkKind(kindValue);
  const what = `crypto.${name} pemToJwk`;
  const pem = text(pemValue, `${what} pem`);
  const key = isPrivate ? privateKey(pem, what) : publicKey(pem, what);
  if (!family.types.includes(key.asymmetricKeyType ?? "")) throw new TypeError(`${what}: expected a ${family.kty} key, got ${key.asymmetricKeyType ?? "unknown"}`);
  const jwk = key.export({ format: "jwk" }) as Record<string, string>;
  if (kid !== undefined && kid !== null) jwk.kid = text(kid, `${what} kid`);
  return jwk;
}

/** The `*JwkToPem` functions of `ccf.crypto`: a JWK to a PEM key (SPKI public, PKCS#8 private). */
export function jwkToPem(kindValue: unknown, jwkValue: unknown): string {
  const { family, isPrivate, name } = jwkKind(kindValue);
  const what = `crypto.${name} jwkToPem`;
  if (jwkValue === null || typeof jwkValue !== "object") throw new TypeError(`${what}: jwk must be an object`);
  const jwk = jwkValue as NodeJsonWebKey;
  if (jwk.kty !== family.kty) throw new TypeError(`${what}: expected kty ${family.kty}, got ${String(jwk.kty)}`);
  if (isPrivate && typeof jwk.d !== "string") throw new TypeError(`${what}: a private JWK needs d`);
  try {
    const key = isPrivate ? createPrivateKey({ key: jwk, format: "jwk" }) : createPublicKey({ key: jwk, format: "jwk" });
    return key.export(isPrivate ? { type: "pkcs8", format: "pem" } : { type: "spki", format: "pem" }) as string;
  } catch (error) {
    throw new TypeError(`${what}: invalid JWK (${(error as Error).message})`);
  }
}
