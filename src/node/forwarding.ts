// Forwarding: a backup sends a request that must run on the primary (a write) over the
// node-to-node channel; the primary runs it as if the client had called it directly (the
// client's TLS certificate, checked by the backup's TLS stack, travels with it) and the
// backup answers the client with the primary's response, transaction id included.
// The channel is mutually authenticated with service-endorsed node certificates, so the
// primary trusts the backup's account of who the caller is, as CCF does.
import { CocoError } from "../util/index.js";
import { callerCertificateFromDer, errorBody, type RpcRequest, type RpcResponse } from "../rpc/index.js";
import { FRAME_FORWARD_REQUEST, FRAME_FORWARD_RESPONSE, type Transport } from "./replication.js";

interface ForwardedRequestHeader {
  id: number;
  method: string;
  path: string;
  query: string;
  headers: Record<string, string | string[] | undefined>;
  callerCertDer: string | null;
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

/** How long a backup waits for a primary to be known before answering 503. */
const PRIMARY_WAIT_MS = 3_000;

export interface ForwarderOptions {
  transport: Transport;
  /** The node requests go to: the current primary, if known. */
  primary: () => string | undefined;
  /** Runs a forwarded request locally (on the primary), never forwarding it again. */
  dispatchLocal: (request: RpcRequest) => RpcResponse | Promise<RpcResponse>;
  timeoutMs: number;
  logger: { warn(o: object, msg: string): void };
}

export class Forwarder {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: RpcResponse) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; to: string }>();
  forwardedCount = 0;

  constructor(private readonly options: ForwarderOptions) {}

  /** Backup side: sends the request to the primary and waits for its answer. */
  async forward(request: RpcRequest): Promise<RpcResponse> {
    // During an election (or right after this node joined) no primary is known yet: wait a little
    // for one rather than fail the client at once.
    let primary = this.options.primary();
    for (let waited = 0; primary === undefined && waited < PRIMARY_WAIT_MS; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      primary = this.options.primary();
    }
    if (primary === undefined) {
      throw new CocoError("ServiceUnavailable", `No primary has been known for ${PRIMARY_WAIT_MS} ms (an election may be in progress, or no majority is reachable); retry shortly.`, 503);
    }
    return this.send(primary, request);
  }

  private send(primary: string, request: RpcRequest): Promise<RpcResponse> {
    const id = this.nextId++;
    const header: ForwardedRequestHeader = {
      id, method: request.method, path: request.path, query: request.query, headers: request.headers,
      callerCertDer: request.callerCert ? request.callerCert.der.toString("base64") : null,
    };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CocoError("RequestForwardingTimedOut", `The primary (${primary}) did not answer the forwarded request within ${this.options.timeoutMs} ms; its outcome is unknown: check the transaction status before retrying.`, 504));
      }, this.options.timeoutMs);
      this.pending.set(id, { resolve, reject, timer, to: primary });
      if (!this.options.transport.send(primary, FRAME_FORWARD_REQUEST, frame(header, request.body))) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new CocoError("ServiceUnavailable", `Cannot reach the primary (${primary}) to forward the request; retry shortly.`, 503));
      }
      this.forwardedCount++;
    });
  }

  /** Primary side: runs a forwarded request and sends the response back to `from`. */
  async onRequest(from: string, payload: Buffer): Promise<void> {
    const framed = this.unframeFrom<ForwardedRequestHeader>(from, payload, "request");
    if (framed === undefined) return;
    const { header, body } = framed;
    let response: RpcResponse;
    try {
      const request: RpcRequest = {
        method: header.method, path: header.path, query: header.query, headers: header.headers, body,
        callerCert: header.callerCertDer === null ? undefined : callerCertificateFromDer(Buffer.from(header.callerCertDer, "base64")),
      };
      response = await this.options.dispatchLocal(request);
    } catch (error) {
      const e = error instanceof CocoError ? error : new CocoError("InternalError", (error as Error).message, 500);
      response = { status: e.status, headers: { "content-type": "application/json" }, body: errorBody(e.code, e.message) };
    }
    const out: ForwardedResponseHeader = { id: header.id, status: response.status, headers: response.headers ?? {} };
    this.options.transport.send(from, FRAME_FORWARD_RESPONSE, frame(out, response.body));
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
    const pending = this.pending.get(header.id);
    if (!pending || pending.to !== from) return;
    this.pending.delete(header.id);
    clearTimeout(pending.timer);
    pending.resolve({ status: header.status, headers: header.headers, ...(body.length > 0 ? { body } : {}) });
  }

  close(): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new CocoError("ServiceUnavailable", "The node is shutting down.", 503));
      this.pending.delete(id);
    }
  }
}
