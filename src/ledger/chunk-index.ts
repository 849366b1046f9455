// The index file beside each closed chunk (`chunk_index_<first>-<last>`): every entry's length,
// so that opening a ledger reads one small file per chunk instead of every frame of every chunk.
// It is a cache, never an authority: the host can plant, keep or damage it at will. An index that
// is missing, damaged (its own crc32), or does not fit its chunk (seqnos, file size, the sum of
// its frames, the chunk's last frame) is ignored and the chunk is scanned as before; and every
// frame read through it is checked again (length, crc32, seqno: chunk-files.ts), so a planted
// index can make a read fail but never return another entry. Format: docs/ledger-format.md.
import { open, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { CHUNK_MAGIC, FRAME_HEADER_BYTES, type LedgerFileInfo } from "./files.js";
import { ENTRY_HEADER_BYTES } from "./entry.js";

export const CHUNK_INDEX_MAGIC = Buffer.from("COCOIDX1", "ascii");
/** magic, first seqno u64, last seqno u64, chunk bytes u64, entry count u32. */
const HEADER_BYTES = CHUNK_INDEX_MAGIC.length + 8 + 8 + 8 + 4;
const TRAILER_BYTES = 4;
/** Where an entry's seqno sits in its header (entry.ts: version u8, flags u8, view u64, seqno u64). */
const ENTRY_SEQNO_OFFSET = 10;

/**
 * `chunk_index_<first>-<last>`: named by seqnos only, so a commit's rename leaves it in place; not
 * `ledger_*`, so tools that take every `ledger_*` file for a chunk (CCF's among them) skip it.
 */
export function chunkIndexName(firstSeqno: number, lastSeqno: number): string {
  return `chunk_index_${firstSeqno}-${lastSeqno}`;
}

/** An index being written (writeChunkIndex); one left by a crash is removed when the ledger opens. */
export const TEMPORARY_CHUNK_INDEX = /^chunk_index_\d+-\d+\.tmp$/;

export interface ChunkIndex {
  firstSeqno: number;
  lastSeqno: number;
  /** Bytes of the chunk file: magic plus every frame. */
  chunkBytes: number;
  /** lengths[i] is the entry length of seqno firstSeqno + i. */
  lengths: Uint32Array;
}

export function encodeChunkIndex(index: ChunkIndex): Buffer {
  const count = index.lastSeqno - index.firstSeqno + 1;
  if (count !== index.lengths.length) throw new Error(`assertion failed: a chunk index of ${count} seqnos holds ${index.lengths.length} lengths`);
  const out = Buffer.alloc(HEADER_BYTES + 4 * count + TRAILER_BYTES);
  CHUNK_INDEX_MAGIC.copy(out, 0);
  let at = CHUNK_INDEX_MAGIC.length;
  out.writeBigUInt64BE(BigInt(index.firstSeqno), at);
  out.writeBigUInt64BE(BigInt(index.lastSeqno), at + 8);
  out.writeBigUInt64BE(BigInt(index.chunkBytes), at + 16);
  out.writeUInt32BE(count, at + 24);
  at = HEADER_BYTES;
  for (let i = 0; i < count; i++, at += 4) out.writeUInt32BE(index.lengths[i]!, at);
  out.writeUInt32BE(crc32(out.subarray(0, at)), at);
  return out;
}

/** The index in `bytes`, or the reason it cannot be used for `file` of `fileBytes` bytes. */
export function decodeChunkIndex(bytes: Buffer, file: LedgerFileInfo, fileBytes: number): ChunkIndex | string {
  if (bytes.length < HEADER_BYTES + TRAILER_BYTES || !bytes.subarray(0, CHUNK_INDEX_MAGIC.length).equals(CHUNK_INDEX_MAGIC)) return "not an index file";
  const body = bytes.length - TRAILER_BYTES;
  if (crc32(bytes.subarray(0, body)) !== bytes.readUInt32BE(body)) return "its crc32 does not match";
  let at = CHUNK_INDEX_MAGIC.length;
  const firstSeqno = Number(bytes.readBigUInt64BE(at));
  const lastSeqno = Number(bytes.readBigUInt64BE(at + 8));
  const chunkBytes = Number(bytes.readBigUInt64BE(at + 16));
  const count = bytes.readUInt32BE(at + 24);
  if (firstSeqno !== file.firstSeqno || lastSeqno !== file.lastSeqno) return `it describes seqnos ${firstSeqno}..${lastSeqno}`;
  if (count !== lastSeqno - firstSeqno + 1 || body !== HEADER_BYTES + 4 * count) return "its entry count does not match its size";
  if (chunkBytes !== fileBytes) return `it describes a chunk of ${chunkBytes} bytes, the file has ${fileBytes}`;
  const lengths = new Uint32Array(count);
  let frames = CHUNK_MAGIC.length;
  at = HEADER_BYTES;
  for (let i = 0; i < count; i++, at += 4) {
    const length = bytes.readUInt32BE(at);
    if (length < ENTRY_HEADER_BYTES) return `seqno ${firstSeqno + i} has a length of ${length} bytes, shorter than an entry header`;
    lengths[i] = length;
    frames += FRAME_HEADER_BYTES + length;
  }
  if (frames !== fileBytes) return `its frames add up to ${frames} bytes, the file has ${fileBytes}`;
  return { firstSeqno, lastSeqno, chunkBytes, lengths };
}

/**
 * Checks one frame read through an index: its length field, its crc32 and the seqno its entry
 * carries. Returns what is wrong, or null. `frame` holds the frame header and the entry.
 */
export function frameMismatch(frame: Buffer, at: number, length: number, seqno: number): string | null {
  if (frame.readUInt32BE(at) !== length) return `the frame's length field says ${frame.readUInt32BE(at)} bytes, the index ${length}`;
  const entry = frame.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
  if (crc32(entry) !== frame.readUInt32BE(at + 4)) return "crc32 mismatch";
  if (length < ENTRY_HEADER_BYTES) return "shorter than an entry header";
  const carried = Number(entry.readBigUInt64BE(ENTRY_SEQNO_OFFSET));
  if (carried !== seqno) return `the entry carries seqno ${carried}`;
  return null;
}

/**
 * The usable index of a closed chunk, or the reason there is none. Besides the checks of
 * decodeChunkIndex it reads the chunk's last frame back (one small read): a chunk whose frames do
 * not end where the index says is scanned instead.
 */
export async function loadChunkIndex(dir: string, file: LedgerFileInfo): Promise<ChunkIndex | string> {
  if (file.lastSeqno === null) return "the chunk is open";
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, chunkIndexName(file.firstSeqno, file.lastSeqno)));
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? "no index file" : `reading it failed (${(err as Error).message})`;
  }
  const handle = await open(file.path, "r");
  try {
    const { size } = await handle.stat();
    const index = decodeChunkIndex(bytes, file, size);
    if (typeof index === "string") return index;
    const length = index.lengths[index.lengths.length - 1]!;
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
    const { bytesRead } = await handle.read(frame, 0, frame.length, size - frame.length);
    if (bytesRead !== frame.length) return "the chunk's last frame could not be read";
    const mismatch = frameMismatch(frame, 0, length, index.lastSeqno);
    return mismatch === null ? index : `the chunk's last frame does not match it (${mismatch})`;
  } finally {
    await handle.close();
  }
}

/**
 * Writes a chunk's index beside it (a temporary name, then a rename: a reader never sees half an
 * index). Not synced: a crash can only lose or tear it, and a torn index fails its crc32.
 */
export async function writeChunkIndex(dir: string, index: ChunkIndex): Promise<void> {
  const path = join(dir, chunkIndexName(index.firstSeqno, index.lastSeqno));
  const temporary = `${path}.tmp`;
  const handle = await open(temporary, "w");
  try {
    try {
      const bytes = encodeChunkIndex(index);
      let done = 0;
      while (done < bytes.length) done += (await handle.write(bytes, done, bytes.length - done, done)).bytesWritten;
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (err) {
    await unlink(temporary).catch(() => undefined);
    throw err;
  }
}

/** Removes a chunk's index (the chunk was cut or removed); a missing one is fine. */
export async function removeChunkIndex(dir: string, firstSeqno: number, lastSeqno: number): Promise<void> {
  await unlink(join(dir, chunkIndexName(firstSeqno, lastSeqno))).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}
