// Governance requests signed in the browser: the COSE_Sign1 body CCF's gov API wants (RFC 9052),
// made exactly as the node's signGovernanceRequest makes it (src/governance/cose-auth.ts):
// protected headers alg, kid (the member id's hex as bytes), ccf.gov.msg.type,
// ccf.gov.msg.created_at and, for ballots and withdrawals, ccf.gov.msg.proposal_id, in CBOR's
// deterministic order; ECDSA by WebCrypto; s replaced by n - s when high (the node refuses high-S).
import { compareBytes, concat, fromHex, toHex, utf8 } from "./bytes.js";
import { encodeCbor, Tagged } from "./cbor.js";
import { certificateId, CURVES, parseCertificatePem, privateKeyPkcs8 } from "./der.js";

const COSE_SIGN1_TAG = 18;
const HEADER_ALG = 1;
const HEADER_KID = 4;
export const GOV_MSG_TYPE = "ccf.gov.msg.type";
export const GOV_MSG_CREATED_AT = "ccf.gov.msg.created_at";
export const GOV_MSG_PROPOSAL_ID = "ccf.gov.msg.proposal_id";
const MSG_TYPES_WITH_PROPOSAL_ID = ["ballot", "withdrawal"];
/** created_at is stored as 10 decimal digits (CCF): the largest value the node accepts. */
const CREATED_AT_MAX = 9_999_999_999;

/** COSE algorithm, WebCrypto hash and group order per curve (RFC 9053 table 1). @type {Record<string, { alg: number, hash: string, order: bigint } | undefined>} */
const ALGORITHMS = {
  "P-256": { alg: -7, hash: "SHA-256", order: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n },
  "P-384": { alg: -35, hash: "SHA-384", order: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n },
};

/**
 * A member's signing identity, held by the page only. The private key is a non-extractable
 * WebCrypto key: page scripts can sign with it but cannot read it back.
 * @typedef {object} MemberIdentity
 * @property {string} memberId lowercase hex SHA-256 of the certificate DER
 * @property {string} certificatePem
 * @property {string} curve "P-256" or "P-384"
 * @property {CryptoKey} privateKey
 */

/**
 * Imports a member's certificate and private key, checking that they belong together.
 * @param {string} certificatePem @param {string} privateKeyPem @returns {Promise<MemberIdentity>}
 */
export async function importMemberIdentity(certificatePem, privateKeyPem) {
  const certificate = parseCertificatePem(certificatePem);
  const curve = CURVES[certificate.curve]?.name;
  if (curve === undefined || !(curve in ALGORITHMS)) throw new Error("the member certificate must hold an EC P-256 or P-384 key");
  const { pkcs8, curve: keyCurve } = privateKeyPkcs8(privateKeyPem);
  if (keyCurve !== undefined && CURVES[keyCurve]?.name !== curve) throw new Error("the private key is on another curve than the certificate's key");
  const algorithm = { name: "ECDSA", namedCurve: curve };
  // Imported once extractable, only to compare its public point with the certificate's.
  const probe = await crypto.subtle.importKey("pkcs8", pkcs8, algorithm, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", probe);
  const point = concat(Uint8Array.of(4), base64UrlBytes(jwk.x ?? ""), base64UrlBytes(jwk.y ?? ""));
  if (toHex(point) !== toHex(certificate.publicPoint)) throw new Error("the private key does not belong to the certificate");
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, algorithm, false, ["sign"]);
  return { memberId: await certificateId(certificate.der), certificatePem, curve, privateKey };
}

function base64UrlBytes(/** @type {string} */ text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** Labels sorted by their encoded bytes (RFC 8949 section 4.2.1), as the node orders them. */
function deterministicMap(/** @type {Map<number|string, unknown>} */ map) {
  const entries = [...map].map(([label, value]) => ({ label, value, key: encodeCbor(label) }));
  entries.sort((a, b) => compareBytes(a.key, b.key));
  return new Map(entries.map((e) => [e.label, e.value]));
}

/** Raw r || s with s replaced by n - s when s > n/2 (same validity; the form the node accepts). */
export function lowS(/** @type {import("./bytes.js").Bytes} */ signature, /** @type {bigint} */ order) {
  const half = signature.length / 2;
  const s = BigInt(`0x${toHex(signature.subarray(half))}`);
  if (s <= order >> 1n) return signature;
  return concat(signature.subarray(0, half), fromHex((order - s).toString(16).padStart(half * 2, "0")));
}

/** The bytes ECDSA signs: Sig_structure ["Signature1", protected, external_aad = h'', payload]. */
export function toBeSigned(/** @type {Uint8Array} */ protectedRaw, /** @type {Uint8Array} */ payload) {
  return encodeCbor(["Signature1", protectedRaw, new Uint8Array(0), payload]);
}

/**
 * The body of a governance request (send with Content-Type: application/cose).
 * @param {MemberIdentity} identity
 * @param {{ msgType: string, createdAt: number, proposalId?: string, payload: string | Uint8Array }} request
 * @returns {Promise<import("./bytes.js").Bytes>}
 */
export async function signGovernanceRequest(identity, request) {
  const { msgType, createdAt, proposalId } = request;
  if (!Number.isSafeInteger(createdAt) || createdAt < 0 || createdAt > CREATED_AT_MAX) throw new Error(`createdAt must be whole seconds since the epoch, got ${createdAt}`);
  if (MSG_TYPES_WITH_PROPOSAL_ID.includes(msgType) && proposalId === undefined) throw new Error(`a ${msgType} must name its proposal`);
  const algorithm = ALGORITHMS[identity.curve];
  if (algorithm === undefined) throw new Error(`no COSE algorithm for curve ${identity.curve}`);
  const { alg, hash, order } = algorithm;
  /** @type {Map<number | string, unknown>} */
  const headers = new Map();
  headers.set(HEADER_ALG, alg).set(HEADER_KID, utf8(identity.memberId)).set(GOV_MSG_TYPE, msgType).set(GOV_MSG_CREATED_AT, createdAt);
  if (proposalId !== undefined) headers.set(GOV_MSG_PROPOSAL_ID, proposalId);
  const protectedRaw = encodeCbor(deterministicMap(headers));
  const payload = typeof request.payload === "string" ? utf8(request.payload) : request.payload;
  const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash }, identity.privateKey, toBeSigned(protectedRaw, payload)));
  return encodeCbor(new Tagged(COSE_SIGN1_TAG, [protectedRaw, new Map(), payload, lowS(raw, order)]));
}
