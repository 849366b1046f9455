// The outbound half of a channel: one TLS connection dialled to one peer, carrying only our
// frames to it. Frames queue (bounded) while disconnected, are coalesced into large writes once
// per event-loop turn, wait for 'drain' under back-pressure, and survive reconnects.
import * as tls from "node:tls";
import { encodeFrameHeader, FRAME_HEADER_BYTES } from "./frame.js";
import { expectNodeId } from "./identity.js";
import {
  CHANNEL_GREETING,
  DIRECT_WRITE_BYTES_MIN,
  KEEPALIVE_INITIAL_DELAY_MS,
  WRITE_BATCH_BYTES_TARGET,
  type BackoffOptions,
  type ChannelLogger,
  type PeerAddress,
  type PeerStats,
} from "./types.js";

export interface OutboundPeerOptions {
  nodeId: string;
  address: PeerAddress;
  secureContext: tls.SecureContext;
  queueBytesMax: number;
  backoff: BackoffOptions;
  connectTimeoutMs: number;
  logger: ChannelLogger;
  /** Source address of outbound connections (the node-to-node interface's host), if specific. */
  localAddress?: string;
  /** The connection became usable (true) or a usable connection went away (false). */
  onConnectionChange?: (connected: boolean) => void;
}

type State = "connecting" | "connected" | "waiting" | "closed";

export class OutboundPeer {
  private address: PeerAddress;
  private state: State = "waiting";
  private socket: tls.TLSSocket | undefined;
  /** Every socket not yet closed, including abandoned ones, so close() can wait for all. */
  private readonly liveSockets = new Set<tls.TLSSocket>();
  private greetingBytes = 0;

  // Queue of frames as (header, payload) pairs: items[head..] are waiting.
  private items: (Buffer | undefined)[] = [];
  private head = 0;
  private queuedBytes = 0;
  private waitingForDrain = false;
  private flushScheduled: NodeJS.Immediate | undefined;

  private retryTimer: NodeJS.Timeout | undefined;
  private failuresInARow = 0;
  private lastFailure: string | undefined;
  private failureLogged = false;
  private dropping = false;
  private connectAttempts = 0;
  private sentFrames = 0;
  private droppedFrames = 0;

  constructor(private readonly options: OutboundPeerOptions) {
    this.address = { ...options.address };
  }

  start(): void {
    this.connect();
  }

  /** Queues one frame; false (and counted as dropped) when the queue bound would be exceeded. */
  enqueue(type: number, payload: Buffer): boolean {
    if (this.state === "closed") return false;
    const frameBytes = FRAME_HEADER_BYTES + payload.length;
    if (this.queuedBytes + frameBytes > this.options.queueBytesMax) {
      this.droppedFrames += 1;
      if (!this.dropping) {
        this.dropping = true;
        this.options.logger.warn(
          { peer: this.options.nodeId, queuedBytes: this.queuedBytes, queueBytesMax: this.options.queueBytesMax, connected: this.state === "connected" },
          "channel queue to peer is full; dropping messages until it drains",
        );
      }
      return false;
    }
    if (this.dropping && this.queuedBytes < this.options.queueBytesMax / 2) this.dropping = false;
    this.items.push(encodeFrameHeader(type, payload.length), payload);
    this.queuedBytes += frameBytes;
    if (this.state === "connected" && !this.waitingForDrain && this.flushScheduled === undefined) {
      // Coalesce everything sent during this event-loop turn into one write.
      this.flushScheduled = setImmediate(() => {
        this.flushScheduled = undefined;
        this.flush();
      });
    }
    return true;
  }

  /** A new address abandons the current connection and dials at once; the queue is kept. */
  setAddress(address: PeerAddress): void {
    if (address.host === this.address.host && address.port === this.address.port) return;
    this.address = { ...address };
    if (this.state === "closed") return;
    this.options.logger.info({ peer: this.options.nodeId, host: address.host, port: address.port }, "channel peer address changed; reconnecting");
    const wasConnected = this.state === "connected";
    this.abandonSocket();
    this.failuresInARow = 0;
    this.connect();
    if (wasConnected) this.options.onConnectionChange?.(false);
  }

  /** The connection is up and the peer accepted us. */
  get connected(): boolean {
    return this.state === "connected";
  }

  stats(): PeerStats {
    return {
      connected: this.state === "connected",
      queuedBytes: this.queuedBytes,
      sentFrames: this.sentFrames,
      droppedFrames: this.droppedFrames,
      reconnects: Math.max(0, this.connectAttempts - 1),
    };
  }

  /** Stops dialling, drops the queue and resolves once every socket of this peer has closed. */
  async close(): Promise<void> {
    if (this.state === "closed") return;
    const wasConnected = this.state === "connected";
    this.state = "closed";
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    clearImmediate(this.flushScheduled);
    this.flushScheduled = undefined;
    this.droppedFrames += (this.items.length - this.head) / 2;
    this.items = [];
    this.head = 0;
    this.queuedBytes = 0;
    this.abandonSocket();
    if (wasConnected) this.options.onConnectionChange?.(false);
    await Promise.all([...this.liveSockets].map((socket) => new Promise<void>((resolve) => socket.once("close", () => resolve()))));
  }

  private connect(): void {
    this.retryTimer = undefined;
    if (this.state === "closed") return;
    this.connectAttempts += 1;
    this.state = "connecting";
    this.greetingBytes = 0;
    this.waitingForDrain = false;
    this.failureLogged = false;
    const { host, port } = this.address;
    let socket: tls.TLSSocket;
    try {
      socket = tls.connect({
        host,
        port,
        secureContext: this.options.secureContext,
        rejectUnauthorized: true,
        checkServerIdentity: expectNodeId(this.options.nodeId),
        ...(this.options.localAddress !== undefined ? { localAddress: this.options.localAddress } : {}),
      });
    } catch (error) {
      this.logFailure((error as Error).message);
      this.state = "waiting";
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    this.liveSockets.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.options.connectTimeoutMs, () => {
      socket.destroy(new Error(`no TLS handshake and greeting within ${this.options.connectTimeoutMs} ms`));
    });
    let secured = false;
    socket.once("secureConnect", () => {
      secured = true;
    });
    socket.on("data", (chunk: Buffer) => {
      if (this.socket !== socket) return;
      if (!secured || !this.consumeGreeting(chunk)) {
        socket.destroy(new Error("protocol error: the acceptor sent bytes other than the channel greeting"));
      }
    });
    socket.on("drain", () => {
      if (this.socket !== socket || this.state !== "connected") return;
      this.waitingForDrain = false;
      this.flush();
    });
    socket.on("error", (error: Error) => this.onFailure(socket, error));
    socket.on("close", () => {
      this.liveSockets.delete(socket);
      if (this.socket === socket) this.onClosed();
    });
  }

  /** True while the bytes are a prefix of the greeting; marks the peer connected once complete. */
  private consumeGreeting(chunk: Buffer): boolean {
    if (this.state !== "connecting") return false;
    const expected = CHANNEL_GREETING.subarray(this.greetingBytes, this.greetingBytes + chunk.length);
    if (chunk.length > expected.length || !chunk.equals(expected)) return false;
    this.greetingBytes += chunk.length;
    if (this.greetingBytes === CHANNEL_GREETING.length) this.onAccepted();
    return true;
  }

  private onAccepted(): void {
    const socket = this.socket!;
    this.state = "connected";
    socket.setTimeout(0);
    socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
    const level = this.failuresInARow > 0 || this.connectAttempts > 1 ? "info" : "debug";
    this.log(level, { peer: this.options.nodeId, host: this.address.host, port: this.address.port, queuedBytes: this.queuedBytes }, "channel to peer connected");
    this.failuresInARow = 0;
    this.lastFailure = undefined;
    this.flush();
    this.options.onConnectionChange?.(true);
  }

  private onFailure(socket: tls.TLSSocket, error: Error): void {
    if (this.socket !== socket || this.state === "closed") return;
    this.logFailure(error.message);
  }

  private logFailure(reason: string): void {
    // A peer that stays down fails every few seconds: warn on the first failure and whenever the
    // reason changes, otherwise only debug.
    this.failureLogged = true;
    const level = reason !== this.lastFailure ? "warn" : "debug";
    this.lastFailure = reason;
    this.log(level, { peer: this.options.nodeId, host: this.address.host, port: this.address.port, err: reason }, "channel to peer failed");
  }

  private onClosed(): void {
    this.socket = undefined;
    if (this.state === "closed") return;
    if (this.state === "connecting" && !this.failureLogged) {
      this.logFailure("the peer closed the connection before its greeting (it may not accept this node)");
    }
    const wasConnected = this.state === "connected";
    if (wasConnected) {
      this.options.logger.info({ peer: this.options.nodeId, queuedBytes: this.queuedBytes }, "channel to peer closed; reconnecting");
    }
    this.state = "waiting";
    this.waitingForDrain = false;
    this.scheduleReconnect();
    if (wasConnected) this.options.onConnectionChange?.(false);
  }

  private scheduleReconnect(): void {
    const { initialMs, maxMs } = this.options.backoff;
    const ceilingMs = Math.min(maxMs, initialMs * 2 ** Math.min(this.failuresInARow, 30));
    this.failuresInARow += 1;
    // Jitter: peers that lost each other at the same moment do not redial in lock-step.
    const delayMs = ceilingMs / 2 + Math.random() * (ceilingMs / 2);
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  private abandonSocket(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
  }

  /** Hands queued frames to the socket in batches until it pushes back or the queue is empty. */
  private flush(): void {
    const socket = this.socket;
    if (this.state !== "connected" || socket === undefined || this.waitingForDrain) return;
    while (this.head < this.items.length) {
      let writable = true;
      for (const buffer of this.takeBatch()) writable = socket.write(buffer);
      if (!writable) {
        this.waitingForDrain = true;
        break;
      }
    }
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Removes whole frames (about WRITE_BATCH_BYTES_TARGET bytes, at least one) from the queue as
   * few buffers: runs of small frames are concatenated once; large payloads are passed through.
   */
  private takeBatch(): Buffer[] {
    const out: Buffer[] = [];
    let run: Buffer[] = [];
    let runBytes = 0;
    let batchBytes = 0;
    let frames = 0;
    while (this.head < this.items.length && (frames === 0 || batchBytes < WRITE_BATCH_BYTES_TARGET)) {
      const header = this.items[this.head]!;
      const payload = this.items[this.head + 1]!;
      this.items[this.head] = undefined;
      this.items[this.head + 1] = undefined;
      this.head += 2;
      frames += 1;
      batchBytes += header.length + payload.length;
      run.push(header);
      runBytes += header.length;
      if (payload.length >= DIRECT_WRITE_BYTES_MIN) {
        out.push(run.length === 1 ? header : Buffer.concat(run, runBytes), payload);
        run = [];
        runBytes = 0;
      } else {
        run.push(payload);
        runBytes += payload.length;
      }
    }
    if (run.length > 0) out.push(Buffer.concat(run, runBytes));
    this.queuedBytes -= batchBytes;
    this.sentFrames += frames;
    return out;
  }

  private log(level: "info" | "warn" | "debug", fields: object, message: string): void {
    if (level === "debug") this.options.logger.debug?.(fields, message);
    else this.options.logger[level](fields, message);
  }
}
