// Recovery of a ledger directory at start-up: checks every chunk, trims a torn tail of the
// last one above the recorded commit point, and rebuilds the seqno index. Also the small disk
// helpers the writer shares.
import { mkdir, open, readdir, readFile, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import {
  CHUNK_MAGIC,
  COMMIT_POINT_FILE,
  CORRUPTION_FIX,
  FRAME_HEADER_BYTES,
  checkClosedChunkEnd,
  checkContiguity,
  corrupted,
  corruptedAt,
  listLedgerFiles,
  scanChunk,
  type LedgerFileInfo,
} from "./files.js";
import { SeqnoIndex } from "./seqno-index.js";
import { TEMPORARY_CHUNK_INDEX, loadChunkIndex, writeChunkIndex } from "./chunk-index.js";

/** "fsync": fdatasync at every flush (default, crash-safe). "none": write only; UNSAFE, a
 * crash may lose acknowledged entries. For benchmarks and tests. */
export type Durability = "fsync" | "none";

export interface LedgerLogger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

export interface Chunk {
  firstSeqno: number;
  /** Last seqno written to the file (firstSeqno - 1 when empty). */
  lastSeqno: number;
  closed: boolean;
  committed: boolean;
  /** Bytes in the file, magic included. */
  size: number;
  /** Open only for the chunk being written. */
  handle: FileHandle | null;
}

/**
 * Checks every chunk and rebuilds the index. `committedSeqno` is the recorded commit point: a torn
 * tail strictly above it is what a crash during a write leaves and is cut (logged with file,
 * offset and seqno); an entry at or below it that is missing, cut or damaged refuses the start.
 * The index covers the committed chunks that end more than `residentEntries` seqnos before the
 * last closed chunk's end only in their index files (chunk-files.ts pages them in when read);
 * they are checked all the same.
 */
export async function recoverChunks(
  dir: string,
  durability: Durability,
  logger: LedgerLogger,
  committedSeqno: number,
  returnEntries = true,
  residentEntries = Infinity,
): Promise<{ chunks: Chunk[]; index: SeqnoIndex; entries: Buffer[] }> {
  await mkdir(dir, { recursive: true });
  await removeTemporaryChunkIndexes(dir, logger);
  const files = await listLedgerFiles(dir);
  checkContiguity(dir, files);
  const entries: Buffer[] = [];
  let lastClosed = 0;
  for (const file of files) if (file.lastSeqno !== null) lastClosed = Math.max(lastClosed, file.lastSeqno);
  const pagedThrough = lastClosed - residentEntries;
  // Paged out: a prefix of committed chunks; the resident index starts at the first chunk after it.
  let pagedCount = 0;
  while (pagedCount < files.length && files[pagedCount]!.committed && files[pagedCount]!.lastSeqno !== null
    && files[pagedCount]!.lastSeqno! <= pagedThrough) pagedCount++;
  const index = new SeqnoIndex(files.length === 0 ? 1 : pagedCount < files.length ? files[pagedCount]!.firstSeqno : files[pagedCount - 1]!.lastSeqno! + 1);
  const chunks: Chunk[] = [];
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    const isLastOpen = i === files.length - 1 && file.lastSeqno === null;
    const paged = i < pagedCount;
    const push = (offset: number, length: number): void => {
      if (!paged) index.push(offset, length);
    };
    // A closed chunk with a usable index file is not read at all (chunk-index.ts): its frames are
    // checked when they are read. Whoever wants every entry back reads every chunk anyway.
    if (!returnEntries && !isLastOpen) {
      const indexed = await loadChunkIndex(dir, file);
      if (typeof indexed !== "string") {
        let offset = CHUNK_MAGIC.length;
        for (const length of indexed.lengths) {
          push(offset + FRAME_HEADER_BYTES, length);
          offset += FRAME_HEADER_BYTES + length;
        }
        chunks.push({ firstSeqno: file.firstSeqno, lastSeqno: indexed.lastSeqno, closed: true, committed: file.committed, size: indexed.chunkBytes, handle: null });
        continue;
      }
      logger.info({ file: file.path, reason: indexed }, "ledger: no usable chunk index, scanning the chunk");
    }
    const buf = await readFile(file.path);
    const lengths: number[] = [];
    const result = scanChunk(file, buf, isLastOpen, (offset, entry) => {
      if (returnEntries) entries.push(entry.bytes);
      push(offset + FRAME_HEADER_BYTES, entry.bytes.length);
      lengths.push(entry.bytes.length);
    });
    checkClosedChunkEnd(file, result);
    if (!returnEntries && !isLastOpen) await rewriteChunkIndex(dir, Uint32Array.from(lengths), file.firstSeqno, result.lastSeqno, result.validLength, logger);
    const chunk: Chunk = {
      firstSeqno: file.firstSeqno,
      lastSeqno: result.lastSeqno,
      closed: file.lastSeqno !== null,
      committed: file.committed,
      size: result.validLength,
      handle: null,
    };
    if (isLastOpen) {
      if (result.tornTail) {
        const seqno = result.lastSeqno + 1;
        if (seqno <= committedSeqno) {
          throw corruptedAt(file.path, result.validLength, seqno,
            `the entry is cut short or damaged, but this ledger recorded every entry up to ${committedSeqno} as ` +
            `committed and on disk (file ${COMMIT_POINT_FILE}), so a committed entry is lost`);
        }
        logger.warn(
          { file: file.path, offset: result.validLength, seqno, bytesDropped: buf.length - result.validLength },
          "ledger: cutting a torn final frame left by a crash (above the recorded commit point)",
        );
      }
      if (result.validLength === 0) {
        // Crashed before the chunk's magic reached disk: nothing to keep, start the chunk afresh.
        await unlink(file.path);
        await syncDirectory(dir, durability);
        continue;
      }
      chunk.handle = await open(file.path, "r+");
      if (result.tornTail) {
        await chunk.handle.truncate(result.validLength);
        if (durability === "fsync") await chunk.handle.datasync();
      }
    }
    chunks.push(chunk);
  }
  try {
    checkCommittedEntriesPresent(dir, files, chunks, committedSeqno);
  } catch (err) {
    for (const chunk of chunks) await chunk.handle?.close();
    throw err;
  }
  return { chunks, index, entries };
}

/** Writes the index of a closed chunk just scanned, so the next open need not scan it; a failure only costs that. */
async function rewriteChunkIndex(dir: string, lengths: Uint32Array, firstSeqno: number, lastSeqno: number, chunkBytes: number, logger: LedgerLogger): Promise<void> {
  try {
    await writeChunkIndex(dir, { firstSeqno, lastSeqno, chunkBytes, lengths });
  } catch (err) {
    logger.warn({ dir, firstSeqno, lastSeqno, err: String(err) }, "ledger: could not write a chunk index; the chunk is scanned again at the next open");
  }
}

/**
 * Removes `chunk_index_*.tmp` files: an index write that a crash (or a full disk) interrupted
 * before its rename. Nothing reads them; left alone, every such crash would leave one behind.
 */
async function removeTemporaryChunkIndexes(dir: string, logger: LedgerLogger): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!TEMPORARY_CHUNK_INDEX.test(name)) continue;
    try {
      await unlink(join(dir, name));
      logger.info({ file: join(dir, name) }, "ledger: removed an index file left half-written by a crash");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") logger.warn({ file: join(dir, name), err: String(err) }, "ledger: could not remove a half-written index file");
    }
  }
}

/** The ledger must hold every entry up to the recorded commit point (e.g. not a chunk cut at a frame boundary). */
function checkCommittedEntriesPresent(dir: string, files: LedgerFileInfo[], chunks: Chunk[], committedSeqno: number): void {
  const last = chunks[chunks.length - 1];
  const lastSeqno = last ? last.lastSeqno : 0;
  if (committedSeqno <= lastSeqno) return;
  const file = files[files.length - 1];
  const where = file && last
    ? `it ends at seqno ${lastSeqno} (file ${file.path}, byte offset ${last.size}, entry for seqno ${lastSeqno + 1} missing)`
    : `it holds no entries (no ledger_* files in ${dir})`;
  throw corrupted(
    `Ledger directory ${dir} recorded every entry up to seqno ${committedSeqno} as committed and on disk ` +
      `(file ${COMMIT_POINT_FILE}), but ${where}: committed entries are lost. ${CORRUPTION_FIX}`,
  );
}

export async function writeAll(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

export async function syncDirectory(dir: string, durability: Durability): Promise<void> {
  if (durability !== "fsync") return;
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
