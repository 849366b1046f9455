// Snapshot production on the primary, as CCF does it: every `snapshots.tx_count` transactions
// (or when asked: ccf.node.triggerSnapshot, the trigger_snapshot action), at the next committed
// signature, the primary serialises the committed state of that signature, records the
// snapshot's digest in an evidence transaction, and writes `snapshot_<seqno>_<evidence_seqno>`.
// Once the evidence transaction is committed (a later signature commits it), the receipt of the
// evidence transaction is appended and the file is renamed `.committed`; older ones are pruned.
import { unlink } from "node:fs/promises";
import type { SnapshotCapture } from "../kv/index.js";
import {
  publishSnapshotFile, pruneSnapshots, removeSnapshotFile, removeTemporarySnapshotFiles, snapshotName, temporarySnapshotPath, writeCommittedSnapshotFile,
} from "../ledger/index.js";
import { writeRetainedHashes } from "./merkle-retained-file.js";
import { CocoError, assert } from "../util/index.js";
import type { TransactionEngine } from "./engine.js";
import { SINGLETON_KEY } from "./signatures.js";
import { SNAPSHOT_EVIDENCE_MAP, encodeEvidence } from "./snapshot-format.js";
import { SnapshotWriter } from "./snapshot-writer.js";

export interface SnapshotterOptions {
  directory: string;
  txCount: number;
  keepMax: number;
  /** fsync snapshot files (the node's durability setting). */
  durable: boolean;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  /** Where the Merkle hashes retained before each snapshot are kept for the next restart (the ledger directory). */
  retainedMerkleDirectory?: string;
}

/**
 * Entries the capture copies per event-loop turn: ~0.4-0.6 µs each on the loaded 2-core machine, so a
 * turn's slice stays near 2-3 ms and requests are served between slices (bench/snapshot-micro.ts).
 */
const SNAPSHOT_CAPTURE_ENTRIES_PER_TURN_MAX = 4_096;
/** Snapshots written, waiting for their evidence transaction to commit. More means none ever commits. */
const PENDING_SNAPSHOTS_MAX = 8;

type SnapshotCaptured = ReturnType<TransactionEngine["snapshotCapture"]>;

interface PendingSnapshot {
  readonly seqno: number;
  readonly evidenceView: number;
  readonly evidenceSeqno: number;
  readonly name: string;
}

export class Snapshotter {
  /** Seqno of the last snapshot taken or started from: the next is due txCount later. */
  private lastSeqno: number;
  private requested = false;
  private producing = false;
  private completing = false;
  private closed = false;
  private capture: SnapshotCapture | undefined;
  private readonly pending: PendingSnapshot[] = [];
  private readonly writer = new SnapshotWriter();
  /** Main-thread time of the last snapshot's capture, summed over its slices (reported in the logs). */
  lastEncodeMs = 0;
  /** Wall-clock time from the commit of its seqno to the file written (capture, worker, evidence). */
  lastElapsedMs = 0;
  producedCount = 0;

  constructor(private readonly engine: TransactionEngine, private readonly options: SnapshotterOptions, startSeqno: number) {
    assert(options.txCount >= 1 && options.keepMax >= 1, "snapshot limits are positive");
    this.lastSeqno = startSeqno;
    engine.on("commit", () => this.onCommit());
    // A node that crashed mid-write left a temporary file: it is no snapshot.
    void removeTemporarySnapshotFiles(options.directory).then((stale) => {
      if (stale.length > 0) options.logger.info({ removed: stale }, "removed temporary snapshot files of an interrupted write");
    });
  }

  /** Asks for a snapshot at the next committed signature, whatever the count (CCF's trigger_snapshot). */
  trigger(): void {
    this.requested = true;
  }

  /** Stops taking snapshots: a capture in progress is dropped, the worker stopped. */
  async close(): Promise<void> {
    this.closed = true;
    this.capture?.cancel();
    this.capture = undefined;
    await this.writer.close();
  }

  private onCommit(): void {
    if (this.pending.length > 0) void this.completePending();
    this.maybeProduce();
  }

  /**
   * Starts a snapshot if one is due. Called on every commit, and again when a snapshot ends or the
   * pending ones drain: a commit that came while one was in flight must not be lost, or an idle
   * service after a burst would never take the snapshot its transactions made due.
   */
  private maybeProduce(): void {
    // The event reports what the ledger has recorded; the store is compacted up to consensus's
    // commit point (a signature, at or after it), which is where a capture can start.
    const seqno = this.engine.consensusCommitSeqno;
    if (this.closed || !this.engine.isPrimary || this.producing) return;
    if (!this.requested && seqno - this.lastSeqno < this.options.txCount) return;
    if (this.pending.length >= PENDING_SNAPSHOTS_MAX) return;
    this.requested = false;
    this.producing = true;
    this.lastSeqno = seqno;
    // The capture starts now, while the store's undo log still reaches back to this commit (from
    // here the store keeps it until the capture ends); the copying comes in slices on later
    // turns, not from inside the commit event (consensus may be handing out a Ready).
    const started = performance.now();
    let captured: SnapshotCaptured;
    try {
      captured = this.engine.snapshotCapture(seqno);
    } catch (error) {
      this.producing = false;
      this.options.logger.warn({ err: error as Error, seqno }, "snapshot not taken");
      return;
    }
    this.capture = captured.capture;
    this.produce(seqno, captured, started)
      .catch((error: Error) => this.options.logger.warn({ err: error, seqno }, "snapshot not taken"))
      .finally(() => {
        this.capture?.cancel();
        this.capture = undefined;
        this.producing = false;
        this.maybeProduce();
      });
  }

  /** Copies the captured state in slices, has the worker encode and write it, records its digest. */
  private async produce(seqno: number, captured: SnapshotCaptured, started: number): Promise<void> {
    const { capture } = captured;
    let busyMs = performance.now() - started;
    for (;;) {
      await new Promise((resolve) => setImmediate(resolve));
      if (this.closed) throw new CocoError("SnapshotAbandoned", "The node is stopping.", 503);
      const sliceStarted = performance.now();
      const done = capture.step(SNAPSHOT_CAPTURE_ENTRIES_PER_TURN_MAX);
      busyMs += performance.now() - sliceStarted;
      if (done) break;
    }
    const finishStarted = performance.now();
    const packed = capture.finish();
    busyMs += performance.now() - finishStarted;
    this.capture = undefined;
    this.lastEncodeMs = busyMs;
    const temporaryPath = temporarySnapshotPath(this.options.directory, seqno);
    const written = await this.writer.write({
      packed, view: captured.view, views: captured.views, tree: captured.tree, ledgerSecret: captured.ledgerSecret,
      temporaryPath, durable: this.options.durable,
    });
    try {
      if (!this.engine.isPrimary || this.closed) throw new CocoError("SnapshotAbandoned", "This node is no longer primary: the snapshot is dropped.", 503);
      // The evidence's claims digest is SHA-256 of the whole body (snapshot-format.ts checks it).
      const digest = Buffer.from(written.digest);
      const tx = this.engine.store.begin();
      tx.set(SNAPSHOT_EVIDENCE_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify({ hash: digest.toString("hex"), version: seqno })));
      const evidence = this.engine.commit(tx, digest);
      const name = snapshotName(seqno, evidence.seqno, false);
      await publishSnapshotFile(this.options.directory, temporaryPath, name, this.options.durable);
      if (captured.retained !== undefined && this.options.retainedMerkleDirectory !== undefined) {
        // A restart from this snapshot (or a later one) then hashes only the ledger after it (merkle-history.ts).
        await writeRetainedHashes(this.options.retainedMerkleDirectory, captured.retained)
          .catch((error: Error) => this.options.logger.warn({ err: error.message }, "could not keep the retained Merkle hashes beside the ledger"));
      }
      this.pending.push({ seqno, evidenceView: evidence.view, evidenceSeqno: evidence.seqno, name });
      this.producedCount++;
      this.lastElapsedMs = performance.now() - started;
      // The evidence may have committed while the file was written (an idle service commits no more).
      void this.completePending();
      this.options.logger.info({
        seqno, evidence_seqno: evidence.seqno, bytes: written.bytes, entries: packed.entryCount,
        main_thread_ms: Math.round(this.lastEncodeMs), worker_encode_ms: Math.round(written.timings.encodeMs),
        worker_seal_ms: Math.round(written.timings.sealMs), worker_write_ms: Math.round(written.timings.writeMs), elapsed_ms: Math.round(this.lastElapsedMs),
      }, "snapshot written; committed once its evidence transaction commits");
    } catch (error) {
      // Not published (evidence not committed, or the rename failed): the temporary file goes.
      await unlink(temporaryPath).catch(() => undefined);
      throw error;
    }
  }

  /** Appends the receipt to snapshots whose evidence transaction committed, renames them `.committed`. */
  private async completePending(): Promise<void> {
    if (this.completing) return;
    this.completing = true;
    try {
      while (this.pending.length > 0) {
        const next = this.pending[0]!;
        const status = this.engine.status(next.evidenceView, next.evidenceSeqno);
        if (status === "Invalid") {
          // Its evidence was rolled back by an election: it can never be proven.
          this.pending.shift();
          await removeSnapshotFile(this.options.directory, next.name);
          this.options.logger.warn({ name: next.name }, "snapshot dropped: its evidence transaction was rolled back");
          continue;
        }
        if (status !== "Committed") return;
        let receipt;
        try {
          receipt = await this.engine.receipt(next.evidenceView, next.evidenceSeqno);
        } catch (error) {
          // Committed, but no signature after it is committed yet: the next commit completes it.
          if (error instanceof CocoError && error.code === "TransactionPendingOrUnknown") return;
          throw error;
        }
        const entry = await this.engine.readLedgerEntry(next.evidenceSeqno);
        const committedName = snapshotName(next.seqno, next.evidenceSeqno, true);
        await writeCommittedSnapshotFile(this.options.directory, next.name, committedName, encodeEvidence(receipt, entry), this.options.durable);
        await removeSnapshotFile(this.options.directory, next.name);
        this.pending.shift();
        const removed = await pruneSnapshots(this.options.directory, this.options.keepMax);
        this.options.logger.info({ name: committedName, pruned: removed }, "snapshot committed");
      }
      this.maybeProduce();
    } catch (error) {
      this.options.logger.warn({ err: error as Error }, "could not complete a snapshot; it is retried at the next commit");
    } finally {
      this.completing = false;
    }
  }
}
