// The little DER the explorer must read and write: X.509 certificates (to find the signed part,
// the signature and the public key), ECDSA signatures (DER <-> raw r||s as WebCrypto wants) and
// a SEC1 "EC PRIVATE KEY" wrapped as PKCS#8 (the only private key form WebCrypto imports).
// Parsing only: every signature is checked by WebCrypto or @noble/curves.
import { concat, pemBlocks, toHex } from "./bytes.js";

/** @typedef {import("./bytes.js").Bytes} Bytes */

const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_OCTET_STRING = 0x04;
const TAG_OID = 0x06;
const TAG_SEQUENCE = 0x30;
const TAG_CONTEXT_0 = 0xa0;

export const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
/** Curve OIDs and what WebCrypto calls them, with the raw size of one coordinate / scalar. @type {Record<string, { name: string, bytes: number } | undefined>} */
export const CURVES = {
  "1.2.840.10045.3.1.7": { name: "P-256", bytes: 32 },
  "1.3.132.0.34": { name: "P-384", bytes: 48 },
  "1.3.132.0.35": { name: "P-521", bytes: 66 },
};
/** X.509 signature algorithm OIDs (ecdsa-with-SHA*) and the hash WebCrypto verifies with. @type {Record<string, string | undefined>} */
export const ECDSA_SIGNATURE_HASHES = {
  "1.2.840.10045.4.3.2": "SHA-256",
  "1.2.840.10045.4.3.3": "SHA-384",
  "1.2.840.10045.4.3.4": "SHA-512",
};

/** @typedef {{ tag: number, offset: number, start: number, end: number }} Tlv */

/**
 * One TLV at `offset`: its tag, and where its contents start and end.
 * @param {Uint8Array} bytes @param {number} offset
 * @returns {Tlv}
 */
export function readTlv(bytes, offset) {
  if (offset + 2 > bytes.length) throw new Error("DER: truncated");
  const tag = bytes[offset];
  let length = bytes[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new Error("DER: unsupported length");
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[start + i];
    start += count;
  }
  const end = start + length;
  if (end > bytes.length) throw new Error("DER: length beyond the data");
  return { tag, offset, start, end };
}

/** The TLVs directly inside a constructed TLV. @returns {Tlv[]} */
export function childrenOf(/** @type {Uint8Array} */ bytes, /** @type {{start:number,end:number}} */ parent) {
  const out = [];
  for (let offset = parent.start; offset < parent.end;) {
    const child = readTlv(bytes, offset);
    out.push(child);
    offset = child.end;
  }
  return out;
}

/** @param {Tlv | undefined} tlv @param {number} tag @param {string} what @returns {Tlv} */
function expectTag(tlv, tag, what) {
  if (tlv === undefined || tlv.tag !== tag) throw new Error(`DER: expected ${what}`);
  return tlv;
}

/** @param {Uint8Array} bytes @param {{start:number,end:number}} tlv @returns {string} dotted OID */
export function decodeOid(bytes, tlv) {
  const parts = [];
  let value = 0;
  for (let i = tlv.start; i < tlv.end; i++) {
    value = value * 128 + (bytes[i] & 0x7f);
    if ((bytes[i] & 0x80) === 0) {
      if (parts.length === 0) parts.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else parts.push(value);
      value = 0;
    }
  }
  return parts.join(".");
}

/**
 * @typedef {object} ParsedCertificate
 * @property {Bytes} der
 * @property {Bytes} tbs the signed TBSCertificate, as it appears in the certificate
 * @property {string} signatureAlgorithm dotted OID
 * @property {Bytes} signature DER ECDSA-Sig-Value from the signature BIT STRING
 * @property {Bytes} spki SubjectPublicKeyInfo DER (what CCF's node id hashes)
 * @property {string} curve dotted OID of the EC key's curve ("" when not an EC key)
 * @property {Bytes} publicPoint SEC1 point from the SPKI BIT STRING (0x04 || x || y)
 */

/** @param {Bytes} der @returns {ParsedCertificate} */
export function parseCertificate(der) {
  const certificate = expectTag(readTlv(der, 0), TAG_SEQUENCE, "a certificate SEQUENCE");
  const [tbsTlv, algorithmTlv, signatureTlv] = childrenOf(der, certificate);
  expectTag(tbsTlv, TAG_SEQUENCE, "TBSCertificate");
  const algorithmOid = expectTag(childrenOf(der, expectTag(algorithmTlv, TAG_SEQUENCE, "signatureAlgorithm"))[0], TAG_OID, "an algorithm OID");
  expectTag(signatureTlv, TAG_BIT_STRING, "signatureValue");
  const tbsFields = childrenOf(der, tbsTlv);
  // version [0] is optional; then serial, signature, issuer, validity, subject, SPKI.
  const spkiTlv = expectTag(tbsFields[tbsFields[0]?.tag === TAG_CONTEXT_0 ? 6 : 5], TAG_SEQUENCE, "SubjectPublicKeyInfo");
  const [keyAlgorithmTlv, keyBitsTlv] = childrenOf(der, spkiTlv);
  const keyAlgorithm = childrenOf(der, expectTag(keyAlgorithmTlv, TAG_SEQUENCE, "the key algorithm"));
  const isEc = decodeOid(der, expectTag(keyAlgorithm[0], TAG_OID, "a key algorithm OID")) === OID_EC_PUBLIC_KEY;
  expectTag(keyBitsTlv, TAG_BIT_STRING, "the public key BIT STRING");
  return {
    der,
    tbs: der.subarray(tbsTlv.offset, tbsTlv.end),
    signatureAlgorithm: decodeOid(der, algorithmOid),
    signature: der.subarray(signatureTlv.start + 1, signatureTlv.end),
    spki: der.subarray(spkiTlv.offset, spkiTlv.end),
    curve: isEc && keyAlgorithm[1]?.tag === TAG_OID ? decodeOid(der, keyAlgorithm[1]) : "",
    publicPoint: der.subarray(keyBitsTlv.start + 1, keyBitsTlv.end),
  };
}

/** The first certificate of a PEM text. @param {string} pem */
export function parseCertificatePem(pem) {
  const [der] = pemBlocks(pem, "CERTIFICATE");
  if (der === undefined) throw new Error("not a PEM certificate");
  return parseCertificate(der);
}

/** Big-endian unsigned integer bytes, left-padded (or stripped of zero padding) to `size`. @returns {Bytes} */
function fixedWidth(/** @type {Uint8Array} */ integer, /** @type {number} */ size) {
  let start = 0;
  while (start < integer.length - 1 && integer[start] === 0) start++;
  const trimmed = integer.subarray(start);
  if (trimmed.length > size) throw new Error("DER: integer wider than the curve");
  const out = new Uint8Array(size);
  out.set(trimmed, size - trimmed.length);
  return out;
}

/** DER ECDSA-Sig-Value -> raw r || s (IEEE P1363), as WebCrypto verifies. */
export function derSignatureToRaw(/** @type {Uint8Array} */ der, /** @type {number} */ size) {
  const sequence = expectTag(readTlv(der, 0), TAG_SEQUENCE, "ECDSA-Sig-Value");
  if (sequence.end !== der.length) throw new Error("DER: trailing bytes after the signature");
  const [r, s] = childrenOf(der, sequence);
  expectTag(r, TAG_INTEGER, "r");
  expectTag(s, TAG_INTEGER, "s");
  return concat(fixedWidth(der.subarray(r.start, r.end), size), fixedWidth(der.subarray(s.start, s.end), size));
}

/** A DER length field. */
function encodeLength(/** @type {number} */ length) {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** @param {number} tag @param {Uint8Array[]} contents */
export function encodeTlv(tag, ...contents) {
  const body = concat(...contents);
  return concat(Uint8Array.of(tag), encodeLength(body.length), body);
}

function encodeOid(/** @type {string} */ dotted) {
  const [first, second, ...rest] = dotted.split(".").map(Number);
  const bytes = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const groups = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) groups.unshift(0x80 | (n & 0x7f));
    bytes.push(...groups);
  }
  return encodeTlv(TAG_OID, Uint8Array.from(bytes));
}

/**
 * A member key as PKCS#8 DER: "PRIVATE KEY" as is, "EC PRIVATE KEY" (SEC1, what openssl ecparam
 * and CCF's keygenerator.sh write) wrapped in a PrivateKeyInfo naming its curve.
 * @param {string} pem @returns {{ pkcs8: Bytes, curve: string | undefined }}
 */
export function privateKeyPkcs8(pem) {
  const [pkcs8] = pemBlocks(pem, "PRIVATE KEY");
  if (pkcs8 !== undefined) return { pkcs8, curve: undefined };
  const [sec1] = pemBlocks(pem, "EC PRIVATE KEY");
  if (sec1 === undefined) throw new Error("expected a PEM private key (BEGIN PRIVATE KEY or BEGIN EC PRIVATE KEY)");
  const fields = childrenOf(sec1, expectTag(readTlv(sec1, 0), TAG_SEQUENCE, "ECPrivateKey"));
  const parameters = fields.find((f) => f.tag === TAG_CONTEXT_0);
  if (parameters === undefined) throw new Error("the EC private key does not name its curve");
  const curve = decodeOid(sec1, expectTag(readTlv(sec1, parameters.start), TAG_OID, "a curve OID"));
  const algorithm = encodeTlv(TAG_SEQUENCE, encodeOid(OID_EC_PUBLIC_KEY), encodeOid(curve));
  return { pkcs8: encodeTlv(TAG_SEQUENCE, Uint8Array.of(TAG_INTEGER, 1, 0), algorithm, encodeTlv(TAG_OCTET_STRING, sec1)), curve };
}

/** Lowercase hex SHA-256 of the DER: CCF's member and user id. @param {Bytes} der */
export async function certificateId(der) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", der)));
}
