// The node's ledger writer: append is a cheap in-memory push; flush is a group commit (one
// write per chunk and one fdatasync for every entry buffered since the last flush). All disk
// mutations (flush, commit, truncate, close) run one at a time, in call order, on one queue; the
// disk steps themselves are in chunk-files.ts.
import { EventEmitter } from "node:events";
import { mkdir } from "node:fs/promises";
import { CocoError, assert } from "../util/errors.js";
import { ChunkFiles } from "./chunk-files.js";
import { CommitPoint } from "./commit-point.js";
import { diskFullError, isDiskFull, isLedgerDiskFull, type LedgerEvents } from "./disk-full.js";
import { FRAME_HEADER_BYTES } from "./files.js";
import { recoverChunks, type Chunk, type Durability, type LedgerLogger } from "./recovery.js";
import { describeEntries, type EntryDescriptions } from "./worker-protocol.js";

export type { Durability, LedgerLogger } from "./recovery.js";
export type { LedgerEvents } from "./disk-full.js";

export interface LedgerOptions {
  /** A chunk closes at the first signature transaction after it reaches this size. CCF's default. */
  chunkSizeBytes?: number;
  durability?: Durability;
  logger?: LedgerLogger;
  /**
   * Whether open() returns every entry (default true: audits and tests). A node passes false and
   * reads its ledger back in bounded ranges (readRange), so the ledger never sits whole in memory.
   */
  returnEntries?: boolean;
  /**
   * For a directory without chunks: the ledger starts after this seqno (the node starts from a
   * snapshot of it, which is committed). Ignored when the directory holds entries.
   */
  startAfter?: number;
  /**
   * Seqnos whose place in the chunk files stays in memory (at ~2.3 bytes each); older committed
   * chunks are paged out and found through their index files (chunk-files.ts).
   */
  residentIndexEntries?: number;
}

const DEFAULT_CHUNK_SIZE_BYTES = 5 * 1024 * 1024;
/**
 * 2^18 seqnos: ~0.6 MB resident, 1.2 MB at most before a page-out; every entry a backup within the
 * consensus window, a recent receipt or a snapshot's suffix needs is found without a file read.
 */
const DEFAULT_RESIDENT_INDEX_ENTRIES = 1 << 18;
const silentLogger: LedgerLogger = { info() {}, warn() {} };

export class Ledger extends EventEmitter<LedgerEvents> {
  readonly #dir: string;
  readonly #chunkSizeBytes: number;
  readonly #logger: LedgerLogger;
  readonly #files: ChunkFiles;
  #lastSeqno: number;
  #durableSeqno: number;
  #committedSeqno: number;
  /** Appended but not yet taken by a flush; #buffered[i] has seqno #bufferedFirst + i. */
  #buffered: Buffer[] = [];
  #bufferedFirst: number;
  /** Seqnos of signature transactions still buffered or in flight (rare: no per-entry cost). */
  #signatures: number[] = [];
  /** Signatures a chunk must end at whatever its size (trigger_ledger_chunk); kept until truncated or written. */
  readonly #chunkEnds = new Set<number>();
  /** Taken by the running flush; still served by read() until it is on disk. */
  #inFlight: Buffer[] = [];
  #inFlightFirst = 0;
  /** Lowest seqno requested by truncate() that the queue has not yet applied to disk. */
  #truncateTo = Infinity;
  #queue: Promise<unknown> = Promise.resolve();
  #queuedFlush: Promise<number> | null = null;
  #failure: unknown = null;
  #closed = false;
  readonly #commitPoint: CommitPoint;
  /** A commit's renames or commit-point write failed on a full disk; the next flush redoes them. */
  #commitBehind = false;
  #diskFull = false;

  private constructor(opts: Required<LedgerOptions>, files: ChunkFiles, commitPoint: CommitPoint) {
    super();
    this.#dir = files.dir;
    this.#files = files;
    this.#commitPoint = commitPoint;
    this.#chunkSizeBytes = opts.chunkSizeBytes;
    this.#logger = opts.logger;
    const last = files.index.lastSeqno;
    this.#lastSeqno = last;
    this.#durableSeqno = last;
    this.#bufferedFirst = last + 1;
    // A ledger that starts after a snapshot starts committed: the snapshot's seqno is.
    this.#committedSeqno = Math.max(commitPoint.seqno, files.committedByName(), files.firstSeqno - 1);
  }

  /** Opens (creating if needed) a ledger directory, recovers a torn tail, and returns every entry. */
  static async open(dir: string, options: LedgerOptions = {}): Promise<{ ledger: Ledger; entries: Buffer[] }> {
    const opts: Required<LedgerOptions> = {
      chunkSizeBytes: options.chunkSizeBytes ?? DEFAULT_CHUNK_SIZE_BYTES,
      durability: options.durability ?? "fsync",
      logger: options.logger ?? silentLogger,
      returnEntries: options.returnEntries ?? true,
      startAfter: options.startAfter ?? 0,
      residentIndexEntries: options.residentIndexEntries ?? DEFAULT_RESIDENT_INDEX_ENTRIES,
    };
    assert(Number.isSafeInteger(opts.residentIndexEntries) && opts.residentIndexEntries > 0, "residentIndexEntries is a positive count");
    assert(Number.isSafeInteger(opts.startAfter) && opts.startAfter >= 0, "startAfter is a seqno");
    assert(opts.chunkSizeBytes > 0, "chunkSizeBytes is positive");
    await mkdir(dir, { recursive: true });
    const commitPoint = await CommitPoint.open(dir, opts.durability);
    let recovered;
    try {
      recovered = await recoverChunks(dir, opts.durability, opts.logger, commitPoint.seqno, opts.returnEntries, opts.residentIndexEntries);
    } catch (err) {
      await commitPoint.close();
      throw err;
    }
    const { chunks, index, entries } = recovered;
    if (chunks.length === 0 && opts.startAfter > 0) {
      assert(index.lastSeqno === 0, "an empty ledger holds no seqno");
      index.firstSeqno = opts.startAfter + 1;
      opts.logger.info({ dir, startAfter: opts.startAfter }, "ledger: empty, starts after the snapshot");
    }
    opts.logger.info({ dir, chunks: chunks.length, lastSeqno: index.lastSeqno, committedSeqno: commitPoint.seqno }, "ledger: opened");
    const files = new ChunkFiles(dir, opts.durability, opts.logger, chunks, index, opts.residentIndexEntries);
    return { ledger: new Ledger(opts, files, commitPoint), entries };
  }

  get lastSeqno(): number {
    return this.#lastSeqno;
  }

  /** Highest seqno written (and, with durability "fsync", synced) and not since truncated. */
  get durableSeqno(): number {
    return this.#durableSeqno;
  }

  get committedSeqno(): number {
    return this.#committedSeqno;
  }

  /** Highest seqno the commit point file records: what a restart will know to be committed. */
  get recordedCommitSeqno(): number {
    return this.#commitPoint.seqno;
  }

  /** Seqnos whose place on disk is held in memory (the rest are paged out); for tests and memory figures. */
  get residentIndexSeqnos(): number {
    return this.#files.index.count;
  }

  /** True from a write that failed for lack of space until a flush writes everything again. */
  get diskFull(): boolean {
    return this.#diskFull;
  }

  /** Buffers one entry in memory; it reaches disk at the next flush(). */
  append(entry: Buffer, seqno: number, isSignature: boolean, endsChunk = false): void {
    assert(!this.#closed, "ledger is open");
    assert(seqno === this.#lastSeqno + 1, `appended seqno ${seqno} follows last seqno ${this.#lastSeqno}`);
    assert(!endsChunk || isSignature, "only a signature transaction ends a chunk");
    this.#buffered.push(entry);
    if (isSignature) this.#signatures.push(seqno);
    if (endsChunk) this.#chunkEnds.add(seqno);
    this.#lastSeqno = seqno;
  }

  /** Group commit of everything appended so far; resolves with the new durableSeqno. Calls made
   * while a flush runs share one follow-up flush. */
  flush(): Promise<number> {
    if (this.#queuedFlush) return this.#queuedFlush;
    const flush = this.#enqueue(async () => {
      this.#queuedFlush = null;
      // A lower truncate() may arrive while one is applied: the disk must be cut before writing after it.
      while (this.#truncateTo !== Infinity) await this.#applyTruncation();
      await this.#writeBuffered();
      if (this.#commitBehind) await this.#markCommitted();
      if (this.#diskFull) {
        this.#diskFull = false;
        this.#logger.info({ dir: this.#dir, durableSeqno: this.#durableSeqno }, "ledger: disk space available again, writes resumed");
        this.emit("diskSpaceAvailable", this.#durableSeqno);
      }
      return this.#durableSeqno;
    });
    this.#queuedFlush = flush;
    return flush;
  }

  /**
   * Records that every entry up to `seqno` is committed: renames closed chunks it covers to
   * *.committed and writes the commit point (at most one small write + fdatasync per call, none if
   * a queued commit already covered it). Never marks entries this ledger does not hold: consensus
   * may learn a commit point before this node's copy of the entries reaches the ledger, and those
   * entries are marked by the commit() call that follows them. Idempotent.
   */
  commit(seqno: number): Promise<void> {
    // A commit learnt while shutting down is recorded by the next start's consensus instead.
    if (this.#closed) return Promise.resolve();
    const target = Math.min(seqno, this.#lastSeqno);
    if (target > this.#committedSeqno) this.#committedSeqno = target;
    return this.#enqueue(() => this.#markCommitted());
  }

  async #markCommitted(): Promise<void> {
    assert(this.#committedSeqno <= this.#lastSeqno, `commit ${this.#committedSeqno} within the ledger (last ${this.#lastSeqno})`);
    try {
      await this.#files.markCommitted(this.#committedSeqno);
      // Only entries already on disk: recovery refuses to start if any at or below it is missing.
      const recordedBefore = this.#commitPoint.seqno;
      await this.#commitPoint.record(Math.min(this.#committedSeqno, this.#durableSeqno));
      this.#commitBehind = false;
      if (this.#commitPoint.seqno > recordedBefore) this.emit("commitRecorded", this.#commitPoint.seqno);
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      this.#commitBehind = true;
      throw this.#enterDiskFull(diskFullError(this.#dir, `marking entries up to ${this.#committedSeqno} committed`, err));
    }
  }

  /** Enters the disk-full state (once per episode) and returns the error to throw. */
  #enterDiskFull(error: CocoError): CocoError {
    if (!this.#diskFull) {
      this.#diskFull = true;
      this.#logger.warn({ dir: this.#dir, err: error.message }, "ledger: disk full, writes suspended until space is freed");
      this.emit("diskFull", error);
    }
    return error;
  }

  /** Drops every entry after `seqno` (a rollback). Takes effect in memory at once, so the next
   * append may follow; the disk catches up on the queue. Refuses to drop committed entries. */
  truncate(seqno: number): Promise<void> {
    if (seqno < this.#committedSeqno) {
      return Promise.reject(
        new CocoError(
          "LedgerTruncateBelowCommit",
          `Cannot truncate the ledger to seqno ${seqno}: entries up to ${this.#committedSeqno} are committed ` +
            `and committed entries are never rolled back. This is a consensus bug; report it.`,
          500,
        ),
      );
    }
    if (seqno >= this.#lastSeqno) return Promise.resolve();
    if (seqno >= this.#bufferedFirst - 1) {
      this.#buffered.length = seqno - this.#bufferedFirst + 1;
    } else {
      this.#buffered = [];
      this.#bufferedFirst = seqno + 1;
      this.#truncateTo = Math.min(this.#truncateTo, seqno);
      this.#durableSeqno = Math.min(this.#durableSeqno, seqno);
    }
    this.#signatures = this.#signatures.filter((s) => s <= seqno);
    for (const end of this.#chunkEnds) if (end > seqno) this.#chunkEnds.delete(end);
    this.#lastSeqno = seqno;
    return this.#enqueue(() => this.#applyTruncation());
  }

  /** Entry bytes for any seqno in the ledger: buffered ones from memory, the rest from disk. */
  async read(seqno: number): Promise<Buffer> {
    const inMemory = this.#fromMemory(seqno);
    if (inMemory) return inMemory;
    return this.#files.read(seqno);
  }

  /**
   * Entries first..at most last, in order: at least one, then as many as fit in `bytesMax`
   * (frames read from one chunk file at a time). What a node replays its ledger with and what a
   * primary serves a backup behind its in-memory window from.
   */
  /** Leaves, views and flags of entries first..at most last (worker-protocol.ts: describeEntries). */
  async describeRange(first: number, last: number, bytesMax: number, marker: Uint8Array): Promise<EntryDescriptions> {
    return describeEntries(await this.readRange(first, last, bytesMax), first, marker);
  }

  async readRange(first: number, last: number, bytesMax: number): Promise<Buffer[]> {
    assert(last >= first && bytesMax > 0, `a read range ${first}..${last} within ${bytesMax} bytes`);
    const out: Buffer[] = [];
    let bytes = 0;
    let seqno = first;
    while (seqno <= last) {
      const inMemory = this.#fromMemory(seqno);
      if (inMemory !== null) {
        if (out.length > 0 && bytes + inMemory.length > bytesMax) break;
        out.push(inMemory);
        bytes += inMemory.length;
        seqno++;
        continue;
      }
      // Only the first entry of a call may exceed the budget (a call always makes progress).
      const read = await this.#files.readRange(seqno, last, bytesMax - bytes, out.length > 0);
      if (read.length === 0) break;
      for (const entry of read) {
        out.push(entry);
        bytes += entry.length;
      }
      seqno += read.length;
      if (bytes >= bytesMax) break;
    }
    return out;
  }

  /** Still-buffered or in-flight entries; throws for seqnos outside the ledger; null if on disk. */
  #fromMemory(seqno: number): Buffer | null {
    if (seqno > this.#lastSeqno || seqno < this.#files.firstSeqno || !Number.isInteger(seqno)) {
      throw new CocoError(
        "LedgerEntryNotFound",
        `Seqno ${seqno} is not in this ledger (it holds ${this.#files.firstSeqno}..${this.#lastSeqno}).`,
        404,
      );
    }
    if (seqno >= this.#bufferedFirst) return this.#buffered[seqno - this.#bufferedFirst]!;
    const inFlight = seqno - this.#inFlightFirst;
    if (inFlight >= 0 && inFlight < this.#inFlight.length) return this.#inFlight[inFlight]!;
    return null;
  }

  /**
   * Flushes what is buffered and closes the files. If that flush fails on a full disk the files
   * are closed anyway and the LedgerDiskFull error is rethrown: the entries still in memory were
   * never reported durable, so no peer or client relied on them.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    let diskFull: unknown = null;
    try {
      await this.flush();
    } catch (err) {
      if (!isLedgerDiskFull(err)) throw err;
      diskFull = err;
    }
    this.#closed = true;
    await this.#enqueue(async () => {
      await this.#files.closeAll();
      await this.#commitPoint.close();
    });
    if (diskFull !== null) throw diskFull;
  }

  #enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(async () => {
      // After a failed disk write the file state is unknown: stop rather than limp on.
      if (this.#failure !== null) throw this.#failure;
      try {
        return await op();
      } catch (err) {
        if (!(err instanceof CocoError)) this.#failure = err;
        throw err;
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes the buffered entries, one write per chunk, rotating after signatures. On a full disk
   * the open chunk goes back to its last synced size, the entries not yet synced go back to the
   * front of the buffer (a later flush retries them) and LedgerDiskFull is thrown.
   */
  async #writeBuffered(): Promise<void> {
    const batch = this.#buffered;
    if (batch.length === 0) return;
    const first = this.#bufferedFirst;
    this.#inFlight = batch;
    this.#inFlightFirst = first;
    this.#buffered = [];
    this.#bufferedFirst = first + batch.length;
    const signatures = this.#signatures;
    this.#signatures = [];
    let nextSignature = 0;
    let i = 0;
    /** Entries batch[0..synced) are on disk and synced (in chunks closed by this flush). */
    let synced = 0;
    /** The open chunk being written and its state at its last sync, to undo a failed write. */
    let open: Chunk | null = null;
    let syncedSize = 0;
    let syncedLast = 0;
    try {
      await this.#files.trimUndone();
      while (i < batch.length) {
        const chunk = this.#files.current() ?? (await this.#files.start(first + i));
        if (chunk !== open) {
          open = chunk;
          syncedSize = chunk.size;
          syncedLast = chunk.lastSeqno;
        }
        // Take frames up to the first signature at which the chunk reaches its size limit.
        let bytes = 0;
        let end = i;
        let closeAfter = false;
        while (end < batch.length) {
          bytes += FRAME_HEADER_BYTES + batch[end]!.length;
          const seqno = first + end++;
          while (nextSignature < signatures.length && signatures[nextSignature]! < seqno) nextSignature++;
          if (signatures[nextSignature] === seqno && (chunk.size + bytes >= this.#chunkSizeBytes || this.#chunkEnds.has(seqno))) {
            closeAfter = true;
            break;
          }
        }
        await this.#files.writeFrames(chunk, batch, first, i, end, bytes);
        i = end;
        if (closeAfter) {
          await this.#files.sync(chunk);
          synced = end;
          syncedSize = chunk.size;
          syncedLast = chunk.lastSeqno;
          await this.#files.close(chunk);
          for (const e of this.#chunkEnds) if (e < first + end) this.#chunkEnds.delete(e);
        }
      }
      const current = this.#files.current();
      if (current) await this.#files.sync(current);
      synced = batch.length;
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      if (open && !open.closed) await this.#files.undoWrites(open, syncedSize, syncedLast);
      this.#keepUnsynced(batch, first, synced, signatures);
      const error = diskFullError(this.#dir, `writing entries ${first + synced}..${first + batch.length - 1}`, err);
      throw this.#enterDiskFull(error);
    } finally {
      this.#inFlight = [];
      if (synced > 0) {
        this.#durableSeqno = Math.max(this.#durableSeqno, Math.min(first + synced - 1, this.#truncateTo));
      }
    }
  }

  /** Puts batch[synced..] back in front of what was appended since, minus what a truncate() dropped meanwhile. */
  #keepUnsynced(batch: Buffer[], first: number, synced: number, signatures: number[]): void {
    let keepEnd = batch.length;
    if (this.#truncateTo !== Infinity) keepEnd = Math.min(keepEnd, this.#truncateTo - first + 1);
    if (keepEnd <= synced) return;
    assert(first + keepEnd === this.#bufferedFirst, `kept entries ${first + synced}..${first + keepEnd - 1} precede the buffer at ${this.#bufferedFirst}`);
    const keptLast = first + keepEnd - 1;
    this.#buffered = batch.slice(synced, keepEnd).concat(this.#buffered);
    this.#signatures = signatures.filter((s) => s >= first + synced && s <= keptLast).concat(this.#signatures);
    this.#bufferedFirst = first + synced;
  }

  /**
   * Applies the pending truncation to disk. It stays pending until every step is done, so a
   * failure (a full disk) is retried by the next flush rather than forgotten.
   */
  async #applyTruncation(): Promise<void> {
    const seqno = this.#truncateTo;
    if (seqno === Infinity) return;
    try {
      await this.#files.truncate(seqno);
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      throw this.#enterDiskFull(diskFullError(this.#dir, `rolling the ledger back to seqno ${seqno}`, err));
    }
    // A lower truncate() may have arrived meanwhile: it stays pending for its own queued run.
    if (this.#truncateTo === seqno) this.#truncateTo = Infinity;
  }
}
