// The ledger's durable record of how far it is committed (the file `commit_point` in the ledger
// directory). On open, recovery refuses to cut any entry at or below it: a committed entry that
// is missing from disk is corruption, never a torn tail to trim quietly.
import { open, rename, readFile, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { assert } from "../util/errors.js";
import { COMMIT_POINT_FILE, corrupted } from "./files.js";
import { syncDirectory, writeAll, type Durability } from "./recovery.js";

const SLOT_MAGIC = Buffer.from("COCOCMT1", "ascii");
/** magic (8) || seqno u64 (8) || crc32 of the first 16 bytes (4). */
const RECORD_BYTES = 20;
/** Two slots in different disk sectors: a torn overwrite of one leaves the other intact. */
const SLOT_BYTES = 512;
const FILE_BYTES = 2 * SLOT_BYTES;

function encodeRecord(out: Buffer, seqno: number): void {
  SLOT_MAGIC.copy(out, 0);
  out.writeUInt32BE(Math.floor(seqno / 2 ** 32), 8);
  out.writeUInt32BE(seqno >>> 0, 12);
  out.writeUInt32BE(crc32(out.subarray(0, 16)), 16);
}

/** The seqno in one slot, or -1 if the slot does not hold a valid record. */
function decodeRecord(file: Buffer, slot: number): number {
  const record = file.subarray(slot * SLOT_BYTES, slot * SLOT_BYTES + RECORD_BYTES);
  if (record.length < RECORD_BYTES || !record.subarray(0, 8).equals(SLOT_MAGIC)) return -1;
  if (crc32(record.subarray(0, 16)) !== record.readUInt32BE(16)) return -1;
  return record.readUInt32BE(8) * 2 ** 32 + record.readUInt32BE(12);
}

/**
 * Writer of `commit_point`: each record() is one 20-byte in-place write and one fdatasync,
 * alternating between the two slots; the file is created (via a temporary name, so it never
 * exists half-written) by the first record().
 */
export class CommitPoint {
  readonly #dir: string;
  readonly #durability: Durability;
  #recorded: number;
  /** Slot holding the newest record; the next write goes to the other one. */
  #newestSlot: number;
  #handle: FileHandle | null = null;
  /** Reused for every record: no allocation per commit. */
  readonly #record = Buffer.alloc(RECORD_BYTES);

  private constructor(dir: string, durability: Durability, recorded: number, newestSlot: number) {
    this.#dir = dir;
    this.#durability = durability;
    this.#recorded = recorded;
    this.#newestSlot = newestSlot;
  }

  /** Reads the recorded commit point (0 when the file does not exist yet). */
  static async open(dir: string, durability: Durability): Promise<CommitPoint> {
    const path = join(dir, COMMIT_POINT_FILE);
    let file: Buffer;
    try {
      file = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      // A leftover temporary file is a creation that never completed: it recorded nothing.
      await unlink(`${path}.tmp`).catch(() => undefined);
      return new CommitPoint(dir, durability, 0, -1);
    }
    const slots = [decodeRecord(file, 0), decodeRecord(file, 1)];
    if (slots[0]! < 0 && slots[1]! < 0) {
      throw corrupted(
        `Ledger file ${path} (how far this ledger is committed) holds no valid record, so recovery cannot ` +
          `tell committed entries from a torn tail. Restore the file from a backup, or move the ledger ` +
          `directory away so that the node catches up from its peers.`,
      );
    }
    const newestSlot = slots[1]! > slots[0]! ? 1 : 0;
    const point = new CommitPoint(dir, durability, slots[newestSlot]!, newestSlot);
    point.#handle = await open(path, "r+");
    return point;
  }

  /** Highest seqno recorded as committed. */
  get seqno(): number {
    return this.#recorded;
  }

  /** Durably records that every entry up to `seqno` is committed and on disk. No-op if not higher. */
  async record(seqno: number): Promise<void> {
    if (seqno <= this.#recorded) return;
    assert(Number.isSafeInteger(seqno), `commit point ${seqno} is an integer`);
    encodeRecord(this.#record, seqno);
    if (this.#handle === null) {
      await this.#create();
    } else {
      const slot = this.#newestSlot ^ 1;
      await writeAll(this.#handle, this.#record, slot * SLOT_BYTES);
      if (this.#durability === "fsync") await this.#handle.datasync();
      this.#newestSlot = slot;
    }
    this.#recorded = seqno;
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = null;
    if (handle) await handle.close();
  }

  async #create(): Promise<void> {
    const path = join(this.#dir, COMMIT_POINT_FILE);
    const file = Buffer.alloc(FILE_BYTES);
    this.#record.copy(file, 0);
    const handle = await open(`${path}.tmp`, "w+");
    try {
      await writeAll(handle, file, 0);
      if (this.#durability === "fsync") await handle.datasync();
      await rename(`${path}.tmp`, path);
      await syncDirectory(this.#dir, this.#durability);
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(`${path}.tmp`).catch(() => undefined);
      throw err;
    }
    this.#handle = handle;
    this.#newestSlot = 0;
  }
}
