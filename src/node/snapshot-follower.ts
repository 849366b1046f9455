// Backups keep a recent snapshot too. Only the primary takes snapshots (snapshots.ts), so a backup
// held at most the one it joined from, and a restart replayed its ledger from there: months of
// ledger after months of service. A backup now fetches the primary's newest committed snapshot
// (GET /node/snapshot, as a joiner does: verified against the service certificate before it is
// kept) whenever its own commit point has moved `tx_count` transactions past its newest one, so a
// restart loads it and replays only the ledger after it (snapshot-startup.ts).
import { listSnapshots, pruneSnapshots } from "../ledger/index.js";
import { RateLimitedLog } from "../util/index.js";
import { parseAddress } from "./config.js";
import { fetchServiceSnapshot } from "./snapshot-fetch.js";
import { writeRetainedHashes, type RetainedHashes } from "./merkle-retained-file.js";

/** After a failed fetch (primary unreachable, changing, no snapshot yet), wait this long before the next. */
export const SNAPSHOT_FOLLOW_RETRY_MS = 10_000;
/** A failure that lasts (a wrong published address) is logged once per this interval, with the count. */
const FAILURE_LOG_INTERVAL_MS = 5 * 60_000;

export interface SnapshotFollowerOptions {
  directory: string;
  txCount: number;
  keepMax: number;
  durable: boolean;
  serviceCertPem: string;
  /** This node's role, and the primary's id and RPC address (from the nodes table), asked at each attempt. */
  isPrimary(): boolean;
  primary(): { nodeId: string; rpcAddress: string } | undefined;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  now?: () => number;
  /** Default SNAPSHOT_FOLLOW_RETRY_MS. */
  retryMs?: number;
  /** Where the Merkle hashes retained before a kept snapshot go, and what they are (engine.retainedHashesAt). */
  retained?: { directory: string; at(seqno: number): RetainedHashes | undefined };
  /** Tests: instead of fetchServiceSnapshot. */
  fetch?: typeof fetchServiceSnapshot;
}

export class SnapshotFollower {
  private newest: number;
  private fetching = false;
  private lastAttemptMs = Number.NEGATIVE_INFINITY;
  private closed = false;
  private lastCommit = 0;
  private retry: NodeJS.Timeout | undefined;
  /** Snapshots fetched since the node started (GET /node/memory-style figures for tests). */
  fetched = 0;

  private readonly retryMs: number;
  private readonly failures: RateLimitedLog;

  constructor(private readonly options: SnapshotFollowerOptions, newestLocalSeqno: number) {
    this.newest = newestLocalSeqno;
    this.retryMs = options.retryMs ?? SNAPSHOT_FOLLOW_RETRY_MS;
    this.failures = new RateLimitedLog(options.logger, FAILURE_LOG_INTERVAL_MS);
  }

  /** The newest committed snapshot in the directory (at start: the one the node loaded, or a newer one). */
  static async newestLocal(directory: string): Promise<number> {
    const files = await listSnapshots(directory).catch(() => []);
    return files.filter((file) => file.committed).reduce((max, file) => Math.max(max, file.seqno), 0);
  }

  get newestSeqno(): number {
    return this.newest;
  }

  /** The commit point moved: fetch the primary's newest snapshot if this node's is `tx_count` behind. */
  onCommit(committedSeqno: number, retrying = false): void {
    this.lastCommit = Math.max(this.lastCommit, committedSeqno);
    const now = (this.options.now ?? Date.now)();
    if (this.closed || this.fetching || this.options.isPrimary()) return;
    if (this.lastCommit - this.newest < this.options.txCount) return;
    if (!retrying && now - this.lastAttemptMs < this.retryMs) return;
    const primary = this.options.primary();
    if (primary === undefined) {
      // No primary known (an election): ask again later.
      this.lastAttemptMs = now;
      this.retryLater();
      return;
    }
    this.fetching = true;
    this.lastAttemptMs = now;
    void this.fetchFrom(primary.nodeId, primary.rpcAddress).finally(() => { this.fetching = false; });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
  }

  /**
   * Asks again after the retry interval even if nothing commits meanwhile: on an idle service the
   * primary's snapshot (or the primary) may come after the last commit this node saw.
   */
  private retryLater(): void {
    if (this.closed) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.onCommit(this.lastCommit, true), this.retryMs);
    this.retry.unref();
  }

  private async fetchFrom(primaryId: string, address: string): Promise<void> {
    try {
      const fetch = this.options.fetch ?? fetchServiceSnapshot;
      const snapshot = await fetch({
        target: parseAddress(address, `the primary's RPC address (${primaryId.slice(0, 16)})`), serviceCertPem: this.options.serviceCertPem,
        directory: this.options.directory, durable: this.options.durable, logger: this.options.logger, newerThan: this.newest,
      });
      if (this.closed) return;
      if (snapshot === undefined) {
        // The primary has nothing newer yet (its snapshot is not committed, or not taken).
        this.retryLater();
        return;
      }
      this.newest = Math.max(this.newest, snapshot.seqno);
      this.fetched++;
      const pruned = await pruneSnapshots(this.options.directory, this.options.keepMax);
      // And the Merkle hashes before it, so that a restart from it need not hash the ledger before it.
      const retained = this.options.retained;
      const hashes = retained?.at(snapshot.seqno);
      if (retained !== undefined && hashes !== undefined) await writeRetainedHashes(retained.directory, hashes).catch(() => undefined);
      this.options.logger.info({ seqno: snapshot.seqno, from: primaryId.slice(0, 16), pruned }, "backup kept the primary's newest snapshot: a restart replays only the ledger after it");
    } catch (error) {
      this.failures.warn({ from: primaryId.slice(0, 16), address, reason: (error as Error).message, retry_ms: this.retryMs },
        "backup could not fetch the primary's snapshot; it tries again later");
      this.retryLater();
    }
  }
}
