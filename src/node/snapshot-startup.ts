// How a node rebuilds its state at start (restart and join): from the newest committed snapshot
// that verifies and fits its ledger, then only the ledger entries after it; or, without one, by
// replaying the whole ledger as before. Entries a snapshot covers still go to consensus (so this
// node can catch up a lagging backup) but are neither decrypted nor applied.
import { LogPrefixBuilder } from "../consensus/index.js";
import { decodeEntry, entryLeaf, type LedgerStore } from "../ledger/index.js";
import { MerkleTree } from "../merkle/index.js";
import { CocoError, assert } from "../util/index.js";
import { MERKLE_RETAINED_HEIGHT, NO_PAYLOAD, type ReplayedEntry, type TransactionEngine } from "./engine.js";
import { readFileSync } from "node:fs";
import type { ResolvedConfig } from "./config.js";
import type { Recovery } from "./recovery.js";
import type { ReplayedLog } from "./replication.js";
import { MerkleHistoryBuild } from "./merkle-history.js";
import { findStartupSnapshot, loadSnapshotIntoEngine, type StartupSnapshot, prefixAtSnapshot, startsAtOne, votersAtSnapshot, votersInState } from "./snapshot-load.js";

export interface StateRebuilt {
  readonly replayed: ReplayedEntry[];
  /** Set when the ledger starts after the snapshot: consensus's log starts there too. */
  readonly base?: { index: number; term: number; voters: readonly string[] };
  /** Seqno of the snapshot started from (0: none). */
  readonly snapshotSeqno: number;
}

interface Logger { info(o: object, msg: string): void; warn(o: object, msg: string): void }

export async function rebuildState(args: {
  engine: TransactionEngine; entries: readonly Buffer[]; ledgerLastSeqno: number;
  snapshotDirectory: string; serviceCertPems: readonly string[]; logger: Logger;
  /**
   * Called when the snapshot's private maps do not open with this node's secrets: it learns the
   * secret of a rekey the node missed from the snapshot (snapshot-install.ts) and answers
   * whether it did (the load is then tried again).
   */
  learnSecret?: (snapshot: StartupSnapshot) => boolean;
}): Promise<StateRebuilt> {
  const { engine, entries, logger } = args;
  const firstSeqno = entries.length > 0 ? decodeEntry(entries[0]!).seqno : args.ledgerLastSeqno + 1;
  const lastSeqno = firstSeqno + entries.length - 1;
  const started = Date.now();
  // Fits: the ledger continues right after it (or holds it). A snapshot beyond the ledger's end
  // would skip entries this node never held; one before the ledger's start leaves a gap.
  const snapshot = entries.length === 0 && firstSeqno === 1
    ? undefined
    : await findStartupSnapshot(args.snapshotDirectory, args.serviceCertPems, (file) => {
      if (file.seqno > lastSeqno) return `it is at seqno ${file.seqno}, beyond this node's ledger (last seqno ${lastSeqno})`;
      if (file.seqno < firstSeqno - 1) return `it is at seqno ${file.seqno}, before this node's ledger starts (seqno ${firstSeqno})`;
      return undefined;
    }, logger);
  if (snapshot === undefined) {
    if (firstSeqno > 1) {
      throw new CocoError("SnapshotMissing",
        `The ledger in this node's ledger directory starts at seqno ${firstSeqno} (the node joined from a snapshot), but no committed snapshot ` +
        `at seqno ${firstSeqno - 1} or later verifies in '${args.snapshotDirectory}': restore that directory, or start the node with an empty ledger directory to join again.`, 400);
    }
    return { replayed: engine.replay(entries), snapshotSeqno: 0 };
  }
  const covered = snapshot.seqno - firstSeqno + 1;
  // A ledger from seqno 1: the whole Merkle tree is rebuilt from the entries' leaves (one SHA-256
  // each, no decryption or KV apply), so receipts of older transactions are still served, and the
  // snapshot's frontier is checked against this node's own ledger.
  let fullTree: MerkleTree | undefined;
  if (firstSeqno === 1) {
    fullTree = new MerkleTree(MERKLE_RETAINED_HEIGHT);
    for (let i = 0; i < covered; i++) fullTree.append(entryLeaf(entries[i]!));
  }
  try {
    try {
      loadSnapshotIntoEngine(engine, snapshot, fullTree);
    } catch (error) {
      // (Nothing in the engine changed: the private maps are opened before anything is loaded.)
      if (!(args.learnSecret?.(snapshot) ?? false)) throw error;
      logger.info({ file: snapshot.name }, "learned the ledger secret of a rekey this node missed from the snapshot");
      loadSnapshotIntoEngine(engine, snapshot, fullTree);
    }
  } catch (error) {
    // Checked before the engine changes: the node falls back to the whole ledger, if it has it.
    if (firstSeqno > 1) throw error;
    logger.warn({ file: snapshot.name, reason: (error as Error).message }, "snapshot refused: replaying the whole ledger");
    return { replayed: engine.replay(entries), snapshotSeqno: 0 };
  }
  // The suffix's signatures are checked against the Merkle tree the snapshot carried: a
  // snapshot that does not match the signed ledger stops the node here.
  const suffix = engine.replay(entries.slice(covered), { verifySignatures: true });
  logger.info({ snapshot: snapshot.name, seqno: snapshot.seqno, replayed: suffix.length, ms: Date.now() - started }, "state rebuilt from a snapshot and the ledger after it");
  if (firstSeqno === 1) {
    return { replayed: [...entries.slice(0, covered).map((bytes) => engine.describeEntry(bytes)), ...suffix], snapshotSeqno: snapshot.seqno };
  }
  return {
    replayed: suffix, snapshotSeqno: snapshot.seqno,
    base: { index: snapshot.seqno, term: snapshot.parsed.header.view, voters: votersAtSnapshot(engine) },
  };
}

/**
 * A restart on a ledger that starts at seqno 1 (a node that did not join from a snapshot), read
 * back in ranges: with a committed snapshot that verifies and lies within the ledger, the
 * entries it covers are streamed for their Merkle leaves and consensus's record of them only
 * (engine.coveredEntriesTree), the snapshot is loaded, and only the entries after it are
 * decrypted, applied and their signatures checked; without one, the whole ledger is replayed.
 * Either way the ledger is never in memory whole.
 */
export async function rebuildStateStreamed(args: {
  engine: TransactionEngine; ledger: Pick<LedgerStore, "describeRange">; ledgerLastSeqno: number; ledgerCommittedSeqno: number; keepEntries: number;
  merkleWindowLeaves: number; snapshotDirectory: string; serviceCertPems: readonly string[]; logger: Logger & { error(o: object, msg: string): void };
  /** Where the Merkle hashes retained before the snapshot are kept between restarts (merkle-retained-file.ts). */
  retainedMerkleDirectory?: string;
}): Promise<{ replayed: Awaited<ReturnType<TransactionEngine["replayLedger"]>>; snapshotSeqno: number; history?: MerkleHistoryBuild }> {
  const { engine, logger } = args;
  const started = Date.now();
  const snapshot = args.ledgerLastSeqno === 0 ? undefined : await findStartupSnapshot(args.snapshotDirectory, args.serviceCertPems, (file) =>
    file.seqno > args.ledgerLastSeqno ? `it is at seqno ${file.seqno}, beyond this node's ledger (last seqno ${args.ledgerLastSeqno})` : undefined, logger);
  if (snapshot === undefined) return { replayed: await engine.replayLedger(args.keepEntries, args.ledgerCommittedSeqno), snapshotSeqno: 0 };
  // The snapshot proves its seqno committed, even if the ledger's recorded commit point lags.
  const committed = Math.max(args.ledgerCommittedSeqno, snapshot.seqno);
  if (startsAtOne(snapshot)) {
    // Serve first: consensus's record of the covered entries comes from the snapshot (its view
    // history), their Merkle tree is built after the node serves (merkle-history.ts).
    try {
      loadSnapshotIntoEngine(engine, snapshot);
    } catch (error) {
      logger.warn({ file: snapshot.name, reason: (error as Error).message }, "snapshot refused: replaying the whole ledger");
      return { replayed: await engine.replayLedger(args.keepEntries, args.ledgerCommittedSeqno), snapshotSeqno: 0 };
    }
    const builder = LogPrefixBuilder.after<Buffer>(prefixAtSnapshot(snapshot, votersInState(engine)), args.keepEntries, committed);
    const loadedMs = Date.now() - started;
    // The suffix's signatures are checked against the snapshot's Merkle tree: a snapshot that
    // does not match the signed ledger after it stops the node here.
    const replayed = await engine.replayLedger(args.keepEntries, committed, { verifySignatures: true, builder });
    logger.info({ snapshot: snapshot.name, seqno: snapshot.seqno, replayed: args.ledgerLastSeqno - snapshot.seqno, load_ms: loadedMs, ms: Date.now() - started },
      "state rebuilt from a snapshot and the ledger after it (the Merkle tree before it is built once the node serves)");
    return { replayed, snapshotSeqno: snapshot.seqno, history: new MerkleHistoryBuild(engine, args.ledger, snapshot.seqno, args.merkleWindowLeaves, logger, args.retainedMerkleDirectory) };
  }
  const builder = new LogPrefixBuilder<Buffer>(args.keepEntries, committed);
  const fullTree = await engine.coveredEntriesTree(snapshot.seqno, builder, Math.max(1, snapshot.seqno - args.keepEntries + 1));
  const treeMs = Date.now() - started;
  try {
    loadSnapshotIntoEngine(engine, snapshot, fullTree);
  } catch (error) {
    // Checked before the engine changes: the whole ledger is replayed instead.
    logger.warn({ file: snapshot.name, reason: (error as Error).message }, "snapshot refused: replaying the whole ledger");
    return { replayed: await engine.replayLedger(args.keepEntries, args.ledgerCommittedSeqno), snapshotSeqno: 0 };
  }
  // The suffix's signatures are checked against the Merkle tree: a snapshot that does not match
  // the signed ledger stops the node here.
  const replayed = await engine.replayLedger(args.keepEntries, committed, { verifySignatures: true, builder });
  assert(replayed.entries.every((entry) => entry.payload !== NO_PAYLOAD), "consensus keeps payloads only of entries read whole");
  logger.info({ snapshot: snapshot.name, seqno: snapshot.seqno, replayed: args.ledgerLastSeqno - snapshot.seqno, tree_ms: treeMs, ms: Date.now() - started },
    "state rebuilt from a snapshot and the ledger after it");
  return { replayed, snapshotSeqno: snapshot.seqno };
}

/**
 * A recovering node (command Recover) starts from the newest committed snapshot of the previous
 * service that verifies against the previous service's certificate and lies within its ledger
 * (CCF: the snapshot in the recovering node's snapshot directory); its public maps are loaded at
 * once, its private maps once members' shares restore the previous ledger secret. The ledger
 * after it is read back in ranges, as a restart does (never whole in memory).
 */
export async function recoverFromLedger(recovery: Recovery, ledger: { lastSeqno: number; committedSeqno: number }, config: ResolvedConfig, logger: Logger): Promise<{ replayed: ReplayedLog; snapshotSeqno: number }> {
  const previousServiceCertPem = readFileSync(config.recover!.previousServiceIdentityFile, "utf8");
  const lastSeqno = ledger.lastSeqno;
  const snapshot = await findStartupSnapshot(config.snapshots.directory, [previousServiceCertPem], (file) =>
    file.seqno >= lastSeqno ? `it is at seqno ${file.seqno}, not before the end of the previous service's ledger (seqno ${lastSeqno})` : undefined, logger);
  const usable = snapshot !== undefined && startsAtOne(snapshot) ? snapshot : undefined;
  if (snapshot !== undefined && usable === undefined) logger.warn({ file: snapshot.name }, "snapshot not used: its view history does not start at seqno 1");
  const replayed = await recovery.readPublicLedger({ keepEntries: config.memory.consensusWindowEntries, keepAbove: ledger.committedSeqno }, usable);
  return { replayed, snapshotSeqno: 0 };
}
