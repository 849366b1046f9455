// Who may speak to this node over node-to-node channels: the one decision behind the channels'
// handshake check, the Replicator's sender filter and PeerSync's outbound peers. A certificate
// the service endorsed is not enough: a retired node keeps its key and certificate, and must not
// be able to vote, lead, replicate or forward once its retirement has taken effect.
import type { Store } from "../kv/index.js";
import { assert } from "../util/index.js";
import { NODES_INFO_MAP, type NodeInfo } from "./join.js";
import { RAFT_CONFIGURATION_MAP } from "./engine.js";
import { readNodes } from "./reconfiguration.js";

export interface AdmissionInput {
  /** This node's id. */
  self: string;
  /** The node asking to speak (the id in its authenticated certificate). */
  peerId: string;
  /** The peer's status in this node's nodes.info, undefined when it has no record there. */
  peerStatus: NodeInfo["status"] | undefined;
  /** This node's own status in its nodes.info (undefined before it has replayed its own admission). */
  selfStatus: NodeInfo["status"] | undefined;
  /** The peer is a voter in this node's latest configuration or in the one at its commit point. */
  peerIsVoter: boolean;
  /** Peers the join response or peers.json named: the service's trusted nodes when this node started with no state. */
  bootstrapPeers: ReadonlySet<string>;
}

export interface AdmissionDecision {
  accepted: boolean;
  /** Why, in words for the log. */
  reason: string;
}

/**
 * The rule (see docs/channels.md, "Who may talk"):
 * 1. Never itself; never a Retired node that is out of the configuration (latest and committed).
 * 2. Before this node has replayed its own admission (a joiner's first start, a node whose ledger
 *    was lost) its nodes.info is the service's distant past, which may still call a long-retired
 *    node Trusted: it accepts only the peers the service named when it started (the join
 *    response's trusted nodes, or peers.json) and nodes its state does not know yet.
 * 3. A voter, in the latest configuration or the one at the commit point: Raft needs its votes
 *    and acknowledgements, and a retiring node (a retiring primary in particular) hands over
 *    only once its removal commits.
 * 4. A Trusted node.
 * 5. A node with no record, or Pending, in this node's state: the service endorses a node's
 *    certificate only when it trusts it, so such a peer was trusted after the point this node
 *    has reached (it is behind, restarted or catching up). Refusing it would leave a lagging
 *    node unable to hear a primary that joined while it was away.
 */
export function admitPeer(input: AdmissionInput): AdmissionDecision {
  const { self, peerId, peerStatus, selfStatus, peerIsVoter, bootstrapPeers } = input;
  assert(self !== "" && peerId !== "", "admitPeer: node ids are never empty");
  if (peerId === self) return { accepted: false, reason: "this node itself" };
  if (peerStatus === "Retired" && !peerIsVoter) return { accepted: false, reason: "retired from the service and out of the configuration" };
  const unknown = peerStatus === undefined || peerStatus === "Pending";
  const admitted = selfStatus === "Trusted" || selfStatus === "Retired";
  if (!admitted && bootstrapPeers.size > 0) {
    if (bootstrapPeers.has(peerId)) return { accepted: true, reason: "named by the service when this node started" };
    if (unknown) return { accepted: true, reason: "not yet known to this node's state" };
    return { accepted: false, reason: "not named by the service when this node started, and this node's state is not yet recent enough to judge it" };
  }
  if (peerIsVoter) return { accepted: true, reason: "a voter" };
  if (peerStatus === "Trusted") return { accepted: true, reason: "Trusted" };
  if (unknown) return { accepted: true, reason: "not yet known to this node's state" };
  return { accepted: false, reason: `status ${String(peerStatus)}` };
}

/** What PeerAdmission needs of consensus: the two configurations a voter may be in. */
export interface ConfigurationView {
  readonly configuration: readonly string[];
  readonly committedConfiguration: readonly string[];
}

/**
 * admitPeer over this node's live state. The statuses are cached and reloaded after a write to
 * nodes.info or a rollback; the configurations are asked of consensus on every call (they change
 * inside Raft before the KV sees them). `onChange` listeners run (on the next turn) after
 * anything that may change a decision, so channels can close connections refused now.
 */
export class PeerAdmission {
  private statuses: Map<string, NodeInfo["status"]> | undefined;
  private readonly bootstrapPeers: Set<string>;
  private readonly changeListeners: (() => void)[] = [];
  private changeScheduled = false;

  constructor(
    private readonly options: {
      self: string;
      store: Store;
      consensus: () => ConfigurationView | undefined;
      bootstrapPeers: readonly string[];
      /** Defers change notifications out of the store's observer (default setImmediate). */
      soon?: (callback: () => void) => void;
    },
  ) {
    this.bootstrapPeers = new Set(options.bootstrapPeers);
    const invalidate = () => {
      this.statuses = undefined;
      this.scheduleChange();
    };
    options.store.onWrite(NODES_INFO_MAP, invalidate);
    options.store.onWrite(RAFT_CONFIGURATION_MAP, () => this.scheduleChange());
    options.store.onRollback(invalidate);
  }

  decide(peerId: string): AdmissionDecision {
    const statuses = this.loadStatuses();
    const consensus = this.options.consensus();
    const peerIsVoter = consensus !== undefined && (consensus.configuration.includes(peerId) || consensus.committedConfiguration.includes(peerId));
    return admitPeer({
      self: this.options.self, peerId, peerStatus: statuses.get(peerId), selfStatus: statuses.get(this.options.self),
      peerIsVoter, bootstrapPeers: this.bootstrapPeers,
    });
  }

  accepts(peerId: string): boolean {
    return this.decide(peerId).accepted;
  }

  /** Strictly Trusted in this node's state (forwarded requests run only for such a node). */
  isTrusted(peerId: string): boolean {
    return peerId !== this.options.self && this.loadStatuses().get(peerId) === "Trusted";
  }

  /** Called (deferred, coalesced) after nodes.info, the configuration or the state rolled back changed. */
  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  /** Consensus moved its configuration or commit point without a KV write (e.g. a commit): re-judge the peers. */
  configurationMayHaveChanged(): void {
    this.scheduleChange();
  }

  private loadStatuses(): Map<string, NodeInfo["status"]> {
    if (this.statuses === undefined) {
      const statuses = new Map<string, NodeInfo["status"]>();
      for (const [id, node] of readNodes(this.options.store)) statuses.set(id, node.status);
      this.statuses = statuses;
    }
    return this.statuses;
  }

  private scheduleChange(): void {
    if (this.changeScheduled) return;
    this.changeScheduled = true;
    (this.options.soon ?? setImmediate)(() => {
      this.changeScheduled = false;
      for (const listener of this.changeListeners) listener();
    });
  }
}
