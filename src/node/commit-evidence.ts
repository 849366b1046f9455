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
//
// The PRF key is derived per primary term from the entry's key nonce (ledger/entry.ts), not
// from the ledger secret alone: a host that restores a node's old files can make it write a
// different transaction at a (view, seqno) an earlier run already used, perhaps one whose
// evidence was revealed at commit; with a fresh key nonce that evidence says nothing about the
// new transaction's.
import { createCipheriv, createSecretKey, hkdfSync, type KeyObject } from "node:crypto";
import { sha256Into } from "../crypto/hash.js";
import { assert } from "../util/errors.js";
import type { LedgerSecrets } from "../ledger/index.js";

export const COMMIT_NONCE_BYTES = 16;
const digestScratch = Buffer.alloc(32);
/** HKDF info of commit-evidence keys (v1 used the ledger secret with no salt). */
const COMMIT_EVIDENCE_LABEL = Buffer.from("coco commit evidence v2");
/** Derived keys kept: the current term's, plus a few for receipts of older terms. */
const KEYS_MAX = 8;

function counterBlock(view: number, seqno: number): Buffer {
  const block = Buffer.alloc(16);
  block.writeBigUInt64BE(BigInt(view), 0);
  block.writeBigUInt64BE(BigInt(seqno), 8);
  return block;
}

export class CommitEvidence {
  /** The service's first ledger secret: only ever HKDF input. */
  private readonly root: KeyObject;
  /** Keys by key nonce, most recently used first. */
  private readonly keys: { readonly keyNonce: Buffer; readonly key: KeyObject }[] = [];
  private zeros = Buffer.alloc(16 * 256);

  constructor(ledgerSecret: Buffer) {
    this.root = createSecretKey(Buffer.from(ledgerSecret));
  }

  /** HKDF-SHA256(ikm = first ledger secret, salt = key nonce, info = COMMIT_EVIDENCE_LABEL). */
  private keyFor(keyNonce: Buffer): KeyObject {
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) {
      if (!keys[i]!.keyNonce.equals(keyNonce)) continue;
      if (i > 0) keys.unshift(...keys.splice(i, 1));
      return keys[0]!.key;
    }
    assert(keyNonce.length === 16, "a key nonce is 16 bytes");
    const raw = new Uint8Array(hkdfSync("sha256", this.root, keyNonce, COMMIT_EVIDENCE_LABEL, 32));
    const key = createSecretKey(raw);
    raw.fill(0);
    keys.unshift({ keyNonce: Buffer.from(keyNonce), key });
    if (keys.length > KEYS_MAX) keys.pop();
    return key;
  }

  /** Nonces of `count` consecutive transactions (view, firstSeqno + i) of the term of `keyNonce`, 16 bytes each. */
  nonces(keyNonce: Buffer, view: number, firstSeqno: number, count: number): Buffer {
    if (this.zeros.length < count * COMMIT_NONCE_BYTES) this.zeros = Buffer.alloc(count * COMMIT_NONCE_BYTES * 2);
    const cipher = createCipheriv("aes-256-ctr", this.keyFor(keyNonce), counterBlock(view, firstSeqno));
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

  /** The evidence of the transaction (view, seqno) written under `keyNonce` (from its ledger entry). */
  evidence(keyNonce: Buffer, view: number, seqno: number): string {
    return CommitEvidence.format(view, seqno, this.nonces(keyNonce, view, seqno, 1));
  }
}

/**
 * Commit evidence keyed, as in CCF, by the ledger secret that encrypts each transaction (and,
 * within it, by the entry's key nonce): a recovered service writes with a fresh secret while it
 * cannot know the previous services' secrets yet, and later serves receipts for both.
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
  nonces(keyNonce: Buffer, view: number, firstSeqno: number, count: number): Buffer {
    const range = this.secrets.rangeFor(firstSeqno);
    const lastSeqno = firstSeqno + count - 1;
    if (lastSeqno <= range.lastSeqno) return this.forRaw(range.raw).nonces(keyNonce, view, firstSeqno, count);
    const head = range.lastSeqno - firstSeqno + 1;
    return Buffer.concat([
      this.forRaw(range.raw).nonces(keyNonce, view, firstSeqno, head), this.nonces(keyNonce, view, range.lastSeqno + 1, count - head),
    ]);
  }

  evidence(keyNonce: Buffer, view: number, seqno: number): string {
    return CommitEvidence.format(view, seqno, this.nonces(keyNonce, view, seqno, 1));
  }
}
