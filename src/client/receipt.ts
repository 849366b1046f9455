// Verification of CCF JSON receipts (CCF 4.x+ "ProofReceipt", from GET /app/receipt): proves
// offline, with only the service certificate, that a transaction is in the signed ledger.
// Steps: leaf from its components -> root via the Merkle path -> node signature over the root
// (prehashed ECDSA) -> node certificate endorsed by the service (optionally via endorsements).
import { X509Certificate } from "node:crypto";
import { nodeIdFromPublicKey, publicKeyPemFromCertificate, sha256, verifyDigest } from "../crypto/index.js";
import { computeRootFromPath, rootPreimageFromPath, type ProofStep } from "../merkle/index.js";
import { CocoError } from "../util/errors.js";

export type { CcfReceipt, CcfReceiptLeafComponents } from "../merkle/index.js";
import type { CcfReceipt, CcfReceiptLeafComponents } from "../merkle/index.js";

export interface VerifiedReceipt {
  /** The Merkle root the node signed. */
  root: Buffer;
  /** The leaf recomputed from the leaf components. */
  leaf: Buffer;
  /** Transaction id, from the commit evidence. */
  txId: { view: number; seqno: number };
}

const HEX_DIGEST = /^[0-9a-fA-F]{64}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const COMMIT_EVIDENCE = /^ce:(\d{1,15})\.(\d{1,15}):([0-9a-fA-F]+)$/;

function invalid(reason: string, cause?: unknown): CocoError {
  return new CocoError("InvalidReceipt", `Invalid receipt: ${reason}`, 400, cause === undefined ? undefined : { cause });
}

function digestField(value: unknown, name: string): Buffer {
  if (typeof value !== "string" || !HEX_DIGEST.test(value)) {
    throw invalid(`${name} must be a 64-character hex SHA-256 digest, got ${describe(value)}.`);
  }
  return Buffer.from(value, "hex");
}

function describe(value: unknown): string {
  if (typeof value === "string") return value.length > 80 ? `a ${value.length}-character string` : JSON.stringify(value);
  return value === undefined ? "nothing" : typeof value;
}

/** Splits commit evidence "ce:<view>.<seqno>:<hex>" into its transaction id. */
export function parseCommitEvidence(commitEvidence: string): { view: number; seqno: number } {
  const match = typeof commitEvidence === "string" ? COMMIT_EVIDENCE.exec(commitEvidence) : null;
  if (match === null) {
    throw invalid(`commit_evidence must look like "ce:<view>.<seqno>:<hex>", got ${describe(commitEvidence)}.`);
  }
  return { view: Number(match[1]), seqno: Number(match[2]) };
}

/** Leaf = SHA-256(write_set_digest || SHA-256(utf8(commit_evidence)) || claims_digest). */
export function computeLeaf(components: CcfReceiptLeafComponents): Buffer {
  if (typeof components !== "object" || components === null) throw invalid("leaf_components must be an object.");
  const writeSetDigest = digestField(components.write_set_digest, "leaf_components.write_set_digest");
  parseCommitEvidence(components.commit_evidence);
  const claimsDigest = digestField(components.claims_digest, "leaf_components.claims_digest");
  return sha256(writeSetDigest, sha256(Buffer.from(components.commit_evidence, "utf8")), claimsDigest);
}

function parseProof(proof: unknown): ProofStep[] {
  if (!Array.isArray(proof)) throw invalid(`proof must be an array, got ${describe(proof)}.`);
  return proof.map((step: unknown, i): ProofStep => {
    const keys = typeof step === "object" && step !== null ? Object.keys(step) : [];
    if (keys.length !== 1 || (keys[0] !== "left" && keys[0] !== "right")) {
      throw invalid(`proof[${i}] must be an object with exactly one of "left" or "right".`);
    }
    const side = keys[0];
    const hash = digestField((step as Record<string, unknown>)[side], `proof[${i}].${side}`);
    return side === "left" ? { left: hash } : { right: hash };
  });
}

function parseCertificateField(pem: unknown, name: string): X509Certificate {
  if (typeof pem !== "string" || !pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw invalid(`${name} must be a PEM certificate, got ${describe(pem)}.`);
  }
  try {
    return new X509Certificate(pem);
  } catch (cause) {
    throw invalid(`${name} is not a parseable X.509 certificate.`, cause);
  }
}

function parseSignature(signature: unknown): Buffer {
  if (typeof signature !== "string" || signature.length === 0 || !BASE64.test(signature)) {
    throw invalid(`signature must be non-empty standard base64 (a DER ECDSA signature), got ${describe(signature)}.`);
  }
  return Buffer.from(signature, "base64");
}

/**
 * Checks that each certificate in the chain is signed by the next one's key, ending at the
 * service certificate. Like CCF's own verifier this checks signatures, not names, so that
 * endorsements of earlier service identities (after a disaster recovery) chain correctly.
 */
function checkEndorsementChain(nodeCert: X509Certificate, endorsements: X509Certificate[], serviceCert: X509Certificate): void {
  const chain = [nodeCert, ...endorsements, serviceCert];
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i]!.verify(chain[i + 1]!.publicKey)) {
      const subject = i === 0 ? "the node certificate (cert)" : `service_endorsements[${i - 1}]`;
      const issuer = i + 1 === chain.length - 1 ? "the service certificate" : `service_endorsements[${i}]`;
      throw invalid(`${subject} is not endorsed by ${issuer}: its signature does not verify with that key.`);
    }
  }
}

/**
 * Verifies a JSON receipt against the service certificate the client trusts. Returns the
 * signed root, the leaf and the transaction id; throws CocoError("InvalidReceipt") naming the
 * first check that failed.
 */
export function verifyReceipt(receipt: CcfReceipt, serviceCertPem: string): VerifiedReceipt {
  if (typeof receipt !== "object" || receipt === null) throw invalid("the receipt must be a JSON object.");
  const serviceCert = parseCertificateField(serviceCertPem, "the service certificate");
  const nodeCert = parseCertificateField(receipt.cert, "cert");
  const endorsementsField: unknown = receipt.service_endorsements ?? [];
  if (!Array.isArray(endorsementsField)) throw invalid("service_endorsements must be an array of PEM certificates.");
  const endorsements = endorsementsField.map((pem: unknown, i) => parseCertificateField(pem, `service_endorsements[${i}]`));
  if (typeof receipt.node_id !== "string" || !HEX_DIGEST.test(receipt.node_id)) {
    throw invalid(`node_id must be a 64-character hex digest, got ${describe(receipt.node_id)}.`);
  }
  const signature = parseSignature(receipt.signature);
  const path = parseProof(receipt.proof);
  const leaf = computeLeaf(receipt.leaf_components);
  const txId = parseCommitEvidence(receipt.leaf_components.commit_evidence);

  const nodeId = nodeIdFromPublicKey(publicKeyPemFromCertificate(receipt.cert));
  if (nodeId !== receipt.node_id.toLowerCase()) {
    throw invalid(`node_id ${receipt.node_id} does not match the public key of cert (node id ${nodeId}).`);
  }
  checkEndorsementChain(nodeCert, endorsements, serviceCert);

  const root = computeRootFromPath(leaf, path);
  let signatureValid: boolean;
  try {
    signatureValid = verifyDigest(receipt.cert, root, signature, rootPreimageFromPath(leaf, path));
  } catch (cause) {
    throw invalid("cert does not hold an EC P-384 key, the only kind CCF signs receipts with.", cause);
  }
  if (!signatureValid) {
    throw invalid(
      `signature does not verify over the root ${root.toString("hex")} recomputed from leaf_components and proof ` +
        "with the key of cert: the receipt was altered or belongs to another transaction.",
    );
  }
  return { root, leaf, txId };
}
