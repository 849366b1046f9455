// Recovery of a ledger directory at start-up: checks every chunk, trims a torn tail of the
// last one, and rebuilds the seqno index. Also the small disk helpers the writer shares.
import { mkdir, open, readFile, unlink, type FileHandle } from "node:fs/promises";
import { FRAME_HEADER_BYTES, checkClosedChunkEnd, checkContiguity, listLedgerFiles, scanChunk } from "./files.js";
import { SeqnoIndex } from "./seqno-index.js";

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

export async function recoverChunks(
  dir: string,
  durability: Durability,
  logger: LedgerLogger,
): Promise<{ chunks: Chunk[]; index: SeqnoIndex; entries: Buffer[] }> {
  await mkdir(dir, { recursive: true });
  const files = await listLedgerFiles(dir);
  checkContiguity(dir, files);
  const entries: Buffer[] = [];
  const index = new SeqnoIndex(files.length > 0 ? files[0]!.firstSeqno : 1);
  const chunks: Chunk[] = [];
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    const isLastOpen = i === files.length - 1 && file.lastSeqno === null;
    const buf = await readFile(file.path);
    const result = scanChunk(file, buf, isLastOpen, (offset, entry) => {
      entries.push(entry.bytes);
      index.push(offset + FRAME_HEADER_BYTES, entry.bytes.length);
    });
    checkClosedChunkEnd(file, result.lastSeqno);
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
        logger.warn(
          { file: file.path, offset: result.validLength, bytesDropped: buf.length - result.validLength },
          "ledger: trimming a torn final frame left by a crash",
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
  return { chunks, index, entries };
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
