// The ledger as the node uses it: the same operations as `Ledger`, with the files owned by a
// worker thread. Appends are buffered here; a flush ships the whole buffered batch to the
// worker in one message (one transferred buffer), which writes and fsyncs it. The main
// thread never waits on the disk, and the disk never waits on the main thread.
import { EventEmitter } from "node:events";
import { Worker } from "node:worker_threads";
import { CocoError, assert } from "../util/errors.js";
import { WORKER_RESOURCE_LIMITS } from "../util/workers.js";
import { isLedgerDiskFull, type LedgerEvents } from "./disk-full.js";
import type { Durability, LedgerLogger } from "./recovery.js";
import { describeEntries, packEntries, unpackEntries, type EntryDescriptions, type SuccessReply, type WorkerReply, type WorkerRequest } from "./worker-protocol.js";

/** What the transaction engine needs from a ledger (implemented by Ledger and ThreadedLedger). */
export interface LedgerStore {
  readonly lastSeqno: number;
  readonly durableSeqno: number;
  /** True from a write that failed for lack of space (LedgerDiskFull) until a flush succeeds again. */
  readonly diskFull: boolean;
  /**
   * Highest seqno the commit point on disk records (event `commitRecorded` when it grows). A node
   * reports nothing as Committed above it, so a restart never un-commits what it reported.
   */
  readonly recordedCommitSeqno: number;
  /** `endsChunk`: the chunk ends at this signature whatever its size (trigger_ledger_chunk). */
  append(entry: Buffer, seqno: number, isSignature: boolean, endsChunk?: boolean): void;
  /**
   * `commitIfDurable`: consensus commits up to this seqno as soon as the flushed entries are
   * durable here (a quorum needs only this node's copy): the ledger records that commit point
   * right after the flush, in the same visit to the disk, instead of after a round trip
   * through the caller.
   */
  flush(commitIfDurable?: number): Promise<number>;
  commit(seqno: number): Promise<void>;
  truncate(seqno: number): Promise<void>;
  read(seqno: number): Promise<Buffer>;
  /** Entries first..at most last: at least one, then as many as fit in `bytesMax` bytes. */
  readRange(first: number, last: number, bytesMax: number): Promise<Buffer[]>;
  /** Leaves, views and flags of entries first..at most last (worker-protocol.ts); entries held by the worker only. */
  describeRange(first: number, last: number, bytesMax: number, marker: Uint8Array): Promise<EntryDescriptions>;
  close(): Promise<void>;
  on<K extends keyof LedgerEvents>(event: K, listener: (...args: LedgerEvents[K]) => void): this;
  off<K extends keyof LedgerEvents>(event: K, listener: (...args: LedgerEvents[K]) => void): this;
}

/** Clock and one-shot timers (default: node's); the node's shell simulator passes simulated ones. */
export interface LedgerTimers {
  now(): number;
  after(delayMs: number, callback: () => void): { cancel(): void };
}

const realTimers: LedgerTimers = {
  now: () => performance.now(),
  after(delayMs, callback) {
    const timer = setTimeout(callback, delayMs);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

/**
 * What ThreadedLedger needs of its worker: node's Worker in production; the shell simulator
 * (src/node/sim) passes an in-memory disk that answers the same protocol.
 */
export interface LedgerWorkerPort {
  postMessage(request: WorkerRequest, transfer?: ArrayBuffer[]): void;
  on(event: "message", listener: (reply: WorkerReply) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "exit", listener: (code: number) => void): unknown;
  terminate(): Promise<number>;
}

export interface ThreadedLedgerOptions {
  chunkSizeBytes?: number;
  durability?: Durability;
  logger?: LedgerLogger;
  /** While the disk is full, a flush is retried this often, so writes resume by themselves once space is freed. */
  diskFullRetryMs?: number;
  /** Whether open() returns every entry (default true); a node reads them back with readRange instead. */
  returnEntries?: boolean;
  /** The commit point on disk is written at most this often (each write is one small fdatasync on
   * the worker, between group commits). The node reports Committed only up to the recorded commit
   * point, so this interval adds to commit latency; 0 (the default) posts every commit at once:
   * the worker folds the commits that queue up behind a disk write into one write. */
  commitPointIntervalMs?: number;
  /** For an empty directory: the ledger starts after this (snapshot) seqno (Ledger's option). */
  startAfter?: number;
  /** Seqnos of the in-memory index before old chunks are paged out (Ledger's option). */
  residentIndexEntries?: number;
}

const DEFAULT_DISK_FULL_RETRY_MS = 1000;
const DEFAULT_COMMIT_POINT_INTERVAL_MS = 0;

type Pending = { resolve: (reply: SuccessReply) => void; reject: (error: Error) => void };
type RequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, "id"> : never) : never;
/** A flush posted and not yet answered; a truncation lowers `cap` so its reply never vouches past it. */
type InFlightFlush = { cap: number };

export class ThreadedLedger extends EventEmitter<LedgerEvents> implements LedgerStore {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffered: Buffer[] = [];
  /** Seqno of buffered[0]; everything below it has been posted to the worker. */
  private bufferedFirst: number;
  private signatures: number[] = [];
  private chunkEnds: number[] = [];
  private last: number;
  private durable: number;
  /** Highest commit point asked for, never above `last` when asked; a truncate below it is refused. */
  private commitWanted = 0;
  /** Highest commit point posted to the worker: never above what had been posted before it. */
  private commitPosted = 0;
  /** Highest commit point the worker says is on disk. */
  private commitRecorded = 0;
  /** Seqnos in the worker's in-memory index, as of its last reply to an append or a commit (GET /node/memory). */
  indexedSeqnos = 0;
  private readonly inFlightFlushes = new Set<InFlightFlush>();
  private commitPostedAtMs = -Infinity;
  private commitTimer: { cancel(): void } | undefined;
  private closing = false;
  private failure: Error | undefined;
  private full = false;
  private retryTimer: { cancel(): void } | undefined;

  private constructor(
    private readonly worker: LedgerWorkerPort,
    private readonly dir: string,
    private readonly logger: LedgerLogger,
    private readonly diskFullRetryMs: number,
    private readonly commitPointIntervalMs: number,
    private readonly timers: LedgerTimers = realTimers,
  ) {
    super();
    this.last = 0;
    this.durable = 0;
    this.bufferedFirst = 1;
  }

  static async open(dir: string, options: ThreadedLedgerOptions = {}): Promise<{ ledger: ThreadedLedger; entries: Buffer[] }> {
    const logger = options.logger ?? { info() {}, warn() {} };
    const worker = new Worker(new URL("./worker.js", import.meta.url), { resourceLimits: WORKER_RESOURCE_LIMITS });
    const ledger = new ThreadedLedger(worker as LedgerWorkerPort, dir, logger, options.diskFullRetryMs ?? DEFAULT_DISK_FULL_RETRY_MS,
      options.commitPointIntervalMs ?? DEFAULT_COMMIT_POINT_INTERVAL_MS);
    worker.on("message", (reply: WorkerReply) => ledger.onReply(reply));
    worker.on("error", (error) => ledger.fail(error));
    worker.on("exit", (code) => ledger.fail(new Error(`ledger worker exited with code ${code}`)));
    let reply: SuccessReply;
    try {
      reply = await ledger.request({ op: "open", dir, chunkSizeBytes: options.chunkSizeBytes, durability: options.durability, returnEntries: options.returnEntries ?? true,
        ...(options.startAfter !== undefined ? { startAfter: options.startAfter } : {}),
        ...(options.residentIndexEntries !== undefined ? { residentIndexEntries: options.residentIndexEntries } : {}) });
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    ledger.last = reply.lastSeqno;
    ledger.durable = reply.durableSeqno;
    ledger.bufferedFirst = reply.lastSeqno + 1;
    ledger.commitWanted = ledger.commitPosted = ledger.commitRecorded = reply.committedSeqno ?? 0;
    return { ledger, entries: unpackEntries(reply.bytes!, reply.lengths!) };
  }

  /**
   * A ledger over an already opened worker-protocol port: the shell simulator's disk, which
   * answered "open" with these seqnos.
   */
  static overPort(port: LedgerWorkerPort, opened: { lastSeqno: number; durableSeqno: number; committedSeqno: number },
    options: ThreadedLedgerOptions & { timers: LedgerTimers }): ThreadedLedger {
    const ledger = new ThreadedLedger(port, "(simulated)", options.logger ?? { info() {}, warn() {} },
      options.diskFullRetryMs ?? DEFAULT_DISK_FULL_RETRY_MS, options.commitPointIntervalMs ?? DEFAULT_COMMIT_POINT_INTERVAL_MS, options.timers);
    port.on("message", (reply: WorkerReply) => ledger.onReply(reply));
    port.on("error", (error: Error) => ledger.fail(error));
    port.on("exit", (code: number) => ledger.fail(new Error(`ledger worker exited with code ${code}`)));
    ledger.last = opened.lastSeqno;
    ledger.durable = opened.durableSeqno;
    ledger.bufferedFirst = opened.lastSeqno + 1;
    ledger.commitWanted = ledger.commitPosted = ledger.commitRecorded = opened.committedSeqno;
    return ledger;
  }

  get lastSeqno(): number { return this.last; }
  get durableSeqno(): number { return this.durable; }
  /** Highest seqno known committed: at open, the commit point recorded on disk. */
  get committedSeqno(): number { return this.commitWanted; }
  get diskFull(): boolean { return this.full; }
  get recordedCommitSeqno(): number { return this.commitRecorded; }

  append(entry: Buffer, seqno: number, isSignature: boolean, endsChunk = false): void {
    if (seqno !== this.last + 1) throw new Error(`assertion failed: appended seqno ${seqno} follows last seqno ${this.last}`);
    this.buffered.push(entry);
    if (isSignature) this.signatures.push(seqno);
    if (endsChunk && isSignature) this.chunkEnds.push(seqno);
    this.last = seqno;
  }

  /**
   * Posts everything buffered to the worker at once (flush, truncate and commit reach the worker
   * in call order) and resolves once it is durable. Rejects with LedgerDiskFull when the disk is
   * full: the entries then wait in the worker's memory and every later flush retries them.
   */
  flush(commitIfDurable = 0): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    // Nothing posted is still unsynced: no need to wait for the worker.
    if (this.buffered.length === 0 && this.durable === this.last && !this.full) return Promise.resolve(this.durable);
    const batch = this.buffered;
    const firstSeqno = this.bufferedFirst;
    const signatures = this.signatures;
    this.buffered = [];
    this.signatures = [];
    const chunkEnds = this.chunkEnds;
    this.chunkEnds = [];
    this.bufferedFirst = firstSeqno + batch.length;
    const { bytes, lengths } = packEntries(batch);
    const flush: InFlightFlush = { cap: Infinity };
    this.inFlightFlushes.add(flush);
    const reply = this.request({ op: "append", firstSeqno, bytes, lengths, signatures, ...(chunkEnds.length > 0 ? { chunkEnds } : {}), flush: true }, [bytes]);
    // A commit point waiting for these entries can follow them now, and so can one that their
    // durability alone decides (recorded no higher than what is durable by then).
    const commitTarget = Math.min(Math.max(commitIfDurable, this.commitWanted), this.bufferedFirst - 1);
    if (commitTarget > this.commitPosted && this.commitPointIntervalMs === 0 && !this.closing) {
      this.sendCommit(commitTarget).catch(() => undefined);
    } else if (this.commitWanted > this.commitPosted) {
      this.postCommit().catch(() => undefined);
    }
    return reply.then(
      (answer) => {
        this.inFlightFlushes.delete(flush);
        // Capped by any truncation since it was posted: entries appended after a truncation are
        // only durable once a later flush says so.
        this.durable = Math.max(this.durable, Math.min(answer.durableSeqno, flush.cap, this.last));
        if (this.full) {
          this.full = false;
          this.emit("diskSpaceAvailable", this.durable);
        }
        return this.durable;
      },
      (error: Error) => {
        this.inFlightFlushes.delete(flush);
        throw this.noteFailure(error);
      },
    );
  }

  /**
   * Marks entries up to `seqno` committed. Never above what this ledger holds: the part above
   * `lastSeqno` is ignored (the next commit() call covers it once the entries are appended), and
   * the part not yet posted to the worker follows the flush that posts those entries.
   */
  commit(seqno: number): Promise<void> {
    const target = Math.min(seqno, this.last);
    if (target > this.commitWanted) this.commitWanted = target;
    return this.postCommit();
  }

  /**
   * Posts the commit point to the worker, at most one per `commitPointIntervalMs` when that is
   * set. Each costs the worker a small write and fdatasync, but commits posted while the disk is
   * busy are folded into one there (a commit records the highest point asked when its turn comes).
   * The promise resolves once the worker answers (or at once if it waits).
   */
  private postCommit(): Promise<void> {
    // The commit point may lag (recovery then protects a little less); close() posts the last one.
    if (this.closing) return Promise.resolve();
    const seqno = Math.min(this.commitWanted, this.bufferedFirst - 1);
    if (seqno <= this.commitPosted) return Promise.resolve();
    const waitMs = this.commitPostedAtMs + this.commitPointIntervalMs - this.timers.now();
    if (waitMs > 0) {
      this.commitTimer ??= this.timers.after(waitMs, () => {
        this.commitTimer = undefined;
        this.postCommit().catch(() => undefined);
      });
      return Promise.resolve();
    }
    return this.sendCommit(seqno);
  }

  private sendCommit(seqno: number): Promise<void> {
    assert(seqno > this.commitPosted && seqno < this.bufferedFirst, `a commit point ${seqno} is posted after its entries and above ${this.commitPosted}`);
    this.commitPosted = seqno;
    this.commitPostedAtMs = this.timers.now();
    return this.request({ op: "commit", seqno }).then((reply) => {
      const recorded = reply.committedSeqno ?? 0;
      if (recorded > this.commitRecorded) {
        this.commitRecorded = recorded;
        this.emit("commitRecorded", recorded);
      }
    }, (error: Error) => {
      // Not recorded (a full disk): the next flush posts it again, or the node would never report
      // anything above the last recorded commit point as Committed.
      this.commitPosted = Math.min(this.commitPosted, this.commitRecorded);
      throw this.noteFailure(error);
    });
  }

  /** Drops every entry after `seqno` (a rollback); the worker applies it after every flush posted before. */
  truncate(seqno: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (seqno >= this.last) return Promise.resolve();
    if (seqno < this.commitWanted) {
      return Promise.reject(new CocoError(
        "LedgerTruncateBelowCommit",
        `Cannot truncate the ledger to seqno ${seqno}: entries up to ${this.commitWanted} are committed ` +
          `and committed entries are never rolled back. This is a consensus bug; report it.`,
        500,
      ));
    }
    this.signatures = this.signatures.filter((s) => s <= seqno);
    this.chunkEnds = this.chunkEnds.filter((s) => s <= seqno);
    this.last = seqno;
    this.durable = Math.min(this.durable, seqno);
    for (const flush of this.inFlightFlushes) flush.cap = Math.min(flush.cap, seqno);
    if (seqno >= this.bufferedFirst - 1) {
      // Only entries still on this thread: the worker has nothing to drop.
      this.buffered.length = seqno - this.bufferedFirst + 1;
      return Promise.resolve();
    }
    this.buffered = [];
    this.bufferedFirst = seqno + 1;
    return this.request({ op: "truncate", seqno }).then(() => undefined, (error: Error) => { throw this.noteFailure(error); });
  }

  async read(seqno: number): Promise<Buffer> {
    if (seqno >= this.bufferedFirst && seqno <= this.last) return this.buffered[seqno - this.bufferedFirst]!;
    const reply = await this.request({ op: "read", seqno });
    return unpackEntries(reply.bytes!, reply.lengths!)[0]!;
  }

  async readRange(first: number, last: number, bytesMax: number): Promise<Buffer[]> {
    if (first >= this.bufferedFirst && first <= this.last) {
      const out: Buffer[] = [];
      let bytes = 0;
      for (let seqno = first; seqno <= Math.min(last, this.last); seqno++) {
        const entry = this.buffered[seqno - this.bufferedFirst]!;
        if (out.length > 0 && bytes + entry.length > bytesMax) break;
        out.push(entry);
        bytes += entry.length;
      }
      return out;
    }
    // Entries at the worker first; the caller asks again for what follows (maybe buffered here).
    const reply = await this.request({ op: "readRange", first, last: Math.min(last, this.bufferedFirst - 1), bytesMax });
    return unpackEntries(reply.bytes!, reply.lengths!);
  }

  async describeRange(first: number, last: number, bytesMax: number, marker: Uint8Array): Promise<EntryDescriptions> {
    if (first >= this.bufferedFirst) {
      // Not yet at the worker (a restart has none buffered; kept for completeness).
      const entries = await this.readRange(first, last, bytesMax);
      return describeEntries(entries, first, marker);
    }
    const reply = await this.request({ op: "describe", first, last: Math.min(last, this.bufferedFirst - 1), bytesMax, marker });
    return reply.described!;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.retryTimer?.cancel();
    this.commitTimer?.cancel();
    this.retryTimer = this.commitTimer = undefined;
    try {
      if (!this.failure) {
        // A flush failing on a full disk still lets the worker close its files (see Ledger.close).
        const keepGoing = (error: Error) => { if (!isLedgerDiskFull(error)) throw error; };
        await this.flush().catch(keepGoing);
        const seqno = Math.min(this.commitWanted, this.bufferedFirst - 1);
        if (seqno > this.commitPosted) await this.sendCommit(seqno).catch(keepGoing);
        await this.request({ op: "close" });
      }
    } finally {
      this.failure ??= new CocoError("LedgerClosed", "The ledger is closed.", 503);
      await this.worker.terminate();
    }
  }

  /** Tracks the disk-full state of a failed request and returns the error to rethrow. */
  private noteFailure(error: Error): Error {
    if (!isLedgerDiskFull(error)) return error;
    if (!this.full) {
      this.full = true;
      this.logger.warn({ dir: this.dir, err: error.message }, "ledger: disk full, writes suspended until space is freed");
      this.emit("diskFull", error);
    }
    this.scheduleRetry();
    return error;
  }

  /** While full, retries a flush now and then so that writing resumes without new appends. */
  private scheduleRetry(): void {
    if (this.retryTimer || this.failure) return;
    this.retryTimer = this.timers.after(this.diskFullRetryMs, () => {
      this.retryTimer = undefined;
      if (this.full && !this.failure) this.flush().catch(() => undefined);
    });
  }

  private request(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<SuccessReply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...body, id } as WorkerRequest, transfer);
    });
  }

  private onReply(reply: WorkerReply): void {
    if ("log" in reply) {
      this.logger[reply.log](reply.obj, reply.msg);
      return;
    }
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    if (reply.ok && reply.indexedSeqnos !== undefined) this.indexedSeqnos = reply.indexedSeqnos;
    if (reply.ok) pending.resolve(reply);
    else pending.reject(reply.isCocoError ? new CocoError(reply.code, reply.message, reply.status) : new Error(reply.message));
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}
