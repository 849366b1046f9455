// The transaction engine: the single path every write takes on its way into the ledger.
//   KV commit -> write set -> ledger entry (private domain encrypted) -> Merkle leaf
//   -> buffered ledger append -> (group commit: one write + one fsync for many entries)
// Every `signatureDelayMs` or `signatureTxCount` transactions it appends a signature
// transaction signing the Merkle root with the node key; once that signature is durable it is
// the new commit point (single node: the node itself is the majority).
import { EventEmitter } from "node:events";
import { sha256, sha256Triple, signDigest } from "../crypto/index.js";
import { MerkleTree, type CcfReceipt } from "../merkle/index.js";
import { Store, serialiseWriteSet, deserialiseDomain, type Transaction, type WriteSet } from "../kv/index.js";
import { LedgerSecrets, type LedgerSecretVersion, type LedgerStore, decodeEntry, decryptPrivate, encodeEntry, writeSetDigest } from "../ledger/index.js";
import { CocoError, assert, formatTxId, type TxId } from "../util/index.js";
import { COMMIT_NONCE_BYTES, CommitEvidence } from "./commit-evidence.js";
import { SIGNATURES_MAP, SINGLETON_KEY, SignatureIndex, ViewHistory, decodeSignature, encodeSignature, type SignatureRecord } from "./signatures.js";

export type TxStatus = "Unknown" | "Pending" | "Committed" | "Invalid";

const ZERO_DIGEST = Buffer.alloc(32);

export interface EngineOptions {
  nodeId: string;
  nodePrivateKeyPem: string;
  nodeCertPem: string;
  ledgerSecrets: readonly LedgerSecretVersion[];
  signatureTxCount: number;
  signatureDelayMs: number;
  pendingTransactionsMax: number;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void; error(o: object, msg: string): void };
}

export class TransactionEngine extends EventEmitter {
  readonly store = new Store();
  readonly tree = new MerkleTree();
  private readonly signatures = new SignatureIndex();
  private readonly views = new ViewHistory();
  private readonly secrets: LedgerSecrets;
  private readonly commitEvidence: CommitEvidence;
  private view = 1;
  private lastSeqno = 0;
  private commitSeqno = 0;
  private txSinceSignature = 0;
  private signatureTimer: NodeJS.Timeout | undefined;
  private flushing = false;
  private closed = false;
  private failure: Error | undefined;
  private batch: { writeSet: WriteSet; isSignature: boolean; claimsDigest: Buffer }[] = [];

  constructor(private readonly ledger: LedgerStore, private readonly options: EngineOptions) {
    super();
    this.secrets = new LedgerSecrets(options.ledgerSecrets);
    // Commit evidence stays derived from the service's first ledger secret across rekeys.
    this.commitEvidence = new CommitEvidence(this.secrets.first);
  }

  get currentView(): number { return this.view; }
  get lastTxId(): TxId { return { view: this.views.viewAt(this.lastSeqno) ?? this.view, seqno: this.lastSeqno }; }
  get commitTxId(): TxId { return { view: this.views.viewAt(this.commitSeqno) ?? 0, seqno: this.commitSeqno }; }
  get lastSignedSeqno(): number { return this.signatures.last?.seqno ?? 0; }
  /** The view that wrote `seqno`, if this node holds it. */
  viewAt(seqno: number): number | null {
    return seqno >= 1 && seqno <= this.lastSeqno ? (this.views.viewAt(seqno) ?? null) : null;
  }

  /** Hex Merkle root signed by the last signature transaction ("" before the first). */
  get lastSignatureRoot(): string { return this.signatures.last?.root ?? ""; }

  /**
   * Rebuilds state from the entries read back from the ledger at start-up, then drops the
   * uncommitted tail (everything after the last signature: never reported Committed) and
   * starts a new view above every view in the ledger, so no (view, seqno) is ever reused.
   */
  async recover(entries: readonly Buffer[], persistedView: number): Promise<void> {
    let maxView = persistedView;
    const progressEvery = 100_000;
    for (const bytes of entries) {
      if (this.lastSeqno > 0 && this.lastSeqno % progressEvery === 0) {
        this.options.logger.info({ replayed: this.lastSeqno, total: entries.length }, "replaying the ledger");
      }
      const entry = decodeEntry(bytes);
      assert(entry.seqno === this.lastSeqno + 1, `ledger entries are contiguous (expected ${this.lastSeqno + 1}, found ${entry.seqno})`);
      const privatePlain = entry.privateCiphertext.length > 0 ? decryptPrivate(entry, this.secrets.forSeqno(entry.seqno)) : Buffer.alloc(0);
      this.store.applySerialised(entry.seqno, entry.publicDomain, privatePlain);
      this.tree.append(sha256Triple(writeSetDigest(bytes), entry.commitEvidenceDigest, entry.claimsDigest));
      this.views.note(entry.view, entry.seqno);
      this.lastSeqno = entry.seqno;
      if (entry.view > maxView) maxView = entry.view;
      if (entry.isSignature) {
        const value = this.signatureFromDomain(entry.publicDomain);
        if (value) this.signatures.add(value);
      }
    }
    const lastSignature = this.signatures.last?.seqno ?? 0;
    if (lastSignature < this.lastSeqno) {
      this.options.logger.warn({ from: lastSignature + 1, to: this.lastSeqno }, "dropping uncommitted ledger tail after the last signature");
      await this.rollback(lastSignature);
    }
    this.commitSeqno = lastSignature;
    if (this.commitSeqno > 0) await this.ledger.commit(this.commitSeqno);
    this.store.compact(this.commitSeqno);
    this.view = maxView + 1;
  }

  private signatureFromDomain(publicDomain: Buffer): SignatureRecord | undefined {
    for (const map of deserialiseDomain(publicDomain).maps) {
      if (map.name !== SIGNATURES_MAP) continue;
      for (const [, value] of map.writes) if (value) return decodeSignature(value);
    }
    return undefined;
  }

  private async rollback(seqno: number): Promise<void> {
    assert(seqno >= this.commitSeqno, "never roll back committed transactions");
    this.store.rollback(seqno);
    this.tree.retract(seqno);
    this.signatures.truncate(seqno);
    this.views.truncate(seqno);
    this.secrets.truncate(seqno);
    await this.ledger.truncate(seqno);
    this.lastSeqno = seqno;
  }

  start(): void {
    this.signatureTimer = setInterval(() => {
      if (this.txSinceSignature > 0) this.emitSignature();
    }, this.options.signatureDelayMs);
  }

  /**
   * Commits a transaction locally; the caller answers with the returned id at once. The KV
   * state changes now; turning the write set into a ledger entry (serialise, encrypt, hash,
   * Merkle leaf, ledger append) happens for the whole batch of the event-loop turn at once.
   */
  commit(tx: Transaction, claimsDigest: Buffer = ZERO_DIGEST): TxId {
    if (this.failure) throw new CocoError("ServiceUnavailable", "The node's ledger failed; it accepts no more writes.", 503);
    if (this.lastSeqno - this.commitSeqno >= this.options.pendingTransactionsMax) {
      throw new CocoError("TooManyPendingTransactions",
        `More than ${this.options.pendingTransactionsMax} transactions are waiting to be committed; retry shortly.`, 503);
    }
    const seqno = this.lastSeqno + 1;
    const writeSet = this.store.commit(tx, seqno);
    this.enqueue(writeSet, false, claimsDigest);
    if (++this.txSinceSignature >= this.options.signatureTxCount) this.emitSignature();
    return { view: this.view, seqno };
  }

  private enqueue(writeSet: WriteSet, isSignature: boolean, claimsDigest: Buffer): void {
    this.batch.push({ writeSet, isSignature, claimsDigest });
    this.views.note(this.view, writeSet.seqno);
    this.lastSeqno = writeSet.seqno;
    if (this.batch.length === 1) setImmediate(this.appendBatch);
  }

  /** Turns every queued write set into a ledger entry and a Merkle leaf, in seqno order. */
  private readonly appendBatch = (): void => {
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    const view = this.view;
    const first = batch[0]!.writeSet.seqno;
    const nonces = this.commitEvidence.nonces(view, first, batch.length);
    for (let i = 0; i < batch.length; i++) {
      const { writeSet, isSignature, claimsDigest } = batch[i]!;
      const seqno = writeSet.seqno;
      const { publicDomain, privateDomain } = serialiseWriteSet(writeSet);
      const commitEvidenceDigest = CommitEvidence.digest(view, seqno, nonces.subarray(i * COMMIT_NONCE_BYTES, (i + 1) * COMMIT_NONCE_BYTES));
      const entry = encodeEntry({
        view, seqno, isSignature, claimsDigest, commitEvidenceDigest, publicDomain, privatePlaintext: privateDomain,
      }, this.secrets.forSeqno(seqno));
      this.tree.append(sha256Triple(writeSetDigest(entry), commitEvidenceDigest, claimsDigest));
      this.ledger.append(entry, seqno, isSignature);
    }
    // Ship the batch to the ledger at once rather than a loop turn later: under load a turn
    // takes tens of milliseconds, and every turn on the way to a durable signature is
    // commit latency. Flushes stay serialised, so batches still group while one is in flight.
    if (!this.flushing) {
      this.flushing = true;
      void this.flushLoop();
    }
  };

  /** Appends a signature transaction over the Merkle root of everything before it. */
  emitSignature(): void {
    if (this.closed || this.failure) return;
    this.txSinceSignature = 0;
    this.appendBatch(); // the root must cover every transaction before the signature
    const seqno = this.lastSeqno + 1;
    const root = this.tree.root();
    const commitView = this.views.viewAt(this.commitSeqno) ?? 0;
    const record: SignatureRecord = {
      seqno,
      view: this.view,
      commit_seqno: this.commitSeqno,
      commit_view: commitView,
      root: root.toString("hex"),
      sig: signDigest(this.options.nodePrivateKeyPem, root).toString("base64"),
      node: this.options.nodeId,
      cert: this.options.nodeCertPem,
    };
    const tx = this.store.begin();
    tx.set(SIGNATURES_MAP, SINGLETON_KEY, encodeSignature(record));
    const writeSet = this.store.commit(tx, seqno);
    this.enqueue(writeSet, true, ZERO_DIGEST);
    this.signatures.add(record);
    this.appendBatch();
  }

  /**
   * Rotates the ledger secret: transactions after `afterSeqno` are encrypted with `raw`.
   * Called right after the rekey transaction commits locally, before any later transaction.
   */
  rekey(afterSeqno: number, raw: Buffer): void {
    assert(afterSeqno === this.lastSeqno, "rekey takes effect right after the transaction that asked for it");
    this.secrets.add(afterSeqno + 1, raw);
  }

  get ledgerSecrets(): LedgerSecretVersion[] {
    return this.secrets.list();
  }

  /** Group commit: while entries are buffered, write and fsync them together. */
  private async flushLoop(): Promise<void> {
    try {
      while (this.ledger.durableSeqno < this.ledger.lastSeqno) {
        const durable = await this.ledger.flush();
        this.onDurable(durable);
      }
    } catch (error) {
      this.failure = error as Error;
      this.options.logger.error({ err: error }, "ledger write failed; the node stops accepting writes");
      this.emit("failure", error);
    } finally {
      this.flushing = false;
    }
    if (!this.failure && this.ledger.durableSeqno < this.ledger.lastSeqno) {
      this.flushing = true;
      setImmediate(() => void this.flushLoop());
    }
  }

  private onDurable(durableSeqno: number): void {
    const signature = this.signatures.atOrBelow(durableSeqno);
    if (!signature || signature.seqno <= this.commitSeqno) return;
    this.commitSeqno = signature.seqno;
    this.store.compact(this.commitSeqno);
    this.ledger.commit(this.commitSeqno).catch((error) => this.options.logger.warn({ err: error }, "could not mark ledger chunks committed"));
    this.emit("commit", this.commitSeqno);
  }

  status(view: number, seqno: number): TxStatus {
    if (seqno <= 0 || view <= 0) return "Unknown";
    if (seqno <= this.lastSeqno) {
      const actual = this.views.viewAt(seqno);
      if (actual === view) return seqno <= this.commitSeqno ? "Committed" : "Pending";
      if (seqno <= this.commitSeqno || view < this.view) return "Invalid";
      return "Unknown";
    }
    return view < this.view ? "Invalid" : "Unknown";
  }

  /** CCF's JSON receipt for a committed transaction. */
  async receipt(view: number, seqno: number): Promise<CcfReceipt> {
    const status = this.status(view, seqno);
    if (status === "Invalid") {
      throw new CocoError("TransactionInvalid", `Transaction ${formatTxId(view, seqno)} is invalid: it was rolled back and can never be committed.`, 404);
    }
    if (status !== "Committed") {
      throw new CocoError("TransactionPendingOrUnknown",
        `Transaction ${formatTxId(view, seqno)} is ${status.toLowerCase()}: a receipt is available once it is committed.`, 404);
    }
    const signature = this.signatures.firstAbove(seqno);
    if (!signature || signature.seqno > this.commitSeqno) {
      throw new CocoError("TransactionPendingOrUnknown",
        `Transaction ${formatTxId(view, seqno)} is a signature transaction; its receipt is available once a later signature is committed.`, 404);
    }
    const treeSize = signature.seqno - 1;
    const entry = decodeEntry(await this.ledger.read(seqno));
    const commitEvidence = this.commitEvidence.evidence(entry.view, seqno);
    if (!sha256(Buffer.from(commitEvidence)).equals(entry.commitEvidenceDigest)) {
      // The ledger entry was written under another commit-evidence derivation (or secret):
      // answer plainly rather than serve a receipt that cannot verify.
      throw new CocoError("InternalError", `Cannot rebuild the commit evidence of ${formatTxId(view, seqno)}: it does not match the digest in its ledger entry.`, 500);
    }
    const proof = this.tree.path(seqno - 1, treeSize).map((step) =>
      "left" in step ? { left: step.left.toString("hex") } : { right: step.right.toString("hex") });
    return {
      cert: signature.cert,
      node_id: signature.node,
      signature: signature.sig,
      proof,
      leaf_components: {
        write_set_digest: writeSetDigest(entry.bytes).toString("hex"),
        commit_evidence: commitEvidence,
        claims_digest: entry.claimsDigest.toString("hex"),
      },
    };
  }

  /** Stops signing, writes a final signature so the tail commits, and flushes the ledger. */
  async close(): Promise<void> {
    if (this.signatureTimer) clearInterval(this.signatureTimer);
    if (this.txSinceSignature > 0) this.emitSignature();
    this.closed = true;
    this.appendBatch();
    while (!this.failure && this.ledger.durableSeqno < this.ledger.lastSeqno) {
      this.onDurable(await this.ledger.flush());
    }
  }
}
