// The frontend: for each request, route it, authenticate the caller, run the handler inside a
// KV transaction, and commit the transaction's writes through the engine. Conflicting
// transactions (possible once handlers await) are re-run a bounded number of times.
import { CocoError, formatTxId } from "../util/index.js";
import {
  authenticate, ErrorCodes, FileRangeBody, RerunRequest, type Caller, type EndpointDefinition, type EndpointRegistry, type HandlerResult,
  type RouteMatch, type RpcRequest, type RpcResponse,
} from "../rpc/index.js";
import type { Transaction } from "../kv/index.js";
import type { TransactionEngine } from "./engine.js";

const CONFLICT_RETRIES_MAX = 30;
/** How long an endpoint demanding committed state waits for the commit before answering 503. */
const COMMIT_WAIT_MS = 10_000;
const OPENAPI_PATH = "/app/api";
const APP_PREFIX = "/app";
const TXID_HEADER = "x-ms-ccf-transaction-id";

/** The deployed JS app as the frontend sees it; `openApi` (given the built-in endpoints) serves GET /app/api. */
export interface AppRouter {
  /** The app's endpoint, undefined for a path it does not serve (404 is then the built-ins' call). */
  tryRoute(method: string, path: string): RouteMatch | undefined;
  openApi?(builtIns: readonly EndpointDefinition[]): unknown;
}

/**
 * Node actions that a transaction requests (e.g. a ledger rekey from the constitution's
 * `apply`) and that must happen only if, and right after, that transaction commits.
 */
export interface CommitActions {
  /** Forget requests left by a transaction that did not commit. */
  reset(): void;
  /** The request's transaction committed locally at `seqno`. */
  committed(seqno: number): void;
}

/** What the frontend learnt of a request (for metrics and the access log). */
export interface RequestFacts {
  /** The endpoint's method and template path. */
  readonly method: string;
  readonly endpoint: string;
  /** Unset while not authenticated here (forwarded to the primary, or refused). */
  caller?: Caller;
  forwarded?: boolean;
}

/** Told of what only the frontend sees (metrics.ts). */
export interface FrontendObserver {
  /** A request's transaction committed locally at `seqno`. */
  committedLocally(seqno: number): void;
  /** A request runs again after a transaction conflict. */
  retried(method: string, endpoint: string): void;
}

/** How a backup hands requests to the primary (see forwarding.ts). */
export interface RequestForwarding {
  /** Whether this node is the primary now. */
  isPrimary(): boolean;
  forward(request: RpcRequest): Promise<RpcResponse>;
}

function frontendNotOpen(): CocoError {
  return new CocoError(ErrorCodes.FrontendNotOpen,
    "Frontend is not open: the service opens once members accept a transition_service_to_open proposal.", 404);
}

function mustForward(endpoint: EndpointDefinition): boolean {
  const forwarding = endpoint.forwarding ?? "sometimes";
  return forwarding === "always" || (forwarding === "sometimes" && endpoint.mode === "readwrite");
}

/**
 * Whether a session that once forwarded may have this endpoint forwarded too. Never for an
 * endpoint that says "never", nor for a read of /node/* (/node/state, /node/consensus, ...): those
 * describe the node that answers, and a backup must not report the primary's id and role as its own.
 */
function followsSession(endpoint: EndpointDefinition): boolean {
  if (endpoint.forwarding === "never") return false;
  return !(endpoint.mode === "readonly" && endpoint.path.startsWith("/node/"));
}

export class Frontend {
  /** Set once the node has channels: requests that need the primary go there from a backup. */
  forwarding: RequestForwarding | undefined;
  /**
   * Client sessions this backup has forwarded a request of. As in CCF, their later requests go
   * to the primary too (except to "never" endpoints and reads of /node/*, see followsSession), so
   * a client that wrote through a backup reads its own writes on the same connection.
   */
  private readonly forwardingSessions = new WeakSet<object>();
  /** Per request: the endpoint it matched and its caller, until the request is forgotten. */
  private readonly requestFacts = new WeakMap<RpcRequest, RequestFacts>();
  observer: FrontendObserver | undefined;

  /** The endpoint a request matched and who called it, if it got that far. */
  factsOf(request: RpcRequest): RequestFacts | undefined {
    return this.requestFacts.get(request);
  }

  constructor(
    private readonly registry: EndpointRegistry,
    private readonly engine: TransactionEngine,
    /** Whether the service is open: until then the user frontend (/app/*) answers FrontendNotOpen, as in CCF. */
    private readonly isOpen: () => boolean = () => true,
    private readonly actions?: CommitActions,
    /** The deployed JS app (CCF app bundle), whose endpoints take precedence under /app. */
    private readonly appRouter?: AppRouter,
  ) {
    // Requests waiting for their commit listen to the engine (see afterCommit).
    engine.setMaxListeners(0);
    const describe = appRouter?.openApi;
    if (describe !== undefined) {
      registry.install({
        method: "GET", path: OPENAPI_PATH, mode: "readonly", authPolicies: ["no_auth"],
        summary: "OpenAPI 3.0 description of the app endpoints (built-in and deployed JS app)",
        handler: () => ({ body: describe.call(appRouter, registry.list()) }),
      });
    }
  }

  readonly dispatch = (request: RpcRequest): RpcResponse | Promise<RpcResponse> => this.route(request, true);

  /** Runs a request forwarded by a backup: here, never forwarded again. */
  readonly dispatchLocal = (request: RpcRequest): RpcResponse | Promise<RpcResponse> => this.route(request, false);

  private route(request: RpcRequest, mayForward: boolean): RpcResponse | Promise<RpcResponse> {
    // A backup still catching up may not have seen the service open: what it forwards is the
    // primary's to judge, so it checks only what it runs itself (in runOrForward).
    const backupForwarding = mayForward && this.forwarding !== undefined && !this.forwarding.isPrimary();
    if (request.path.startsWith("/app/") && !backupForwarding && !this.isOpen()) {
      throw frontendNotOpen();
    }
    if (this.appRouter !== undefined && request.path.startsWith("/app/")) {
      const match = this.appRouter.tryRoute(request.method, request.path);
      if (match !== undefined) return this.runOrForward(match.endpoint, match.params, request, mayForward, APP_PREFIX);
    }
    const { endpoint, params } = this.registry.route(request.method, request.path);
    return this.runOrForward(endpoint, params, request, mayForward);
  }

  private runOrForward(endpoint: EndpointDefinition, params: Readonly<Record<string, string>>, request: RpcRequest, mayForward: boolean, pathPrefix = ""): RpcResponse | Promise<RpcResponse> {
    // The deployed app's paths are relative to /app (as in app.json).
    const facts: RequestFacts = { method: endpoint.method, endpoint: pathPrefix === "" ? endpoint.path : pathPrefix + endpoint.path };
    this.requestFacts.set(request, facts);
    const forwarding = this.forwarding;
    if (mayForward && forwarding !== undefined && !forwarding.isPrimary()) {
      const session = request.session;
      const sticky = session !== undefined && followsSession(endpoint) && this.forwardingSessions.has(session);
      if (sticky || mustForward(endpoint)) {
        if (session !== undefined) this.forwardingSessions.add(session);
        facts.forwarded = true;
        return forwarding.forward(request);
      }
      if (request.path.startsWith("/app/") && !this.isOpen()) throw frontendNotOpen();
    }
    return this.run(endpoint, params, request, 0);
  }

  private run(endpoint: EndpointDefinition, params: Readonly<Record<string, string>>, request: RpcRequest, attempt: number): RpcResponse | Promise<RpcResponse> {
    const tx = this.engine.store.begin();
    this.actions?.reset();
    const caller = authenticate(endpoint.authPolicies, request, tx);
    const facts = this.requestFacts.get(request);
    if (facts !== undefined) facts.caller = caller;
    const result = endpoint.handler({ request, params, caller, tx });
    if (result instanceof Promise) {
      return result.then((r) => this.finish(endpoint, params, request, tx, r, attempt), (error: unknown) => {
        // The handler asked for a fresh start; its transaction is dropped unapplied.
        if (error instanceof RerunRequest && attempt + 1 < CONFLICT_RETRIES_MAX) return this.run(endpoint, params, request, attempt + 1);
        throw error;
      });
    }
    return this.finish(endpoint, params, request, tx, result, attempt);
  }

  private finish(endpoint: EndpointDefinition, params: Readonly<Record<string, string>>, request: RpcRequest, tx: Transaction, result: HandlerResult, attempt: number): RpcResponse | Promise<RpcResponse> {
    const status = result.status ?? 200;
    const headers: Record<string, string> = result.headers ?? {};
    let txid: string;
    // As in CCF, a handler's writes are applied when it answers with a success status, unless
    // it said otherwise (`ccf.rpc.setApplyWrites`).
    if (tx.hasWrites && (result.applyWrites ?? (status >= 200 && status < 300))) {
      if (endpoint.mode === "readonly") {
        throw new CocoError(ErrorCodes.InternalError, `Read-only endpoint ${endpoint.method} ${endpoint.path} attempted to write; its writes were discarded.`, 500);
      }
      try {
        const id = this.engine.commit(tx, result.claimsDigest);
        this.actions?.committed(id.seqno);
        this.observer?.committedLocally(id.seqno);
        txid = formatTxId(id.view, id.seqno);
      } catch (error) {
        if (error instanceof CocoError && error.code === ErrorCodes.TransactionConflict) {
          if (attempt + 1 >= CONFLICT_RETRIES_MAX) {
            throw new CocoError(ErrorCodes.TransactionConflict, `Transaction conflicted ${CONFLICT_RETRIES_MAX} times in a row; retry the request.`, 409);
          }
          this.observer?.retried(endpoint.method, endpoint.path);
          return this.run(endpoint, params, request, attempt + 1);
        }
        throw error;
      }
    } else {
      const last = this.engine.lastTxId;
      txid = formatTxId(last.view, last.seqno);
    }
    headers[TXID_HEADER] = txid;
    const response = this.respond(status, headers, result.body);
    // An endpoint that demands committed state answers only once what it wrote (or read) is committed.
    if ((endpoint.consistency === "committed" || result.consistency === "committed") && status >= 200 && status < 300) {
      return this.afterCommit(txid).then(() => response);
    }
    return response;
  }

  private respond(status: number, headers: Record<string, string>, body: unknown): RpcResponse {
    if (body === undefined || body === null && status === 204) {
      return { status, headers };
    }
    if (typeof body === "string" || Buffer.isBuffer(body)) {
      headers["content-type"] ??= "text/plain";
      return { status, headers, body };
    }
    if (body instanceof FileRangeBody) {
      headers["content-type"] ??= "application/octet-stream";
      return { status, headers, body };
    }
    headers["content-type"] = "application/json";
    return { status, headers, body: JSON.stringify(body) };
  }

  /** Resolves once transaction `txid` is committed; 500 if it was rolled back, 503 after COMMIT_WAIT_MS. */
  private afterCommit(txid: string): Promise<void> {
    const [view, seqno] = txid.split(".").map(Number) as [number, number];
    const settled = (): boolean => {
      const status = this.engine.status(view, seqno);
      if (status === "Invalid") {
        throw new CocoError(ErrorCodes.InternalError, `Transaction ${txid} was rolled back (a new primary was elected); its effects are lost: retry the request.`, 500);
      }
      return status === "Committed";
    };
    if (seqno === 0 || settled()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        try {
          if (!settled()) return;
          cleanup();
          resolve();
        } catch (error) {
          cleanup();
          reject(error);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new CocoError(ErrorCodes.ServiceUnavailable, `Transaction ${txid} was not committed within ${COMMIT_WAIT_MS} ms (is a majority of nodes up?); check /app/tx before retrying.`, 503));
      }, COMMIT_WAIT_MS);
      const cleanup = () => {
        clearTimeout(timer);
        this.engine.off("commit", check);
        this.engine.off("rollback", check);
      };
      this.engine.on("commit", check);
      this.engine.on("rollback", check);
    });
  }
}
