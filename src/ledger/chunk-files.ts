// The ledger's chunk files as the writer sees them: which chunk holds which seqno, and the disk
// steps on them (frame writes, sync, close by rename, commit renames, rollback, reads). Each step
// leaves the files and this bookkeeping in agreement even when it fails on a full disk, so the
// writer (ledger.ts) can retry it; ledger.ts decides what to write and when.
import { open, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { assert } from "../util/errors.js";
import { frameMismatch, loadChunkIndex, removeChunkIndex, writeChunkIndex } from "./chunk-index.js";
import { CHUNK_MAGIC, FRAME_HEADER_BYTES, checkClosedChunkEnd, chunkName, corruptedAt, scanChunk, type LedgerFileInfo } from "./files.js";
import { syncDirectory, writeAll, type Chunk, type Durability, type LedgerLogger } from "./recovery.js";
import type { SeqnoIndex } from "./seqno-index.js";

/** Where each entry of a chunk sits: the resident SeqnoIndex, or a paged-out chunk's table. */
interface FrameTable {
  /** Offset of the entry (after its frame header) in its chunk file. */
  offset(seqno: number): number;
  length(seqno: number): number;
}

/** Tables of paged-out chunks kept at once (sequential reads need one; a catch-up crosses into the next). */
const PAGED_TABLES_CACHED = 2;

/** A paged-out chunk's frames, from its index file (or a scan of the chunk). */
class PagedChunk implements FrameTable {
  readonly #offsets: Float64Array;

  constructor(private readonly firstSeqno: number, private readonly lengths: Uint32Array) {
    this.#offsets = new Float64Array(lengths.length);
    let offset = CHUNK_MAGIC.length + FRAME_HEADER_BYTES;
    for (let i = 0; i < lengths.length; i++) {
      this.#offsets[i] = offset;
      offset += FRAME_HEADER_BYTES + lengths[i]!;
    }
  }

  offset(seqno: number): number {
    return this.#offsets[seqno - this.firstSeqno]!;
  }

  length(seqno: number): number {
    return this.lengths[seqno - this.firstSeqno]!;
  }
}

/**
 * The seqno index is resident for recent entries only: once it holds more than twice
 * `residentEntries` seqnos, the committed chunks older than the last `residentEntries` are paged
 * out, and a read of one of their entries finds it through the chunk's index file (chunk-index.ts;
 * a scan of the chunk if that file is missing or refused), keeping the last PAGED_TABLES_CACHED
 * such tables. So the index's memory is bounded however long the ledger grows.
 */
export class ChunkFiles {
  /** The open chunk may hold bytes past `size` from a write undone after ENOSPC; cut before the next write. */
  #untrimmed: Chunk | null = null;
  /** Loaded tables of paged-out chunks by first seqno, least recently used first. */
  readonly #paged = new Map<number, Promise<PagedChunk>>();

  constructor(
    readonly dir: string,
    private readonly durability: Durability,
    private readonly logger: LedgerLogger,
    private readonly chunks: Chunk[],
    readonly index: SeqnoIndex,
    private readonly residentEntries: number,
  ) {}

  /** The ledger's first seqno (paged-out chunks included). */
  get firstSeqno(): number {
    return this.chunks[0]?.firstSeqno ?? this.index.firstSeqno;
  }

  /** The chunk being written (always the last), or null if the next write starts one. */
  current(): Chunk | null {
    const last = this.chunks[this.chunks.length - 1];
    return last && !last.closed ? last : null;
  }

  /** Seqno of the last entry of each committed chunk, i.e. how far the chunk names say it is committed. */
  committedByName(): number {
    let committed = 0;
    for (const chunk of this.chunks) if (chunk.committed) committed = Math.max(committed, chunk.lastSeqno);
    return committed;
  }

  /** Cuts an undone write off the open chunk, if an earlier cut failed. */
  async trimUndone(): Promise<void> {
    const chunk = this.#untrimmed;
    if (chunk?.handle) await chunk.handle.truncate(chunk.size);
    this.#untrimmed = null;
  }

  /** Creates ledger_<first>; on any failure removes it again, so a retry starts from scratch. */
  async start(firstSeqno: number): Promise<Chunk> {
    const chunk: Chunk = { firstSeqno, lastSeqno: firstSeqno - 1, closed: false, committed: false, size: 0, handle: null };
    const path = this.path(chunk);
    const handle = await open(path, "wx+");
    try {
      await writeAll(handle, CHUNK_MAGIC, 0);
      // The new name must survive a crash as surely as the data written into it.
      await syncDirectory(this.dir, this.durability);
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw err;
    }
    chunk.handle = handle;
    chunk.size = CHUNK_MAGIC.length;
    this.chunks.push(chunk);
    return chunk;
  }

  /** Writes batch[from..to) (seqnos first + k) as frames at the end of the chunk: one buffer, one write. */
  async writeFrames(chunk: Chunk, batch: Buffer[], first: number, from: number, to: number, bytes: number): Promise<void> {
    // One buffer for the whole segment: no per-entry allocation, one write syscall.
    const out = Buffer.allocUnsafe(bytes);
    let pos = 0;
    for (let k = from; k < to; k++) {
      const entry = batch[k]!;
      out.writeUInt32BE(entry.length, pos);
      out.writeUInt32BE(crc32(entry), pos + 4);
      entry.copy(out, pos + FRAME_HEADER_BYTES);
      this.index.set(first + k, chunk.size + pos + FRAME_HEADER_BYTES, entry.length);
      pos += FRAME_HEADER_BYTES + entry.length;
    }
    await writeAll(chunk.handle!, out, chunk.size);
    chunk.size += bytes;
    chunk.lastSeqno = first + to - 1;
  }

  async sync(chunk: Chunk): Promise<void> {
    if (this.durability === "fsync") await chunk.handle!.datasync();
  }

  /** Takes a chunk back to its last synced state after a failed write; the file is cut now or before the next write. */
  async undoWrites(chunk: Chunk, size: number, lastSeqno: number): Promise<void> {
    chunk.size = size;
    chunk.lastSeqno = lastSeqno;
    this.#untrimmed = chunk;
    try {
      await this.trimUndone();
    } catch (err) {
      this.logger.warn({ file: this.path(chunk), offset: size, err: String(err) }, "ledger: could not cut an unsynced write yet; retrying before the next write");
    }
  }

  /**
   * Renames a synced chunk to ledger_<first>-<last> and fsyncs the directory: a closed chunk ends
   * at a signature. If the rename fails (a full directory) the chunk simply stays open, its entries
   * synced, and closes at a later signature.
   */
  async close(chunk: Chunk): Promise<void> {
    await rename(this.path(chunk), join(this.dir, chunkName(chunk.firstSeqno, chunk.lastSeqno, false)));
    chunk.closed = true;
    const handle = chunk.handle!;
    chunk.handle = null; // before close: a concurrent read must never use a closing handle
    await handle.close();
    // If this fails the rename is made durable by the next directory fsync (the next chunk's start).
    await syncDirectory(this.dir, this.durability);
    this.logger.info({ file: this.path(chunk), bytes: chunk.size }, "ledger: chunk closed");
    await this.#writeIndex(chunk);
    this.#pageOut();
  }

  /** The closed chunk's index file (chunk-index.ts), so that the next open need not scan it. */
  async #writeIndex(chunk: Chunk): Promise<void> {
    const lengths = new Uint32Array(chunk.lastSeqno - chunk.firstSeqno + 1);
    for (let seqno = chunk.firstSeqno; seqno <= chunk.lastSeqno; seqno++) lengths[seqno - chunk.firstSeqno] = this.index.length(seqno);
    try {
      await writeChunkIndex(this.dir, { firstSeqno: chunk.firstSeqno, lastSeqno: chunk.lastSeqno, chunkBytes: chunk.size, lengths });
    } catch (err) {
      // Only a cost: the next open scans this chunk (and writes its index then).
      this.logger.warn({ file: this.path(chunk), err: String(err) }, "ledger: could not write the chunk's index; the next open scans the chunk");
    }
  }

  /** Renames closed chunks whose entries are all committed to *.committed. A failed rename is redone by the next call. */
  async markCommitted(committedSeqno: number): Promise<void> {
    let renamed = false;
    for (const chunk of this.chunks) {
      if (!chunk.closed || chunk.committed || chunk.lastSeqno > committedSeqno) continue;
      await rename(this.path(chunk), join(this.dir, chunkName(chunk.firstSeqno, chunk.lastSeqno, true)));
      chunk.committed = true;
      renamed = true;
    }
    if (renamed) await syncDirectory(this.dir, this.durability);
    this.#pageOut();
  }

  /** Drops the resident index of old committed chunks once it holds more than twice `residentEntries` seqnos. */
  #pageOut(): void {
    const index = this.index;
    if (index.count <= 2 * this.residentEntries) return;
    const limit = index.lastSeqno - this.residentEntries;
    // The last chunk ending at or before `limit`; commits cover a prefix of the chunks.
    let lo = 0;
    let hi = this.chunks.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.chunks[mid]!.lastSeqno <= limit) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    while (found >= 0 && !(this.chunks[found]!.closed && this.chunks[found]!.committed)) found--;
    if (found >= 0 && this.chunks[found]!.lastSeqno >= index.firstSeqno) index.dropBefore(this.chunks[found]!.lastSeqno + 1);
  }

  /** The frame table that covers `chunk`: the resident index, or the chunk's own table if it was paged out. */
  async #table(chunk: Chunk): Promise<FrameTable> {
    if (chunk.firstSeqno >= this.index.firstSeqno) return this.index;
    const key = chunk.firstSeqno;
    let table = this.#paged.get(key);
    if (table !== undefined) {
      this.#paged.delete(key);
    } else {
      table = this.#loadPaged(chunk);
      table.catch(() => {
        if (this.#paged.get(key) === table) this.#paged.delete(key);
      });
      while (this.#paged.size >= PAGED_TABLES_CACHED) this.#paged.delete(this.#paged.keys().next().value!);
    }
    this.#paged.set(key, table);
    return table;
  }

  /** A paged-out chunk's table, from its index file, else by scanning the chunk (and writing its index again). */
  async #loadPaged(chunk: Chunk): Promise<PagedChunk> {
    // Closed, and at or below the commit point: never truncated while its table is cached.
    assert(chunk.closed, `a paged-out chunk (${chunk.firstSeqno}..${chunk.lastSeqno}) is closed`);
    const path = this.path(chunk);
    const file: LedgerFileInfo = { name: chunkName(chunk.firstSeqno, chunk.lastSeqno, chunk.committed), path, firstSeqno: chunk.firstSeqno, lastSeqno: chunk.lastSeqno, committed: chunk.committed };
    const indexed = await loadChunkIndex(this.dir, file);
    if (typeof indexed !== "string") return new PagedChunk(chunk.firstSeqno, indexed.lengths);
    this.logger.info({ file: path, reason: indexed }, "ledger: no usable index for an old chunk, scanning it");
    const lengths: number[] = [];
    const result = scanChunk(file, await readFile(path), false, (_offset, entry) => lengths.push(entry.bytes.length));
    checkClosedChunkEnd(file, result);
    const table = Uint32Array.from(lengths);
    try {
      await writeChunkIndex(this.dir, { firstSeqno: chunk.firstSeqno, lastSeqno: chunk.lastSeqno, chunkBytes: result.validLength, lengths: table });
    } catch (err) {
      this.logger.warn({ file: path, err: String(err) }, "ledger: could not write the chunk's index; it is scanned again when next read");
    }
    return new PagedChunk(chunk.firstSeqno, table);
  }

  /**
   * Drops every entry after `seqno` from disk: whole chunks from the end, then the tail of one.
   * Every step can be redone after a failure; the index forgets the seqnos only once all are done.
   */
  async truncate(seqno: number): Promise<void> {
    let renamed = false;
    // Remove later chunks last-first so a crash midway still leaves a contiguous prefix.
    while (this.chunks.length > 0 && this.chunks[this.chunks.length - 1]!.firstSeqno > seqno) {
      const chunk = this.chunks[this.chunks.length - 1]!;
      const handle = chunk.handle;
      chunk.handle = null;
      if (handle) await handle.close();
      if (chunk.closed) await removeChunkIndex(this.dir, chunk.firstSeqno, chunk.lastSeqno);
      await unlink(this.path(chunk)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
      });
      this.chunks.pop();
      if (this.#untrimmed === chunk) this.#untrimmed = null;
      renamed = true;
    }
    const tail = this.chunks[this.chunks.length - 1];
    if (tail && tail.lastSeqno > seqno) {
      assert(!tail.committed, "a committed chunk is never truncated");
      if (tail.closed) {
        await removeChunkIndex(this.dir, tail.firstSeqno, tail.lastSeqno);
        // Reopen under its open name first: "ledger_<first>" may hold any number of entries.
        await rename(this.path(tail), join(this.dir, chunkName(tail.firstSeqno, null, false)));
        tail.closed = false;
        renamed = true;
      }
      tail.handle ??= await open(this.path(tail), "r+");
      if (renamed) await syncDirectory(this.dir, this.durability);
      renamed = false;
      const size = this.index.offset(seqno) + this.index.length(seqno);
      await tail.handle.truncate(size);
      if (this.durability === "fsync") await tail.handle.datasync();
      tail.size = size;
      tail.lastSeqno = seqno;
      if (this.#untrimmed === tail) this.#untrimmed = null;
    }
    if (renamed) await syncDirectory(this.dir, this.durability);
    this.index.truncate(seqno);
  }

  /** Reads one entry from its chunk file. */
  async read(seqno: number): Promise<Buffer> {
    // A concurrent commit or truncate may rename the chunk between lookup and open: retry.
    for (let attempt = 0; ; attempt++) {
      const chunk = this.#chunkFor(seqno);
      try {
        const table = await this.#table(chunk);
        const length = table.length(seqno);
        const start = table.offset(seqno) - FRAME_HEADER_BYTES;
        const handle = chunk.handle ?? (await open(this.path(chunk), "r"));
        try {
          const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
          const { bytesRead } = await handle.read(frame, 0, frame.length, start);
          const mismatch = this.#frameMismatch(frame, bytesRead, 0, length, seqno);
          if (mismatch !== null) await this.#refuseFrame(chunk, mismatch, seqno, start);
          return frame.subarray(FRAME_HEADER_BYTES);
        } finally {
          if (handle !== chunk.handle) await handle.close();
        }
      } catch (err) {
        if (attempt >= 3 || !isRetryable(err)) throw err;
      }
    }
  }

  /**
   * Reads entries first..last (one chunk at most: stops at the chunk's end) with one read of
   * their frames, at most `bytesMax` bytes of them. The first entry is read even past the budget
   * unless `firstWithinBudget` (then nothing is read if it does not fit).
   */
  async readRange(first: number, last: number, bytesMax: number, firstWithinBudget = false): Promise<Buffer[]> {
    for (let attempt = 0; ; attempt++) {
      const chunk = this.#chunkFor(first);
      const end = Math.min(last, chunk.lastSeqno);
      const table = await this.#table(chunk);
      const start = table.offset(first) - FRAME_HEADER_BYTES;
      // The budget counts entry bytes (what callers hold); the read also spans the frame headers.
      const lengths = [table.length(first)];
      if (firstWithinBudget && lengths[0]! > bytesMax) return [];
      let entryBytes = lengths[0]!;
      let bytes = FRAME_HEADER_BYTES + entryBytes;
      for (let seqno = first + 1; seqno <= end && entryBytes + table.length(seqno) <= bytesMax; seqno++) {
        const length = table.length(seqno);
        lengths.push(length);
        entryBytes += length;
        bytes += FRAME_HEADER_BYTES + length;
      }
      try {
        const handle = chunk.handle ?? (await open(this.path(chunk), "r"));
        try {
          const frames = Buffer.allocUnsafe(bytes);
          const { bytesRead } = await handle.read(frames, 0, bytes, start);
          // Frames follow each other within a chunk: each entry starts after the previous frame.
          const out: Buffer[] = [];
          let at = 0;
          for (let i = 0; i < lengths.length; i++) {
            const seqno = first + i;
            const length = lengths[i]!;
            const mismatch = this.#frameMismatch(frames, bytesRead, at, length, seqno);
            if (mismatch !== null) await this.#refuseFrame(chunk, mismatch, seqno, start + at);
            out.push(frames.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length));
            at += length + FRAME_HEADER_BYTES;
          }
          return out;
        } finally {
          if (handle !== chunk.handle) await handle.close();
        }
      } catch (err) {
        if (attempt >= 3 || !isRetryable(err)) throw err;
      }
    }
  }

  /**
   * Every frame read is checked again (its length, crc32 and seqno), whether the chunk was
   * scanned at open or known from its index file: neither the index nor the file is trusted to be
   * what it was. A mismatch removes the chunk's index (the next open scans the chunk, and refuses
   * it if the damage is in the chunk) and throws LedgerCorrupted naming file, offset and seqno.
   */
  #frameMismatch(frames: Buffer, bytesRead: number, at: number, length: number, seqno: number): string | null {
    return at + FRAME_HEADER_BYTES + length > bytesRead
      ? `the file ends ${bytesRead - at} bytes into the frame (the index says ${FRAME_HEADER_BYTES + length})`
      : frameMismatch(frames, at, length, seqno);
  }

  async #refuseFrame(chunk: Chunk, mismatch: string, seqno: number, fileOffset: number): Promise<never> {
    if (chunk.closed) await removeChunkIndex(this.dir, chunk.firstSeqno, chunk.lastSeqno).catch(() => undefined);
    // A paged-out chunk's table came from that index: the next read scans the chunk instead.
    const paged = this.#paged.delete(chunk.firstSeqno);
    const next = paged ? "the next read scans the chunk" : "the next start scans the chunk";
    throw corruptedAt(this.path(chunk), fileOffset, seqno, `${mismatch} when read back (its index file, if any, was removed: ${next})`);
  }

  async closeAll(): Promise<void> {
    for (const chunk of this.chunks) {
      const handle = chunk.handle;
      chunk.handle = null;
      if (handle) await handle.close();
    }
  }

  path(chunk: Chunk): string {
    const last = chunk.closed ? chunk.lastSeqno : null;
    return join(this.dir, chunkName(chunk.firstSeqno, last, chunk.committed));
  }

  #chunkFor(seqno: number): Chunk {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.chunks[mid]!.firstSeqno <= seqno) lo = mid;
      else hi = mid - 1;
    }
    const chunk = this.chunks[lo];
    assert(chunk && chunk.firstSeqno <= seqno && seqno <= chunk.lastSeqno, `seqno ${seqno} is in a chunk`);
    return chunk;
  }
}

function isRetryable(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "EBADF";
}
