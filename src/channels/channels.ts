// NodeChannels: authenticated, framed, ordered node-to-node messaging for Raft replication and
// request forwarding. Each node dials one outbound TLS connection per peer and sends only on it;
// what it receives arrives on connections peers dialled (no simultaneous-connect races).
import * as tls from "node:tls";
import { CocoError } from "../util/index.js";
import { FRAME_TYPE_MAX } from "./frame.js";
import { checkChannelIdentity, clientTlsBaseOptions } from "./identity.js";
import { InboundServer } from "./inbound.js";
import { OutboundPeer } from "./outbound.js";
import { CHANNEL_DEFAULTS, type ChannelLogger, type ChannelOptions, type PeerAddress, type PeerStats } from "./types.js";

const silentLogger: ChannelLogger = { info() {}, warn() {} };

export class NodeChannels {
  readonly nodeId: string;
  private readonly logger: ChannelLogger;
  private readonly queueBytesMax: number;
  private readonly frameBytesMax: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly connectTimeoutMs: number;
  private readonly clientContext: tls.SecureContext;
  private readonly inbound: InboundServer;
  private readonly peers = new Map<string, OutboundPeer>();
  /** Removed peers whose sockets are still closing; close() waits for them too. */
  private readonly removing = new Set<Promise<void>>();
  private closed = false;

  /** Throws CocoError("InvalidInput") when the identity or a limit cannot work. */
  constructor(private readonly options: ChannelOptions) {
    checkChannelIdentity(options.identity);
    this.nodeId = options.identity.nodeId;
    this.logger = options.logger ?? silentLogger;
    this.queueBytesMax = positiveLimit("queueBytesMax", options.queueBytesMax ?? CHANNEL_DEFAULTS.queueBytesMax);
    this.frameBytesMax = positiveLimit("frameBytesMax", options.frameBytesMax ?? CHANNEL_DEFAULTS.frameBytesMax);
    if (this.frameBytesMax > 0xffff_ffff) throw new CocoError("InvalidInput", "frameBytesMax must fit the 4-byte length field (at most 4 GiB - 1).", 400);
    const backoff = options.backoff ?? CHANNEL_DEFAULTS.backoff;
    this.backoff = { initialMs: positiveLimit("backoff.initialMs", backoff.initialMs), maxMs: positiveLimit("backoff.maxMs", backoff.maxMs) };
    this.connectTimeoutMs = positiveLimit("connectTimeoutMs", options.connectTimeoutMs ?? CHANNEL_DEFAULTS.connectTimeoutMs);
    this.clientContext = tls.createSecureContext(clientTlsBaseOptions(options.identity));
    this.inbound = new InboundServer({
      identity: options.identity,
      frameBytesMax: this.frameBytesMax,
      handshakeTimeoutMs: positiveLimit("inboundHandshakeTimeoutMs", options.inboundHandshakeTimeoutMs ?? this.connectTimeoutMs),
      inboundConnectionsMax: positiveLimit("inboundConnectionsMax", options.inboundConnectionsMax ?? CHANNEL_DEFAULTS.inboundConnectionsMax),
      connectionsPerAddressMax: positiveLimit("inboundConnectionsPerAddressMax",
        options.inboundConnectionsPerAddressMax ?? CHANNEL_DEFAULTS.inboundConnectionsPerAddressMax),
      acceptPeer: options.acceptPeer ?? (() => true),
      onMessage: options.onMessage,
      logger: this.logger,
    });
  }

  /** Starts accepting peers' connections; resolves with the bound address (the real port when 0 was asked). */
  listen(): Promise<PeerAddress> {
    return this.inbound.listen(this.options.listen);
  }

  /** Adds a peer (and starts dialling it) or moves it to a new address (reconnecting, keeping its queue). */
  setPeer(nodeId: string, address: PeerAddress): void {
    if (this.closed) return;
    if (nodeId === this.nodeId) throw new CocoError("InvalidInput", "setPeer: a node does not open a channel to itself.", 400);
    if (typeof address.host !== "string" || address.host === "" || !Number.isInteger(address.port) || address.port < 1 || address.port > 65535) {
      throw new CocoError("InvalidInput", `setPeer: ${JSON.stringify(address)} is not a host and a TCP port (1..65535).`, 400);
    }
    const existing = this.peers.get(nodeId);
    if (existing !== undefined) {
      existing.setAddress(address);
      return;
    }
    const peer = new OutboundPeer({
      nodeId,
      address,
      secureContext: this.clientContext,
      queueBytesMax: this.queueBytesMax,
      backoff: this.backoff,
      connectTimeoutMs: this.connectTimeoutMs,
      logger: this.logger,
      // Connections leave from the node-to-node interface's address, so peers (and firewalls) see one address per node.
      ...(isSpecificHost(this.options.listen.host) ? { localAddress: this.options.listen.host } : {}),
      onConnectionChange: (connected) => this.reportConnection(nodeId, connected),
    });
    this.peers.set(nodeId, peer);
    peer.start();
  }

  /** Forgets a peer: closes its outbound connection and drops what was queued for it. */
  removePeer(nodeId: string): void {
    const peer = this.peers.get(nodeId);
    if (peer === undefined) return;
    this.peers.delete(nodeId);
    const closing = peer.close().finally(() => this.removing.delete(closing));
    this.removing.add(closing);
  }

  /**
   * Runs acceptPeer again for every node with an inbound connection and closes those it refuses
   * now: call it after the set of trusted nodes shrank (a node retired), since acceptPeer is
   * otherwise consulted only when a connection is opened.
   */
  recheckInboundPeers(): void {
    if (!this.closed) this.inbound.recheckPeers();
  }

  /**
   * Queues one message for `nodeId`, written to its connection on the next event-loop turn
   * together with everything else sent in this turn. False when the peer is unknown or its queue
   * is full (the message is dropped). The payload is not copied: do not modify it afterwards.
   */
  send(nodeId: string, type: number, payload: Buffer | Uint8Array): boolean {
    if (!Number.isInteger(type) || type < 0 || type > FRAME_TYPE_MAX) {
      throw new CocoError("InvalidInput", `Channel message type must be an integer in 0..${FRAME_TYPE_MAX}, got ${type}.`, 400);
    }
    if (payload.length + 1 > this.frameBytesMax) {
      throw new CocoError(
        "InvalidInput",
        `Channel message of ${payload.length} bytes exceeds frameBytesMax (${this.frameBytesMax}); split it into smaller messages.`,
        400,
      );
    }
    const peer = this.peers.get(nodeId);
    if (peer === undefined) return false;
    const buffer = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    return peer.enqueue(type, buffer);
  }

  /** Whether the outbound connection to `nodeId` is up and the peer accepted this node. */
  isConnected(nodeId: string): boolean {
    return this.peers.get(nodeId)?.connected ?? false;
  }

  /** Tells the owner (onPeerConnected/onPeerDisconnected) about a peer's outbound connection; silent once closing. */
  private reportConnection(nodeId: string, connected: boolean): void {
    if (this.closed) return;
    const listener = connected ? this.options.onPeerConnected : this.options.onPeerDisconnected;
    try {
      listener?.(nodeId);
    } catch (error) {
      // The listener's bug must not break the channel that reported to it.
      this.logger.warn({ peer: nodeId, err: (error as Error).message }, `channel ${connected ? "onPeerConnected" : "onPeerDisconnected"} listener threw`);
    }
  }

  stats(): Record<string, PeerStats> {
    const out: Record<string, PeerStats> = {};
    for (const [nodeId, peer] of this.peers) out[nodeId] = peer.stats();
    return out;
  }

  /** Stops listening and dialling and closes every connection; resolves when all sockets are closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const peers = [...this.peers.values()];
    this.peers.clear();
    await Promise.all([this.inbound.close(), ...peers.map((peer) => peer.close()), ...this.removing]);
  }
}

function positiveLimit(name: string, value: number): number {
  if (!(typeof value === "number" && value > 0 && Number.isFinite(value))) {
    throw new CocoError("InvalidInput", `Channel option ${name} must be a positive number, got ${String(value)}.`, 400);
  }
  return value;
}

function isSpecificHost(host: string): boolean {
  return host !== "0.0.0.0" && host !== "::" && host !== "" && host !== "localhost";
}
