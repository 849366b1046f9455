// Faults on a node's files: its ledger directory moved onto a small tmpfs that is then filled
// (full disk), and a damaged last ledger chunk (bytes flipped or cut). Both leave the node's
// workspace as it was found once the round is over.
import { execFileSync } from "node:child_process";
import { closeSync, copyFileSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

export const FILLER_FILE = "disk-filler"; // ignored by the ledger: not a ledger_ name

/** Tries a tmpfs mount in a scratch directory: tells whether this machine lets us mount one. */
export function probeTmpfs(scratchDir: string): { ok: true } | { ok: false; reason: string } {
  const dir = join(scratchDir, "tmpfs-probe");
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir], { stdio: "pipe" });
    execFileSync("umount", [dir], { stdio: "pipe" });
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function directoryBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

/** Moves `ledgerDir` onto a fresh tmpfs of its current size plus `headroomBytes`. The node must be stopped. */
export function ledgerOntoTmpfs(ledgerDir: string, headroomBytes: number): void {
  const saved = `${ledgerDir}.saved`;
  renameSync(ledgerDir, saved);
  mkdirSync(ledgerDir);
  const sizeBytes = Math.ceil((directoryBytes(saved) + headroomBytes) / 4096) * 4096;
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes}`, "tmpfs", ledgerDir], { stdio: "pipe" });
  } catch (e) {
    rmSync(ledgerDir, { recursive: true, force: true });
    renameSync(saved, ledgerDir);
    throw e;
  }
  for (const f of readdirSync(saved)) copyFileSync(join(saved, f), join(ledgerDir, f));
}

/** Copies the ledger back off the tmpfs and unmounts it. The node must be stopped. */
export function ledgerOffTmpfs(ledgerDir: string): void {
  const saved = `${ledgerDir}.saved`;
  rmSync(join(ledgerDir, FILLER_FILE), { force: true });
  rmSync(saved, { recursive: true, force: true });
  mkdirSync(saved);
  for (const f of readdirSync(ledgerDir)) copyFileSync(join(ledgerDir, f), join(saved, f));
  unmountQuietly(ledgerDir);
  rmSync(ledgerDir, { recursive: true, force: true });
  renameSync(saved, ledgerDir);
}

export function unmountQuietly(dir: string): void {
  try { execFileSync("umount", ["-l", dir], { stdio: "pipe" }); } catch { /* not mounted */ }
}

/** Fills the file system holding `dir` until ENOSPC; returns the bytes written. */
export function fillDisk(dir: string, bytesMax = 1 << 30): number {
  const fd = openSync(join(dir, FILLER_FILE), "w");
  let written = 0;
  try {
    for (const chunkBytes of [1 << 16, 4096, 512, 1]) {
      const chunk = Buffer.alloc(chunkBytes, 0xab);
      try {
        while (written < bytesMax) written += writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

export function freeDisk(dir: string): void {
  rmSync(join(dir, FILLER_FILE), { force: true });
}

export type Damage = "cut" | "flip";

/** The chunk with the highest first seqno (`ledger_<first>[-<last>][.committed]`). */
export function lastChunk(ledgerDir: string): string | undefined {
  const chunks = readdirSync(ledgerDir).filter((f) => /^ledger_\d+/.test(f));
  chunks.sort((a, b) => Number(/^ledger_(\d+)/.exec(a)![1]) - Number(/^ledger_(\d+)/.exec(b)![1]));
  return chunks.at(-1);
}

/** Damages the last chunk (after saving a copy at `<file>.undamaged` outside the ledger's names); returns what was done. */
export function damageLastChunk(ledgerDir: string, damage: Damage, random: () => number, backupDir: string): { file: string; detail: string } {
  const name = lastChunk(ledgerDir);
  if (!name) throw new Error(`no ledger chunk in ${ledgerDir}`);
  const file = join(ledgerDir, name);
  mkdirSync(backupDir, { recursive: true });
  copyFileSync(file, join(backupDir, name));
  const bytes = readFileSync(file);
  const magicBytes = 8;
  if (damage === "cut") {
    const cutBytes = 1 + Math.floor(random() * Math.max(1, Math.min(bytes.length - magicBytes - 1, 64 * 1024)));
    writeFileSync(file, bytes.subarray(0, bytes.length - cutBytes));
    return { file: name, detail: `cut the last ${cutBytes} of ${bytes.length} bytes` };
  }
  const flips: number[] = [];
  const tailStart = Math.max(magicBytes, Math.floor(bytes.length / 2));
  for (let k = 0; k < 4; k++) {
    const at = tailStart + Math.floor(random() * (bytes.length - tailStart));
    bytes[at] = bytes[at]! ^ 0xff;
    flips.push(at);
  }
  writeFileSync(file, bytes);
  return { file: name, detail: `flipped bytes at offsets ${flips.join(",")} of ${bytes.length}` };
}

/** Puts back the undamaged copy saved by damageLastChunk. */
export function restoreChunk(ledgerDir: string, backupDir: string, name: string): void {
  copyFileSync(join(backupDir, name), join(ledgerDir, name));
}
