// Ledger chunk files on disk: CCF's naming (ledger_<first>, ledger_<first>-<last>[.committed]),
// the frame layout (u32 length || u32 crc32 || entry) and a scanner shared by the writer's
// recovery on open and the read-only audit reader.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { CocoError } from "../util/errors.js";
import { ENTRY_FORMAT_VERSION, ENTRY_HEADER_BYTES, decodeEntry, type DecodedEntry } from "./entry.js";

/** First 8 bytes of every chunk file. */
export const CHUNK_MAGIC = Buffer.from("COCOLDG1", "ascii");
export const FRAME_HEADER_BYTES = 8;
/** The file recording how far the ledger is committed (src/ledger/commit-point.ts). */
export const COMMIT_POINT_FILE = "commit_point";

export interface LedgerFileInfo {
  /** File name inside the directory, e.g. "ledger_1-1200.committed". */
  name: string;
  path: string;
  firstSeqno: number;
  /** Null while the chunk is still being written ("ledger_<first>"). */
  lastSeqno: number | null;
  committed: boolean;
}

const NAME_PATTERN = /^ledger_(\d{1,15})(?:-(\d{1,15})(\.committed)?)?$/;

export function chunkName(firstSeqno: number, lastSeqno: number | null, committed: boolean): string {
  if (lastSeqno === null) return `ledger_${firstSeqno}`;
  return `ledger_${firstSeqno}-${lastSeqno}${committed ? ".committed" : ""}`;
}

export function parseChunkName(name: string): Omit<LedgerFileInfo, "path"> | null {
  const match = NAME_PATTERN.exec(name);
  if (!match) return null;
  const firstSeqno = Number(match[1]);
  const lastSeqno = match[2] === undefined ? null : Number(match[2]);
  if (lastSeqno !== null && lastSeqno < firstSeqno) return null;
  return { name, firstSeqno, lastSeqno, committed: match[3] !== undefined };
}

export function corrupted(message: string): CocoError {
  return new CocoError("LedgerCorrupted", message, 500);
}

/** Lists ledger chunks sorted by first seqno. Other files (snapshots, operator notes) are ignored. */
export async function listLedgerFiles(dir: string): Promise<LedgerFileInfo[]> {
  const files: LedgerFileInfo[] = [];
  for (const name of await readdir(dir)) {
    const parsed = parseChunkName(name);
    if (parsed) files.push({ ...parsed, path: join(dir, name) });
  }
  return files.sort((a, b) => a.firstSeqno - b.firstSeqno);
}

/** Refuses gaps and overlaps between chunk names; only the last chunk may be unclosed. */
export function checkContiguity(dir: string, files: LedgerFileInfo[]): void {
  for (let i = 1; i < files.length; i++) {
    const prev = files[i - 1]!;
    const next = files[i]!;
    if (prev.lastSeqno === null) {
      throw corrupted(
        `Ledger directory ${dir}: chunk ${prev.name} is still open but is followed by ${next.name}; only the last ` +
          `chunk may be open. Restore the directory from another node or a backup.`,
      );
    }
    if (next.firstSeqno > prev.lastSeqno + 1) {
      throw corrupted(
        `Ledger directory ${dir}: seqnos ${prev.lastSeqno + 1}..${next.firstSeqno - 1} are missing between ` +
          `${prev.name} and ${next.name}. Copy the missing chunk from another node or a backup.`,
      );
    }
    if (next.firstSeqno <= prev.lastSeqno) {
      throw corrupted(
        `Ledger directory ${dir}: ${prev.name} and ${next.name} overlap (both hold seqno ${next.firstSeqno}). ` +
          `Remove the stale copy (compare with another node) or restore the directory from a backup.`,
      );
    }
  }
}

export interface ScanResult {
  /** Bytes of the file that hold the magic and whole, valid frames. */
  validLength: number;
  /** Seqno of the last entry read, or firstSeqno - 1 if none. */
  lastSeqno: number;
  /** True when the file ended in a torn frame (cut short, zero-filled or failing its crc32, with
   * no valid frame after it) that the caller may trim if it is above the commit point. */
  tornTail: boolean;
}

export type EntryVisitor = (offset: number, entry: DecodedEntry) => void;

/** What the operator can do about a damaged ledger file; ends every LedgerCorrupted message. */
export const CORRUPTION_FIX =
  "Restore the file from another node's copy or a backup (closed chunks are identical on every node " +
  "with the same chunk size), or move the ledger directory away so that the node starts empty and " +
  "catches up from its peers.";

/** The LedgerCorrupted error for one damaged frame: names file, byte offset and seqno. */
export function corruptedAt(path: string, offset: number, seqno: number, what: string): CocoError {
  return corrupted(`Ledger file ${path} is corrupted at byte offset ${offset} (entry for seqno ${seqno}): ${what}. ${CORRUPTION_FIX}`);
}

function isAllZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Seqnos a frame found after a damaged one may plausibly carry: more would not be a tail. */
const RESYNC_SEQNO_SPAN_MAX = 2 ** 24;

/**
 * True if a whole, crc-valid frame carrying a seqno after `expected` starts anywhere at or after
 * `from`: then the damage at `from` is in the middle of the chunk, not a torn tail. Cheap filters
 * (length, entry version, flags, seqno range) come before the crc32, so a long zero-filled tail
 * costs a few comparisons per byte.
 */
export function validFrameAfter(buf: Buffer, from: number, expected: number): boolean {
  const headerEnd = FRAME_HEADER_BYTES + ENTRY_HEADER_BYTES;
  for (let pos = from; pos + headerEnd <= buf.length; pos++) {
    const length = buf.readUInt32BE(pos);
    if (length < ENTRY_HEADER_BYTES || pos + FRAME_HEADER_BYTES + length > buf.length) continue;
    const entry = pos + FRAME_HEADER_BYTES;
    if (buf[entry] !== ENTRY_FORMAT_VERSION || buf[entry + 1]! > 1 || buf.readUInt32BE(entry + 10) !== 0) continue;
    const seqno = buf.readUInt32BE(entry + 14);
    if (seqno < expected || seqno > expected + RESYNC_SEQNO_SPAN_MAX) continue;
    if (crc32(buf.subarray(entry, entry + length)) === buf.readUInt32BE(pos + 4)) return true;
  }
  return false;
}

/**
 * Walks every frame of one chunk, checking crc, entry syntax and consecutive seqnos.
 * When `tailMayBeTorn` (the last, open chunk: a crash during a write), damage with no valid frame
 * after it is reported as a torn tail for the caller to judge against the commit point; any
 * other damage throws LedgerCorrupted naming file, offset and seqno.
 */
export function scanChunk(file: LedgerFileInfo, buf: Buffer, tailMayBeTorn: boolean, visit: EntryVisitor): ScanResult {
  let expected = file.firstSeqno;
  if (buf.length < CHUNK_MAGIC.length || !buf.subarray(0, CHUNK_MAGIC.length).equals(CHUNK_MAGIC)) {
    const tornMagic = tailMayBeTorn && buf.length < CHUNK_MAGIC.length && CHUNK_MAGIC.subarray(0, buf.length).equals(buf);
    if (!tornMagic) throw corruptedAt(file.path, 0, expected, "missing the COCOLDG1 file header");
    return { validLength: 0, lastSeqno: expected - 1, tornTail: true };
  }
  let offset = CHUNK_MAGIC.length;
  while (offset < buf.length) {
    const remaining = buf.length - offset;
    const length = remaining >= FRAME_HEADER_BYTES ? buf.readUInt32BE(offset) : -1;
    const short = length < 0 || remaining < FRAME_HEADER_BYTES + length;
    const start = offset + FRAME_HEADER_BYTES;
    const bytes = short ? null : buf.subarray(start, start + length);
    let damage: string | null = null;
    if (short) damage = `frame of ${remaining} bytes is cut short`;
    else if (isAllZero(buf, offset)) damage = "zero-filled tail";
    else if (crc32(bytes!) !== buf.readUInt32BE(offset + 4)) damage = "crc32 mismatch";
    let entry: DecodedEntry | null = null;
    if (damage === null) {
      try {
        entry = decodeEntry(bytes!);
      } catch (err) {
        damage = (err as Error).message;
      }
    }
    if (damage !== null) {
      // A crash mid-write leaves a short frame, a zero-filled extent or a frame whose bytes did not
      // all reach the disk, and nothing valid after it.
      // Look for valid frames after the damaged one; a length cut short may itself be the damage.
      const resyncFrom = short ? offset + 1 : start + length;
      if (tailMayBeTorn && !validFrameAfter(buf, resyncFrom, expected + 1)) {
        return { validLength: offset, lastSeqno: expected - 1, tornTail: true };
      }
      throw corruptedAt(file.path, offset, expected, tailMayBeTorn ? `${damage}, followed by valid frames (not a torn tail)` : damage);
    }
    if (entry!.seqno !== expected) throw corruptedAt(file.path, offset, expected, `found seqno ${entry!.seqno} instead`);
    visit(offset, entry!);
    expected++;
    offset = start + length;
  }
  return { validLength: offset, lastSeqno: expected - 1, tornTail: false };
}

/**
 * Read-only walk of a ledger directory for auditors: yields every entry with its file and
 * frame offset. Never writes or trims; a torn tail of the last chunk (a write in progress or
 * an unrecovered crash) ends the walk quietly, anything else throws LedgerCorrupted.
 */
export async function* readLedgerDirectory(
  dir: string,
): AsyncIterable<{ file: string; offset: number; entry: DecodedEntry }> {
  const files = await listLedgerFiles(dir);
  checkContiguity(dir, files);
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    const found: { offset: number; entry: DecodedEntry }[] = [];
    const result = scanChunk(file, await readFile(file.path), i === files.length - 1, (offset, entry) =>
      found.push({ offset, entry }),
    );
    checkClosedChunkEnd(file, result);
    for (const { offset, entry } of found) yield { file: file.path, offset, entry };
  }
}

/** A closed chunk's name promises its last seqno; the content must keep that promise. */
export function checkClosedChunkEnd(file: LedgerFileInfo, result: ScanResult): void {
  if (file.lastSeqno === null || file.lastSeqno === result.lastSeqno) return;
  const what = result.lastSeqno < file.lastSeqno
    ? `the file ends after seqno ${result.lastSeqno} but its name says it holds entries up to ${file.lastSeqno}`
    : `the file holds entries up to ${result.lastSeqno} but its name says it ends at ${file.lastSeqno}`;
  throw corruptedAt(file.path, result.validLength, result.lastSeqno + 1, what);
}
