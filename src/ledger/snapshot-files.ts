// Snapshot files on disk, as CCF names them: `snapshot_<seqno>_<evidence_seqno>` while the
// evidence transaction is not yet committed, `.committed` once it is (and the file then carries
// its receipt). Writes are atomic: a temporary file is written, fsync'd and renamed, and the
// directory is fsync'd, so a crash leaves either the old file set or the new one, never half a file.
import { copyFile, open, readdir, readFile, rename, unlink, mkdir, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { CocoError, assert } from "../util/errors.js";

const SNAPSHOT_NAME = /^snapshot_(\d+)_(\d+)(\.committed)?$/;
const TEMPORARY_SUFFIX = ".tmp";
let temporaryCounter = 0;

export interface SnapshotFileInfo {
  readonly name: string;
  readonly seqno: number;
  readonly evidenceSeqno: number;
  readonly committed: boolean;
}

export function snapshotName(seqno: number, evidenceSeqno: number, committed: boolean): string {
  assert(Number.isSafeInteger(seqno) && seqno > 0 && evidenceSeqno > seqno, `snapshot ${seqno} has its evidence ${evidenceSeqno} after it`);
  return `snapshot_${seqno}_${evidenceSeqno}${committed ? ".committed" : ""}`;
}

/** Parses a snapshot file name; null for anything else (temporary files included). */
export function parseSnapshotName(name: string): SnapshotFileInfo | null {
  const match = SNAPSHOT_NAME.exec(name);
  if (match === null) return null;
  const seqno = Number(match[1]);
  const evidenceSeqno = Number(match[2]);
  if (!Number.isSafeInteger(seqno) || !Number.isSafeInteger(evidenceSeqno) || seqno < 1 || evidenceSeqno <= seqno) return null;
  return { name, seqno, evidenceSeqno, committed: match[3] !== undefined };
}

/** Snapshot files of a directory, newest (highest seqno) first; a missing directory holds none. */
export async function listSnapshots(dir: string): Promise<SnapshotFileInfo[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const files = names.map(parseSnapshotName).filter((f): f is SnapshotFileInfo => f !== null);
  return files.sort((a, b) => b.seqno - a.seqno || Number(b.committed) - Number(a.committed));
}

/** Opens `dir/name` for reading (a snapshot download reads it as it is sent). */
export function openSnapshotFile(dir: string, name: string): Promise<FileHandle> {
  if (parseSnapshotName(name) === null) {
    throw new CocoError("InvalidSnapshotName", `'${name}' is not a snapshot file name (snapshot_<seqno>_<evidence_seqno>[.committed]).`, 400);
  }
  return open(join(dir, name), "r");
}

export function readSnapshotFile(dir: string, name: string): Promise<Buffer> {
  if (parseSnapshotName(name) === null) {
    throw new CocoError("InvalidSnapshotName", `'${name}' is not a snapshot file name (snapshot_<seqno>_<evidence_seqno>[.committed]).`, 400);
  }
  return readFile(join(dir, name));
}

/** Writes `parts` as `dir/name` atomically (temporary file, fsync, rename, directory fsync). */
export async function writeFileAtomic(dir: string, name: string, parts: readonly Uint8Array[], durable = true): Promise<void> {
  await mkdir(dir, { recursive: true });
  // Unique per write: two writers of one name (a retried completion) never share a temporary file.
  const temporary = join(dir, `${name}.${process.pid}.${++temporaryCounter}${TEMPORARY_SUFFIX}`);
  const handle = await open(temporary, "w", 0o600);
  try {
    for (const part of parts) await handle.write(part);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, join(dir, name));
  if (durable) await syncDirectory(dir);
}

/** A temporary file name in `dir` for a snapshot of `seqno` being written (ignored by listings). */
export function temporarySnapshotPath(dir: string, seqno: number): string {
  return join(dir, `snapshot_${seqno}.${process.pid}.${++temporaryCounter}${TEMPORARY_SUFFIX}`);
}

/** Gives a finished temporary file (written and fsync'd) its snapshot name, atomically. */
export async function publishSnapshotFile(dir: string, temporaryPath: string, name: string, durable = true): Promise<void> {
  assert(parseSnapshotName(name) !== null, `'${name}' is a snapshot file name`);
  await rename(temporaryPath, join(dir, name));
  if (durable) await syncDirectory(dir);
}

/**
 * Writes `committedName` as the file `name` followed by `appended` (the evidence section),
 * atomically: the file is copied by the kernel (copy_file_range where the file system has it),
 * never read into this process.
 */
export async function writeCommittedSnapshotFile(dir: string, name: string, committedName: string, appended: Uint8Array, durable = true): Promise<void> {
  const temporary = join(dir, `${committedName}.${process.pid}.${++temporaryCounter}${TEMPORARY_SUFFIX}`);
  try {
    await copyFile(join(dir, name), temporary);
    const handle = await open(temporary, "a");
    try {
      await handle.write(appended);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, join(dir, committedName));
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  if (durable) await syncDirectory(dir);
}

/** Removes temporary files a crashed write of another process left in `dir` (this process's own are in use). */
export async function removeTemporarySnapshotFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const stale = names.filter((name) => name.startsWith("snapshot_") && name.endsWith(TEMPORARY_SUFFIX) && !name.includes(`.${process.pid}.`));
  for (const name of stale) await unlink(join(dir, name)).catch(() => undefined);
  return stale;
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function removeSnapshotFile(dir: string, name: string): Promise<void> {
  try {
    await unlink(join(dir, name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/**
 * Keeps the newest `keepMax` committed snapshots and removes older files: committed ones beyond
 * the limit and uncommitted ones at or below the newest committed seqno (they can never commit
 * later than it matters). Returns the names removed.
 */
export async function pruneSnapshots(dir: string, keepMax: number): Promise<string[]> {
  assert(Number.isSafeInteger(keepMax) && keepMax >= 1, "at least one snapshot is kept");
  const files = await listSnapshots(dir);
  const committed = files.filter((f) => f.committed);
  const newest = committed[0]?.seqno ?? 0;
  const doomed = [
    ...committed.slice(keepMax),
    ...files.filter((f) => !f.committed && f.seqno <= newest),
  ];
  for (const file of doomed) await removeSnapshotFile(dir, file.name);
  return doomed.map((f) => f.name);
}
