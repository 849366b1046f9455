// How a node comes back to where it was before it serves: it opens its ledger, finds who it is
// (its sealed identity; a joiner's first start asks the service; a new service makes one; a
// recovering node makes a new one), creates its transaction engine and rebuilds the state, from a
// committed snapshot and the ledger after it, or by replaying the ledger in bounded ranges.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { Logger } from "pino";
import { ThreadedLedger, parseChunkName } from "../ledger/index.js";
import { CocoError } from "../util/index.js";
import { rpcInterfacesRecord, type ResolvedConfig } from "./config.js";
import { SIGNATURE_EARLY_MIN_MS, TransactionEngine } from "./engine.js";
import { LatencyTrace } from "./latency-trace.js";
import type { MerkleHistoryBuild } from "./merkle-history.js";
import { createJoinerIdentity, createServiceIdentity, hasIdentity, loadOrCreateIdentity, resealSecrets, saveJoinedIdentity, type NodeIdentity } from "./identity.js";
import { joinService } from "./join.js";
import { nodeEvidence } from "./node-evidence.js";
import { readPeersFile, type KnownPeer } from "./peers.js";
import { applyPendingInstall, learnSecretFromSnapshot } from "./snapshot-install.js";
import { Recovery, openLedgerForRecovery } from "./recovery.js";
import type { ReplayedLog } from "./replication.js";
import { fetchServiceSnapshot } from "./snapshot-fetch.js";
import { rebuildState, rebuildStateStreamed, recoverFromLedger } from "./snapshot-startup.js";

/** A node's state as it was before it stopped, ready for consensus. */
export interface OpenedNode {
  readonly ledger: ThreadedLedger;
  readonly identity: NodeIdentity;
  readonly engine: TransactionEngine;
  /** Set on a recovering node (command Recover): it applies the previous service's public state only. */
  readonly recovery: Recovery | undefined;
  /** Peers to catch up from when the ledger was lost, or a joiner's first peers. */
  readonly bootstrapPeers: KnownPeer[];
  /** The ledger directory was empty but this workspace holds an identity (see openLedgerAndIdentity). */
  readonly lostLedger: boolean;
  /** Entries consensus starts with (the ledger's tail beyond what a snapshot covers). */
  readonly replayed: ReplayedLog;
  /** Seqno of the snapshot the state was rebuilt from (0: none). */
  readonly snapshotSeqno: number;
  /** Set when the ledger starts after a snapshot: consensus's log starts there too. */
  readonly snapshotBase: { index: number; term: number; voters: readonly string[] } | undefined;
  /** Set when the node restarted from a snapshot: the Merkle tree before it, to build once the node serves. */
  readonly merkleHistory: MerkleHistoryBuild | undefined;
}

/** Opens the ledger and identity, creates the engine and rebuilds the state (see the file comment). */
export async function openNode(config: ResolvedConfig, logger: Logger): Promise<OpenedNode> {
  const { ledger, entries, identity, bootstrapPeers, lostLedger, streamed } = config.command === "Recover"
    ? { ...await openForRecovery(config, logger), streamed: false }
    : await openLedgerAndIdentity(config, logger);
  try {
    // Benchmarks (COCO_LATENCY_TRACE_DIR): when each transaction passed each stage of the write path.
    const latencyTrace = LatencyTrace.fromEnvironment(identity.nodeId);
    const engine = new TransactionEngine(ledger, {
      nodeId: identity.nodeId,
      serviceCertPem: identity.serviceCertPem,
      nodePrivateKeyPem: identity.nodeKeys.privateKeyPem,
      nodeCertPem: identity.nodeCertPem,
      ledgerSecrets: identity.ledgerSecrets,
      signatureTxCount: config.signatureTxCount,
      signatureDelayMs: config.signatureDelayMs,
      pendingTransactionsMax: config.pendingTransactionsMax,
      entryWorker: true,
      // CCF 6: every signature transaction also carries the service's COSE signature of the root.
      coseSignatures: { servicePrivateKeyPem: identity.serviceKeys.privateKeyPem, servicePublicKeyPem: identity.serviceKeys.publicKeyPem },
      logger,
      merkleWindowLeaves: config.memory.merkleWindowLeaves,
      historicalCacheBytes: config.memory.historicalCacheBytes,
      signatureIndexEntries: config.memory.signatureIndexEntries,
      earlySignatureMinMs: SIGNATURE_EARLY_MIN_MS,
      ...(latencyTrace !== undefined ? { latencyTrace } : {}),
    });
    const started = Date.now();
    const recovery = config.command === "Recover" ? new Recovery(engine, ledger, identity, config, logger) : undefined;
    // The ledger is read back in bounded ranges (from the newest usable snapshot on, if any:
    // snapshot-startup.ts) and consensus keeps only its window of it; a ledger that starts after a
    // snapshot (the node joined from one) came back whole.
    const rebuilt = recovery !== undefined
      ? await recoverFromLedger(recovery, ledger, config, logger)
      : streamed
        ? await rebuildStateStreamed({
          engine, ledger, ledgerLastSeqno: ledger.lastSeqno, ledgerCommittedSeqno: ledger.committedSeqno, keepEntries: config.memory.consensusWindowEntries,
          merkleWindowLeaves: config.memory.merkleWindowLeaves, snapshotDirectory: config.snapshots.directory, serviceCertPems: [identity.serviceCertPem], logger,
          retainedMerkleDirectory: config.ledgerDirectory,
        })
        : await rebuildState({
          engine, entries, ledgerLastSeqno: ledger.lastSeqno, snapshotDirectory: config.snapshots.directory,
          serviceCertPems: [identity.serviceCertPem], logger,
          learnSecret: (snapshot) => learnSecretFromSnapshot(engine, snapshot, {
            nodeId: identity.nodeId, encryptionPrivateKeyPem: identity.encryptionKeys.privateKeyPem,
            reseal: () => resealSecrets(config, identity, engine.ledgerSecrets),
          }),
        });
    if (ledger.lastSeqno > 0 && recovery === undefined) {
      logger.info({ entries: ledger.lastSeqno, streamed, ms: Date.now() - started }, "state rebuilt from the ledger");
    }
    return {
      ledger, identity, engine, recovery, bootstrapPeers, lostLedger,
      replayed: rebuilt.replayed,
      snapshotSeqno: rebuilt.snapshotSeqno,
      snapshotBase: "base" in rebuilt ? rebuilt.base : undefined,
      merkleHistory: "history" in rebuilt ? rebuilt.history as MerkleHistoryBuild | undefined : undefined,
    };
  } catch (error) {
    // A ledger that cannot be replayed leaves the workspace as it was, for the next start.
    await ledger.close().catch(() => undefined);
    throw error;
  }
}

/**
 * Opens the ledger and finds who this node is: its sealed identity; or, on the first start of a
 * joiner, the identity the service gives it; or, for a new service, a fresh one. Keys and sealed
 * secrets without a ledger mean the ledger was wiped or moved away: the node is still a member
 * of its service, finds its peers in peers.json, catches up from them, and votes again only once
 * it holds everything committed before the loss.
 */
async function openLedgerAndIdentity(config: ResolvedConfig, logger: Logger): Promise<{
  ledger: ThreadedLedger; entries: Buffer[]; identity: NodeIdentity; bootstrapPeers: KnownPeer[]; lostLedger: boolean; streamed: boolean;
}> {
  // A node reads its ledger back in bounded ranges (replayLedger, or rebuildStateStreamed with a
  // snapshot), unless its ledger starts after a snapshot (it joined from one): snapshot-startup.ts
  // then works on the entries in memory.
  const ledgerOptions = { chunkSizeBytes: config.ledgerChunkBytes, durability: config.durability, logger, residentIndexEntries: config.memory.ledgerIndexEntries };
  // The primary could not catch this node up and it fetched the primary's snapshot to install
  // (snapshot-install.ts): its old ledger goes aside and its ledger starts after the snapshot.
  const installed = hasIdentity(config) ? await applyPendingInstall({
    workspace: config.workspace, ledgerDirectory: config.ledgerDirectory, snapshotDirectory: config.snapshots.directory, logger,
    ledgerLastSeqno: async () => {
      const { ledger } = await ThreadedLedger.open(config.ledgerDirectory, { ...ledgerOptions, returnEntries: false });
      const last = ledger.lastSeqno;
      await ledger.close();
      return last;
    },
  }) : undefined;
  let streamed = installed === undefined && (!hasCommittedSnapshot(config.snapshots.directory) || ledgerFirstSeqno(config.ledgerDirectory) <= 1);
  let { ledger, entries } = await ThreadedLedger.open(config.ledgerDirectory, {
    ...ledgerOptions, returnEntries: !streamed, ...(installed !== undefined ? { startAfter: installed.seqno } : {}),
  });
  try {
    let bootstrapPeers: KnownPeer[] = [];
    // After an install the node may have acknowledged entries it no longer holds, as after a
    // wipe: it catches up before it votes again (its peers are in its state now, and peers.json).
    if (installed !== undefined) {
      return { ledger, entries, identity: await loadOrCreateIdentity(config, true), bootstrapPeers: readPeersFile(config.workspace), lostLedger: true, streamed: false };
    }
    const lostLedger = ledger.lastSeqno === 0 && hasIdentity(config);
    if (lostLedger) {
      bootstrapPeers = readPeersFile(config.workspace);
      if (bootstrapPeers.length === 0) {
        throw new CocoError("LedgerMissing",
          `The ledger directory '${config.ledgerDirectory}' is empty, but this workspace holds a node identity (node.key, sealed secrets) and no ` +
          `peers.json naming the service's other nodes. Restore the ledger directory; or restore peers.json (any node's copy, minus this node) so ` +
          `that it catches up from them; or, to start a new service, remove node.key and the sealed secrets from the workspace.`, 400);
      }
      logger.warn({ ledger: config.ledgerDirectory, peers: bootstrapPeers.map((p) => p.node_id) },
        "the ledger directory is empty but this node has an identity: catching up from its peers; it votes again once caught up");
    }
    let identity: NodeIdentity;
    if (config.command === "Join" && !hasIdentity(config)) {
      ({ identity, peers: bootstrapPeers } = await joinAsNewNode(config, logger, ledger.lastSeqno > 0));
      // As CCF 6: the joiner fetches the service's newest committed snapshot itself; its ledger
      // then starts right after it, and consensus replicates only what follows.
      const snapshot = await fetchServiceSnapshot({
        target: { host: config.join!.targetHost, port: config.join!.targetPort }, serviceCertPem: identity.serviceCertPem,
        directory: config.snapshots.directory, durable: config.durability === "fsync", logger,
      }).catch((error: Error) => {
        logger.warn({ reason: error.message }, "no snapshot from the service: replicating the whole ledger");
        return undefined;
      });
      if (snapshot !== undefined) {
        await ledger.close();
        streamed = false;
        ({ ledger, entries } = await ThreadedLedger.open(config.ledgerDirectory, { ...ledgerOptions, returnEntries: true, startAfter: snapshot.seqno }));
      }
    } else {
      identity = await loadOrCreateIdentity(config, ledger.lastSeqno > 0);
    }
    return { ledger, entries, identity, bootstrapPeers, lostLedger, streamed };
  } catch (error) {
    await ledger.close().catch(() => undefined);
    throw error;
  }
}

/** A recovering node: the previous service's ledger, and a new identity whose secret starts after it. */
async function openForRecovery(config: ResolvedConfig, logger: Logger): Promise<{
  ledger: ThreadedLedger; entries: Buffer[]; identity: NodeIdentity; bootstrapPeers: KnownPeer[]; lostLedger: boolean;
}> {
  const ledger = await openLedgerForRecovery(config, logger);
  try {
    return { ledger, entries: [], identity: await createServiceIdentity(config, ledger.lastSeqno + 1), bootstrapPeers: [], lostLedger: false };
  } catch (error) {
    await ledger.close().catch(() => undefined);
    throw error;
  }
}

/** First start of a joining node: ask the service, wait to be trusted, keep what it sends. */
async function joinAsNewNode(config: ResolvedConfig, logger: Logger, ledgerHasEntries: boolean): Promise<{ identity: NodeIdentity; peers: { node_id: string; node_to_node_address: string }[] }> {
  if (ledgerHasEntries) {
    throw new CocoError("LedgerWithoutSecrets", `The ledger directory '${config.ledgerDirectory}' holds entries but this node has not joined yet; start it with an empty ledger directory.`, 400);
  }
  if (!existsSync(config.serviceCertificateFile)) {
    throw new CocoError("InvalidConfiguration", `Service certificate '${config.serviceCertificateFile}' (command.service_certificate_file) is missing: a joining node needs the certificate of the service it joins.`, 400);
  }
  const serviceCertPem = readFileSync(config.serviceCertificateFile, "utf8");
  const joiner = await createJoinerIdentity(config);
  const n2n = config.nodeToNode!;
  const quoteInfo = nodeEvidence(config, joiner.nodeKeys.publicKeyPem, "join").quoteInfo;
  logger.info({ target: `${config.join!.targetHost}:${config.join!.targetPort}` }, "joining the service");
  const result = await joinService({
    target: { host: config.join!.targetHost, port: config.join!.targetPort },
    serviceCertPem,
    identity: joiner,
    nodeInfoNetwork: {
      rpc_interfaces: rpcInterfacesRecord(config),
      node_to_node_interface: { bind_address: `${n2n.host}:${n2n.port}`, ...(n2n.publishedAddress ? { published_address: n2n.publishedAddress } : {}) },
    },
    quoteInfo,
    retryMs: config.join!.retryMs,
    logger,
  });
  logger.info({ node_id: result.nodeId, secrets: result.ledgerSecrets.length }, "trusted by the service: joining as a backup");
  return { identity: saveJoinedIdentity(config, joiner, result, serviceCertPem), peers: result.peers };
}

/** The first seqno of the ledger in `directory`, from its chunk names (1 for an empty one). */
function ledgerFirstSeqno(directory: string): number {
  try {
    const firsts = readdirSync(directory).map((name) => parseChunkName(name)?.firstSeqno).filter((first): first is number => first !== undefined);
    return firsts.length === 0 ? 1 : Math.min(...firsts);
  } catch {
    return 1;
  }
}

/** Whether the snapshot directory holds a committed snapshot a start may use (snapshot-startup.ts). */
function hasCommittedSnapshot(directory: string): boolean {
  try {
    return readdirSync(directory).some((name) => name.startsWith("snapshot_") && name.endsWith(".committed"));
  } catch {
    return false;
  }
}
