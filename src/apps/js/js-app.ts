// A CCF-style JS app: the bundle governance deployed with `set_js_app` (see bundle.ts), served
// from an endpoint registry of its own. Each bundle version gets a fresh isolate (its own heap,
// memory limit and time limit per call, no host globals) with the modules loaded once; each
// request is one call into it with a flat request array (guest-dispatch.ts) and `ccf.kv` bound
// to the request's transaction. The registry's paths are relative to `/app`, as in app.json.
import { randomBytes } from "node:crypto";
import type { Store } from "../../kv/index.js";
import { applyWriteBatch, CONSOLE_LINE_CHARS_MAX, JsRuntime, type HistoricalState, type JsBatchOutcome, type JsCallContext, type NodeHooks } from "../../js/index.js";
import {
  EndpointRegistry, ErrorCodes, RerunRequest,
  type AuthPolicyName, type EndpointContext, type EndpointDefinition, type Handler, type HandlerResult, type RouteMatch, type RpcRequest,
} from "../../rpc/index.js";
import { CocoError } from "../../util/index.js";
import { JS_APP_TABLES, readDeployedBundle, type JsEndpointProperties, type StoredJsRuntimeOptions } from "./bundle.js";
import { isUtf8 } from "node:buffer";
import { BodyKind, DISPATCH_EXPORT, DISPATCH_MODULE, dispatchModuleSource, packRequest, type GuestResponse, type InvokeArgs } from "./guest-dispatch.js";
import { historicalTarget, isTxId } from "./historical.js";
import { TransactionKvAccess } from "./kv-access.js";
import { ModuleSourceMaps } from "./source-maps.js";
import { buildAppOpenApi } from "./openapi.js";

export const APP_PATH_PREFIX = "/app";
const USERS_INFO_MAP = "public:ccf.gov.users.info";
const MEMBERS_INFO_MAP = "public:ccf.gov.members.info";
const SUPPORTED_POLICIES = new Set<string>(["user_cert", "member_cert", "any_cert", "jwt", "user_cose_sign1", "no_auth"]);
/** app.json's `{ "all_of": [...] }`, as bundle.ts renders it; src/rpc/auth.ts checks the names. */
const isSupportedPolicy = (p: string): boolean => SUPPORTED_POLICIES.has(p) || p.startsWith("all_of:");
/** isolated-vm's smallest heap; CCF's js_runtime_options may ask for less. */
const MEMORY_LIMIT_MIB_MIN = 8;
const RANDOM_POOL_BYTES = 4096;
/** Bounded: the cache is dropped whole when full (callers are re-read from the KV). */
const CALLER_CACHE_ENTRIES_MAX = 10_000;

export interface JsAppRuntimeOptions {
  /** Per-call wall-clock limit (ms); governance's `max_execution_time_ms` overrides it. */
  timeLimitMs?: number;
  /** Heap limit of the app's isolate (MiB); governance's `max_heap_bytes` overrides it. */
  memoryLimitMiB?: number;
  /** What `Date.now()` returns in the app after `ccf.enableUntrustedDateTime(true)`. */
  clockMs?: () => number;
}

/** `ccf.consensus.*` for apps; without it those functions throw "not available". */
export interface JsAppConsensus {
  lastCommittedTxId(): { view: number; seqno: number };
  viewForSeqno(seqno: number): number | null;
  statusForTxId(view: number, seqno: number): string;
  /** Historical queries; without it historical endpoints answer 501 and `ccf.historical.*` throws. */
  historical?: JsAppHistorical;
}

/** The node's historical state cache (src/node/historical.ts), as JS apps use it. */
export interface JsAppHistorical {
  stateAt(view: number, seqno: number): Promise<HistoricalState>;
  getStateRange(handle: number, startSeqno: number, endSeqno: number, secondsUntilExpiry: number | undefined): readonly HistoricalState[] | null;
  dropCachedStates(handle: number): boolean;
  /** Resolves when the handle's fetch ends; undefined when nothing is being fetched for it. */
  whenFetched(handle: number): Promise<void> | undefined;
}

export interface JsAppLogger {
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
  /** For the app's `console.*` (a pino logger has all four); absent levels fall back to warn. */
  info?(details: object, message: string): void;
  debug?(details: object, message: string): void;
}

/** Where the node measures the app (metrics.ts): seconds spent inside the isolate per entry. */
export interface JsAppObserver {
  jsExecution(seconds: number): void;
}

export interface JsAppDeps {
  store: Store;
  runtimeOptions?: JsAppRuntimeOptions;
  consensus?: JsAppConsensus;
  logger?: JsAppLogger;
  observer?: JsAppObserver;
  /**
   * Run the requests that reach the app in the same turn of the event loop (pipelined or
   * concurrent, up to the check phase) in one isolate entry, each in its own transaction (see `flush`). Handlers then
   * answer with promises; the node turns this on.
   */
  batchRequests?: boolean;
}

/** What one request's handler asked of the node through `ccf.rpc.*` and `getStateRange`. */
interface RequestState {
  claimsDigest: Buffer | undefined;
  /** `ccf.rpc.setApplyWrites`; undefined = CCF's default (apply on 2xx). */
  applyWrites: boolean | undefined;
  /** Range fetches that a `getStateRange` of the request is waiting for (rarely any). */
  fetches: Promise<void>[] | undefined;
}

function newRequestState(): RequestState {
  return { claimsDigest: undefined, applyWrites: undefined, fetches: undefined };
}

/** The request whose handler runs: what the headers and caller hooks answer from. */
interface ActiveRequest {
  readonly ctx: EndpointContext;
  readonly callerUndefined: boolean;
  /** "METHOD /app/path" as app.json names the endpoint (for the app's console lines). */
  readonly name: string;
}

/** CCF's `return_exception_details` and `log_exception_details`, both false by default (as in CCF). */
interface ExceptionOptions {
  returnDetails: boolean;
  logDetails: boolean;
}

/** What CCF answers for an exception in a JS handler when it does not return the details. */
export const JS_EXCEPTION_MESSAGE = "Exception thrown while executing.";

/** A request waiting for the next batch. */
interface BatchSlot extends ActiveRequest {
  readonly index: number;
  readonly readOnly: string | undefined;
  readonly generation: number;
  /** Runs the request on its own, as without batching. */
  readonly alone: (ctx: EndpointContext) => HandlerResult | Promise<HandlerResult>;
  readonly req: RequestState;
  resolve(result: HandlerResult | Promise<HandlerResult>): void;
  reject(error: unknown): void;
}

/** At most this many requests per isolate entry; more wait for the next one. */
const BATCH_REQUESTS_MAX = 64;
/**
 * An endpoint whose request, run again on its own after its batch failed, took longer than this
 * is not batched again: a batch shares one time limit, which enough such requests exceed.
 */
const BATCH_SLOW_REQUEST_MS = 10;

/** A certificate caller as CCF's JS apps see it (as JSON), cached per id while its info entry is unchanged. */
interface CachedCaller {
  infoRaw: Buffer | undefined;
  json: string;
}

const NO_AUTH_CALLER_JSON = JSON.stringify({ policy: "no_auth" });

export class JsApp {
  private currentRegistry = new EndpointRegistry();
  private currentEndpoints: readonly JsEndpointProperties[] = [];
  private runtime: JsRuntime | undefined;
  /** Bumped by every reload; a handler of an older bundle refuses to run. */
  private generation = 0;
  private dirty = true;
  private readonly kv = new TransactionKvAccess();
  private readonly callContext: JsCallContext;
  /** What the running request's handler asked of the node (ccf.rpc.*, getStateRange). */
  private req: RequestState = newRequestState();
  /** Requests waiting for the next batch (see schedule). */
  private queue: BatchSlot[] = [];
  /** Endpoints (by index) that answered with a promise or fetch ranges: never batched again. */
  private readonly unbatchable = new Set<number>();
  /** Requests that ran in a batch and must now run on their own (see RerunRequest). */
  private readonly runAlone = new WeakSet<RpcRequest>();
  /** For tests and metrics: isolate entries that ran a batch, and the requests they ran. */
  batchStats = { batches: 0, requests: 0 };
  private readonly callerCache = new Map<string, CachedCaller>();
  /** The request whose handler is running (its headers and caller are fetched on demand). */
  private activeRequest: ActiveRequest | undefined;
  private randomPool = Buffer.alloc(0);
  private randomOffset = 0;
  private readonly logger: JsAppLogger | undefined;
  private exceptionOptions: ExceptionOptions = { returnDetails: false, logDetails: false };
  /** The deployed modules' inline source maps (coco app build), for exception traces. */
  private sourceMaps = new ModuleSourceMaps([]);

  constructor(private readonly deps: JsAppDeps) {
    this.logger = deps.logger;
    const hooks: Partial<NodeHooks> = {
      setClaimsDigest: (digest) => {
        if (digest.length !== 32) throw new TypeError(`ccf.rpc.setClaimsDigest: expected a 32-byte SHA-256 digest, got ${digest.length} bytes`);
        this.req.claimsDigest = Buffer.from(digest);
      },
      setApplyWrites: (force) => {
        if (typeof force !== "boolean") throw new TypeError("ccf.rpc.setApplyWrites: expected a boolean");
        this.req.applyWrites = force;
      },
      requestHeaders: () => JSON.stringify(this.running().ctx.request.headers),
      requestCaller: () => {
        const active = this.running();
        return active.callerUndefined ? "" : this.callerJson(active.ctx);
      },
      log: (level, text) => this.consoleLine(level, text),
    };
    const consensus = deps.consensus;
    if (consensus !== undefined) {
      hooks.getLastCommittedTxId = () => consensus.lastCommittedTxId();
      hooks.getViewForSeqno = (seqno) => consensus.viewForSeqno(seqno);
      hooks.getStatusForTxId = (view, seqno) => consensus.statusForTxId(view, seqno);
    }
    const historical = consensus?.historical;
    if (historical !== undefined) {
      hooks.getStateRange = (handle, start, end, expiry) => {
        const states = historical.getStateRange(handle, start, end, expiry);
        const fetching = states === null ? historical.whenFetched(handle) : undefined;
        if (fetching !== undefined) (this.req.fetches ??= []).push(fetching);
        return states;
      };
      hooks.dropCachedStates = (handle) => historical.dropCachedStates(handle);
    }
    // One context for every call: nothing per request is allocated for it.
    this.callContext = { kv: this.kv, hooks, historicalState: undefined, bufferWrites: false };
  }

  /** The app's endpoints (paths relative to `/app`), reloaded first if the bundle changed. */
  get registry(): EndpointRegistry {
    if (this.dirty) this.reload();
    return this.currentRegistry;
  }

  /** The deployed endpoint definitions (for OpenAPI and listings). */
  get endpoints(): readonly JsEndpointProperties[] {
    if (this.dirty) this.reload();
    return this.currentEndpoints;
  }

  /** `GET /app/api`: OpenAPI 3.0 for the deployed endpoints plus the node's built-in `/app` ones. */
  openApi(builtIns: readonly EndpointDefinition[]): object {
    return buildAppOpenApi({ title: "Coco application API", version: "0.0.1" }, this.endpoints, builtIns);
  }

  /** Routes a full request path (`/app/...`); throws the registry's 404/405. */
  route(method: string, path: string): RouteMatch {
    const match = this.tryRoute(method, path);
    if (match === undefined) throw new CocoError(ErrorCodes.ResourceNotFound, `Unknown path: ${path}.`, 404);
    return match;
  }

  /** The app's endpoint for `/app/<path>`, or undefined when the app has no such path. */
  tryRoute(method: string, path: string): RouteMatch | undefined {
    if (!path.startsWith(`${APP_PATH_PREFIX}/`)) return undefined;
    return this.registry.tryRoute(method, path.slice(APP_PATH_PREFIX.length));
  }

  /** Marks the bundle stale whenever governance writes it or the store rolls back; reloads lazily. */
  watch(store: Store): void {
    const stale = () => void (this.dirty = true);
    for (const table of Object.values(JS_APP_TABLES)) store.onWrite(table, stale);
    store.onRollback(stale);
  }

  /** Rebuilds the registry and the isolate from the bundle in `store` (default: the app's store). */
  reload(store: Store = this.deps.store): void {
    this.dirty = false;
    this.generation++;
    this.unbatchable.clear(); // endpoint indices are per bundle
    this.runtime?.dispose();
    this.runtime = undefined;
    this.callerCache.clear();
    const bundle = readDeployedBundle(store.begin());
    this.sourceMaps = new ModuleSourceMaps(bundle.modules, (module, problem) => this.logger?.warn({ module, problem }, "JS app: ignoring a module's unreadable source map"));
    this.exceptionOptions = {
      returnDetails: bundle.runtimeOptions?.return_exception_details === true,
      logDetails: bundle.runtimeOptions?.log_exception_details === true,
    };
    for (const problem of bundle.problems) this.logger?.warn({ problem }, "JS app: ignoring an unreadable bundle entry");
    const registry = new EndpointRegistry();
    let loadError: string | undefined;
    if (bundle.endpoints.length > 0) {
      try {
        this.runtime = this.createRuntime(bundle.runtimeOptions);
        const targets = bundle.endpoints.map((e) => ({ module: e.jsModule, fn: e.jsFunction, method: e.method, route: `${APP_PATH_PREFIX}${e.path}` }));
        if (bundle.modules.some((m) => m.name === DISPATCH_MODULE)) throw new Error(`a bundle module may not be named ${DISPATCH_MODULE}`);
        this.runtime.loadModules([...bundle.modules, { name: DISPATCH_MODULE, source: dispatchModuleSource(targets) }]);
      } catch (error) {
        loadError = error instanceof Error ? error.message : String(error);
        this.runtime?.dispose();
        this.runtime = undefined;
        this.logger?.error({ err: error }, "JS app: the deployed bundle failed to load; its endpoints answer 500");
      }
    }
    bundle.endpoints.forEach((endpoint, index) => {
      try {
        this.install(registry, endpoint, index, loadError);
      } catch (error) {
        this.logger?.warn({ err: error, endpoint: `${endpoint.method} ${endpoint.path}` }, "JS app: endpoint not installed");
      }
    });
    this.currentRegistry = registry;
    this.currentEndpoints = bundle.endpoints;
  }

  dispose(): void {
    this.runtime?.dispose();
    this.runtime = undefined;
    this.generation++;
  }

  private createRuntime(stored: StoredJsRuntimeOptions | undefined): JsRuntime {
    const options = this.deps.runtimeOptions ?? {};
    const heapBytes = stored?.max_heap_bytes;
    const memoryLimitMiB = typeof heapBytes === "number" && heapBytes > 0
      ? Math.max(MEMORY_LIMIT_MIB_MIN, Math.ceil(heapBytes / (1024 * 1024)))
      : options.memoryLimitMiB;
    const storedTime = stored?.max_execution_time_ms;
    const timeLimitMs = typeof storedTime === "number" && storedTime > 0 ? storedTime : options.timeLimitMs;
    return new JsRuntime({
      ...(timeLimitMs !== undefined ? { timeLimitMs } : {}),
      ...(memoryLimitMiB !== undefined ? { memoryLimitMiB } : {}),
      ...(options.clockMs !== undefined ? { clockMs: options.clockMs } : {}),
      randomBytes: (length) => this.random(length),
    });
  }

  /** Seeds for `Math.random`: slices of a pooled `randomBytes`, one syscall per 256 requests. */
  private random(length: number): Uint8Array {
    if (this.randomOffset + length > this.randomPool.length) {
      this.randomPool = randomBytes(Math.max(RANDOM_POOL_BYTES, length));
      this.randomOffset = 0;
    }
    const out = this.randomPool.subarray(this.randomOffset, this.randomOffset + length);
    this.randomOffset += length;
    return out;
  }

  private install(registry: EndpointRegistry, endpoint: JsEndpointProperties, index: number, loadError: string | undefined): void {
    const name = `${endpoint.method} ${APP_PATH_PREFIX}${endpoint.path}`;
    const supported = endpoint.authnPolicies.filter(isSupportedPolicy) as AuthPolicyName[];
    const unsupported = endpoint.authnPolicies.filter((p) => !isSupportedPolicy(p));
    if (unsupported.length > 0) {
      this.logger?.warn({ endpoint: name, policies: unsupported },
        "JS app: authentication policies not implemented yet are treated as never matching");
    }
    // CCF: an endpoint without policies is unauthenticated and its request.caller is undefined.
    const noPolicies = endpoint.authnPolicies.length === 0;
    let handler: Handler;
    if (loadError !== undefined) {
      handler = () => { throw new CocoError(ErrorCodes.InternalError, `The JS app failed to load: ${loadError}`, 500); };
    } else if (endpoint.mode === "historical" && this.deps.consensus?.historical === undefined) {
      handler = () => { throw new CocoError("NotImplemented", `${name}: this node serves no historical queries (app.json "mode": "historical").`, 501); };
    } else if (!noPolicies && supported.length === 0) {
      handler = () => {
        throw new CocoError(ErrorCodes.InvalidAuthenticationInfo,
          `Invalid authentication credentials. ${name} accepts only ${unsupported.join(", ")}, not implemented by this service yet.`, 401);
      };
    } else {
      handler = this.makeHandler(endpoint, index, name, noPolicies);
    }
    registry.install({
      method: endpoint.method,
      path: endpoint.path,
      authPolicies: noPolicies || supported.length === 0 ? ["no_auth"] : supported,
      mode: endpoint.mode === "readwrite" ? "readwrite" : "readonly",
      handler,
      summary: `${endpoint.jsModule} ${endpoint.jsFunction}`,
      // CCF's forwarding_required: on a backup, "always" sends even reads to the primary.
      ...(endpoint.forwardingRequired === "always" || endpoint.forwardingRequired === "never" || endpoint.forwardingRequired === "sometimes"
        ? { forwarding: endpoint.forwardingRequired } : {}),
    });
  }

  private makeHandler(endpoint: JsEndpointProperties, index: number, name: string, callerUndefined: boolean): Handler {
    // CCF runs readonly and historical endpoints with read-only access to the current KV.
    const readOnly = endpoint.mode === "readwrite" ? undefined : name;
    const generation = this.generation;
    const run = (ctx: EndpointContext, state?: HistoricalState) => this.invoke(ctx, index, name, callerUndefined, readOnly, generation, state);
    const historical = this.deps.consensus?.historical;
    if (endpoint.mode !== "historical" || historical === undefined) {
      const single = (ctx: EndpointContext) => this.retryOnceFetched(ctx, run(ctx), () => run(ctx));
      if (this.deps.batchRequests !== true) return single;
      // A request run again alone after its batch failed shows whether its endpoint is fit for
      // batches: one that takes long or hits a limit would make every batch it joins fail and
      // run again, so it is not batched again.
      const rerun = (ctx: EndpointContext) => {
        const started = performance.now();
        try {
          return single(ctx);
        } catch (error) {
          const cause = error instanceof CocoError ? (error.cause as { code?: unknown } | undefined)?.code : undefined;
          if (cause === "JsTimeout" || cause === "JsOutOfMemory") this.unbatchable.add(index);
          throw error;
        } finally {
          if (performance.now() - started > BATCH_SLOW_REQUEST_MS) this.unbatchable.add(index);
        }
      };
      return (ctx) => {
        if (this.runAlone.has(ctx.request)) return rerun(ctx);
        if (this.unbatchable.has(index)) return single(ctx);
        return new Promise<HandlerResult>((resolve, reject) => {
          const slot: BatchSlot = { ctx, index, name, callerUndefined, readOnly, generation, alone: single, req: newRequestState(), resolve, reject };
          // setImmediate, not a microtask: the batch then holds every request that the poll
          // phase's socket reads delivered (measured: ~30 per batch under the bench's load; with
          // a microtask, each request flushed alone).
          if (this.queue.push(slot) === 1) setImmediate(() => this.flush());
          else if (this.queue.length >= BATCH_REQUESTS_MAX) this.flush();
        });
      };
    }
    const consensus = this.deps.consensus!;
    return async (ctx) => {
      const id = historicalTarget(ctx.request.headers, (view, seqno) => consensus.statusForTxId(view, seqno));
      if (!isTxId(id)) return id;
      // CCF answers 202 + Retry-After while it fetches the entry; Coco reads its own ledger, so it waits.
      const state = await historical.stateAt(id.view, id.seqno);
      return this.retryOnceFetched(ctx, run(ctx, state), () => run(ctx, state));
    };
  }

  /**
   * Runs the queued requests in one isolate entry, one after the other and each in its own
   * transaction: the guest tells the host which request it is before that request's first KV
   * access or hook (select), and each request's buffered writes are applied to its own
   * transaction afterwards. Entering the isolate once per request was most of the sandbox's cost
   * under load. A request that threw, answered with a promise or fetched historical ranges is
   * run again on its own in a fresh transaction (RerunRequest), so errors, async handlers and
   * 202-then-retry behave exactly as without batching; so is every request of a batch that hit
   * the time or memory limit, so only the culprit fails.
   */
  private flush(): void {
    const slots = this.queue;
    this.queue = [];
    if (slots.length === 0) return;
    const runtime = this.runtime;
    const batched: BatchSlot[] = [];
    const packed: string[] = [];
    for (const slot of slots) {
      const body = slot.ctx.request.body;
      // Binary bodies cross as ArrayBuffers (one call each); a redeploy answers 503 through alone().
      if (slots.length === 1 || runtime === undefined || slot.generation !== this.generation || (body.length !== 0 && !isUtf8(body))) {
        this.settleAlone(slot);
        continue;
      }
      batched.push(slot);
      packed.push(packRequest(slot.index, slot.ctx.request.path, slot.ctx.request.query,
        isEmpty(slot.ctx.params) ? "" : JSON.stringify(slot.ctx.params), body.toString("utf8")));
    }
    if (batched.length === 0 || runtime === undefined) return;
    if (batched.length === 1) {
      this.settleAlone(batched[0]!);
      return;
    }
    let outcomes: JsBatchOutcome[];
    const started = performance.now();
    try {
      outcomes = runtime.callBatch(DISPATCH_MODULE, DISPATCH_EXPORT, packed, {
        kv: this.kv,
        hooks: this.callContext.hooks!,
        bufferWrites: batched.map((slot) => slot.readOnly === undefined),
        select: (i) => this.select(batched, i),
      });
    } catch (error) {
      for (const slot of batched) this.rerunAlone(slot, `its batch failed (${error instanceof Error ? error.message : String(error)})`);
      return;
    } finally {
      this.deselect();
      this.deps.observer?.jsExecution((performance.now() - started) / 1000);
    }
    this.batchStats.batches++;
    this.batchStats.requests += batched.length;
    batched.forEach((slot, i) => {
      const outcome = outcomes[i];
      if (outcome === undefined || !outcome.ok) {
        if (outcome?.reason === "async") this.unbatchable.add(slot.index);
        this.rerunAlone(slot, outcome === undefined ? "no outcome" : outcome.reason);
        return;
      }
      if (slot.req.fetches !== undefined) {
        this.unbatchable.add(slot.index);
        this.rerunAlone(slot, "it fetches historical ranges");
        return;
      }
      try {
        if (outcome.writes !== undefined) {
          this.kv.attach(slot.ctx.tx, slot.readOnly);
          try {
            applyWriteBatch(this.kv, outcome.writes);
          } finally {
            this.kv.detach();
          }
        }
        slot.resolve(this.toResult(outcome.value as GuestResponse, slot.name, slot.req));
      } catch (error) {
        slot.reject(translateError(error, slot.name));
      }
    });
  }

  /** Points the host (KV, hooks, headers and caller) at request `i` of the running batch; -2: at none. */
  private select(batch: readonly BatchSlot[], i: number): void {
    const slot = batch[i];
    if (slot === undefined) {
      this.deselect();
      return;
    }
    this.kv.attach(slot.ctx.tx, slot.readOnly);
    this.activeRequest = slot;
    this.req = slot.req;
  }

  private deselect(): void {
    this.kv.detach();
    this.activeRequest = undefined;
    this.req = newRequestState();
  }

  private settleAlone(slot: BatchSlot): void {
    try {
      slot.resolve(slot.alone(slot.ctx));
    } catch (error) {
      slot.reject(error);
    }
  }

  private rerunAlone(slot: BatchSlot, reason: string): void {
    this.runAlone.add(slot.ctx.request);
    slot.reject(new RerunRequest(reason));
  }

  /** One call into the isolate for the request, with the KV bound to its transaction. */
  private invoke(ctx: EndpointContext, index: number, name: string, callerUndefined: boolean, readOnly: string | undefined,
    generation: number, historicalState: HistoricalState | undefined): HandlerResult {
    const runtime = this.runtime;
    if (runtime === undefined || generation !== this.generation) {
      throw new CocoError(ErrorCodes.ServiceUnavailable, "The JS app was redeployed while this request was routed; retry it.", 503);
    }
    const request = ctx.request;
    const body = request.body;
    const text = body.length === 0 || isUtf8(body);
    const packed = packRequest(index, request.path, request.query, isEmpty(ctx.params) ? "" : JSON.stringify(ctx.params), text ? body.toString("utf8") : "");
    const args: InvokeArgs = text ? [packed] : [packed, exactArrayBuffer(body)];
    this.kv.attach(ctx.tx, readOnly);
    const req = newRequestState();
    this.req = req;
    this.callContext.historicalState = historicalState;
    this.callContext.bufferWrites = readOnly === undefined;
    this.activeRequest = { ctx, callerUndefined, name };
    let out: GuestResponse;
    const started = performance.now();
    try {
      out = runtime.call(DISPATCH_MODULE, DISPATCH_EXPORT, args, this.callContext) as GuestResponse;
    } catch (error) {
      // CCF: an exception is a 500 (its writes still apply if the handler asked for it), with
      // the JS message and trace only where js_runtime_options ask for them.
      if (error instanceof CocoError && error.code === "JsError") return this.exceptionResult(error, name, req);
      throw translateError(error, name);
    } finally {
      this.kv.detach();
      this.callContext.historicalState = undefined;
      this.activeRequest = undefined;
      this.deps.observer?.jsExecution((performance.now() - started) / 1000);
    }
    return this.toResult(out, name, req);
  }

  /**
   * CCF's range queries answer 202 (retry later) while `getStateRange` fetches. When a call that
   * wrote nothing answers 202 while its fetches run, Coco waits for them (its own ledger, a
   * bounded range) and runs the handler once more, so the client gets the answer at once.
   */
  private retryOnceFetched(ctx: EndpointContext, result: HandlerResult, again: () => HandlerResult): HandlerResult | Promise<HandlerResult> {
    const fetches = this.req.fetches;
    if (fetches === undefined) return result; // the common case
    this.req.fetches = undefined;
    if (result.status !== 202 || ctx.tx.hasWrites) return result;
    return Promise.all(fetches).then(again);
  }

  private toResult(out: GuestResponse, name: string, req: RequestState): HandlerResult {
    const [status, userHeaders, kind, body] = out;
    if (typeof status !== "number" || !Number.isInteger(status) || status < 100 || status > 599) {
      throw new CocoError(ErrorCodes.InternalError, `${name}: the response's statusCode must be an integer HTTP status, got ${JSON.stringify(status)}.`, 500);
    }
    const headers: Record<string, string> = {};
    if (kind === BodyKind.Json) headers["content-type"] = "application/json";
    else if (kind === BodyKind.Text) headers["content-type"] = "text/plain";
    else if (kind === BodyKind.Binary) headers["content-type"] = "application/octet-stream";
    if (userHeaders !== undefined) Object.assign(headers, userHeaders);
    const result: HandlerResult = { status, headers };
    if (body !== undefined) result.body = typeof body === "string" ? body : Buffer.from(body);
    if (req.claimsDigest !== undefined) result.claimsDigest = req.claimsDigest;
    if (req.applyWrites !== undefined) result.applyWrites = req.applyWrites;
    return result;
  }

  /**
   * CCF's answer to an exception in a handler: 500 InternalError "Exception thrown while
   * executing.", with `details: [{ code: "JSException", message, trace }]` only if
   * return_exception_details is set, and the message and trace in the node's log only if
   * log_exception_details is set (both can leak private data: to the caller, to the host).
   */
  private exceptionResult(error: CocoError, name: string, req: RequestState): HandlerResult {
    const details = exceptionDetails(error);
    const reason = details.reason;
    const trace = details.trace === undefined ? undefined : this.sourceMaps.mapTrace(details.trace);
    if (this.exceptionOptions.logDetails) this.logger?.error({ endpoint: name, reason, trace }, "JS app: exception thrown while executing");
    else this.logger?.warn({ endpoint: name }, "JS app: exception thrown while executing (set_js_runtime_options log_exception_details to log it)");
    const body: { code: string; message: string; details?: object[] } = { code: ErrorCodes.InternalError, message: JS_EXCEPTION_MESSAGE };
    if (this.exceptionOptions.returnDetails) body.details = [{ code: "JSException", message: reason, ...(trace !== undefined ? { trace } : {}) }];
    return {
      status: 500,
      headers: { "content-type": "application/json" },
      body: { error: body },
      ...(req.applyWrites !== undefined ? { applyWrites: req.applyWrites } : {}),
    };
  }

  /** A guest `console.*` line, tagged with the endpoint whose handler wrote it. */
  private consoleLine(level: string, text: string): void {
    const logger = this.logger;
    if (logger === undefined || typeof text !== "string") return;
    const details = { app: "js", endpoint: this.activeRequest?.name, console: level };
    const message = text.length > CONSOLE_LINE_CHARS_MAX ? text.slice(0, CONSOLE_LINE_CHARS_MAX) : text;
    if (level === "error") logger.error(details, message);
    else if (level === "warn") logger.warn(details, message);
    else if (level === "debug" && logger.debug !== undefined) logger.debug(details, message);
    else if (logger.info !== undefined) logger.info(details, message);
    else logger.warn(details, message);
  }

  private running(): ActiveRequest {
    if (this.activeRequest === undefined) throw new TypeError("no JS app request is running");
    return this.activeRequest;
  }

  /** CCF's request.caller as JSON: `{ policy, id, data, cert }` for certificate policies. */
  private callerJson(ctx: EndpointContext): string {
    const caller = ctx.caller;
    if (caller.policy === "no_auth") return NO_AUTH_CALLER_JSON;
    if (caller.policy === "user_cose_sign1") {
      // Not cached: cose.content differs per request. The guest turns the hex back into an ArrayBuffer.
      const info = ctx.tx.get(USERS_INFO_MAP, Buffer.from(caller.id));
      const data = info === undefined ? null : parseInfoData(info, "user_data");
      return JSON.stringify({ policy: caller.policy, id: caller.id, data, cert: caller.cert, cose: { content: caller.cose.content.toString("hex") } });
    }
    // jwt, any_cert and all_of callers serialise themselves in CCF's shape (src/rpc/auth.ts).
    if (caller.policy !== "user_cert" && caller.policy !== "member_cert") return JSON.stringify(caller);
    const isUser = caller.policy === "user_cert";
    const cacheKey = `${caller.policy}:${caller.id}`;
    const infoRaw = ctx.tx.get(isUser ? USERS_INFO_MAP : MEMBERS_INFO_MAP, Buffer.from(caller.id));
    const cached = this.callerCache.get(cacheKey);
    if (cached !== undefined && cached.infoRaw === infoRaw) return cached.json;
    let data: unknown = null;
    if (infoRaw !== undefined) {
      try {
        const info = JSON.parse(infoRaw.toString("utf8")) as { user_data?: unknown; member_data?: unknown };
        data = (isUser ? info.user_data : info.member_data) ?? null;
      } catch {
        data = null;
      }
    }
    const json = JSON.stringify({ policy: caller.policy, id: caller.id, data, cert: caller.cert });
    if (this.callerCache.size >= CALLER_CACHE_ENTRIES_MAX) this.callerCache.clear();
    this.callerCache.set(cacheKey, { infoRaw, json });
    return json;
  }
}

function parseInfoData(infoRaw: Buffer, field: "user_data" | "member_data"): unknown {
  try {
    return (JSON.parse(infoRaw.toString("utf8")) as Record<string, unknown>)[field] ?? null;
  } catch {
    return null;
  }
}

function isEmpty(record: Readonly<Record<string, string>>): boolean {
  for (const _ in record) return false;
  return true;
}

/** The body as an ArrayBuffer of exactly its bytes (a Buffer may be a view into a larger pool). */
function exactArrayBuffer(body: Buffer): ArrayBuffer {
  if (body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && body.buffer instanceof ArrayBuffer) return body.buffer;
  const copy = new ArrayBuffer(body.byteLength);
  new Uint8Array(copy).set(body);
  return copy;
}

/** The JS message of an exception and its guest stack (without the dispatch glue's frames). */
function exceptionDetails(error: CocoError): { reason: string; trace: string | undefined } {
  const prefix = `${DISPATCH_MODULE} ${DISPATCH_EXPORT}: `;
  const text = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  const lines = text.split("\n").filter((line) => !line.includes(DISPATCH_MODULE));
  const frames = lines.filter((line) => /^\s+at /.test(line));
  const reason = lines.filter((line) => !/^\s+at /.test(line)).join("\n");
  return { reason, trace: frames.length > 0 ? frames.map((line) => line.trim()).join("\n") : undefined };
}

/** Time and memory limits become 500 InternalError naming the endpoint and the limit. */
function translateError(error: unknown, name: string): unknown {
  if (!(error instanceof CocoError)) return error;
  switch (error.code) {
    case "JsTimeout":
      return new CocoError(ErrorCodes.InternalError, `${name}: the JS handler exceeded the time limit and was stopped; its writes were discarded. (${error.message})`, 500, { cause: error });
    case "JsOutOfMemory":
      return new CocoError(ErrorCodes.InternalError, `${name}: the JS handler exceeded the memory limit and was stopped; its writes were discarded. (${error.message})`, 500, { cause: error });
    case "JsError":
      // Reached only where no js_runtime_options apply (exceptionResult answers handlers' exceptions).
      return new CocoError(ErrorCodes.InternalError, JS_EXCEPTION_MESSAGE, 500);
    default:
      return error;
  }
}
