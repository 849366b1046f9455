// Node-to-node channels: consensus messages and forwarded requests, authenticated against the
// service's current members (membership.ts), and the peer list kept for a node that loses its ledger.
import type { Logger } from "pino";
import { NodeChannels } from "../channels/index.js";
import type { ResolvedConfig } from "./config.js";
import { Forwarder } from "./forwarding.js";
import type { Frontend } from "./frontend.js";
import type { PeerAdmission } from "./membership.js";
import type { OpenedNode } from "./node-open.js";
import { PeerSync } from "./peers.js";
import { FRAME_FORWARD_REQUEST, FRAME_FORWARD_RESPONSE, FRAME_RAFT, type Replicator } from "./replication.js";

export interface NodeToNode {
  readonly channels: NodeChannels;
  readonly forwarder: Forwarder;
  /** The address the channels listen on (`host:port`). */
  readonly address: string;
}

/** Listens for peers and wires consensus and forwarding to them; undefined without a node-to-node interface. */
export async function startNodeChannels(parts: {
  opened: OpenedNode; config: ResolvedConfig; logger: Logger;
  replicator: Replicator; admission: PeerAdmission; frontend: Frontend;
}): Promise<NodeToNode | undefined> {
  const { opened: { identity, engine, bootstrapPeers }, config, logger, replicator, admission, frontend } = parts;
  if (config.nodeToNode === undefined) return undefined;
  const channels = new NodeChannels({
    identity: { nodeId: identity.nodeId, privateKeyPem: identity.nodeKeys.privateKeyPem, certPem: identity.nodeCertPem, serviceCertPem: identity.serviceCertPem },
    listen: { host: config.nodeToNode.host, port: config.nodeToNode.port },
    inboundHandshakeTimeoutMs: config.admission.nodeToNode.handshakeTimeoutMs,
    inboundConnectionsPerAddressMax: config.admission.nodeToNode.connectionsPerAddressMax,
    inboundConnectionsMax: config.admission.nodeToNode.connectionsMax,
    logger,
    // Only current members of the service may deliver frames; a retired node is refused at
    // authentication, and its open connections close when it stops being accepted.
    acceptPeer: (peer) => {
      const decision = admission.decide(peer);
      return decision.accepted ? true : { refused: decision.reason };
    },
    // A closed connection to the primary fails what was forwarded to it at once (forwarding.ts).
    onPeerConnected: (peer) => forwarder.peerConnected(peer),
    onPeerDisconnected: (peer) => forwarder.peerDisconnected(peer),
    onMessage: (from, type, payload) => {
      if (type === FRAME_RAFT) replicator.receive(from, payload);
      else if (type === FRAME_FORWARD_REQUEST) void forwarder.onRequest(from, payload);
      else if (type === FRAME_FORWARD_RESPONSE) forwarder.onResponse(from, payload);
      else logger.warn({ from, type }, "unknown node-to-node frame type");
    },
  });
  const forwarder = new Forwarder({
    transport: channels,
    nodeId: identity.nodeId,
    primary: () => replicator.primaryId,
    dispatchLocal: frontend.dispatchLocal,
    // The caller identity in a forwarded request is believed only from a Trusted node.
    isTrustedForwarder: (peer) => admission.isTrusted(peer),
    ...config.forwarding,
    logger,
  });
  // Requests pending at a primary that is no longer the primary are answered at once.
  replicator.onRoleChange((change) => forwarder.primaryChanged(change.primaryId));
  const bound = await channels.listen();
  replicator.setTransport(channels);
  frontend.forwarding = { isPrimary: () => engine.isPrimary, forward: (request) => forwarder.forward(request) };
  new PeerSync({ nodeId: identity.nodeId, workspace: config.workspace, store: engine.store, channels, bootstrapPeers, admission, logger }).sync();
  return { channels, forwarder, address: `${bound.host}:${bound.port}` };
}
