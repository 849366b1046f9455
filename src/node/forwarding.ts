// Forwarding: a backup sends a request that must run on the primary (a write) over the
// node-to-node channel; the primary runs it as if the client had called it directly (the
// client's TLS certificate, checked by the backup's TLS stack, travels with it) and the
// backup answers the client with the primary's response, transaction id included.
// The primary trusts the backup's account of who the caller is only because the backup is
// trusted: the request must arrive on the forwarding node's own authenticated channel (its
// certificate's node id equals the node id in the request) and that node must be Trusted in the
// primary's nodes.info. A retired node's key and certificate forward nothing.
//
// A request is either *waiting* (no reachable primary yet: nothing was sent, so it may go to
// whichever node becomes primary) or *sent* (its outcome is the primary's). A sent request whose
// primary is lost (its channel closed, or consensus names another primary) is answered at once
// with 503 ForwardedPrimaryLost: it may or may not have executed, so it is never resent here.
import { assert, CocoError } from "../util/index.js";
import {
  callerCertificateFromDer, errorBody, ErrorCodes, FileRangeBody, serviceUnavailable, withRetryAfter, type RpcRequest, type RpcResponse,
} from "../rpc/index.js";
import { FRAME_FORWARD_REQUEST, FRAME_FORWARD_RESPONSE, type Transport } from "./replication.js";

interface ForwardedRequestHeader {
  id: number;
  method: string;
  path: string;
  query: string;
  headers: Record<string, string | string[] | undefined>;
  callerCertDer: string | null;
  /** The node that forwarded it; must be the authenticated sender of the frame. */
  forwarderNodeId: string;
  /** The client's address as the backup saw it (absent from older nodes). */
  remoteAddress?: string;
}

interface ForwardedResponseHeader {
  id: number;
  status: number;
  headers: Record<string, string>;
}

function frame(header: object, body: Buffer | string | undefined): Buffer {
  const head = Buffer.from(JSON.stringify(header));
  const bodyBytes = body === undefined ? Buffer.alloc(0) : typeof body === "string" ? Buffer.from(body) : body;
  const out = Buffer.allocUnsafe(4 + head.length + bodyBytes.length);
  out.writeUInt32BE(head.length, 0);
  head.copy(out, 4);
  bodyBytes.copy(out, 4 + head.length);
  return out;
}

function unframe<T>(payload: Buffer): { header: T; body: Buffer } {
  if (payload.length < 4) throw new CocoError("InvalidForwardedMessage", "forwarded message too short", 400);
  const headLength = payload.readUInt32BE(0);
  if (4 + headLength > payload.length) throw new CocoError("InvalidForwardedMessage", "forwarded message header overruns the frame", 400);
  const header = JSON.parse(payload.subarray(4, 4 + headLength).toString("utf8")) as T;
  return { header, body: Buffer.from(payload.subarray(4 + headLength)) };
}

export const FORWARDING_DEFAULTS = {
  /**
   * A sent request the primary has not answered within this is answered 504 (outcome unknown).
   * A lost primary no longer waits for it (it fails at once), so this only bounds a live but slow
   * primary; it exceeds the frontend's 10 s wait for a `consistency: "committed"` endpoint's
   * commit, so that the primary's own 503 for such a request arrives first.
   */
  responseTimeoutMs: 12_000,
  /** How long a request waits for a primary this node can reach (an election, a reconnect) before a 503. */
  primaryWaitMs: 3_000,
  /** Requests waiting or sent and not yet answered; beyond it, 503 TooManyForwardedRequests. */
  pendingRequestsMax: 10_000,
  /** Retry-After of the 503s answered here. */
  retryAfterSeconds: 1,
} as const;

/** The channels as forwarding uses them: the Raft transport plus whether a peer is reachable now. */
export interface ForwardingTransport extends Transport {
  /** Whether the outbound connection to `nodeId` is up (a request sent now goes out at once). */
  isConnected(nodeId: string): boolean;
}

export interface ForwarderOptions {
  transport: ForwardingTransport;
  /** This node's id: when it becomes the primary itself, waiting requests run here. */
  nodeId: string;
  /** The current primary according to consensus (may be this node), undefined during an election. */
  primary: () => string | undefined;
  /** Runs a request locally, never forwarding it again (forwarded requests on the primary; waiting ones once this node leads). */
  dispatchLocal: (request: RpcRequest) => RpcResponse | Promise<RpcResponse>;
  /** Default FORWARDING_DEFAULTS.responseTimeoutMs. */
  responseTimeoutMs?: number;
  /** Default FORWARDING_DEFAULTS.primaryWaitMs. */
  primaryWaitMs?: number;
  /** Default FORWARDING_DEFAULTS.pendingRequestsMax. */
  pendingRequestsMax?: number;
  logger: { warn(o: object, msg: string): void; info?(o: object, msg: string): void };
  /**
   * Primary side: whether `nodeId` is Trusted now, so that the caller identity it forwards may
   * be believed. A request from any other node is refused (403 ForwardingNodeNotTrusted) unrun.
   */
  isTrustedForwarder: (nodeId: string) => boolean;
}

/** The error code of a forwarded request refused because its sender is not a trusted node. */
export const FORWARDING_NODE_NOT_TRUSTED = "ForwardingNodeNotTrusted";

interface SentRequest {
  /** The node it was sent to. */
  to: string;
  resolve: (response: RpcResponse) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface WaitingRequest {
  request: RpcRequest;
  resolve: (response: RpcResponse | Promise<RpcResponse>) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** 503 for a request whose primary was lost after it was sent: tells the client how to find out what happened. */
function primaryLost(primary: string, reason: string): CocoError {
  return serviceUnavailable(ErrorCodes.ForwardedPrimaryLost,
    `This node forwarded the request to the primary (${primary}), which was lost before it answered (${reason}). `
    + "The request may or may not have executed: do not resend a write blindly. If you hold its transaction id, "
    + "check GET /node/tx?transaction_id=<view>.<seqno> until it is Committed or Invalid; otherwise read back its effect, "
    + "then retry only if it did not happen.", FORWARDING_DEFAULTS.retryAfterSeconds);
}

export class Forwarder {
  private nextId = 1;
  private readonly sent = new Map<number, SentRequest>();
  private readonly waiting = new Set<WaitingRequest>();
  /** The primary last reported to primaryChanged. */
  private knownPrimary: string | undefined;
  private closed = false;
  private readonly responseTimeoutMs: number;
  private readonly primaryWaitMs: number;
  private readonly pendingRequestsMax: number;
  forwardedCount = 0;

  constructor(private readonly options: ForwarderOptions) {
    this.responseTimeoutMs = positive("responseTimeoutMs", options.responseTimeoutMs ?? FORWARDING_DEFAULTS.responseTimeoutMs);
    this.primaryWaitMs = positive("primaryWaitMs", options.primaryWaitMs ?? FORWARDING_DEFAULTS.primaryWaitMs);
    this.pendingRequestsMax = positive("pendingRequestsMax", options.pendingRequestsMax ?? FORWARDING_DEFAULTS.pendingRequestsMax);
    this.knownPrimary = options.primary();
  }

  /** Requests waiting for a primary plus requests sent and not yet answered. */
  get pendingCount(): number {
    return this.sent.size + this.waiting.size;
  }

  /** Backup side: sends the request to the primary (waiting for a reachable one first) and resolves with its answer. */
  forward(request: RpcRequest): Promise<RpcResponse> {
    if (this.closed) return Promise.reject(shuttingDown());
    if (this.pendingCount >= this.pendingRequestsMax) {
      return Promise.reject(serviceUnavailable(ErrorCodes.TooManyForwardedRequests,
        `This node already holds ${this.pendingRequestsMax} requests forwarded to the primary and not yet answered; `
        + "this request was not sent: retry shortly, or send it to the primary.", FORWARDING_DEFAULTS.retryAfterSeconds));
    }
    const started = this.tryDispatch(request);
    if (started !== undefined) return started;
    // No reachable primary (an election, or this node's channel to it is reconnecting): nothing
    // was sent, so the request may wait for whichever node leads next.
    return new Promise<RpcResponse>((resolve, reject) => {
      const entry: WaitingRequest = {
        request, resolve, reject,
        timer: setTimeout(() => {
          this.waiting.delete(entry);
          reject(serviceUnavailable(ErrorCodes.ServiceUnavailable,
            `No primary this node can reach has been known for ${this.primaryWaitMs} ms (an election may be in progress, `
            + "or no majority is reachable). The request was not executed: retry shortly.", FORWARDING_DEFAULTS.retryAfterSeconds));
        }, this.primaryWaitMs),
      };
      this.waiting.add(entry);
    });
  }

  /**
   * The node calls this on every consensus role change, with the primary consensus now names
   * (this node's own id when it leads; undefined during an election). Calling it with an
   * unchanged primary does nothing. Requests sent to another node are failed at once with 503
   * ForwardedPrimaryLost (that node's answer may never come, and any answer would be from a
   * deposed primary); requests still waiting go to the new primary, or run here if it is this node.
   */
  primaryChanged(newPrimaryId: string | undefined): void {
    if (this.closed || newPrimaryId === this.knownPrimary) return;
    const previous = this.knownPrimary;
    this.knownPrimary = newPrimaryId;
    const reason = newPrimaryId === undefined ? "consensus no longer knows a primary: an election is in progress"
      : newPrimaryId === this.options.nodeId ? "this node was elected primary"
        : `node ${newPrimaryId} was elected primary`;
    const failed = this.failSent((to) => to !== newPrimaryId, (to) => primaryLost(to, reason));
    if (failed > 0) this.options.logger.warn({ previous, primary: newPrimaryId ?? null, failed }, "primary changed: forwarded requests failed with ForwardedPrimaryLost");
    this.wakeWaiting();
  }

  /**
   * The channels report that the connection to `nodeId` closed (NodeChannels' onPeerDisconnected).
   * Requests sent to it are failed at once with 503 ForwardedPrimaryLost: its answer would come
   * on a connection from it, but a closed connection usually means the process is gone.
   */
  peerDisconnected(nodeId: string): void {
    if (this.closed) return;
    const failed = this.failSent((to) => to === nodeId, (to) => primaryLost(to, "the node-to-node connection to it closed"));
    if (failed > 0) this.options.logger.warn({ peer: nodeId, failed }, "connection to the primary lost: forwarded requests failed with ForwardedPrimaryLost");
  }

  /** The channels report that the connection to `nodeId` is up (onPeerConnected): waiting requests may go. */
  peerConnected(nodeId: string): void {
    if (this.closed || this.options.primary() !== nodeId) return;
    this.wakeWaiting();
  }

  /** Sends (or runs here) now if a reachable primary is known; undefined when the request must wait. */
  private tryDispatch(request: RpcRequest): Promise<RpcResponse> | undefined {
    const primary = this.options.primary();
    if (primary === undefined) return undefined;
    if (primary === this.options.nodeId) return Promise.resolve().then(() => this.options.dispatchLocal(request));
    // A frame queued on a closed connection would go out whenever it reconnects, long after the
    // client was answered: send only on a live connection, otherwise wait.
    if (!this.options.transport.isConnected(primary)) return undefined;
    return this.send(primary, request);
  }

  private wakeWaiting(): void {
    for (const entry of [...this.waiting]) {
      const started = this.tryDispatch(entry.request);
      if (started === undefined) continue;
      this.waiting.delete(entry);
      clearTimeout(entry.timer);
      entry.resolve(started);
    }
  }

  private send(primary: string, request: RpcRequest): Promise<RpcResponse> {
    assert(primary !== this.options.nodeId, "a node never forwards a request to itself");
    assert(this.pendingCount <= this.pendingRequestsMax, "forwarded requests stay within pendingRequestsMax");
    const id = this.nextId++;
    const header: ForwardedRequestHeader = {
      id, method: request.method, path: request.path, query: request.query, headers: request.headers,
      callerCertDer: request.callerCert ? request.callerCert.der.toString("base64") : null,
      forwarderNodeId: this.options.nodeId,
      ...(request.remoteAddress !== undefined ? { remoteAddress: request.remoteAddress } : {}),
    };
    if (!this.options.transport.send(primary, FRAME_FORWARD_REQUEST, frame(header, request.body))) {
      return Promise.reject(serviceUnavailable(ErrorCodes.ServiceUnavailable,
        `Cannot queue the request for the primary (${primary}): the channel to it is full or gone. The request was not executed: retry shortly.`,
        FORWARDING_DEFAULTS.retryAfterSeconds));
    }
    this.forwardedCount++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.sent.delete(id);
        reject(new CocoError(ErrorCodes.RequestForwardingTimedOut,
          `The primary (${primary}) did not answer the forwarded request within ${this.responseTimeoutMs} ms; the request may or may not have executed: `
          + "check GET /node/tx?transaction_id=<view>.<seqno> if you hold its transaction id, otherwise read back its effect, before retrying.", 504));
      }, this.responseTimeoutMs);
      assert(!this.sent.has(id), "forwarded request ids are unique");
      this.sent.set(id, { to: primary, resolve, reject, timer });
    });
  }

  /** Fails every sent request whose destination node matches; returns how many. */
  private failSent(matches: (to: string) => boolean, error: (to: string) => Error): number {
    let failed = 0;
    for (const [id, entry] of this.sent) {
      if (!matches(entry.to)) continue;
      this.sent.delete(id);
      clearTimeout(entry.timer);
      entry.reject(error(entry.to));
      failed++;
    }
    return failed;
  }

  /** Primary side: runs a forwarded request and sends the response back to `from`. */
  async onRequest(from: string, payload: Buffer): Promise<void> {
    const framed = this.unframeFrom<ForwardedRequestHeader>(from, payload, "request");
    if (framed === undefined) return;
    const { header, body } = framed;
    const refusal = this.refusalOf(from, header);
    if (refusal !== undefined) {
      this.options.logger.warn({ from, forwarderNodeId: header.forwarderNodeId, method: header.method, path: header.path, reason: refusal },
        "refused a forwarded request: the caller identity it carries is believed only from a trusted node's own channel");
      const refused: ForwardedResponseHeader = { id: header.id, status: 403, headers: { "content-type": "application/json" } };
      this.options.transport.send(from, FRAME_FORWARD_RESPONSE, frame(refused, errorBody(FORWARDING_NODE_NOT_TRUSTED,
        `This node does not run requests forwarded by ${from}: ${refusal}. Send the request to a node of the service directly.`)));
      return;
    }
    let response: RpcResponse;
    try {
      const request: RpcRequest = {
        method: header.method, path: header.path, query: header.query, headers: header.headers, body,
        callerCert: header.callerCertDer === null ? undefined : callerCertificateFromDer(Buffer.from(header.callerCertDer, "base64")),
        ...(typeof header.remoteAddress === "string" ? { remoteAddress: header.remoteAddress } : {}),
      };
      response = await this.options.dispatchLocal(request);
    } catch (error) {
      const e = error instanceof CocoError ? error : new CocoError(ErrorCodes.InternalError, (error as Error).message, 500);
      response = { status: e.status, headers: withRetryAfter(e.status, { ...e.headers, "content-type": "application/json" }), body: errorBody(e.code, e.message) };
    }
    let answer = response.body;
    if (answer instanceof FileRangeBody) {
      // Streamed answers (snapshot files) come from endpoints that are never forwarded.
      void answer.handle.close().catch(() => undefined);
      response = { status: 500, headers: { "content-type": "application/json" } };
      answer = errorBody(ErrorCodes.InternalError, "A streamed answer cannot be relayed through a forwarding node.");
    }
    const out: ForwardedResponseHeader = { id: header.id, status: response.status, headers: response.headers ?? {} };
    this.options.transport.send(from, FRAME_FORWARD_RESPONSE, frame(out, answer));
  }

  /** Why a forwarded request from `from` must not run, or undefined if it may. */
  private refusalOf(from: string, header: ForwardedRequestHeader): string | undefined {
    if (header.forwarderNodeId !== from) {
      return `it names node ${String(header.forwarderNodeId)} as its forwarder but arrived on the authenticated channel of node ${from}`;
    }
    let trusted = false;
    try {
      trusted = this.options.isTrustedForwarder(from);
    } catch (error) {
      return `the trust check failed (${(error as Error).message})`;
    }
    return trusted ? undefined : `node ${from} is not a Trusted node of the service (retired, pending or unknown)`;
  }

  /** A frame from a peer, or undefined (logged) if it is malformed: a peer's bad frame harms nothing else. */
  private unframeFrom<T>(from: string, payload: Buffer, what: string): { header: T; body: Buffer } | undefined {
    try {
      return unframe<T>(payload);
    } catch (error) {
      this.options.logger.warn({ from, err: (error as Error).message }, `refused a malformed forwarded ${what}`);
      return undefined;
    }
  }

  /** Backup side: the primary's answer. */
  onResponse(from: string, payload: Buffer): void {
    const framed = this.unframeFrom<ForwardedResponseHeader>(from, payload, "response");
    if (framed === undefined) return;
    const { header, body } = framed;
    const pending = this.sent.get(header.id);
    if (!pending || pending.to !== from) return;
    this.sent.delete(header.id);
    clearTimeout(pending.timer);
    pending.resolve({ status: header.status, headers: header.headers, ...(body.length > 0 ? { body } : {}) });
  }

  /** Answers every pending request 503 (the node is stopping) and stops watching the primary. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, entry] of this.sent) {
      clearTimeout(entry.timer);
      this.sent.delete(id);
      entry.reject(serviceUnavailable(ErrorCodes.ServiceUnavailable,
        "The node is shutting down; the forwarded request may or may not have executed: check GET /node/tx?transaction_id=<view>.<seqno> "
        + "if you hold its transaction id, otherwise read back its effect, before retrying.", FORWARDING_DEFAULTS.retryAfterSeconds));
    }
    for (const entry of this.waiting) {
      clearTimeout(entry.timer);
      entry.reject(shuttingDown());
    }
    this.waiting.clear();
  }
}

function shuttingDown(): CocoError {
  return serviceUnavailable(ErrorCodes.ServiceUnavailable, "The node is shutting down; the request was not executed: send it to another node.", FORWARDING_DEFAULTS.retryAfterSeconds);
}

function positive(name: string, value: number): number {
  if (!(typeof value === "number" && value > 0 && Number.isFinite(value))) {
    throw new CocoError("InvalidInput", `Forwarder option ${name} must be a positive number, got ${String(value)}.`, 400);
  }
  return value;
}
