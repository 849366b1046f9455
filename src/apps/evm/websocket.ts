// JSON-RPC over WebSocket on /app/evm (and /app/evm/<key>), as ethers' WebSocketProvider and
// viem's webSocket transport use it: the handshake is authenticated like an HTTP request (client
// certificate, Bearer API key, key in the path; Origin checked against the CORS list, since
// browsers open WebSockets to any site); eth_subscribe and eth_unsubscribe are served by this
// node (subscriptions.ts); every other message runs exactly as an HTTP POST to the same URL with
// the same credential would (the frontend: forwarding to the primary, authentication, rate
// limit, commit). Every queue is bounded: requests in flight per connection (reading pauses),
// unsent bytes per connection (a slow consumer is disconnected, close code 1008 with the
// reason), connections per user, subscriptions per connection.
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import type { Transaction } from "../../kv/index.js";
import { CocoError } from "../../util/index.js";
import { FileRangeBody, rejectUpgrade, type RpcRequest, type RpcResponse, type UpgradeRequest } from "../../rpc/index.js";
import { AccessErrorCodes, chargeRequest, corsHeaders, identifyEvmCaller, type AccessOptions } from "./access.js";
import { RpcError, RpcErrorCodes } from "./errors.js";
import type { Subscriber, SubscriptionHub } from "./subscriptions.js";
import type { Visibility } from "./visibility.js";

/** Open WebSocket connections of one user on one node (an API key's count as its user's). */
export const WEBSOCKETS_PER_USER_MAX = 16;
/** Notifications and answers queued for a connection and not yet sent; beyond, it is closed. */
export const WEBSOCKET_SEND_BUFFER_BYTES_MAX = 8 * 1024 * 1024;
/** One message, as one HTTP request body (the node's default max_body_size). */
export const WEBSOCKET_MESSAGE_BYTES_MAX = 1024 * 1024;
/** Messages of one connection being answered at once; beyond, the connection is not read. */
export const WEBSOCKET_REQUESTS_IN_FLIGHT_MAX = 32;
/** A connection that does not answer a ping within this long is closed (dead peers hold slots). */
export const WEBSOCKET_PING_INTERVAL_MS = 30_000;

/** RFC 6455 close codes used here. */
export const WebSocketCloseCodes = { GoingAway: 1001, PolicyViolation: 1008 } as const;

export interface EvmWebSocketOptions {
  readonly access: AccessOptions;
  readonly hub: SubscriptionHub;
  readonly beginReadTransaction: () => Transaction;
  /** Runs a JSON-RPC body as an HTTP POST to /app/evm would run (the node's frontend). */
  readonly dispatch: (request: RpcRequest) => Promise<RpcResponse>;
  readonly perUserMax?: number;
  readonly sendBufferBytesMax?: number;
  /** What a user may be told of (the "bound" address policy, visibility.ts); absent: everything. */
  readonly visibility?: (tx: Transaction, user: string) => Visibility;
}

type JsonRpcId = string | number | null;

function jsonRpcError(id: JsonRpcId, code: number, message: string): string {
  return JSON.stringify({ jsonrpc: "2.0", id, error: { code, message } });
}

function idOf(message: unknown): JsonRpcId {
  const id = typeof message === "object" && message !== null && !Array.isArray(message) ? (message as { id?: unknown }).id : null;
  return typeof id === "string" || typeof id === "number" ? id : null;
}

function isSubscriptionCall(message: unknown): message is { method: string; params?: unknown; id?: unknown } {
  if (typeof message !== "object" || message === null || Array.isArray(message)) return false;
  const method = (message as { method?: unknown }).method;
  return method === "eth_subscribe" || method === "eth_unsubscribe";
}

/** The API key of `/app/evm/<key>`, undefined for `/app/evm`; null for any other path. */
function pathKeyOf(path: string, prefix: string): string | undefined | null {
  if (path === prefix) return undefined;
  const rest = path.slice(prefix.length + 1);
  return rest.length === 0 || rest.includes("/") ? null : rest;
}

export class EvmWebSockets {
  private readonly server = new WebSocketServer({
    noServer: true, clientTracking: false, perMessageDeflate: false, maxPayload: WEBSOCKET_MESSAGE_BYTES_MAX,
  });
  private readonly perUser = new Map<string, number>();
  private readonly connections = new Set<EvmConnection>();
  private heartbeat: NodeJS.Timeout | undefined;
  readonly perUserMax: number;
  readonly sendBufferBytesMax: number;

  constructor(private readonly prefix: string, readonly options: EvmWebSocketOptions) {
    this.perUserMax = options.perUserMax ?? WEBSOCKETS_PER_USER_MAX;
    this.sendBufferBytesMax = options.sendBufferBytesMax ?? WEBSOCKET_SEND_BUFFER_BYTES_MAX;
  }

  /** Open connections, not counting those closing (for tests and metrics). */
  get size(): number {
    let open = 0;
    for (const connection of this.connections) if (!connection.closed) open++;
    return open;
  }

  readonly handleUpgrade = (upgrade: UpgradeRequest): void => {
    const { request, socket } = upgrade;
    const refuse = (status: number, code: number, message: string, headers: Record<string, string> = {}): void =>
      rejectUpgrade(socket, status, jsonRpcError(null, code, message), headers);
    const pathKey = pathKeyOf(request.path, this.prefix);
    if (pathKey === null) {
      refuse(404, RpcErrorCodes.InvalidRequest, `no WebSocket at ${request.path}: connect to ${this.prefix} or ${this.prefix}/<API key>`);
      return;
    }
    // Browsers let any page open a WebSocket to any site, credentials (a client certificate)
    // included, with no preflight: a page's Origin must be one the node allows, as for HTTP.
    if (request.headers.origin !== undefined && corsHeaders(this.options.access, request) === undefined) {
      refuse(403, AccessErrorCodes.Forbidden, `forbidden: origin ${JSON.stringify(request.headers.origin)} is not allowed to call ${this.prefix} (node configuration coco.evm.cors_allowed_origins)`);
      return;
    }
    const identified = identifyEvmCaller(this.options.access, request, this.options.beginReadTransaction(), pathKey);
    const charged = "refusal" in identified ? identified : chargeRequest(this.options.access, identified.user);
    if ("refusal" in charged) {
      const { status, body, headers } = charged.refusal;
      rejectUpgrade(socket, status ?? 401, JSON.stringify(body), headers ?? {});
      return;
    }
    const user = charged.user;
    if ((this.perUser.get(user) ?? 0) >= this.perUserMax) {
      refuse(429, AccessErrorCodes.RateLimited, `too many WebSocket connections for this user on this node (${this.perUserMax}): close unused ones`, { "retry-after": "1" });
      return;
    }
    this.server.handleUpgrade(upgrade.message, socket, upgrade.head, (ws) => this.accept(ws, request, pathKey, user));
  };

  private accept(ws: WebSocket, handshake: RpcRequest, pathKey: string | undefined, user: string): void {
    const connection = new EvmConnection(this, ws, handshake, pathKey, user);
    this.connections.add(connection);
    this.perUser.set(user, (this.perUser.get(user) ?? 0) + 1);
    ws.once("close", () => {
      connection.closed = true;
      this.options.hub.drop(connection);
      this.connections.delete(connection);
      const left = (this.perUser.get(user) ?? 1) - 1;
      if (left === 0) this.perUser.delete(user);
      else this.perUser.set(user, left);
      if (this.connections.size === 0) this.stopHeartbeat();
    });
    this.startHeartbeat();
  }

  private startHeartbeat(): void {
    if (this.heartbeat !== undefined) return;
    this.heartbeat = setInterval(() => {
      for (const connection of this.connections) connection.ping();
    }, WEBSOCKET_PING_INTERVAL_MS);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** Closes every connection (the node is stopping). */
  close(): void {
    for (const connection of this.connections) connection.close(WebSocketCloseCodes.GoingAway, "the node is stopping");
    this.stopHeartbeat();
  }
}

class EvmConnection implements Subscriber {
  closed = false;
  private alive = true;
  private inFlight = 0;
  /** Bytes sent in this turn of the event loop: node writes them to the socket at its end. */
  private turnBytes = 0;

  constructor(
    private readonly owner: EvmWebSockets,
    private readonly ws: WebSocket,
    private readonly handshake: RpcRequest,
    private readonly pathKey: string | undefined,
    readonly user: string,
  ) {
    ws.on("message", (data, isBinary) => this.onMessage(data, isBinary));
    ws.on("pong", () => (this.alive = true));
    // Protocol errors (a bad frame, a message over maxPayload) close the connection with their
    // own code; nothing else is owed.
    ws.on("error", () => {});
  }

  stillAuthorized(tx: Transaction): boolean {
    const identified = identifyEvmCaller(this.owner.options.access, this.handshake, tx, this.pathKey);
    if ("refusal" in identified || identified.user !== this.user) {
      this.close(WebSocketCloseCodes.PolicyViolation, "unauthorized: the credential of this connection was revoked");
      return false;
    }
    return true;
  }

  visibility(tx: Transaction): Visibility | undefined {
    return this.owner.options.visibility?.(tx, this.user);
  }

  notify(text: string): void {
    this.send(text);
  }

  ping(): void {
    if (!this.alive) {
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.options.hub.drop(this);
    // The reason is limited to 123 bytes by the protocol.
    this.ws.close(code, reason.slice(0, 123));
  }

  private send(text: string): void {
    if (this.closed) return;
    const queued = this.ws.bufferedAmount + this.turnBytes;
    if (queued + text.length > this.owner.sendBufferBytesMax) {
      this.close(WebSocketCloseCodes.PolicyViolation, `slow consumer: over ${this.owner.sendBufferBytesMax} bytes unsent; read faster or subscribe to less`);
      return;
    }
    if (this.turnBytes === 0) setImmediate(() => (this.turnBytes = 0));
    this.turnBytes += text.length;
    this.ws.send(text);
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    const body = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    let parsed: unknown;
    try {
      if (isBinary) throw new Error("binary");
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      this.send(jsonRpcError(null, RpcErrorCodes.ParseError, "parse error: a message must be a JSON-RPC request as text"));
      return;
    }
    this.inFlight++;
    if (this.inFlight >= WEBSOCKET_REQUESTS_IN_FLIGHT_MAX) this.ws.pause();
    void this.answer(parsed, body).then((answers) => {
      for (const answer of answers) this.send(answer);
    }, () => {
      // An error that is not a JSON-RPC answer (a bug): the client still gets one, and the node goes on.
      this.send(jsonRpcError(idOf(parsed), RpcErrorCodes.InternalError, "internal error: the node failed to process the message"));
    }).finally(() => {
      this.inFlight--;
      if (this.ws.isPaused && this.inFlight < WEBSOCKET_REQUESTS_IN_FLIGHT_MAX) this.ws.resume();
    });
  }

  /** The answers to one message (several when a batch mixes subscriptions with other calls). */
  private async answer(parsed: unknown, body: Buffer): Promise<string[]> {
    if (isSubscriptionCall(parsed)) return [this.subscription(parsed)];
    if (!Array.isArray(parsed) || !parsed.some(isSubscriptionCall)) return this.dispatch(body, idOf(parsed));
    const local = parsed.filter(isSubscriptionCall).map((call) => JSON.parse(this.subscription(call)) as unknown);
    const others = parsed.filter((call) => !isSubscriptionCall(call));
    const rest = others.length === 0 ? [] : await this.dispatch(Buffer.from(JSON.stringify(others)), null);
    const merged = [...local, ...rest.flatMap((text) => {
      const value = JSON.parse(text) as unknown;
      return Array.isArray(value) ? value : [value];
    })];
    return [JSON.stringify(merged)];
  }

  /** eth_subscribe / eth_unsubscribe, served here: subscriptions live with this connection. */
  private subscription(call: { method: string; params?: unknown; id?: unknown }): string {
    const id = idOf(call);
    const charged = chargeRequest(this.owner.options.access, this.user);
    if ("refusal" in charged) return JSON.stringify({ ...(charged.refusal.body as object), id });
    const params = call.params ?? [];
    try {
      if (!Array.isArray(params)) throw new RpcError(RpcErrorCodes.InvalidParams, "'params' must be an array");
      const result = call.method === "eth_subscribe"
        ? this.owner.options.hub.subscribe(this, params)
        : this.owner.options.hub.unsubscribe(this, params[0]);
      return JSON.stringify({ jsonrpc: "2.0", id, result });
    } catch (error) {
      if (error instanceof RpcError) return jsonRpcError(id, error.code, error.message);
      throw error;
    }
  }

  /** Runs a body as an HTTP POST to the handshake's URL with its credential would run. */
  private async dispatch(body: Buffer, id: JsonRpcId): Promise<string[]> {
    const { authorization, origin, host } = this.handshake.headers;
    const request: RpcRequest = {
      method: "POST",
      path: this.handshake.path,
      query: "",
      headers: {
        "content-type": "application/json",
        ...(authorization === undefined ? {} : { authorization }),
        ...(origin === undefined ? {} : { origin }),
        ...(host === undefined ? {} : { host }),
      },
      body,
      callerCert: this.handshake.callerCert,
      ...(this.handshake.session === undefined ? {} : { session: this.handshake.session }),
      ...(this.handshake.remoteAddress === undefined ? {} : { remoteAddress: this.handshake.remoteAddress }),
    };
    let response: RpcResponse;
    try {
      response = await this.owner.options.dispatch(request);
    } catch (error) {
      // Refused before the app (service not open, body too large, a failed forward): say so in JSON-RPC.
      if (error instanceof CocoError) return [jsonRpcError(id, error.status === 429 ? AccessErrorCodes.RateLimited : RpcErrorCodes.ServerError, `${error.code}: ${error.message}`)];
      return [jsonRpcError(id, RpcErrorCodes.InternalError, "internal error: the node failed to process the request; the failure has been logged")];
    }
    if (response.body === undefined || response.body.length === 0) return [];
    if (response.body instanceof FileRangeBody) {
      void response.body.handle.close().catch(() => undefined);
      return [jsonRpcError(id, RpcErrorCodes.InternalError, `internal error: the node answered HTTP ${response.status} with a file`)];
    }
    const text = Buffer.isBuffer(response.body) ? response.body.toString("utf8") : response.body;
    try {
      const value = JSON.parse(text) as { jsonrpc?: unknown; error?: { code?: unknown; message?: unknown } } | unknown[];
      if (Array.isArray(value) || value.jsonrpc === "2.0") return [text];
      // A CCF error body (e.g. relayed from the primary): the same, as JSON-RPC.
      return [jsonRpcError(id, response.status === 429 ? AccessErrorCodes.RateLimited : RpcErrorCodes.ServerError, `${String(value.error?.code)}: ${String(value.error?.message)}`)];
    } catch {
      return [jsonRpcError(id, RpcErrorCodes.InternalError, `internal error: the node answered HTTP ${response.status} without JSON`)];
    }
  }
}
