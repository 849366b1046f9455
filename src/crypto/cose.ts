// COSE_Sign1 (RFC 9052 section 4.2) with ECDSA (RFC 9053 section 2.1): the envelope of CCF's
// signed governance requests and of COSE receipts. Signing and verification go through
// node:crypto with raw r||s signatures ("ieee-p1363"), the encoding COSE requires.
import { sign as nodeSign, verify as nodeVerify, type KeyObject } from "node:crypto";
import { Decoder, Encoder, Tag } from "cbor-x";
import { p256, p384, p521 } from "@noble/curves/nist.js";
import { CocoError } from "../util/errors.js";
import { cachedPrivateKeyObject, publicKeyObject } from "./keys.js";

/** CBOR tag of a tagged COSE_Sign1 message. */
export const COSE_SIGN1_TAG = 18;
/** Protected header label of the signature algorithm. */
export const COSE_HEADER_ALG = 1;
/** Protected header label of the key identifier (a byte string). */
export const COSE_HEADER_KID = 4;
/** HTTP content type of a COSE message body. */
export const COSE_CONTENT_TYPE = "application/cose";

export type CoseHeaderLabel = number | string;
export type CoseHeaderMap = Map<CoseHeaderLabel, unknown>;

interface EcdsaAlgorithm {
  readonly name: string;
  readonly hash: string;
  readonly curve: string; // node:crypto's namedCurve
  readonly signatureBytes: number; // raw r||s
  /** Order n of the curve's base point: (r, s) and (r, n - s) are both valid signatures. */
  readonly order: bigint;
}

// RFC 9053 table 1. Each algorithm is bound to one curve: a signature is accepted only from a
// key on the curve its algorithm names, so an attacker cannot pick a weaker pairing.
const ECDSA_ALGORITHMS: ReadonlyMap<number, EcdsaAlgorithm> = new Map([
  [-7, { name: "ES256", hash: "sha256", curve: "prime256v1", signatureBytes: 64, order: p256.Point.CURVE().n }],
  [-35, { name: "ES384", hash: "sha384", curve: "secp384r1", signatureBytes: 96, order: p384.Point.CURVE().n }],
  [-36, { name: "ES512", hash: "sha512", curve: "secp521r1", signatureBytes: 132, order: p521.Point.CURVE().n }],
]);

export const COSE_ALG_ES256 = -7;
export const COSE_ALG_ES384 = -35;
export const COSE_ALG_ES512 = -36;

/** True for the COSE ECDSA algorithm ids Coco signs and verifies with (ES256, ES384, ES512). */
export function isCoseEcdsaAlgorithm(alg: unknown): alg is number {
  return typeof alg === "number" && ECDSA_ALGORITHMS.has(alg);
}

// Maps stay Maps (COSE labels are integers and strings), byte strings stay untagged, and no
// cbor-x record extensions are produced or understood.
const encoder = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false, pack: false });
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });

function encodeCbor(value: unknown): Buffer {
  // Copy: cbor-x may hand out a view into its reusable scratch buffer.
  return Buffer.from(encoder.encode(value));
}

function invalid(reason: string, cause?: unknown): CocoError {
  return new CocoError("InvalidCoseSign1", `Invalid COSE_Sign1: ${reason}.`, 400, cause === undefined ? undefined : { cause });
}

function decodeCbor(bytes: Uint8Array, what: string): unknown {
  try {
    // Decode a private copy: cbor-x caches a DataView on the buffer it reads.
    return decoder.decode(Buffer.from(bytes));
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw invalid(`${what} is not well-formed CBOR (${detail})`, cause);
  }
}

function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes); // a copy, so the result never aliases the caller's input
}

/** Labels sorted by their encoded bytes (RFC 8949 section 4.2.1), so equal maps encode equally. */
function deterministicMap(map: CoseHeaderMap): CoseHeaderMap {
  const entries = [...map.entries()].map(([label, value]) => ({ label, value, key: encodeCbor(label) }));
  entries.sort((a, b) => Buffer.compare(a.key, b.key));
  return new Map(entries.map((e) => [e.label, e.value]));
}

function checkLabels(map: CoseHeaderMap, what: string): void {
  for (const label of map.keys()) {
    const ok = typeof label === "string" || (typeof label === "number" && Number.isSafeInteger(label));
    if (!ok) throw new CocoError("InvalidInput", `${what} header labels must be integers or strings, got ${String(label)}.`, 400);
  }
}

/** Declared entry count of a definite-length CBOR map, or undefined if `bytes` is not one. */
function declaredMapSize(bytes: Uint8Array): number | undefined {
  const initial = bytes[0];
  if (initial === undefined || initial >> 5 !== 5) return undefined;
  const info = initial & 0x1f;
  if (info < 24) return info;
  const width = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
  if (width === undefined || bytes.length < 1 + width) return undefined; // indefinite or reserved
  let size = 0;
  for (let i = 1; i <= width; i++) size = size * 256 + bytes[i]!;
  return size;
}

function parseProtected(raw: Uint8Array): CoseHeaderMap {
  // RFC 9052 section 3: a zero-length byte string stands for an empty protected map.
  if (raw.length === 0) return new Map();
  const declared = declaredMapSize(raw);
  if (declared === undefined) throw invalid("protected header must be a definite-length CBOR map");
  const map = decodeCbor(raw, "protected header");
  if (!(map instanceof Map)) throw invalid("protected header must be a CBOR map");
  // cbor-x keeps the last of duplicate labels; RFC 9052 section 3 forbids duplicates, and two
  // parsers disagreeing on which value counts is how signature bypasses happen.
  if (map.size !== declared) throw invalid("protected header has duplicate labels");
  return map as CoseHeaderMap;
}

export interface CoseSign1 {
  /** Decoded protected header map. */
  protectedHeaders: CoseHeaderMap;
  /** The protected header bytes exactly as signed (the bstr content). */
  protectedRaw: Buffer;
  unprotectedHeaders: CoseHeaderMap;
  /** Null when the payload is detached (CBOR nil). */
  payload: Buffer | null;
  signature: Buffer;
}

/**
 * Parses a tagged COSE_Sign1 message (CBOR tag 18, as CCF requires). Checks structure only; it
 * does not verify the signature. Malformed input throws CocoError "InvalidCoseSign1" (400).
 */
export function parseCoseSign1(bytes: Uint8Array): CoseSign1 {
  if (!isBytes(bytes)) throw invalid("message must be bytes");
  const message = decodeCbor(bytes, "message");
  if (!(message instanceof Tag) || message.tag !== COSE_SIGN1_TAG) {
    throw invalid(`message must be a CBOR array tagged ${COSE_SIGN1_TAG} (COSE_Sign1)`);
  }
  const parts: unknown = message.value;
  if (!Array.isArray(parts) || parts.length !== 4) throw invalid("message must be an array of 4 elements");
  const [protectedRaw, unprotected, payload, signature] = parts as unknown[];
  if (!isBytes(protectedRaw)) throw invalid("protected header must be a byte string");
  if (!(unprotected instanceof Map)) throw invalid("unprotected header must be a CBOR map");
  if (payload !== null && !isBytes(payload)) throw invalid("payload must be a byte string or nil");
  if (!isBytes(signature)) throw invalid("signature must be a byte string");
  return {
    protectedHeaders: parseProtected(protectedRaw),
    protectedRaw: toBuffer(protectedRaw),
    unprotectedHeaders: unprotected as CoseHeaderMap,
    payload: payload === null ? null : toBuffer(payload),
    signature: toBuffer(signature),
  };
}

/**
 * The bytes ECDSA signs: Sig_structure ["Signature1", protected, external_aad, payload]
 * (RFC 9052 section 4.4). Exposed for offline signing (e.g. an HSM signs these bytes).
 */
export function coseSign1ToBeSigned(protectedRaw: Uint8Array, payload: Uint8Array, externalAad: Uint8Array = Buffer.alloc(0)): Buffer {
  return encodeCbor(["Signature1", Buffer.from(protectedRaw), Buffer.from(externalAad), Buffer.from(payload)]);
}

function algorithmOf(parsed: CoseSign1): EcdsaAlgorithm {
  const alg = parsed.protectedHeaders.get(COSE_HEADER_ALG);
  if (alg === undefined) throw invalid("protected header has no alg (label 1)");
  const algorithm = typeof alg === "number" ? ECDSA_ALGORITHMS.get(alg) : undefined;
  if (algorithm === undefined) throw invalid(`unsupported alg ${String(alg)} (expected ES256 -7, ES384 -35 or ES512 -36)`);
  return algorithm;
}

function curveOf(key: KeyObject): string | undefined {
  return key.asymmetricKeyType === "ec" ? key.asymmetricKeyDetails?.namedCurve : undefined;
}

/**
 * True when `parsed.signature` is a valid signature by the key in `publicKeyOrCertPem` under
 * the protected alg. A key on a different curve than the alg names does not verify. A missing
 * or unsupported alg throws "InvalidCoseSign1"; a bad key PEM throws "InvalidInput". Callers
 * that verify often against one key (a backup checking every signature transaction) pass the
 * parsed KeyObject, so the PEM is not parsed again each time.
 */
export function verifyCoseSign1(
  parsed: CoseSign1,
  publicKeyOrCertPem: string | KeyObject,
  opts: { detachedPayload?: Uint8Array; externalAad?: Uint8Array } = {},
): boolean {
  const algorithm = algorithmOf(parsed);
  const key = typeof publicKeyOrCertPem === "string" ? publicKeyObject(publicKeyOrCertPem) : publicKeyOrCertPem;
  if (key.type !== "public") throw new CocoError("InvalidInput", "COSE verification needs a public key.", 400);
  const payload = parsed.payload ?? opts.detachedPayload;
  if (payload === undefined) throw invalid("payload is detached and no detached payload was given");
  if (curveOf(key) !== algorithm.curve) return false;
  if (parsed.signature.length !== algorithm.signatureBytes) return false;
  const toBeSigned = coseSign1ToBeSigned(parsed.protectedRaw, payload, opts.externalAad);
  try {
    return nodeVerify(algorithm.hash, toBeSigned, { key, dsaEncoding: "ieee-p1363" }, parsed.signature);
  } catch {
    return false;
  }
}

function scalarOf(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString("hex")}`);
}

function scalarBytes(value: bigint, width: number): Buffer {
  return Buffer.from(value.toString(16).padStart(width * 2, "0"), "hex");
}

/**
 * True when the raw r||s signature of `parsed` has s <= n/2 ("low-S", as Bitcoin's BIP 62 and
 * Ethereum's EIP-2 require). ECDSA accepts (r, s) and (r, n - s) alike, so without this rule
 * anyone can turn one valid signature into a second, different valid one. A signature of the
 * wrong length for its alg is not low-S.
 */
export function isLowSCoseSignature(parsed: CoseSign1): boolean {
  const algorithm = algorithmOf(parsed);
  if (parsed.signature.length !== algorithm.signatureBytes) return false;
  const s = scalarOf(parsed.signature.subarray(algorithm.signatureBytes / 2));
  return s <= algorithm.order >> 1n;
}

/** The raw r||s signature with s replaced by n - s when s > n/2: same validity, low-S form. */
export function lowSSignature(signature: Uint8Array, algId: number): Buffer {
  const algorithm = ECDSA_ALGORITHMS.get(algId);
  if (algorithm === undefined) throw invalid(`unsupported alg ${algId} (expected ES256 -7, ES384 -35 or ES512 -36)`);
  if (signature.length !== algorithm.signatureBytes) {
    throw invalid(`an ${algorithm.name} signature is ${algorithm.signatureBytes} bytes (raw r||s), got ${signature.length}`);
  }
  const half = algorithm.signatureBytes / 2;
  const s = scalarOf(signature.subarray(half));
  if (s <= algorithm.order >> 1n) return Buffer.from(signature);
  return Buffer.concat([Buffer.from(signature.subarray(0, half)), scalarBytes(algorithm.order - s, half)]);
}

export interface SignCoseSign1Args {
  privateKeyPem: string;
  /** Extra protected headers. alg (label 1) is set from the key's curve when absent. */
  protectedHeaders?: CoseHeaderMap;
  unprotectedHeaders?: CoseHeaderMap;
  payload: Uint8Array;
  /** Key identifier, written to the protected header (label 4) as a byte string. */
  kid?: Uint8Array | string;
  /** Sign `payload` but leave it out of the message (nil), as COSE receipts over a Merkle root do. */
  detachedPayload?: boolean;
}

function algorithmIdForKey(key: KeyObject): number {
  const curve = curveOf(key);
  for (const [id, algorithm] of ECDSA_ALGORITHMS) if (algorithm.curve === curve) return id;
  throw new CocoError("InvalidInput", "COSE signing needs an EC key on P-256, P-384 or P-521.", 400);
}

/** A tagged COSE_Sign1 message (tag 18) over `payload`, protected headers in deterministic order. */
export function signCoseSign1(args: SignCoseSign1Args): Buffer {
  const key = cachedPrivateKeyObject(args.privateKeyPem);
  const algId = algorithmIdForKey(key);
  const headers: CoseHeaderMap = new Map(args.protectedHeaders ?? []);
  const requestedAlg = headers.get(COSE_HEADER_ALG);
  if (requestedAlg !== undefined && requestedAlg !== algId) {
    throw new CocoError("InvalidInput", `Protected alg ${String(requestedAlg)} does not match the signing key (alg ${algId}).`, 400);
  }
  headers.set(COSE_HEADER_ALG, algId);
  if (args.kid !== undefined) {
    headers.set(COSE_HEADER_KID, typeof args.kid === "string" ? Buffer.from(args.kid, "utf8") : Buffer.from(args.kid));
  }
  checkLabels(headers, "Protected");
  const unprotected: CoseHeaderMap = new Map(args.unprotectedHeaders ?? []);
  checkLabels(unprotected, "Unprotected");

  const protectedRaw = encodeCbor(deterministicMap(headers));
  const payload = Buffer.from(args.payload);
  const algorithm = ECDSA_ALGORITHMS.get(algId)!;
  // OpenSSL returns high-S half the time; governance refuses those (see isLowSCoseSignature).
  const signature = lowSSignature(nodeSign(algorithm.hash, coseSign1ToBeSigned(protectedRaw, payload), { key, dsaEncoding: "ieee-p1363" }), algId);
  return encodeCbor(new Tag([protectedRaw, deterministicMap(unprotected), args.detachedPayload === true ? null : payload, signature], COSE_SIGN1_TAG));
}

/** Re-encodes a tagged COSE_Sign1 with other unprotected headers; protected headers, payload and signature are kept byte for byte. */
export function withUnprotectedHeaders(message: CoseSign1, unprotected: CoseHeaderMap): Buffer {
  checkLabels(unprotected, "Unprotected");
  return encodeCbor(new Tag([message.protectedRaw, deterministicMap(unprotected), message.payload, message.signature], COSE_SIGN1_TAG));
}
