// Shared types and limits of node-to-node channels. Every limit has a name and a default here.
import type { ChannelIdentity } from "./identity.js";

export interface PeerAddress {
  host: string;
  /** 0 (listen only) = an ephemeral port. */
  port: number;
}

/** pino-compatible: (fields, message). */
export interface ChannelLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  debug?(fields: object, message: string): void;
}

/** acceptPeer's answer: true, or a refusal (false, or with the reason to log). */
export type PeerAcceptance = boolean | { refused: string };

export interface BackoffOptions {
  /** Delay before the first reconnect attempt after a failure. */
  initialMs: number;
  /** Upper bound of the doubling delay. */
  maxMs: number;
}

export interface ChannelOptions {
  identity: ChannelIdentity;
  listen: PeerAddress;
  /** Called once per received frame, in order per sender. `payload` may share memory with the receive buffer. */
  onMessage: (from: string, type: number, payload: Buffer) => void;
  /**
   * Decides whether an authenticated node may deliver messages: true, or false / { refused: reason }
   * (the reason is logged). Asked at the handshake and again by recheckInboundPeers(). Default:
   * any node the service endorsed, which includes retired nodes: a node of a service passes its
   * membership rule here (src/node/membership.ts).
   */
  acceptPeer?: (nodeId: string) => PeerAcceptance;
  logger?: ChannelLogger;
  /** Per-peer bound on frames waiting to be handed to the socket; beyond it send() drops and returns false. */
  queueBytesMax?: number;
  /** Largest frame (type + payload) accepted or sent; a larger incoming frame closes the connection. */
  frameBytesMax?: number;
  /** Reconnect delay: doubles from initialMs to maxMs, each delay drawn uniformly from [delay/2, delay]. */
  backoff?: BackoffOptions;
  /** A dial that has not completed TLS and the acceptor's greeting within this time is abandoned. */
  connectTimeoutMs?: number;
  /** Inbound connections (authenticated or not) beyond this are closed on arrival. */
  inboundConnectionsMax?: number;
  /** Inbound connections from one IP address beyond this are closed on arrival (several nodes may share a host). */
  inboundConnectionsPerAddressMax?: number;
  /** An inbound connection whose TLS handshake has not finished this long after it arrived is closed (default: connectTimeoutMs). */
  inboundHandshakeTimeoutMs?: number;
  /** The outbound connection to `nodeId` is up and the peer accepted this node (after each (re)connect). */
  onPeerConnected?: (nodeId: string) => void;
  /**
   * The outbound connection to `nodeId`, once up, is gone (closed by the peer or the network, or
   * moved by setPeer/removePeer; not on close()). Frames handed to it may or may not have arrived:
   * request forwarding fails what it was waiting for from that peer at once rather than time out.
   */
  onPeerDisconnected?: (nodeId: string) => void;
}

export interface PeerStats {
  /** The outbound connection is up and the peer accepted us. */
  connected: boolean;
  /** Bytes of frames queued and not yet handed to the socket (counts against queueBytesMax). */
  queuedBytes: number;
  /** Frames handed to the socket. A frame handed to a connection that then fails is lost. */
  sentFrames: number;
  /** Frames refused by send() because the queue was full, plus frames dropped by removePeer/close. */
  droppedFrames: number;
  /** Connection attempts after the first one. */
  reconnects: number;
}

export const CHANNEL_DEFAULTS = {
  queueBytesMax: 64 * 1024 * 1024,
  frameBytesMax: 256 * 1024 * 1024,
  backoff: { initialMs: 50, maxMs: 3_000 },
  connectTimeoutMs: 5_000,
  inboundConnectionsMax: 256,
  inboundConnectionsPerAddressMax: 16,
} as const;

/** One socket write gathers queued frames up to about this many bytes (one TLS encrypt pass). */
export const WRITE_BATCH_BYTES_TARGET = 1024 * 1024;
/** Payloads at least this large are written as they are rather than copied into a batch. */
export const DIRECT_WRITE_BYTES_MIN = 64 * 1024;
/** TCP keep-alive probes start after this much silence, to notice a peer that vanished. */
export const KEEPALIVE_INITIAL_DELAY_MS = 5_000;

/**
 * The acceptor's first bytes on every authenticated, accepted connection. The dialler sends
 * nothing before it has them, so frames are not poured into a connection the acceptor refuses
 * (with TLS 1.3 the client finishes its handshake before the server has judged its certificate).
 */
export const CHANNEL_GREETING = Buffer.from("coco-channel/1\n", "ascii");
