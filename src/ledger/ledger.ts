// The node's ledger writer: append is a cheap in-memory push; flush is a group commit (one
// write per chunk and one fdatasync for every entry buffered since the last flush). All disk
// mutations (flush, commit, truncate, close) run one at a time on a single queue.
import { open, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { CocoError, assert } from "../util/errors.js";
import { CHUNK_MAGIC, FRAME_HEADER_BYTES, chunkName } from "./files.js";
import {
  recoverChunks,
  syncDirectory,
  writeAll,
  type Chunk,
  type Durability,
  type LedgerLogger,
} from "./recovery.js";
import type { SeqnoIndex } from "./seqno-index.js";

export type { Durability, LedgerLogger } from "./recovery.js";

export interface LedgerOptions {
  /** A chunk closes at the first signature transaction after it reaches this size. CCF's default. */
  chunkSizeBytes?: number;
  durability?: Durability;
  logger?: LedgerLogger;
}

const DEFAULT_CHUNK_SIZE_BYTES = 5 * 1024 * 1024;
const silentLogger: LedgerLogger = { info() {}, warn() {} };

export class Ledger {
  readonly #dir: string;
  readonly #chunkSizeBytes: number;
  readonly #durability: Durability;
  readonly #logger: LedgerLogger;
  readonly #chunks: Chunk[];
  readonly #index: SeqnoIndex;
  #lastSeqno: number;
  #durableSeqno: number;
  #committedSeqno: number;
  /** Appended but not yet taken by a flush; #buffered[i] has seqno #bufferedFirst + i. */
  #buffered: Buffer[] = [];
  #bufferedFirst: number;
  /** Seqnos of signature transactions still buffered or in flight (rare: no per-entry cost). */
  #signatures: number[] = [];
  /** Taken by the running flush; still served by read() until it is on disk. */
  #inFlight: Buffer[] = [];
  #inFlightFirst = 0;
  /** Lowest seqno requested by truncate() that the queue has not yet applied to disk. */
  #truncateTo = Infinity;
  #queue: Promise<unknown> = Promise.resolve();
  #queuedFlush: Promise<number> | null = null;
  #failure: unknown = null;
  #closed = false;

  private constructor(dir: string, opts: Required<LedgerOptions>, chunks: Chunk[], index: SeqnoIndex) {
    this.#dir = dir;
    this.#chunkSizeBytes = opts.chunkSizeBytes;
    this.#durability = opts.durability;
    this.#logger = opts.logger;
    this.#chunks = chunks;
    this.#index = index;
    this.#lastSeqno = index.lastSeqno;
    this.#durableSeqno = index.lastSeqno;
    this.#bufferedFirst = index.lastSeqno + 1;
    let committed = 0;
    for (const c of chunks) if (c.committed) committed = c.lastSeqno;
    this.#committedSeqno = committed;
  }

  /** Opens (creating if needed) a ledger directory, recovers a torn tail, and returns every entry. */
  static async open(dir: string, options: LedgerOptions = {}): Promise<{ ledger: Ledger; entries: Buffer[] }> {
    const opts: Required<LedgerOptions> = {
      chunkSizeBytes: options.chunkSizeBytes ?? DEFAULT_CHUNK_SIZE_BYTES,
      durability: options.durability ?? "fsync",
      logger: options.logger ?? silentLogger,
    };
    assert(opts.chunkSizeBytes > 0, "chunkSizeBytes is positive");
    const { chunks, index, entries } = await recoverChunks(dir, opts.durability, opts.logger);
    opts.logger.info({ dir, chunks: chunks.length, lastSeqno: index.lastSeqno }, "ledger: opened");
    return { ledger: new Ledger(dir, opts, chunks, index), entries };
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

  /** Buffers one entry in memory; it reaches disk at the next flush(). */
  append(entry: Buffer, seqno: number, isSignature: boolean): void {
    assert(!this.#closed, "ledger is open");
    assert(seqno === this.#lastSeqno + 1, `appended seqno ${seqno} follows last seqno ${this.#lastSeqno}`);
    this.#buffered.push(entry);
    if (isSignature) this.#signatures.push(seqno);
    this.#lastSeqno = seqno;
  }

  /** Group commit of everything appended so far; resolves with the new durableSeqno. Calls made
   * while a flush runs share one follow-up flush. */
  flush(): Promise<number> {
    if (this.#queuedFlush) return this.#queuedFlush;
    const flush = this.#enqueue(async () => {
      this.#queuedFlush = null;
      await this.#applyTruncation();
      await this.#writeBuffered();
      return this.#durableSeqno;
    });
    this.#queuedFlush = flush;
    return flush;
  }

  /** Marks closed chunks whose entries are all committed by renaming them to *.committed. Idempotent. */
  commit(seqno: number): Promise<void> {
    if (seqno > this.#committedSeqno) this.#committedSeqno = seqno;
    return this.#enqueue(async () => {
      let renamed = false;
      for (const chunk of this.#chunks) {
        if (!chunk.closed || chunk.committed || chunk.lastSeqno > this.#committedSeqno) continue;
        await rename(this.#path(chunk), join(this.#dir, chunkName(chunk.firstSeqno, chunk.lastSeqno, true)));
        chunk.committed = true;
        renamed = true;
      }
      if (renamed) await syncDirectory(this.#dir, this.#durability);
    });
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
    this.#lastSeqno = seqno;
    return this.#enqueue(() => this.#applyTruncation());
  }

  /** Entry bytes for any seqno in the ledger: buffered ones from memory, the rest from disk. */
  async read(seqno: number): Promise<Buffer> {
    const inMemory = this.#fromMemory(seqno);
    if (inMemory) return inMemory;
    // A concurrent commit() or truncate() may rename the chunk between lookup and open: retry.
    for (let attempt = 0; ; attempt++) {
      const chunk = this.#chunkFor(seqno);
      try {
        const handle = chunk.handle ?? (await open(this.#path(chunk), "r"));
        try {
          const out = Buffer.allocUnsafe(this.#index.length(seqno));
          const { bytesRead } = await handle.read(out, 0, out.length, this.#index.offset(seqno));
          assert(bytesRead === out.length, `read ${out.length} bytes of seqno ${seqno}`);
          return out;
        } finally {
          if (handle !== chunk.handle) await handle.close();
        }
      } catch (err) {
        if (attempt >= 3 || !isRetryable(err)) throw err;
      }
    }
  }

  /** Still-buffered or in-flight entries; throws for seqnos outside the ledger; null if on disk. */
  #fromMemory(seqno: number): Buffer | null {
    if (seqno > this.#lastSeqno || seqno < this.#index.firstSeqno || !Number.isInteger(seqno)) {
      throw new CocoError(
        "LedgerEntryNotFound",
        `Seqno ${seqno} is not in this ledger (it holds ${this.#index.firstSeqno}..${this.#lastSeqno}).`,
        404,
      );
    }
    if (seqno >= this.#bufferedFirst) return this.#buffered[seqno - this.#bufferedFirst]!;
    const inFlight = seqno - this.#inFlightFirst;
    if (inFlight >= 0 && inFlight < this.#inFlight.length) return this.#inFlight[inFlight]!;
    return null;
  }

  /** Flushes what is buffered and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    await this.#enqueue(async () => {
      for (const chunk of this.#chunks) {
        const handle = chunk.handle;
        chunk.handle = null;
        if (handle) await handle.close();
      }
    });
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

  #path(chunk: Chunk): string {
    const last = chunk.closed ? chunk.lastSeqno : null;
    return join(this.#dir, chunkName(chunk.firstSeqno, last, chunk.committed));
  }

  #chunkFor(seqno: number): Chunk {
    let lo = 0;
    let hi = this.#chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#chunks[mid]!.firstSeqno <= seqno) lo = mid;
      else hi = mid - 1;
    }
    const chunk = this.#chunks[lo];
    assert(chunk && chunk.firstSeqno <= seqno && seqno <= chunk.lastSeqno, `seqno ${seqno} is in a chunk`);
    return chunk;
  }

  /** Writes the buffered entries, one write per chunk, rotating after signatures. */
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
    try {
      while (i < batch.length) {
        const chunk = this.#currentChunk() ?? (await this.#startChunk(first + i));
        // Take frames up to the first signature at which the chunk reaches its size limit.
        let bytes = 0;
        let end = i;
        let closeAfter = false;
        while (end < batch.length) {
          bytes += FRAME_HEADER_BYTES + batch[end]!.length;
          const seqno = first + end++;
          while (nextSignature < signatures.length && signatures[nextSignature]! < seqno) nextSignature++;
          if (signatures[nextSignature] === seqno && chunk.size + bytes >= this.#chunkSizeBytes) {
            closeAfter = true;
            break;
          }
        }
        await this.#writeFrames(chunk, batch, first, i, end, bytes);
        if (closeAfter) await this.#closeChunk(chunk);
        i = end;
      }
      const current = this.#currentChunk();
      if (current && this.#durability === "fsync") await current.handle!.datasync();
    } finally {
      this.#inFlight = [];
    }
    this.#durableSeqno = Math.min(first + batch.length - 1, this.#truncateTo);
  }

  async #writeFrames(chunk: Chunk, batch: Buffer[], first: number, from: number, to: number, bytes: number) {
    // One buffer for the whole segment: no per-entry allocation, one write syscall.
    const out = Buffer.allocUnsafe(bytes);
    let pos = 0;
    for (let k = from; k < to; k++) {
      const entry = batch[k]!;
      out.writeUInt32BE(entry.length, pos);
      out.writeUInt32BE(crc32(entry), pos + 4);
      entry.copy(out, pos + FRAME_HEADER_BYTES);
      this.#index.set(first + k, chunk.size + pos + FRAME_HEADER_BYTES, entry.length);
      pos += FRAME_HEADER_BYTES + entry.length;
    }
    await writeAll(chunk.handle!, out, chunk.size);
    chunk.size += bytes;
    chunk.lastSeqno = first + to - 1;
  }

  #currentChunk(): Chunk | null {
    const last = this.#chunks[this.#chunks.length - 1];
    return last && !last.closed ? last : null;
  }

  async #startChunk(firstSeqno: number): Promise<Chunk> {
    const chunk: Chunk = { firstSeqno, lastSeqno: firstSeqno - 1, closed: false, committed: false, size: 0, handle: null };
    chunk.handle = await open(this.#path(chunk), "wx+");
    await writeAll(chunk.handle, CHUNK_MAGIC, 0);
    chunk.size = CHUNK_MAGIC.length;
    this.#chunks.push(chunk);
    // The new name must survive a crash as surely as the data written into it.
    await syncDirectory(this.#dir, this.#durability);
    return chunk;
  }

  /** fsync, close, rename to ledger_<first>-<last>, fsync the directory: a closed chunk ends at a signature. */
  async #closeChunk(chunk: Chunk): Promise<void> {
    const handle = chunk.handle!;
    if (this.#durability === "fsync") await handle.datasync();
    chunk.handle = null; // before close: a concurrent read must never use a closing handle
    await handle.close();
    const openPath = this.#path(chunk);
    chunk.closed = true;
    await rename(openPath, this.#path(chunk));
    await syncDirectory(this.#dir, this.#durability);
    this.#logger.info({ file: this.#path(chunk), bytes: chunk.size }, "ledger: chunk closed");
  }

  /** Applies the pending truncation to disk: whole chunks from the end, then the tail of one. */
  async #applyTruncation(): Promise<void> {
    const seqno = this.#truncateTo;
    if (seqno === Infinity) return;
    this.#truncateTo = Infinity;
    let renamed = false;
    // Remove later chunks last-first so a crash midway still leaves a contiguous prefix.
    while (this.#chunks.length > 0 && this.#chunks[this.#chunks.length - 1]!.firstSeqno > seqno) {
      const chunk = this.#chunks.pop()!;
      const handle = chunk.handle;
      chunk.handle = null;
      if (handle) await handle.close();
      await unlink(this.#path(chunk));
      renamed = true;
    }
    const tail = this.#chunks[this.#chunks.length - 1];
    if (tail && tail.lastSeqno > seqno) {
      assert(!tail.committed, "a committed chunk is never truncated");
      if (tail.closed) {
        // Reopen under its open name first: "ledger_<first>" may hold any number of entries.
        const closedPath = this.#path(tail);
        tail.closed = false;
        await rename(closedPath, this.#path(tail));
        tail.handle = await open(this.#path(tail), "r+");
        renamed = true;
      }
      tail.size = this.#index.offset(seqno) + this.#index.length(seqno);
      tail.lastSeqno = seqno;
      if (renamed) await syncDirectory(this.#dir, this.#durability);
      renamed = false;
      await tail.handle!.truncate(tail.size);
      if (this.#durability === "fsync") await tail.handle!.datasync();
    }
    if (renamed) await syncDirectory(this.#dir, this.#durability);
    this.#index.truncate(seqno);
  }
}

function isRetryable(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "EBADF";
}

