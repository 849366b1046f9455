// The chunk files of a ledger spread over one or more directories, checked as an auditor needs:
// names, seqno ranges that join up from seqno 1, and every frame (length, crc32, entry syntax,
// consecutive seqnos). Unlike the node's recovery, nothing is forgiven: a torn tail is a problem.
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { CHUNK_MAGIC, FRAME_HEADER_BYTES, decodeEntry, parseChunkName, type DecodedEntry, type LedgerFileInfo } from "../ledger/index.js";
import { CocoError } from "../util/errors.js";
import { AuditProblem } from "./problem.js";

const CHUNK_PREFIX = "ledger_";

/** The chunks of every directory, sorted by first seqno. IO errors propagate (usage/IO, not a ledger problem). */
export async function listChunks(dirs: readonly string[]): Promise<LedgerFileInfo[]> {
  if (dirs.length === 0) throw new CocoError("InvalidInput", "Give at least one ledger directory.", 400);
  const files: LedgerFileInfo[] = [];
  for (const dir of dirs) {
    for (const name of (await readdir(dir)).sort()) {
      if (!name.startsWith(CHUNK_PREFIX)) continue;
      const parsed = parseChunkName(name);
      if (parsed === null) {
        throw new AuditProblem("InvalidChunkName",
          `${join(dir, name)} looks like a ledger chunk but its name is not ledger_<first>, ledger_<first>-<last> or ` +
            `ledger_<first>-<last>.committed with first <= last: rename or remove it.`, { file: join(dir, name) });
      }
      files.push({ ...parsed, path: join(dir, name) });
    }
  }
  return files.sort((a, b) => a.firstSeqno - b.firstSeqno || a.path.localeCompare(b.path));
}

/**
 * Checks that `file` starts where the previous chunk ended (`expectedSeqno`, 1 for the first)
 * and that the previous one was closed. Called as the walk reaches each file, so that the first
 * problem reported is the first one in seqno order.
 */
export function checkChunkStart(file: LedgerFileInfo, previous: LedgerFileInfo | undefined, expectedSeqno: number): void {
  const at = { file: file.path, offset: 0, seqno: expectedSeqno };
  if (previous !== undefined && previous.lastSeqno === null) {
    throw new AuditProblem("OpenChunkNotLast",
      `${previous.path} is still open (no last seqno in its name) but ${file.path} follows it: only the last chunk may be open.`, at);
  }
  if (file.firstSeqno > expectedSeqno) {
    const where = previous === undefined ? "at the start of the ledger" : `between ${previous.path} and ${file.path}`;
    throw new AuditProblem("MissingChunk",
      `seqnos ${expectedSeqno}..${file.firstSeqno - 1} are missing ${where}: copy the missing chunk from another node or a backup` +
        (previous === undefined ? " (a node started from a snapshot holds only later chunks; pass the directories that hold the earlier ones)." : "."), at);
  }
  if (file.firstSeqno < expectedSeqno) {
    throw new AuditProblem("OverlappingChunks",
      `${file.path} starts at seqno ${file.firstSeqno}, but ${previous?.path} already holds it: remove the duplicate copy (compare both with another node's).`, at);
  }
}

export type FrameVisitor = (offset: number, entry: DecodedEntry) => void;

/**
 * Walks every frame of one chunk from `file.firstSeqno`; returns the last seqno read. Throws an
 * AuditProblem at the first damaged frame. Entry syntax is decodeEntry's (src/ledger/entry.ts),
 * so a change of the entry format reaches the audit unchanged.
 */
export function walkChunk(file: LedgerFileInfo, buf: Buffer, visit: FrameVisitor): number {
  let seqno = file.firstSeqno;
  const problem = (code: string, offset: number, what: string): AuditProblem =>
    new AuditProblem(code, `${file.path} at byte offset ${offset} (entry for seqno ${seqno}): ${what}.`, { file: file.path, offset, seqno });
  if (buf.length < CHUNK_MAGIC.length || !CHUNK_MAGIC.equals(buf.subarray(0, CHUNK_MAGIC.length))) {
    throw problem("MissingChunkHeader", 0, `the file does not start with the ${CHUNK_MAGIC.toString("ascii")} chunk header`);
  }
  let offset = CHUNK_MAGIC.length;
  while (offset < buf.length) {
    if (buf.length - offset < FRAME_HEADER_BYTES) throw problem("TruncatedFrame", offset, `${buf.length - offset} bytes left, too few for a frame header`);
    const length = buf.readUInt32BE(offset);
    const start = offset + FRAME_HEADER_BYTES;
    if (start + length > buf.length) {
      throw problem("TruncatedFrame", offset, `the frame announces ${length} bytes but only ${buf.length - start} remain (file cut short or length altered)`);
    }
    const bytes = buf.subarray(start, start + length);
    if (crc32(bytes) !== buf.readUInt32BE(offset + 4)) throw problem("CrcMismatch", offset, "the frame's crc32 does not match its bytes");
    let entry: DecodedEntry;
    try {
      entry = decodeEntry(bytes);
    } catch (error) {
      throw problem("InvalidEntry", offset, (error as Error).message);
    }
    if (entry.seqno !== seqno) throw problem("SeqnoOutOfOrder", offset, `the entry carries seqno ${entry.seqno}`);
    visit(offset, entry);
    seqno++;
    offset = start + length;
  }
  const last = seqno - 1;
  if (file.lastSeqno !== null && file.lastSeqno !== last) {
    throw problem("ChunkRangeMismatch", offset,
      last < file.lastSeqno
        ? `the file ends after seqno ${last} but its name says it holds entries up to ${file.lastSeqno} (file cut short)`
        : `the file holds entries up to ${last} but its name says it ends at ${file.lastSeqno}`);
  }
  return last;
}
