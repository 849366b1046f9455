// Starting from a snapshot: pick the newest committed snapshot file that verifies (its receipt
// proves the service recorded its digest) and that fits the ledger this node holds, and load
// it into the engine. Files that do not verify are skipped with the reason logged, naming them.
import { listSnapshots, readSnapshotFile, type SnapshotFileInfo } from "../ledger/index.js";
import type { MerkleTree } from "../merkle/index.js";
import type { LogPrefix } from "../consensus/index.js";
import { CocoError } from "../util/index.js";
import type { TransactionEngine } from "./engine.js";
import { RAFT_CONFIGURATION_MAP } from "./engine.js";
import { SINGLETON_KEY } from "./signatures.js";
import { openPrivatePart, parseSnapshot, verifySnapshot, type ParsedSnapshot } from "./snapshot-format.js";

export interface StartupSnapshot {
  readonly name: string;
  readonly seqno: number;
  readonly evidenceSeqno: number;
  readonly parsed: ParsedSnapshot;
}

interface Logger { info(o: object, msg: string): void; warn(o: object, msg: string): void }

/** Reads, parses and verifies one snapshot file; throws InvalidSnapshot naming it. */
export async function readVerifiedSnapshot(directory: string, file: SnapshotFileInfo, serviceCertPems: readonly string[]): Promise<StartupSnapshot> {
  const bytes = await readSnapshotFile(directory, file.name);
  return verifiedSnapshotBytes(bytes, file, serviceCertPems);
}

export function verifiedSnapshotBytes(bytes: Buffer, file: SnapshotFileInfo, serviceCertPems: readonly string[]): StartupSnapshot {
  const parsed = parseSnapshot(bytes, file.name);
  if (parsed.header.seqno !== file.seqno) {
    throw new CocoError("InvalidSnapshot", `Snapshot ${file.name} refused: it holds seqno ${parsed.header.seqno}, its name says ${file.seqno}.`, 400);
  }
  verifySnapshot(parsed, file.name, serviceCertPems, file.evidenceSeqno);
  return { name: file.name, seqno: file.seqno, evidenceSeqno: file.evidenceSeqno, parsed };
}

/**
 * The newest committed snapshot in `directory` that verifies against the service certificates
 * and that `fits` (its seqno lies where this node's ledger can continue from it).
 */
export async function findStartupSnapshot(directory: string, serviceCertPems: readonly string[], fits: (file: SnapshotFileInfo) => string | undefined, logger: Logger): Promise<StartupSnapshot | undefined> {
  for (const file of await listSnapshots(directory)) {
    if (!file.committed) continue;
    const misfit = fits(file);
    if (misfit !== undefined) {
      logger.info({ file: file.name, reason: misfit }, "snapshot not used");
      continue;
    }
    try {
      return await readVerifiedSnapshot(directory, file, serviceCertPems);
    } catch (error) {
      logger.warn({ file: file.name, reason: (error as Error).message }, "snapshot refused: it does not verify; trying an older one");
    }
  }
  return undefined;
}

/** Loads a verified snapshot into a fresh engine (private maps decrypted with the ledger secret of its seqno). */
export function loadSnapshotIntoEngine(engine: TransactionEngine, snapshot: StartupSnapshot, fullTree?: MerkleTree): void {
  const { parsed } = snapshot;
  const privatePart = openPrivatePart(parsed, snapshot.name, engine.ledgerSecretFor(snapshot.seqno));
  engine.loadSnapshot({
    seqno: snapshot.seqno, view: parsed.header.view, views: parsed.header.views,
    tree: parsed.header.tree.map((h) => Buffer.from(h, "hex")),
    parts: [parsed.publicPart, privatePart],
    ...(fullTree !== undefined ? { fullTree } : {}),
  });
}

/** The voters in effect at the snapshot (the consensus configuration table of its state). */
export function votersAtSnapshot(engine: TransactionEngine): string[] {
  const value = engine.store.get(RAFT_CONFIGURATION_MAP, SINGLETON_KEY);
  if (value === undefined) throw new CocoError("InvalidSnapshot", "The snapshot's state holds no consensus configuration.", 400);
  return JSON.parse(value.toString("utf8")) as string[];
}

/** Whether the snapshot's view history covers the ledger from seqno 1 (what a log prefix needs). */
export function startsAtOne(snapshot: StartupSnapshot): boolean {
  const { views, view, seqno } = snapshot.parsed.header;
  return views.length > 0 && views[0]!.seqno === 1 && views[views.length - 1]!.view === view && views.every((v) => v.seqno <= seqno);
}

/**
 * What consensus keeps of entries 1..seqno, from the snapshot rather than from the entries: the
 * view history (the term of every entry), the snapshot's own signature, and the voters in effect
 * at it. All of it is committed; consensus never rolls back into it or asks for an earlier
 * signature or configuration (the same record a node that joined from a snapshot starts with,
 * except that here the entries stay readable from the ledger for a backup that lags behind).
 */
export function prefixAtSnapshot(snapshot: StartupSnapshot, voters: readonly string[] | undefined): LogPrefix {
  return {
    lastIndex: snapshot.seqno,
    termStarts: snapshot.parsed.header.views.map((v) => ({ term: v.view, index: v.seqno })),
    signatures: [snapshot.seqno],
    configs: voters === undefined ? [] : [{ index: snapshot.seqno, voters }],
  };
}

/** The voters the loaded snapshot's state holds, if it holds any (a service's first transaction writes them). */
export function votersInState(engine: TransactionEngine): readonly string[] | undefined {
  return engine.store.get(RAFT_CONFIGURATION_MAP, SINGLETON_KEY) === undefined ? undefined : votersAtSnapshot(engine);
}
