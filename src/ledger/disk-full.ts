// A full disk is the one write failure the ledger recovers from: the failed write is undone,
// its entries stay in memory, and the next flush retries. Every other I/O error stays fatal.
import { CocoError } from "../util/errors.js";

/** Raised by flush/commit/truncate while the ledger's file system has no space left. */
export const LEDGER_DISK_FULL = "LedgerDiskFull";

/** Events of a ledger store (`Ledger`, `ThreadedLedger`). */
export interface LedgerEvents {
  /** A write failed for lack of space; `diskFull` is now true. Emitted once per episode. */
  diskFull: [error: CocoError];
  /** A flush succeeded again after `diskFull`: everything kept in memory is written. */
  diskSpaceAvailable: [durableSeqno: number];
  /** The commit point on disk now records `seqno`: a restart knows everything up to it is committed. */
  commitRecorded: [seqno: number];
}

export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

export function isLedgerDiskFull(err: unknown): err is CocoError {
  return err instanceof CocoError && err.code === LEDGER_DISK_FULL;
}

/** 507 Insufficient Storage, naming the directory and what the operator does about it. */
export function diskFullError(dir: string, doing: string, cause: unknown): CocoError {
  const code = (cause as NodeJS.ErrnoException).code ?? "ENOSPC";
  return new CocoError(
    LEDGER_DISK_FULL,
    `The file system holding the ledger directory ${dir} is full (${code}) while ${doing}. No entry is lost: ` +
      `the unwritten entries stay in memory and every later flush retries them. Free space on that file ` +
      `system (or raise the quota); the ledger resumes by itself once a write succeeds.`,
    507,
    { cause },
  );
}
