// The inbound half of channels: a TLS server whose connections only receive. Each accepted
// connection is bound to the node id in its client certificate; that id is the `from` of every
// frame it carries. One inbound connection per peer: a newer one replaces the older.
import * as tls from "node:tls";
import type { Socket } from "node:net";
import { FrameParser } from "./frame.js";
import { nodeIdFromCertificateDer, serverTlsOptions, type ChannelIdentity } from "./identity.js";
import { CHANNEL_GREETING, KEEPALIVE_INITIAL_DELAY_MS, type ChannelLogger, type PeerAcceptance, type PeerAddress } from "./types.js";
import { ADMISSION_LOG_INTERVAL_MS, ConnectionAdmission, RateLimitedLog } from "../util/index.js";

export interface InboundServerOptions {
  identity: ChannelIdentity;
  frameBytesMax: number;
  handshakeTimeoutMs: number;
  inboundConnectionsMax: number;
  /** Connections from one IP address (in the handshake or established) beyond this are closed on arrival. */
  connectionsPerAddressMax: number;
  acceptPeer: (nodeId: string) => PeerAcceptance;
  onMessage: (from: string, type: number, payload: Buffer) => void;
  logger: ChannelLogger;
}

/**
 * Refusals logged per peer (node id, or remote address before a certificate is known): the first
 * at once, then at most one line per ADMISSION_LOG_INTERVAL_MS with the count suppressed since.
 * A retired node or a misconfigured host redials every few hundred ms for as long as it runs.
 * Keyed limiters kept, at most; beyond them every key shares one.
 */
const REFUSAL_LOG_KEYS_MAX = 1024;

class RefusalLog {
  private readonly byKey = new Map<string, RateLimitedLog>();
  private readonly shared: RateLimitedLog;

  constructor(private readonly logger: ChannelLogger) {
    this.shared = new RateLimitedLog(logger, ADMISSION_LOG_INTERVAL_MS);
  }

  warn(key: string | undefined, object: object, message: string): void {
    let log = key === undefined ? this.shared : this.byKey.get(key);
    if (log === undefined) {
      if (this.byKey.size < REFUSAL_LOG_KEYS_MAX) this.byKey.set(key!, (log = new RateLimitedLog(this.logger, ADMISSION_LOG_INTERVAL_MS)));
      else log = this.shared;
    }
    log.warn(object, message);
  }
}

export class InboundServer {
  private readonly server: tls.Server;
  private readonly refusals: RefusalLog;
  /** Raw TCP connections, including those still in the handshake, so close() can end them all. */
  private readonly connections = new Set<Socket>();
  private readonly byPeer = new Map<string, tls.TLSSocket>();
  private readonly admission: ConnectionAdmission;
  private listening = false;
  private closed = false;

  constructor(private readonly options: InboundServerOptions) {
    this.server = tls.createServer(serverTlsOptions(options.identity, options.handshakeTimeoutMs));
    this.server.maxConnections = options.inboundConnectionsMax;
    // Before the TLS handshake anyone can connect: without a cap per address and a handshake
    // deadline one host could hold every inbound slot and cut this node off from its peers.
    this.admission = new ConnectionAdmission({
      perAddressMax: options.connectionsPerAddressMax,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      name: "node-to-node",
      log: new RateLimitedLog(options.logger, ADMISSION_LOG_INTERVAL_MS),
    });
    this.admission.attach(this.server);
    this.refusals = new RefusalLog(options.logger);
    this.server.on("connection", (socket: Socket) => {
      this.connections.add(socket);
      socket.once("close", () => this.connections.delete(socket));
    });
    this.server.on("secureConnection", (socket: tls.TLSSocket) => this.onSecureConnection(socket));
    this.server.on("tlsClientError", (error: Error, socket: tls.TLSSocket) => {
      // Certificates not issued by the service (forged, self-signed, another service) end here.
      // node:tls ends such a handshake without an error of its own; the reason is authorizationError.
      const refused = socket.authorizationError as Error | string | null | undefined;
      const reason = refused ? `client certificate refused: ${String(refused)}` : error.message;
      this.refusals.warn(`address ${socket.remoteAddress}`, { remoteAddress: socket.remoteAddress, err: reason }, "refused an inbound channel: TLS handshake failed");
    });
  }

  listen(address: PeerAddress): Promise<PeerAddress> {
    if (this.closed || this.listening) return Promise.reject(new Error("listen() may be called once, before close()."));
    this.listening = true;
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.server.once("error", onError);
      this.server.listen(address.port, address.host, () => {
        this.server.off("error", onError);
        this.server.on("error", (error: Error) => this.options.logger.warn({ err: error.message }, "channel server error"));
        const bound = this.server.address();
        if (bound === null || typeof bound === "string") reject(new Error("channel server has no TCP address"));
        else resolve({ host: bound.address, port: bound.port });
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = [...this.connections].map((socket) => new Promise<void>((resolve) => socket.once("close", () => resolve())));
    for (const socket of this.connections) socket.destroy();
    const serverClosed = this.listening
      ? new Promise<void>((resolve) => this.server.close(() => resolve()))
      : Promise.resolve();
    await Promise.all([...closing, serverClosed]);
  }

  /** Re-asks acceptPeer about every connected node and closes the connections it now refuses. */
  recheckPeers(): void {
    for (const [nodeId, socket] of this.byPeer) {
      const refused = this.refusal(nodeId);
      if (refused === undefined) continue;
      this.options.logger.warn({ peer: nodeId, reason: refused }, "closing the inbound channel of a node that is no longer accepted");
      this.byPeer.delete(nodeId);
      socket.destroy();
    }
  }

  private onSecureConnection(socket: tls.TLSSocket): void {
    this.admission.handshakeDone(socket);
    let from: string | undefined;
    socket.on("error", (error: Error) => {
      this.options.logger.debug?.({ peer: from, err: error.message }, "inbound channel error");
    });
    try {
      const certificate = socket.getPeerX509Certificate();
      if (certificate === undefined) throw new Error("no client certificate");
      from = nodeIdFromCertificateDer(certificate.raw);
    } catch (error) {
      this.refusals.warn(`address ${socket.remoteAddress}`, { remoteAddress: socket.remoteAddress, err: (error as Error).message }, "refused an inbound channel: unreadable client certificate");
      socket.destroy();
      return;
    }
    const refused = this.closed ? "this node is closing its channels" : this.refusal(from);
    if (refused !== undefined) {
      this.refusals.warn(`node ${from}`, { peer: from, remoteAddress: socket.remoteAddress, reason: refused }, "refused an inbound channel from a node that is not accepted");
      socket.destroy();
      return;
    }
    const previous = this.byPeer.get(from);
    if (previous !== undefined) {
      this.options.logger.info({ peer: from }, "peer opened a new inbound channel; closing its previous one");
      previous.destroy();
    }
    this.byPeer.set(from, socket);
    this.receive(from, socket);
  }

  /** Why the node may not deliver messages now, or undefined if it may. */
  private refusal(nodeId: string): string | undefined {
    try {
      const answer = this.options.acceptPeer(nodeId);
      if (answer === true) return undefined;
      return answer === false ? "acceptPeer refused it" : answer.refused;
    } catch (error) {
      return `acceptPeer threw (${(error as Error).message})`;
    }
  }

  private receive(from: string, socket: tls.TLSSocket): void {
    const { onMessage, logger } = this.options;
    const parser = new FrameParser(this.options.frameBytesMax, (type, payload) => {
      try {
        onMessage(from, type, payload);
      } catch (error) {
        logger.warn({ peer: from, type, err: (error as Error).message }, "onMessage threw; the message is dropped");
      }
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
    socket.on("data", (chunk: Buffer) => {
      try {
        parser.push(chunk);
      } catch (error) {
        logger.warn({ peer: from, err: (error as Error).message }, "closing inbound channel: protocol error");
        socket.destroy();
      }
    });
    socket.on("close", () => {
      if (this.byPeer.get(from) === socket) this.byPeer.delete(from);
      logger.debug?.({ peer: from, unparsedBytes: parser.pendingBytes }, "inbound channel closed");
    });
    socket.write(CHANNEL_GREETING);
    logger.debug?.({ peer: from, remoteAddress: socket.remoteAddress }, "inbound channel accepted");
  }
}
