// The Merkle hashes a node retains of the transactions before a snapshot (MerkleTree.retainedAt:
// the frontier below the retained height and one hash per complete block of 2^16 leaves, ~0.5 KB
// per million transactions), kept in one file beside the ledger. A restart from a snapshot at
// seqno S then hashes only the entries after the file's seqno instead of the whole ledger before
// S (merkle-history.ts). The file is a cache, never an authority: a torn or damaged file fails
// its checksum and is ignored; one that passes it but holds other hashes builds a tree whose root
// is not the snapshot's, which merkle-history.ts refuses before rebuilding from the ledger.
//
// Layout: "COCOMRK1" | size: u64 | retained height: u8 | frontier count: u8 | frontier hashes |
// block count: u32 | block hashes | SHA-256 of everything before (big-endian integers).
import { rename, readFile, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { sha256 } from "../crypto/index.js";

export const MERKLE_RETAINED_FILE = "merkle_retained";
const MAGIC = Buffer.from("COCOMRK1", "latin1");
const HASH = 32;
/** 2^32 blocks of 2^16 leaves: far beyond any ledger; a larger count is a damaged file. */
const BLOCKS_MAX = 0xffff_ffff;

export interface RetainedHashes {
  /** Leaves covered: the transactions 1..size. */
  readonly size: number;
  readonly retainHeight: number;
  readonly lowFrontier: readonly Buffer[];
  /** Packed, one per complete block at the retained height. */
  readonly retainedBlocks: Buffer;
}

export function encodeRetainedHashes(r: RetainedHashes): Buffer {
  const count = r.retainedBlocks.length / HASH;
  if (!Number.isSafeInteger(r.size) || r.size < 0 || r.lowFrontier.length > 255 || !Number.isInteger(count) || count > BLOCKS_MAX) {
    throw new Error(`assertion failed: retained Merkle hashes of ${r.size} leaves have a shape the file cannot hold`);
  }
  const head = Buffer.alloc(MAGIC.length + 8 + 2);
  MAGIC.copy(head, 0);
  head.writeBigUInt64BE(BigInt(r.size), MAGIC.length);
  head.writeUInt8(r.retainHeight, MAGIC.length + 8);
  head.writeUInt8(r.lowFrontier.length, MAGIC.length + 9);
  const countBytes = Buffer.alloc(4);
  countBytes.writeUInt32BE(count);
  const body = Buffer.concat([head, ...r.lowFrontier, countBytes, r.retainedBlocks]);
  return Buffer.concat([body, sha256(body)]);
}

/** The hashes, or why the bytes are not a whole, intact file of this format. */
export function decodeRetainedHashes(bytes: Buffer): RetainedHashes | { refused: string } {
  const fixed = MAGIC.length + 8 + 2;
  if (bytes.length < fixed + 4 + HASH) return { refused: `${bytes.length} bytes, shorter than any such file` };
  if (!bytes.subarray(0, MAGIC.length).equals(MAGIC)) return { refused: "not a retained Merkle hashes file (magic)" };
  const body = bytes.subarray(0, bytes.length - HASH);
  if (!sha256(body).equals(bytes.subarray(bytes.length - HASH))) return { refused: "checksum mismatch (torn or damaged)" };
  const size = bytes.readBigUInt64BE(MAGIC.length);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) return { refused: `size ${size} is not a count` };
  const retainHeight = bytes.readUInt8(MAGIC.length + 8);
  const frontierCount = bytes.readUInt8(MAGIC.length + 9);
  let offset = fixed;
  if (body.length < offset + HASH * frontierCount + 4) return { refused: "cut inside its frontier" };
  const lowFrontier: Buffer[] = [];
  for (let i = 0; i < frontierCount; i++, offset += HASH) lowFrontier.push(Buffer.from(body.subarray(offset, offset + HASH)));
  const count = body.readUInt32BE(offset);
  offset += 4;
  if (body.length !== offset + HASH * count) return { refused: `${count} blocks declared, ${(body.length - offset) / HASH} present` };
  return { size: Number(size), retainHeight, lowFrontier, retainedBlocks: Buffer.from(body.subarray(offset)) };
}

/** Writes of this process, one at a time: the snapshotter and a restart's rebuild share the temporary name. */
let writing: Promise<void> = Promise.resolve();

/** The file in `directory`: its hashes, undefined if there is none, or why it is not used. */
export async function readRetainedHashes(directory: string): Promise<RetainedHashes | undefined | { refused: string }> {
  // A temporary file left by a crash during a write is removed (in turn with this process's writes).
  const temporary = join(directory, `${MERKLE_RETAINED_FILE}.tmp`);
  writing = writing.then(() => unlink(temporary)).catch(() => undefined);
  let bytes: Buffer;
  try {
    bytes = await readFile(join(directory, MERKLE_RETAINED_FILE));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return { refused: `unreadable: ${(error as Error).message}` };
  }
  return decodeRetainedHashes(bytes);
}

/** Replaces the file (a temporary file renamed over it: a crash leaves the old one or the new one). */
export function writeRetainedHashes(directory: string, hashes: RetainedHashes): Promise<void> {
  const written = writing.then(() => replaceFile(directory, hashes));
  writing = written.catch(() => undefined);
  return written;
}

async function replaceFile(directory: string, hashes: RetainedHashes): Promise<void> {
  const path = join(directory, MERKLE_RETAINED_FILE);
  const temporary = `${path}.tmp`;
  try {
    await writeFile(temporary, encodeRetainedHashes(hashes));
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

/** Removes the file (it built a tree whose root was refused). */
export async function removeRetainedHashes(directory: string): Promise<void> {
  await unlink(join(directory, MERKLE_RETAINED_FILE)).catch(() => undefined);
}
