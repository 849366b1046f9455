// Snapshot production on the primary, as CCF does it: every `snapshots.tx_count` transactions
// (or when asked: ccf.node.triggerSnapshot, the trigger_snapshot action), at the next committed
// signature, the primary serialises the committed state of that signature, records the
// snapshot's digest in an evidence transaction, and writes `snapshot_<seqno>_<evidence_seqno>`.
// Once the evidence transaction is committed (a later signature commits it), the receipt of the
// evidence transaction is appended and the file is renamed `.committed`; older ones are pruned.
import { sha256 } from "../crypto/index.js";
import { encodeSnapshotPieces, isPublicMapName, type MapState } from "../kv/index.js";
import {
  pruneSnapshots, removeSnapshotFile, snapshotName, writeFileAtomic,
} from "../ledger/index.js";
import { CocoError, assert } from "../util/index.js";
import type { TransactionEngine } from "./engine.js";
import { SINGLETON_KEY } from "./signatures.js";
import { SNAPSHOT_EVIDENCE_MAP, encodeEvidence, encodeSnapshotBody } from "./snapshot-format.js";

export interface SnapshotterOptions {
  directory: string;
  txCount: number;
  keepMax: number;
  /** fsync snapshot files (the node's durability setting). */
  durable: boolean;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}

/** Entries encoded per event-loop turn (~10 ms of main thread at ~0.2-1 µs per entry, plus the turn's requests). */
const SNAPSHOT_ENTRIES_PER_TURN_MAX = 20_000;
/** Snapshots written, waiting for their evidence transaction to commit. More means none ever commits. */
const PENDING_SNAPSHOTS_MAX = 8;

type SnapshotState = ReturnType<TransactionEngine["snapshotState"]>;

interface PendingSnapshot {
  readonly seqno: number;
  readonly evidenceView: number;
  readonly evidenceSeqno: number;
  readonly name: string;
  readonly body: Buffer;
}

export class Snapshotter {
  /** Seqno of the last snapshot taken or started from: the next is due txCount later. */
  private lastSeqno: number;
  private requested = false;
  private producing = false;
  private completing = false;
  private readonly pending: PendingSnapshot[] = [];
  /** Main-thread time of the last snapshot's capture and encoding (reported in the logs). */
  lastEncodeMs = 0;
  /** Wall-clock time from capture to sealed body of the last snapshot (encoding yields between pieces). */
  lastElapsedMs = 0;
  producedCount = 0;

  constructor(private readonly engine: TransactionEngine, private readonly options: SnapshotterOptions, startSeqno: number) {
    assert(options.txCount >= 1 && options.keepMax >= 1, "snapshot limits are positive");
    this.lastSeqno = startSeqno;
    engine.on("commit", () => this.onCommit());
  }

  /** Asks for a snapshot at the next committed signature, whatever the count (CCF's trigger_snapshot). */
  trigger(): void {
    this.requested = true;
  }

  private onCommit(): void {
    if (this.pending.length > 0) void this.completePending();
    // The event reports what the ledger has recorded; the store is compacted up to consensus's
    // commit point (a signature, at or after it), which is what stateAt can reach.
    const seqno = this.engine.consensusCommitSeqno;
    if (!this.engine.isPrimary || this.producing) return;
    if (!this.requested && seqno - this.lastSeqno < this.options.txCount) return;
    if (this.pending.length >= PENDING_SNAPSHOTS_MAX) return;
    this.requested = false;
    this.producing = true;
    this.lastSeqno = seqno;
    // The state is captured now, while the store's undo log still reaches back to this commit
    // (the next commit compacts it); encoding and the evidence transaction come on the next turn,
    // not from inside the commit event (consensus may be handing out a Ready).
    const started = performance.now();
    let state: SnapshotState;
    try {
      state = this.engine.snapshotState(seqno);
    } catch (error) {
      this.producing = false;
      this.options.logger.warn({ err: error as Error, seqno }, "snapshot not taken");
      return;
    }
    const captureMs = performance.now() - started;
    setImmediate(() => {
      this.produce(seqno, state, captureMs)
        .catch((error: Error) => this.options.logger.warn({ err: error, seqno }, "snapshot not taken"))
        .finally(() => { this.producing = false; });
    });
  }

  /** Encodes the state captured at `seqno`, records its digest and writes the file. */
  private async produce(seqno: number, state: SnapshotState, captureMs: number): Promise<void> {
    if (!this.engine.isPrimary) return;
    const started = performance.now();
    const publicMaps = new Map<string, MapState>();
    const privateMaps = new Map<string, MapState>();
    for (const [name, map] of state.maps) (isPublicMapName(name) ? publicMaps : privateMaps).set(name, map);
    // Encoded in pieces, yielding to the event loop between them: requests are served meanwhile.
    let busyMs = captureMs;
    const encode = async (maps: Map<string, MapState>): Promise<Buffer> => {
      const pieces: Buffer[] = [];
      let sliceStarted = performance.now();
      for (const piece of encodeSnapshotPieces(seqno, maps, SNAPSHOT_ENTRIES_PER_TURN_MAX)) {
        pieces.push(piece);
        busyMs += performance.now() - sliceStarted;
        await new Promise((resolve) => setImmediate(resolve));
        sliceStarted = performance.now();
      }
      busyMs += performance.now() - sliceStarted;
      return Buffer.concat(pieces);
    };
    const publicPart = await encode(publicMaps);
    const privatePart = await encode(privateMaps);
    const sealStarted = performance.now();
    const body = encodeSnapshotBody({
      seqno, view: state.view, views: state.views, tree: state.tree, ledgerSecret: state.ledgerSecret, publicPart, privatePart,
    });
    busyMs += performance.now() - sealStarted;
    this.lastEncodeMs = busyMs;
    this.lastElapsedMs = captureMs + performance.now() - started;
    // The evidence's claims digest is SHA-256 of the whole body (snapshot-format.ts checks it).
    const digest = sha256(body);
    if (!this.engine.isPrimary) return;
    const tx = this.engine.store.begin();
    tx.set(SNAPSHOT_EVIDENCE_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify({ hash: digest.toString("hex"), version: seqno })));
    const evidence = this.engine.commit(tx, digest);
    const name = snapshotName(seqno, evidence.seqno, false);
    await writeFileAtomic(this.options.directory, name, [body], this.options.durable);
    this.pending.push({ seqno, evidenceView: evidence.view, evidenceSeqno: evidence.seqno, name, body });
    this.producedCount++;
    // The evidence may have committed while the file was written (an idle service commits no more).
    void this.completePending();
    this.options.logger.info({ seqno, evidence_seqno: evidence.seqno, bytes: body.length, encode_ms: Math.round(this.lastEncodeMs), elapsed_ms: Math.round(this.lastElapsedMs) }, "snapshot written; committed once its evidence transaction commits");
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
        await writeFileAtomic(this.options.directory, committedName, [next.body, encodeEvidence(receipt, entry)], this.options.durable);
        await removeSnapshotFile(this.options.directory, next.name);
        this.pending.shift();
        const removed = await pruneSnapshots(this.options.directory, this.options.keepMax);
        this.options.logger.info({ name: committedName, pruned: removed }, "snapshot committed");
      }
    } catch (error) {
      this.options.logger.warn({ err: error as Error }, "could not complete a snapshot; it is retried at the next commit");
    } finally {
      this.completing = false;
    }
  }
}
