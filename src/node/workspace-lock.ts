// One process per workspace. Two processes appending to one ledger would each believe it is the
// only writer (issue 18: two sandboxes on one workspace both became primary of the same ledger).
// The lock is a file created exclusively, naming its holder's PID (and, on Linux, the PID's start
// time, so that a PID reused by another process is not mistaken for the holder). A lock whose
// holder is gone (kill -9, a crash) is taken over; one held by a live process is refused.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CocoError } from "../util/index.js";

export const WORKSPACE_LOCK_FILE = "coco.lock";

interface LockContents {
  pid: number;
  /** Start time of the process in clock ticks since boot (Linux /proc/<pid>/stat), if known. */
  startTicks?: number;
  command: string;
  since: string;
}

/** Locks this process holds, by path: released at exit. */
const held = new Set<string>();
let exitHookInstalled = false;

/**
 * Takes the workspace's lock for this process (again, if it holds it already: the sandbox and its
 * in-process node share one). Throws WorkspaceLocked naming the running PID if another live
 * process holds it.
 */
export function lockWorkspace(workspace: string, command: string): void {
  const path = join(workspace, WORKSPACE_LOCK_FILE);
  if (held.has(path)) return;
  const mine: LockContents = { pid: process.pid, command, since: new Date().toISOString(), ...startTicksOf(process.pid) };
  // Two attempts: the second after removing a stale lock (another process may win that race; then we refuse).
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, "wx", 0o644);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = readLock(path);
      if (holder !== undefined && holder.pid !== process.pid && isAlive(holder)) {
        throw new CocoError("WorkspaceLocked",
          `The workspace ${workspace} is in use by process ${holder.pid} (${holder.command}, since ${holder.since}). ` +
          `Stop that process first (kill ${holder.pid}), or use another workspace (--workspace).`, 409);
      }
      if (holder !== undefined && holder.pid === process.pid) break; // ours, from an earlier start in this process
      try {
        unlinkSync(path); // stale: its holder died without removing it
      } catch (unlinkError) {
        if ((unlinkError as NodeJS.ErrnoException).code !== "ENOENT") throw unlinkError;
      }
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(mine) + "\n");
    } finally {
      closeSync(fd);
    }
    break;
  }
  held.add(path);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", releaseAll);
  }
}

/** Releases this process's lock on the workspace (a node that stops; the process may go on). */
export function unlockWorkspace(workspace: string): void {
  const path = join(workspace, WORKSPACE_LOCK_FILE);
  if (!held.delete(path)) return;
  removeIfMine(path);
}

/** The PID holding a workspace's lock, if a live process does. */
export function workspaceHolder(workspace: string): number | undefined {
  const holder = readLock(join(workspace, WORKSPACE_LOCK_FILE));
  return holder !== undefined && isAlive(holder) ? holder.pid : undefined;
}

function releaseAll(): void {
  for (const path of held) removeIfMine(path);
  held.clear();
}

function removeIfMine(path: string): void {
  try {
    if (readLock(path)?.pid === process.pid) unlinkSync(path);
  } catch {
    // Gone already, or unreadable: nothing of ours to remove.
  }
}

function readLock(path: string): LockContents | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<LockContents>;
    if (typeof parsed.pid !== "number" || !Number.isSafeInteger(parsed.pid) || parsed.pid <= 0) return undefined;
    return { pid: parsed.pid, command: String(parsed.command ?? "coco"), since: String(parsed.since ?? "?"), ...(typeof parsed.startTicks === "number" ? { startTicks: parsed.startTicks } : {}) };
  } catch {
    return undefined; // missing, half-written or corrupt: treated as stale
  }
}

function isAlive(holder: LockContents): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: alive, but another user's process.
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const now = procStat(holder.pid);
  // A killed process that its parent has not reaped yet is a zombie: it answers kill(0) but holds nothing.
  if (now?.state === "Z" || now?.state === "X") return false;
  if (holder.startTicks === undefined) return true;
  return now?.startTicks === undefined || now.startTicks === holder.startTicks;
}

/** Fields 3 (state) and 22 (start time) of /proc/<pid>/stat, after the parenthesised command (which may hold spaces). */
function procStat(pid: number): { state: string; startTicks?: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[19]);
    return { state: fields[0] ?? "", ...(Number.isSafeInteger(ticks) ? { startTicks: ticks } : {}) };
  } catch {
    return undefined;
  }
}

function startTicksOf(pid: number): { startTicks?: number } {
  const stat = procStat(pid);
  return stat?.startTicks === undefined ? {} : { startTicks: stat.startTicks };
}
