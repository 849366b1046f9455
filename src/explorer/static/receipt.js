// Checks a CCF JSON receipt in the browser, step for step as the client SDK does
// (src/client/receipt.ts): the leaf from its components, the root from the Merkle path
// (SHA-256, WebCrypto), the node id from the node certificate's key, the node certificate
// endorsed by the service certificate (ECDSA, WebCrypto), and the node's signature over the root.
// That last signature is over the 32-byte root used as the digest itself, which WebCrypto cannot
// check (it always hashes its input): the caller passes a verifier for it (@noble/curves).
import { concat, equalBytes, fromBase64, fromHex, sha256, toHex, utf8 } from "./bytes.js";
import { CURVES, derSignatureToRaw, ECDSA_SIGNATURE_HASHES, parseCertificatePem } from "./der.js";

const HEX_DIGEST = /^[0-9a-fA-F]{64}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const COMMIT_EVIDENCE = /^ce:(\d{1,15})\.(\d{1,15}):([0-9a-fA-F]+)$/;
const P384 = "1.3.132.0.34";

/**
 * Verifies a DER ECDSA signature over a digest used as is (no further hashing).
 * @typedef {(publicPoint: Uint8Array, digest: Uint8Array, derSignature: Uint8Array) => boolean} PrehashedVerifier
 */

export class InvalidReceipt extends Error {
  constructor(/** @type {string} */ reason) {
    super(`Invalid receipt: ${reason}`);
    this.name = "InvalidReceipt";
  }
}

function digestField(/** @type {unknown} */ value, /** @type {string} */ name) {
  if (typeof value !== "string" || !HEX_DIGEST.test(value)) throw new InvalidReceipt(`${name} must be a 64-character hex SHA-256 digest.`);
  return fromHex(value.toLowerCase());
}

function certificateField(/** @type {unknown} */ pem, /** @type {string} */ name) {
  if (typeof pem !== "string" || !pem.includes("-----BEGIN CERTIFICATE-----")) throw new InvalidReceipt(`${name} must be a PEM certificate.`);
  try {
    return parseCertificatePem(pem);
  } catch {
    throw new InvalidReceipt(`${name} is not a parseable X.509 certificate.`);
  }
}

/** Whether `issuer`'s key signed `subject` (X.509 ecdsa-with-SHA*), by WebCrypto. */
async function isSignedBy(/** @type {import("./der.js").ParsedCertificate} */ subject, /** @type {import("./der.js").ParsedCertificate} */ issuer) {
  const hash = ECDSA_SIGNATURE_HASHES[subject.signatureAlgorithm];
  const curve = CURVES[issuer.curve];
  if (hash === undefined || curve === undefined) return false;
  try {
    const key = await crypto.subtle.importKey("spki", issuer.spki, { name: "ECDSA", namedCurve: curve.name }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "ECDSA", hash }, key, derSignatureToRaw(subject.signature, curve.bytes), subject.tbs);
  } catch {
    return false;
  }
}

/**
 * @param {any} receipt the JSON of GET /app/receipt
 * @param {string} serviceCertificatePem the service certificate the reader trusts
 * @param {PrehashedVerifier} verifyPrehashed
 * @returns {Promise<{ root: string, leaf: string, transactionId: string, nodeId: string }>} hex digests
 */
export async function verifyReceipt(receipt, serviceCertificatePem, verifyPrehashed) {
  if (typeof receipt !== "object" || receipt === null) throw new InvalidReceipt("the receipt must be a JSON object.");
  const service = certificateField(serviceCertificatePem, "the service certificate");
  const node = certificateField(receipt.cert, "cert");
  const endorsementsField = receipt.service_endorsements ?? [];
  if (!Array.isArray(endorsementsField)) throw new InvalidReceipt("service_endorsements must be an array of PEM certificates.");
  const endorsements = endorsementsField.map((pem, i) => certificateField(pem, `service_endorsements[${i}]`));
  if (typeof receipt.node_id !== "string" || !HEX_DIGEST.test(receipt.node_id)) throw new InvalidReceipt("node_id must be a 64-character hex digest.");
  if (typeof receipt.signature !== "string" || receipt.signature.length === 0 || !BASE64.test(receipt.signature)) {
    throw new InvalidReceipt("signature must be non-empty standard base64 (a DER ECDSA signature).");
  }
  const signature = fromBase64(receipt.signature);
  if (!Array.isArray(receipt.proof)) throw new InvalidReceipt("proof must be an array.");
  const path = receipt.proof.map((/** @type {unknown} */ step, /** @type {number} */ i) => {
    const keys = typeof step === "object" && step !== null ? Object.keys(step) : [];
    if (keys.length !== 1 || (keys[0] !== "left" && keys[0] !== "right")) throw new InvalidReceipt(`proof[${i}] must be an object with exactly one of "left" or "right".`);
    return { side: keys[0], hash: digestField(/** @type {any} */ (step)[keys[0]], `proof[${i}].${keys[0]}`) };
  });
  const components = receipt.leaf_components;
  if (typeof components !== "object" || components === null) throw new InvalidReceipt("leaf_components must be an object.");
  const evidence = typeof components.commit_evidence === "string" ? COMMIT_EVIDENCE.exec(components.commit_evidence) : null;
  if (evidence === null) throw new InvalidReceipt('commit_evidence must look like "ce:<view>.<seqno>:<hex>".');
  const leaf = await sha256(concat(
    digestField(components.write_set_digest, "leaf_components.write_set_digest"),
    await sha256(utf8(components.commit_evidence)),
    digestField(components.claims_digest, "leaf_components.claims_digest"),
  ));

  const nodeId = toHex(await sha256(node.spki));
  if (nodeId !== receipt.node_id.toLowerCase()) throw new InvalidReceipt(`node_id ${receipt.node_id} does not match the public key of cert (node id ${nodeId}).`);
  const chain = [node, ...endorsements, service];
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!(await isSignedBy(chain[i], chain[i + 1]))) {
      const subject = i === 0 ? "the node certificate (cert)" : `service_endorsements[${i - 1}]`;
      const issuer = i + 1 === chain.length - 1 ? "the service certificate" : `service_endorsements[${i}]`;
      throw new InvalidReceipt(`${subject} is not endorsed by ${issuer}: its signature does not verify with that key.`);
    }
  }

  let root = leaf;
  for (const step of path) root = await sha256(step.side === "left" ? concat(step.hash, root) : concat(root, step.hash));
  if (node.curve !== P384) throw new InvalidReceipt("cert does not hold an EC P-384 key, the only kind CCF signs receipts with.");
  let valid;
  try {
    valid = verifyPrehashed(node.publicPoint, root, signature);
  } catch {
    valid = false;
  }
  if (!valid) {
    throw new InvalidReceipt(`signature does not verify over the root ${toHex(root)} recomputed from leaf_components and proof with the key of cert: the receipt was altered or belongs to another transaction.`);
  }
  return { root: toHex(root), leaf: toHex(leaf), transactionId: `${evidence[1]}.${evidence[2]}`, nodeId };
}

/** True when two PEM certificates are the same certificate. */
export function sameCertificate(/** @type {string} */ a, /** @type {string} */ b) {
  try {
    return equalBytes(parseCertificatePem(a).der, parseCertificatePem(b).der);
  } catch {
    return false;
  }
}
