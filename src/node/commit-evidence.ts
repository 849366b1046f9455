// Commit evidence, as CCF defines it: the string `ce:<view>.<seqno>:<hex nonce>` whose digest is
// bound into each transaction's Merkle leaf. The nonce is a pseudo-random function of the
// transaction id under a key only the service holds (derived from the ledger secret), so
// nobody can produce the evidence, and hence a receipt, for a transaction before the service
// reveals it, which it does only once the transaction is committed.
//
// The PRF is AES-256 applied to the 16-byte block (view u64 BE || seqno u64 BE). Consecutive
// seqnos are consecutive blocks, so the nonces of a whole batch of transactions come from one
// AES-CTR call over zeros (the CTR keystream *is* AES of the successive counter blocks): one
// cipher call per batch instead of one HMAC per transaction.
import { createCipheriv, createSecretKey, type KeyObject } from "node:crypto";
import { hkdfSha256, sha256Into } from "../crypto/index.js";
import type { LedgerSecrets } from "../ledger/index.js";

export const COMMIT_NONCE_BYTES = 16;
const digestScratch = Buffer.alloc(32);

function counterBlock(view: number, seqno: number): Buffer {
  const block = Buffer.alloc(16);
  block.writeBigUInt64BE(BigInt(view), 0);
  block.writeBigUInt64BE(BigInt(seqno), 8);
  return block;
}

export class CommitEvidence {
  private readonly key: KeyObject;
  private zeros = Buffer.alloc(16 * 256);

  constructor(ledgerSecret: Buffer) {
    this.key = createSecretKey(hkdfSha256(ledgerSecret, Buffer.alloc(0), Buffer.from("coco commit evidence v1"), 32));
  }

  /** Nonces of `count` consecutive transactions (view, firstSeqno + i), 16 bytes each. */
  nonces(view: number, firstSeqno: number, count: number): Buffer {
    if (this.zeros.length < count * COMMIT_NONCE_BYTES) this.zeros = Buffer.alloc(count * COMMIT_NONCE_BYTES * 2);
    const cipher = createCipheriv("aes-256-ctr", this.key, counterBlock(view, firstSeqno));
    return cipher.update(this.zeros.subarray(0, count * COMMIT_NONCE_BYTES));
  }

  static format(view: number, seqno: number, nonce: Buffer): string {
    return `ce:${view}.${seqno}:${nonce.toString("hex")}`;
  }

  /**
   * SHA-256 of the commit evidence, the digest a Merkle leaf binds, in a shared buffer valid
   * until the next call (callers copy it into the entry at once).
   */
  static digestShared(view: number, seqno: number, nonce: Buffer): Buffer {
    sha256Into(CommitEvidence.format(view, seqno, nonce), digestScratch, 0);
    return digestScratch;
  }

  evidence(view: number, seqno: number): string {
    return CommitEvidence.format(view, seqno, this.nonces(view, seqno, 1));
  }
}

/**
 * Commit evidence keyed, as in CCF, by the ledger secret that encrypts each transaction: a
 * recovered service writes with a fresh secret while it cannot know the previous services'
 * secrets yet, and later serves receipts for both.
 */
export class CommitEvidenceKeys {
  private readonly byRaw = new Map<Buffer, CommitEvidence>();

  constructor(private secrets: LedgerSecrets) {}

  /** The secrets changed (rekey, rollback of one, recovery): keys are derived again as needed. */
  setSecrets(secrets: LedgerSecrets): void {
    this.secrets = secrets;
    this.byRaw.clear();
  }

  private forRaw(raw: Buffer): CommitEvidence {
    let evidence = this.byRaw.get(raw);
    if (evidence === undefined) {
      evidence = new CommitEvidence(raw);
      this.byRaw.set(raw, evidence);
    }
    return evidence;
  }

  /** Nonces of `count` consecutive transactions, split where the ledger secret changes. */
  nonces(view: number, firstSeqno: number, count: number): Buffer {
    const range = this.secrets.rangeFor(firstSeqno);
    const lastSeqno = firstSeqno + count - 1;
    if (lastSeqno <= range.lastSeqno) return this.forRaw(range.raw).nonces(view, firstSeqno, count);
    const head = range.lastSeqno - firstSeqno + 1;
    return Buffer.concat([this.forRaw(range.raw).nonces(view, firstSeqno, head), this.nonces(view, range.lastSeqno + 1, count - head)]);
  }

  evidence(view: number, seqno: number): string {
    return CommitEvidence.format(view, seqno, this.nonces(view, seqno, 1));
  }
}
