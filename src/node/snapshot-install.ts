// A backup the primary cannot catch up installs the primary's snapshot (Raft's InstallSnapshot).
//
// A primary whose log starts after a snapshot (it joined from one) does not hold the entries a
// backup behind that snapshot lacks: a backup that was down while it joined and its full-ledger
// predecessor left, or a node whose ledger was wiped (it needs entries from seqno 1). Consensus
// tells such a backup so (InstallSnapshot, with the primary's heartbeats; Ready.snapshotRequired).
// This module then, on the backup:
//   1. fetches the primary's newest committed snapshot at or after the seqno it needs
//      (fetchServiceSnapshot: streamed to disk, verified against the service certificate);
//   2. records the install in `<workspace>/install_snapshot.json` (atomically, fsync'd);
//   3. asks the node to restart (CocoNode.onRestartRequested; `coco node start` restarts it in
//      the same process).
// At the next start (applyPendingInstall, before the ledger opens) the old ledger directory is
// moved aside whole to `<ledger>.before-snapshot-<seqno>` (kept, never deleted: it may be the
// last copy of that history; when the ledger directory is a mount point, its files move into
// `<ledger>/before-snapshot-<seqno>/` instead), the ledger starts after the snapshot, and the node starts from it
// as a joiner does. It withholds its vote until it has caught up, as a node whose ledger was
// wiped does: it may have acknowledged entries it no longer holds. If the node missed a rekey,
// the secret the snapshot's private maps are sealed with is in the snapshot's public
// `ledger_secret_shares`, wrapped to this node's key (learnSecretFromSnapshot).
import { readdir, readFile, rename, stat, unlink, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic, type SnapshotFileInfo } from "../ledger/index.js";
import { Store } from "../kv/index.js";
import { unwrapWithKey } from "../crypto/index.js";
import { RateLimitedLog } from "../util/index.js";
import { parseAddress } from "./config.js";
import { SINGLETON_KEY } from "./signatures.js";
import { fetchServiceSnapshot } from "./snapshot-fetch.js";
import type { StartupSnapshot } from "./snapshot-load.js";
import type { TransactionEngine } from "./engine.js";
import { LEDGER_SECRET_SHARES_MAP, type LedgerSecretShares } from "./governance-effects.js";

export const INSTALL_MARKER_FILE = "install_snapshot.json";
/** Between two attempts (a failed fetch, a primary without a snapshot yet, no known address). */
export const SNAPSHOT_INSTALL_RETRY_MS = 10_000;
const FAILURE_LOG_INTERVAL_MS = 60_000;

interface Logger { info(o: object, msg: string): void; warn(o: object, msg: string): void }

export interface PendingInstall {
  /** The snapshot file, in the node's snapshot directory. */
  name: string;
  seqno: number;
  /** The primary that asked, and the seqno its log starts after. */
  primary: string;
  required_index: number;
  requested_at: string;
}

export interface SnapshotInstallerOptions {
  workspace: string;
  directory: string;
  durable: boolean;
  serviceCertPem: string;
  logger: Logger;
  /** The node's RPC address (from nodes.info, or peers.json for a node whose state is gone). */
  rpcAddressOf(nodeId: string): string | undefined;
  /** Stops the node and starts it again (the pending install is applied at that start). */
  restart(reason: string): void;
  retryMs?: number;
  now?: () => number;
  /** Tests: instead of fetchServiceSnapshot. */
  fetch?: typeof fetchServiceSnapshot;
}

export class SnapshotInstaller {
  private busy = false;
  private closed = false;
  private lastAttemptMs = Number.NEGATIVE_INFINITY;
  private readonly failures: RateLimitedLog;

  constructor(private readonly options: SnapshotInstallerOptions) {
    this.failures = new RateLimitedLog(options.logger, FAILURE_LOG_INTERVAL_MS, options.now);
  }

  close(): void {
    this.closed = true;
  }

  /** Consensus says the primary cannot catch this node up (repeated with each heartbeat). */
  onRequired(required: { primary: string; index: number }): void {
    const now = (this.options.now ?? Date.now)();
    if (this.closed || this.busy || now - this.lastAttemptMs < (this.options.retryMs ?? SNAPSHOT_INSTALL_RETRY_MS)) return;
    this.lastAttemptMs = now;
    const address = this.options.rpcAddressOf(required.primary);
    if (address === undefined) {
      this.failures.warn({ primary: required.primary.slice(0, 16), needs: required.index },
        "the primary cannot catch this node up and its RPC address is unknown here (not in nodes.info nor peers.json): remove this node and join a new one");
      return;
    }
    this.busy = true;
    void this.install(required, address).finally(() => { this.busy = false; });
  }

  private async install(required: { primary: string; index: number }, address: string): Promise<void> {
    const { logger } = this.options;
    logger.warn({ primary: required.primary.slice(0, 16), needs: required.index, address },
      "the primary's ledger starts after a snapshot and this node lacks entries before it: fetching the primary's snapshot to install it");
    try {
      const fetch = this.options.fetch ?? fetchServiceSnapshot;
      const file: SnapshotFileInfo | undefined = await fetch({
        target: parseAddress(address, `the primary's RPC address (${required.primary.slice(0, 16)})`), serviceCertPem: this.options.serviceCertPem,
        directory: this.options.directory, durable: this.options.durable, logger, newerThan: required.index - 1,
      });
      if (this.closed) return;
      if (file === undefined) {
        this.failures.warn({ primary: required.primary.slice(0, 16), needs: required.index }, "the primary has no committed snapshot at or after the seqno this node needs yet; asking again later");
        return;
      }
      const pending: PendingInstall = {
        name: file.name, seqno: file.seqno, primary: required.primary, required_index: required.index, requested_at: new Date().toISOString(),
      };
      await writeFileAtomic(this.options.workspace, INSTALL_MARKER_FILE, [Buffer.from(JSON.stringify(pending, null, 2) + "\n")], this.options.durable);
      logger.warn({ snapshot: file.name, seqno: file.seqno }, "snapshot fetched and verified: restarting this node to install it (its ledger is kept aside)");
      this.closed = true;
      this.options.restart("install-snapshot");
    } catch (error) {
      this.failures.warn({ primary: required.primary.slice(0, 16), needs: required.index, reason: (error as Error).message },
        "could not fetch the primary's snapshot to install; trying again later");
    }
  }
}

async function readPending(workspace: string): Promise<PendingInstall | undefined | { refused: string }> {
  let text: string;
  try {
    text = await readFile(join(workspace, INSTALL_MARKER_FILE), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return { refused: (error as Error).message };
  }
  try {
    const parsed = JSON.parse(text) as Partial<PendingInstall>;
    if (typeof parsed.name !== "string" || !Number.isSafeInteger(parsed.seqno) || (parsed.seqno ?? 0) < 1) return { refused: "it names no snapshot and seqno" };
    return parsed as PendingInstall;
  } catch {
    return { refused: "it is not JSON" };
  }
}

/**
 * At start, before the ledger opens: applies a pending install (see the file comment). Returns
 * the snapshot's seqno (the ledger then starts after it), or undefined when there is nothing to
 * install. `ledgerLastSeqno` reads the ledger's last seqno (the ledger is opened and closed).
 * A marker that no longer applies (its snapshot gone, or the ledger already past it) is removed.
 */
export async function applyPendingInstall(args: {
  workspace: string; ledgerDirectory: string; snapshotDirectory: string; logger: Logger;
  ledgerLastSeqno: () => Promise<number>;
  /** Tests: instead of fs.rename (to act as a mount point would). */
  rename?: (from: string, to: string) => Promise<void>;
}): Promise<{ seqno: number; archivedTo: string } | undefined> {
  const { logger } = args;
  const pending = await readPending(args.workspace);
  if (pending === undefined) return undefined;
  const marker = join(args.workspace, INSTALL_MARKER_FILE);
  const drop = async (reason: string) => {
    logger.warn({ marker, reason }, "pending snapshot install not applied");
    await unlink(marker).catch(() => undefined);
    return undefined;
  };
  if ("refused" in pending) return drop(pending.refused);
  if (!(await stat(join(args.snapshotDirectory, pending.name)).then(() => true, () => false))) {
    return drop(`its snapshot ${pending.name} is not in ${args.snapshotDirectory}`);
  }
  const last = await args.ledgerLastSeqno();
  if (last >= pending.seqno) return drop(`the ledger already reaches seqno ${last}, past the snapshot's ${pending.seqno}`);
  const move = args.rename ?? rename;
  const exists = (path: string) => stat(path).then(() => true, () => false);
  let archivedTo = `${args.ledgerDirectory}.before-snapshot-${pending.seqno}`;
  if (await exists(archivedTo)) archivedTo += `-${Date.now()}`;
  try {
    await move(args.ledgerDirectory, archivedTo);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EBUSY" || code === "EXDEV" || code === "EPERM" || code === "EACCES") {
      // The ledger directory is a mount point (a volume of its own) or its parent is not ours to
      // write: the old files go into a directory inside it, which no ledger file name matches.
      archivedTo = join(args.ledgerDirectory, `before-snapshot-${pending.seqno}`);
      if (await exists(archivedTo)) archivedTo += `-${Date.now()}`;
      await mkdir(archivedTo);
      for (const name of await readdir(args.ledgerDirectory)) {
        if (name.startsWith("before-snapshot-")) continue;
        await move(join(args.ledgerDirectory, name), join(archivedTo, name));
      }
    } else if (code !== "ENOENT") {
      throw error;
    }
  }
  await mkdir(args.ledgerDirectory, { recursive: true });
  await unlink(marker);
  logger.warn({ snapshot: pending.name, seqno: pending.seqno, old_ledger: archivedTo, old_last_seqno: last },
    "installing the primary's snapshot: the old ledger is kept aside, the ledger starts after the snapshot");
  return { seqno: pending.seqno, archivedTo };
}

/**
 * The secret the snapshot's private maps are sealed with, if this node missed the rekey that
 * made it: the snapshot's public `ledger_secret_shares` holds it wrapped to each node's key.
 * Returns whether a secret was learned (the caller then loads the snapshot again).
 */
export function learnSecretFromSnapshot(engine: TransactionEngine, snapshot: StartupSnapshot, node: {
  nodeId: string; encryptionPrivateKeyPem: string; reseal: () => void;
}): boolean {
  const value = Store.fromSnapshot(snapshot.parsed.publicPart).get(LEDGER_SECRET_SHARES_MAP, SINGLETON_KEY);
  if (value === undefined) return false;
  const shares = JSON.parse(value.toString("utf8")) as Partial<LedgerSecretShares>;
  const wrapped = shares.wrapped?.[node.nodeId];
  if (typeof shares.from_seqno !== "number" || shares.from_seqno > snapshot.seqno || wrapped === undefined) return false;
  if (engine.ledgerSecrets.some((v) => v.fromSeqno === shares.from_seqno)) return false;
  engine.addLedgerSecret(shares.from_seqno, unwrapWithKey(node.encryptionPrivateKeyPem, wrapped));
  node.reseal();
  return true;
}
