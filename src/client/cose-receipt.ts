// Verification of CCF 6 COSE receipts (from GET /app/log/public/cose_receipt): offline, with
// the service certificate alone. The COSE part (kid, vds, inclusion proof, the service's
// signature over the rebuilt root) is merkle/cose-receipt.ts; here the leaf is checked against
// what the caller claims: which transaction it is, and (optionally) its claims digest.
import { verifyCoseReceipt, type VerifiedCoseReceipt } from "../merkle/index.js";
import { CocoError } from "../util/errors.js";
import { formatTxId, parseTxId } from "../util/txid.js";

/** CBOR tag 18 (COSE_Sign1) as its first byte: how a COSE receipt file is told from a JSON one. */
export const COSE_SIGN1_TAG_BYTE = 0xd2;

export interface CoseReceiptClaims {
  /** The transaction the receipt must prove, `view.seqno`. */
  transactionId?: string;
  /** Hex SHA-256 the application bound to the transaction (CCF's claims digest). */
  claimsDigest?: string;
}

export interface VerifiedTransactionCoseReceipt extends VerifiedCoseReceipt {
  /** The transaction the leaf proves, from its commit evidence. */
  txId: { view: number; seqno: number };
}

const COMMIT_EVIDENCE = /^ce:(\d{1,15})\.(\d{1,15}):[0-9a-fA-F]+$/;

function invalid(message: string): CocoError {
  return new CocoError("InvalidCoseReceipt", message, 400);
}

export function isCoseReceipt(bytes: Uint8Array): boolean {
  return bytes[0] === COSE_SIGN1_TAG_BYTE;
}

/**
 * Verifies a COSE receipt against the service certificate and checks the leaf: its commit
 * evidence names a transaction before the signature transaction, and matches `claims` where given.
 * Throws CocoError "InvalidCoseReceipt" saying which check failed.
 */
export function verifyTransactionCoseReceipt(receipt: Uint8Array, serviceCertPem: string, claims: CoseReceiptClaims = {}): VerifiedTransactionCoseReceipt {
  const verified = verifyCoseReceipt(receipt, serviceCertPem);
  const match = COMMIT_EVIDENCE.exec(verified.leaf.commitEvidence);
  if (match === null) throw invalid(`the leaf's commit evidence is not ce:<view>.<seqno>:<hex> (got ${JSON.stringify(verified.leaf.commitEvidence.slice(0, 80))})`);
  const txId = { view: Number(match[1]), seqno: Number(match[2]) };
  let signed: { view: number; seqno: number };
  try {
    signed = parseTxId(verified.signedTxId);
  } catch {
    throw invalid(`the signed transaction id ${JSON.stringify(verified.signedTxId)} is not view.seqno`);
  }
  if (txId.seqno >= signed.seqno) {
    throw invalid(`the leaf's transaction ${formatTxId(txId.view, txId.seqno)} is not before the signature transaction ${verified.signedTxId} that signs it`);
  }
  if (claims.transactionId !== undefined && claims.transactionId !== formatTxId(txId.view, txId.seqno)) {
    throw invalid(`the receipt proves transaction ${formatTxId(txId.view, txId.seqno)}, not ${claims.transactionId}`);
  }
  if (claims.claimsDigest !== undefined && claims.claimsDigest.toLowerCase() !== Buffer.from(verified.leaf.claimsDigest).toString("hex")) {
    throw invalid(`the leaf's claims digest is ${Buffer.from(verified.leaf.claimsDigest).toString("hex")}, not ${claims.claimsDigest}`);
  }
  return { ...verified, txId };
}
