// The node's HTTPS listener: TLS 1.3 with the node certificate, HTTP/1.1 keep-alive (and
// pipelining), bounded request bodies and connections. It knows nothing of endpoints: it turns
// each request into an RpcRequest and hands it to a dispatcher, and turns whatever comes back
// (or whatever is thrown) into an HTTP answer with a CCF-style error body.
import https from "node:https";
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import type { FileHandle } from "node:fs/promises";
import { pipeline, type Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import { ADMISSION_LOG_INTERVAL_MS, CocoError, ConnectionAdmission, RateLimitedLog, type AdmissionLogger } from "../util/index.js";
import { ErrorCodes, errorBody, withRetryAfter } from "./errors.js";

export interface RpcRequest {
  readonly method: string;
  /** Path without the query string, e.g. "/app/log/private". */
  readonly path: string;
  /** Raw query string without the leading "?" ("" when absent). */
  readonly query: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: Buffer;
  /** The TLS client certificate, if the client presented one. */
  readonly callerCert: CallerCertificate | undefined;
  /**
   * The client's connection (its TLS session), for state CCF keeps per session: once a backup
   * forwarded a request of a session, it forwards that session's later requests too.
   */
  readonly session?: object;
  /** The client's IP address as this node saw it (forwarded requests carry the backup's view). */
  readonly remoteAddress?: string;
}

export interface CallerCertificate {
  readonly der: Buffer;
  /** Lowercase hex SHA-256 of the DER: CCF's user id / member id. */
  readonly fingerprint: string;
  /** The fingerprint as a KV key (the users/members tables are keyed by the id's UTF-8 bytes). */
  readonly idKey: Buffer;
}

export interface RpcResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer | FileRangeBody;
}

/**
 * A response body read from an open file as it is sent (snapshot downloads): the node holds one
 * read buffer per download, not the file, and the bytes are those of the file that was opened
 * even if it is pruned meanwhile. The server closes the handle once the answer is sent or the
 * connection is gone; a HEAD answer only reports the length.
 */
export class FileRangeBody {
  /** Bytes `start` (inclusive) to `end` (exclusive) of `handle`. */
  constructor(readonly handle: FileHandle, readonly start: number, readonly end: number) {}

  get length(): number {
    return this.end - this.start;
  }
}

export type Dispatcher = (request: RpcRequest) => RpcResponse | Promise<RpcResponse>;

/**
 * A request to switch protocols (a WebSocket handshake), with its connection: the handler
 * either completes the upgrade on `socket` or answers with rejectUpgrade.
 */
export interface UpgradeRequest {
  /** The handshake as an RpcRequest (path, headers, client certificate), for authentication. */
  readonly request: RpcRequest;
  /** The raw request, for a WebSocket library to complete the handshake. */
  readonly message: IncomingMessage;
  readonly socket: Duplex;
  /** Bytes the client sent after the handshake's headers. */
  readonly head: Buffer;
}

export type UpgradeHandler = (upgrade: UpgradeRequest) => void;

/** Answers a handshake that is not upgraded with a plain HTTP response, and closes the connection. */
export function rejectUpgrade(socket: Duplex, status: number, body: string, headers: Readonly<Record<string, string>> = {}): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`, "connection: close", "content-type: application/json", `content-length: ${Buffer.byteLength(body)}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
}

/** One answered request, as metrics and the access log see it. */
export interface AnsweredRequest {
  /** Undefined when the request was refused before it was read whole (413). */
  readonly request: RpcRequest | undefined;
  readonly method: string;
  readonly status: number;
  /** From the request's arrival (its headers parsed) to its answer being handed to the socket. */
  readonly seconds: number;
  /** Response body bytes. */
  readonly bytes: number;
}

/** CCF's session metrics of one interface (GET /node/metrics). */
export interface HttpSessionStats {
  active: number;
  peak: number;
  parsingErrors: number;
  payloadTooLarge: number;
  headerTooLarge: number;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  certificatePem: string;
  privateKeyPem: string;
  /** Largest accepted request body (CCF's `max_body_size`, default 1 MiB). */
  bodyBytesMax: number;
  /** Open connections above this are refused (CCF's `max_open_sessions_hard`). */
  connectionsMax: number;
  /** Idle keep-alive connections are closed after this long. */
  keepAliveTimeoutMs: number;
  /** Admission control; absent fields take ADMISSION_DEFAULTS. */
  admission?: Partial<HttpAdmissionOptions>;
  /**
   * Whether a TLS client certificate entitles its connection to the reserved slots (the node
   * answers: a member's certificate). Without it no connection is privileged.
   */
  isPrivilegedCaller?: (cert: CallerCertificate) => boolean;
  /** Where refused connections are reported (rate limited). */
  logger?: AdmissionLogger;
  onError?: (error: unknown, request: RpcRequest | undefined) => void;
  /**
   * Handshakes that ask to switch protocols (WebSocket), on the same port and paths as HTTP.
   * Without it they are refused (node's default closes the connection).
   */
  onUpgrade?: UpgradeHandler;
  /** Called once per answered request, synchronously: keep it cheap (metrics, access log). */
  onAnswered?: (answered: AnsweredRequest) => void;
}

export interface HttpAdmissionOptions {
  /** The TLS handshake must finish within this long of the TCP connection (node's default is 120 s). */
  handshakeTimeoutMs: number;
  /** A connection with no traffic for this long is closed (between and before requests). */
  idleTimeoutMs: number;
  /** Open connections from one IP address beyond this are closed on arrival. */
  connectionsPerAddressMax: number;
  /**
   * Of connectionsMax, this many are kept for connections whose client certificate is
   * privileged (a member's): others are closed once the rest are taken, so that members can
   * still govern a node that anonymous clients have filled.
   */
  privilegedConnectionsReserved: number;
}

/** Defaults: see docs/configuration.md ("Admission control") for the reasoning. */
export const ADMISSION_DEFAULTS: HttpAdmissionOptions = {
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  connectionsPerAddressMax: 128,
  privilegedConnectionsReserved: 16,
};

const CALLER_CERT = Symbol("coco.callerCert");
/** Requests of a connection that have arrived and not been answered yet. */
const IN_FLIGHT = Symbol("coco.inFlight");
type SocketWithCert = TLSSocket & { [CALLER_CERT]?: CallerCertificate | null; [IN_FLIGHT]?: number };

/** A client certificate as requests carry it: its DER and CCF's id (SHA-256 of the DER, hex). */
export function callerCertificateFromDer(der: Buffer): CallerCertificate {
  const fingerprint = createHash("sha256").update(der).digest("hex");
  return { der, fingerprint, idKey: Buffer.from(fingerprint) };
}

/** The client certificate of a TLS connection, computed once per connection and cached. */
function callerCertificate(socket: SocketWithCert): CallerCertificate | undefined {
  let cached = socket[CALLER_CERT];
  if (cached === undefined) {
    const x509 = socket.getPeerX509Certificate?.();
    cached = x509 ? callerCertificateFromDer(x509.raw) : null;
    socket[CALLER_CERT] = cached;
  }
  return cached ?? undefined;
}

const JSON_HEADERS = { "content-type": "application/json" };

/**
 * Coalesces what node's HTTP server writes to one client connection in one turn of the event
 * loop into one TLS write. Node writes each pipelined response on its own once the previous
 * one's write completes: one TLS record and one syscall per response, ~25 µs each, a quarter
 * of the primary's main thread under load. Here a write is queued and reported done at once
 * (so the next pipelined response proceeds at once), and the queue goes to the socket, corked,
 * at the end of the turn (setImmediate): node's TLS layer then encrypts it as one record.
 * Order is kept; `end` and `destroySoon` write the queue first; a destroyed socket drops it,
 * as it would drop unsent data anyway.
 */
export function coalesceWrites(socket: TLSSocket): void {
  const write = socket.write.bind(socket) as (chunk: unknown, encoding?: BufferEncoding) => boolean;
  const end = socket.end.bind(socket) as (...args: unknown[]) => TLSSocket;
  // Flat [chunk, encoding, chunk, encoding, ...] of the turn's writes.
  let queued: unknown[] | null = null;
  const flush = (): void => {
    const chunks = queued;
    queued = null;
    if (chunks === null || socket.destroyed) return;
    socket.cork();
    for (let i = 0; i < chunks.length; i += 2) write(chunks[i], chunks[i + 1] as BufferEncoding | undefined);
    socket.uncork();
  };
  socket.write = function coalescedWrite(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    if (typeof encoding === "function") {
      callback = encoding;
      encoding = undefined;
    }
    if (queued === null) {
      queued = [];
      setImmediate(flush);
    }
    queued.push(chunk, encoding);
    if (typeof callback === "function") process.nextTick(callback as () => void);
    return true;
  } as TLSSocket["write"];
  socket.end = function coalescedEnd(...args: unknown[]): TLSSocket {
    flush();
    return end(...args);
  } as TLSSocket["end"];
}

/** Answers with a CCF-style error body; a 503 or 429 always carries `Retry-After` (the error's, or the default). */
export function sendError(res: ServerResponse, status: number, code: string, message: string, headers?: Readonly<Record<string, string>>): { status: number; bytes: number } {
  const body = errorBody(code, message);
  const bytes = Buffer.byteLength(body);
  res.writeHead(status, { ...withRetryAfter(status, headers ?? {}), ...JSON_HEADERS, "content-length": bytes });
  res.end(body);
  return { status, bytes };
}

export class HttpServer {
  private readonly server: https.Server;
  private readonly admission: HttpAdmissionOptions;
  private readonly connectionAdmission: ConnectionAdmission;
  private readonly refusals: RateLimitedLog;
  /** Established (post-handshake) connections without a privileged certificate. */
  private unprivilegedOpen = 0;
  /** Connections handed to onUpgrade: http no longer tracks them, close() ends them here. */
  private readonly upgraded = new Set<Duplex>();
  private readonly sessionStats: HttpSessionStats = { active: 0, peak: 0, parsingErrors: 0, payloadTooLarge: 0, headerTooLarge: 0 };

  constructor(
    private readonly options: HttpServerOptions,
    private readonly dispatch: Dispatcher,
  ) {
    this.admission = { ...ADMISSION_DEFAULTS, ...options.admission };
    checkAdmission(this.admission, options.connectionsMax);
    this.refusals = new RateLimitedLog(options.logger ?? { warn() {} }, ADMISSION_LOG_INTERVAL_MS);
    this.server = https.createServer(
      {
        cert: options.certificatePem,
        key: options.privateKeyPem,
        minVersion: "TLSv1.3",
        // Ask every client for a certificate; whether one is required is the endpoint's
        // authentication policy's decision, checked against the users/members tables.
        requestCert: true,
        rejectUnauthorized: false,
        keepAlive: true,
        keepAliveTimeout: options.keepAliveTimeoutMs,
        maxHeaderSize: 16 * 1024,
        // Timeouts so that a slow or stalled client cannot hold a connection forever.
        requestTimeout: 30_000,
        headersTimeout: 10_000,
        handshakeTimeout: this.admission.handshakeTimeoutMs,
      },
      (req, res) => this.onRequest(req, res),
    );
    // Node closes connections above maxConnections at once, before any TLS work.
    this.server.maxConnections = options.connectionsMax;
    // http's socket timeout: after idleTimeoutMs without traffic, before the first request too.
    // With a listener here http leaves the decision to us: close the connection only if it has
    // no request in flight (a request waiting for its commit or the primary is not idle).
    this.server.timeout = this.admission.idleTimeoutMs;
    this.server.on("timeout", (socket: SocketWithCert) => {
      if ((socket[IN_FLIGHT] ?? 0) === 0) socket.destroy();
    });
    this.connectionAdmission = new ConnectionAdmission({
      perAddressMax: this.admission.connectionsPerAddressMax,
      handshakeTimeoutMs: this.admission.handshakeTimeoutMs,
      name: "client",
      log: this.refusals,
    });
    this.connectionAdmission.attach(this.server);
    // Runs after http's own secureConnection listener, in the same tick: a socket destroyed
    // here has not been read yet, so it never delivers a request.
    this.server.on("secureConnection", (socket: TLSSocket) => this.onSecureConnection(socket));
    this.server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
      if (error.code === "HPE_HEADER_OVERFLOW") this.sessionStats.headerTooLarge++;
      else if (error.code !== "ECONNRESET" && error.code !== "ERR_HTTP_REQUEST_TIMEOUT") this.sessionStats.parsingErrors++;
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      else socket.destroy();
    });
    const onUpgrade = options.onUpgrade;
    if (onUpgrade !== undefined) {
      this.server.on("upgrade", (message: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(onUpgrade, message, socket, head));
    }
    this.server.on("tlsClientError", () => {
      /* a failed handshake concerns that client only */
    });
  }

  /** Open sessions now and at most so far, and their errors (CCF's session metrics). */
  get sessions(): HttpSessionStats {
    return { ...this.sessionStats };
  }

  /** Established connections that hold no privileged certificate (for tests and metrics). */
  get unprivilegedConnections(): number {
    return this.unprivilegedOpen;
  }

  private onSecureConnection(socket: TLSSocket): void {
    this.connectionAdmission.handshakeDone(socket);
    const cert = callerCertificate(socket as SocketWithCert);
    const privileged = cert !== undefined && this.isPrivileged(cert);
    if (!privileged) {
      const unprivilegedMax = this.options.connectionsMax - this.admission.privilegedConnectionsReserved;
      if (this.unprivilegedOpen >= unprivilegedMax) {
        this.refusals.warn({ listener: "client", remoteAddress: socket.remoteAddress, unprivilegedMax },
          "closed a connection: the remaining slots are reserved for members' certificates");
        socket.destroy();
        return;
      }
      this.unprivilegedOpen++;
      socket.once("close", () => this.unprivilegedOpen--);
    }
    const stats = this.sessionStats;
    stats.active++;
    if (stats.active > stats.peak) stats.peak = stats.active;
    socket.once("close", () => stats.active--);
    coalesceWrites(socket);
  }

  private isPrivileged(cert: CallerCertificate): boolean {
    try {
      return this.options.isPrivilegedCaller?.(cert) ?? false;
    } catch {
      return false;
    }
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", (error: NodeJS.ErrnoException) => {
        if (error.code === "EADDRINUSE") {
          reject(new CocoError("AddressInUse",
            `${this.options.host}:${this.options.port} is already in use: stop the process listening there or choose another port (sandbox: --port; node config: network.rpc_interfaces.*.bind_address).`, 400));
        } else reject(error);
      });
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.removeAllListeners("error");
        this.server.on("error", (error) => this.options.onError?.(error, undefined));
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const socket of this.upgraded) socket.destroy();
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = this.options.onAnswered === undefined ? 0 : performance.now();
    const socket = req.socket as SocketWithCert;
    socket[IN_FLIGHT] = (socket[IN_FLIGHT] ?? 0) + 1;
    res.once("close", () => {
      socket[IN_FLIGHT] = (socket[IN_FLIGHT] ?? 1) - 1;
    });
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > this.options.bodyBytesMax) {
      res.setHeader("connection", "close");
      sendError(res, 413, ErrorCodes.RequestBodyTooLarge,
        `Request body of ${declared} bytes exceeds the limit of ${this.options.bodyBytesMax} bytes (rpc_interfaces.*.http_configuration.max_body_size).`);
      this.refusedTooLarge(req, started);
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      if (tooLarge) return;
      received += chunk.length;
      if (received > this.options.bodyBytesMax) {
        tooLarge = true;
        res.setHeader("connection", "close");
        sendError(res, 413, ErrorCodes.RequestBodyTooLarge,
          `Request body exceeds the limit of ${this.options.bodyBytesMax} bytes (rpc_interfaces.*.http_configuration.max_body_size).`);
        this.refusedTooLarge(req, started);
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (tooLarge) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
      this.handle(req, res, body, started);
    });
    req.on("error", () => res.destroy());
  }

  private refusedTooLarge(req: IncomingMessage, started: number): void {
    this.sessionStats.payloadTooLarge++;
    this.options.onAnswered?.({ request: undefined, method: req.method ?? "GET", status: 413, seconds: (performance.now() - started) / 1000, bytes: 0 });
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: Buffer, started: number): void {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    let request: RpcRequest | undefined;
    try {
      request = {
        method: req.method ?? "GET",
        path: q === -1 ? url : url.slice(0, q),
        query: q === -1 ? "" : url.slice(q + 1),
        headers: req.headers,
        body,
        callerCert: callerCertificate(req.socket as SocketWithCert),
        session: req.socket,
        ...(req.socket.remoteAddress !== undefined ? { remoteAddress: req.socket.remoteAddress } : {}),
      };
      const result = this.dispatch(request);
      if (result instanceof Promise) {
        const r = request;
        result.then((response) => this.send(res, response, r, started), (error) => this.fail(res, error, r, started));
      } else {
        this.send(res, result, request, started);
      }
    } catch (error) {
      this.fail(res, error, request, started);
    }
  }

  private upgrade(onUpgrade: UpgradeHandler, message: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = message.url ?? "/";
    const q = url.indexOf("?");
    const tls = socket as SocketWithCert;
    const request: RpcRequest = {
      method: message.method ?? "GET",
      path: q === -1 ? url : url.slice(0, q),
      query: q === -1 ? "" : url.slice(q + 1),
      headers: message.headers,
      body: Buffer.alloc(0),
      callerCert: callerCertificate(tls),
      session: socket,
      ...(tls.remoteAddress !== undefined ? { remoteAddress: tls.remoteAddress } : {}),
    };
    this.upgraded.add(socket);
    socket.once("close", () => this.upgraded.delete(socket));
    try {
      onUpgrade({ request, message, socket, head });
    } catch (error) {
      this.options.onError?.(error, request);
      rejectUpgrade(socket, 500, errorBody(ErrorCodes.InternalError, "The node failed to process the request; the failure has been logged."));
    }
  }

  private send(res: ServerResponse, response: RpcResponse, request: RpcRequest, started: number): void {
    const body = response.body ?? "";
    // A 503 a handler returned, or one relayed from the primary, tells the client when to retry too.
    const headers = withRetryAfter(response.status, response.headers ?? {});
    // A HEAD answer carries the length its GET would have (e.g. /node/snapshot/{name}), no body.
    const bytes = typeof body === "string" ? Buffer.byteLength(body) : body.length;
    if (res.req.method !== "HEAD" || headers["content-length"] === undefined) headers["content-length"] = String(bytes);
    res.writeHead(response.status, headers);
    if (body instanceof FileRangeBody) this.sendFile(res, body);
    else res.end(body);
    this.answered(request, request.method, response.status, started, bytes);
  }

  /** Streams a file range with backpressure; a read error cuts the connection (the length was promised). */
  private sendFile(res: ServerResponse, body: FileRangeBody): void {
    if (res.req.method === "HEAD" || body.length === 0) {
      res.end();
      void body.handle.close().catch(() => undefined);
      return;
    }
    if (res.destroyed) {
      // The client left while the handler ran.
      void body.handle.close().catch(() => undefined);
      return;
    }
    const stream = body.handle.createReadStream({ start: body.start, end: body.end - 1, autoClose: true });
    // pipeline: backpressure, and whichever side fails or closes first ends the other (the
    // stream's autoClose then closes the handle).
    pipeline(stream, res, (error) => {
      if (error === undefined || error === null) return;
      const code = (error as NodeJS.ErrnoException).code;
      // A client that goes away mid-file is not the node's failure; a read error is.
      if (code !== "ERR_STREAM_PREMATURE_CLOSE" && code !== "ECONNRESET" && code !== "EPIPE") this.options.onError?.(error, undefined);
      res.destroy();
    });
  }

  private fail(res: ServerResponse, error: unknown, request: RpcRequest | undefined, started: number): void {
    let status: number;
    let bytes: number;
    if (error instanceof CocoError && error.status < 500) {
      ({ status, bytes } = sendError(res, error.status, error.code, error.message, error.headers));
    } else {
      this.options.onError?.(error, request);
      if (error instanceof CocoError) ({ status, bytes } = sendError(res, error.status, error.code, error.message, error.headers));
      else ({ status, bytes } = sendError(res, 500, ErrorCodes.InternalError, "The node failed to process the request; the failure has been logged."));
    }
    this.answered(request, request?.method ?? res.req.method ?? "GET", status, started, bytes);
  }

  private answered(request: RpcRequest | undefined, method: string, status: number, started: number, bytes: number): void {
    const observe = this.options.onAnswered;
    if (observe === undefined) return;
    try {
      observe({ request, method, status, seconds: (performance.now() - started) / 1000, bytes });
    } catch (error) {
      // Metrics and logs must never fail a request that was answered.
      this.options.onError?.(error, request);
    }
  }
}

function checkAdmission(admission: HttpAdmissionOptions, connectionsMax: number): void {
  for (const [name, value] of Object.entries(admission)) {
    if (!Number.isSafeInteger(value) || value < (name === "privilegedConnectionsReserved" ? 0 : 1)) {
      throw new CocoError("InvalidInput", `admission.${name} must be a ${name === "privilegedConnectionsReserved" ? "non-negative" : "positive"} integer, got ${String(value)}.`, 400);
    }
  }
  if (admission.privilegedConnectionsReserved >= connectionsMax) {
    throw new CocoError("InvalidInput",
      `admission.privilegedConnectionsReserved (${admission.privilegedConnectionsReserved}) must be below connectionsMax (${connectionsMax}), or no one else could connect.`, 400);
  }
}
