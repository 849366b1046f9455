// Consensus around the engine: the Replicator (the Raft loop that hands each Ready to the ledger,
// the state machine and the transport) and the PeerAdmission that decides who may speak to it.
import type { Logger } from "pino";
import type { ResolvedConfig } from "./config.js";
import { PeerAdmission } from "./membership.js";
import type { OpenedNode } from "./node-open.js";
import { Replicator } from "./replication.js";

/** Entries in one AppendEntries message, and such messages in flight to one backup. */
const APPEND_ENTRIES_PER_MESSAGE_MAX = 4000;
const APPENDS_IN_FLIGHT_MAX = 8;

export interface NodeConsensus {
  readonly replicator: Replicator;
  readonly admission: PeerAdmission;
}

export function createConsensus(opened: OpenedNode, config: ResolvedConfig, logger: Logger): NodeConsensus {
  const { engine, identity, recovery } = opened;
  const ticks = (ms: number) => Math.max(1, Math.round(ms / config.consensus.tickMs));
  const replicator = new Replicator(engine, opened.replayed, {
    nodeId: identity.nodeId,
    workspace: config.workspace,
    // A new service starts with this node as its only voter; a joiner waits to be added.
    bootstrapVoters: config.command !== "Join" && !opened.lostLedger ? [identity.nodeId] : [],
    lostEntries: opened.lostLedger,
    // A snapshot is only ever taken of committed state.
    commitIndex: Math.max(opened.ledger.committedSeqno, opened.snapshotSeqno),
    ...(opened.snapshotBase !== undefined ? { snapshotBase: opened.snapshotBase } : {}),
    tickMs: config.consensus.tickMs,
    electionTicks: ticks(config.consensus.electionTimeoutMs),
    heartbeatTicks: ticks(config.consensus.heartbeatMs),
    maxEntriesPerAppend: APPEND_ENTRIES_PER_MESSAGE_MAX,
    maxInflightAppends: APPENDS_IN_FLIGHT_MAX,
    maxUncommittedEntries: config.pendingTransactionsMax * 2,
    logWindow: { entriesMax: config.memory.consensusWindowEntries, bytesMax: config.memory.consensusWindowBytes },
    logger,
    ...(recovery !== undefined ? { onBecomePrimary: () => recovery.onBecomePrimary() } : {}),
    // Raft hears only nodes of the current configuration (membership.ts): not a retired node.
    acceptSender: (nodeId: string): boolean => admission.accepts(nodeId),
  });
  // Who may speak to this node over node-to-node channels, re-judged whenever nodes.info, the
  // configuration or the commit point's configuration changes.
  const admission: PeerAdmission = new PeerAdmission({
    self: identity.nodeId,
    store: engine.store,
    consensus: (): Replicator => replicator,
    bootstrapPeers: opened.bootstrapPeers.map((peer) => peer.node_id),
  });
  let committedVoters = replicator.committedConfiguration.join(",");
  replicator.onCommit(() => {
    const voters = replicator.committedConfiguration.join(",");
    if (voters === committedVoters) return;
    committedVoters = voters;
    admission.configurationMayHaveChanged();
  });
  return { replicator, admission };
}
