// The sandboxed JS runtime for the constitution and JS apps: one V8 isolate (isolated-vm)
// with its own heap, a memory limit, a time limit per call and no host globals. Modules are
// kept as source so that an isolate killed by the memory limit is rebuilt transparently.
// Why isolated-vm and not QuickJS or node:vm: docs/js-runtime.md.
import { randomBytes as nodeRandomBytes } from "node:crypto";
import ivm from "isolated-vm";
import { CocoError } from "../util/errors.js";
import { type ActiveCall, applyWriteBatch, makeHostFunctions, seedFrom } from "./host-functions.js";
import { HOST_FUNCTION_NAMES, PRELUDE_SOURCE } from "./prelude.js";
import type { JsBatchContext, JsBatchOutcome, JsCallContext, JsModuleSource, JsRuntimeOptions, NodeHooks } from "./types.js";

export const JS_TIME_LIMIT_MS_DEFAULT = 1000;
export const JS_MEMORY_LIMIT_MIB_DEFAULT = 100;
/** isolated-vm refuses smaller heaps. */
const JS_MEMORY_LIMIT_MIB_MIN = 8;
/**
 * isolated-vm arms a timer for every call's time limit, and its timer thread wakes at each
 * timer's deadline even when the call ended long before: one thread wake per call, a time
 * limit later. Under load that cost ~20 µs of node CPU per JS request (bench --app
 * js-logging: 64 -> 45 µs of sandbox overhead). Rounding every deadline up to this grid lets one
 * wake retire all the timers of a grid step; a runaway call may run this much past its limit.
 */
const CALL_DEADLINE_GRID_MS = 100;

interface Isolate {
  isolate: ivm.Isolate;
  context: ivm.Context;
  dispatch: ivm.Reference<unknown>;
  settle: ivm.Reference<unknown>;
  register: ivm.Reference<unknown>;
  dispatchBatch: ivm.Reference<unknown>;
  modules: Map<string, ivm.Module>;
  moduleNames: Map<ivm.Module, string>;
}

export class JsRuntime {
  readonly timeLimitMs: number;
  readonly memoryLimitMiB: number;
  private readonly hooks: Partial<NodeHooks>;
  private readonly consoleSink: ((level: string, text: string) => void) | undefined;
  private readonly clockMs: () => number;
  private readonly randomBytes: (length: number) => Uint8Array;
  /** Sources in load order; replayed into a fresh isolate after an out-of-memory kill. */
  private readonly sources = new Map<string, string>();
  private current: Isolate | undefined;
  private activeCall: ActiveCall | undefined;
  private catastrophicError: string | undefined;
  private disposed = false;
  /** How many isolates were thrown away (memory limit) and rebuilt: for metrics and tests. */
  isolatesRecreated = 0;

  constructor(options: JsRuntimeOptions = {}) {
    this.timeLimitMs = options.timeLimitMs ?? JS_TIME_LIMIT_MS_DEFAULT;
    this.memoryLimitMiB = options.memoryLimitMiB ?? JS_MEMORY_LIMIT_MIB_DEFAULT;
    if (!(this.timeLimitMs > 0)) throw new CocoError("InvalidInput", "timeLimitMs must be positive", 400);
    if (!(this.memoryLimitMiB >= JS_MEMORY_LIMIT_MIB_MIN)) {
      throw new CocoError("InvalidInput", `memoryLimitMiB must be at least ${JS_MEMORY_LIMIT_MIB_MIN}`, 400);
    }
    this.hooks = options.hooks ?? {};
    this.consoleSink = options.console;
    this.clockMs = options.clockMs ?? Date.now;
    this.randomBytes = options.randomBytes ?? pooledRandomBytes();
  }

  /**
   * Compiles and evaluates ES modules (a bundle, a constitution, a ballot). Modules may import
   * each other by relative or bundle path; nothing else is importable. Reloading a name
   * replaces it for later calls.
   */
  loadModules(modules: readonly JsModuleSource[]): void {
    const runtime = this.ready();
    for (const m of modules) {
      this.sources.delete(m.name);
      this.sources.set(m.name, m.source);
      runtime.modules.delete(m.name);
    }
    try {
      for (const m of modules) this.guard(() => this.evaluateModule(runtime, m.name), `loading module ${m.name}`);
    } catch (error) {
      // A bundle loads whole or not at all, so a rebuilt isolate never replays a broken module.
      for (const m of modules) this.sources.delete(m.name);
      throw error;
    }
  }

  hasModule(name: string): boolean {
    return this.sources.has(name);
  }

  /**
   * Calls `exportName` of module `moduleName` with structured copies of `args` (JSON-compatible
   * values and ArrayBuffers) and returns a copy of its result. A returned promise is awaited as
   * long as it settles without host I/O. Throws CocoError JsError, JsTimeout or JsOutOfMemory;
   * the runtime stays usable after any of them.
   */
  call(moduleName: string, exportName: string, args: readonly unknown[], context: JsCallContext = {}): unknown {
    const runtime = this.ready();
    const limitMs = context.timeLimitMs ?? this.timeLimitMs;
    const timeout = limitMs + CALL_DEADLINE_GRID_MS - (Date.now() % CALL_DEADLINE_GRID_MS);
    const nowMs = context.nowMs ?? this.clockMs();
    const seed = seedFrom(context, this.randomBytes);
    const historical = context.historicalState;
    this.activeCall = { kv: context.kv, hooks: context.hooks ?? this.hooks, historical: historical === undefined ? undefined : [historical] };
    try {
      return this.guard(() => {
        // Primitive arguments (strings, numbers) cross as they are; anything else is copied once.
        const historicalJson = historical === undefined ? "" : JSON.stringify({ transactionId: historical.transactionId, receipt: historical.receipt });
        const callArgs: unknown[] = [moduleName, exportName, nowMs, seed[0], seed[1], seed[2], seed[3], historicalJson, context.bufferWrites === true];
        for (const arg of args) callArgs.push(isPrimitive(arg) ? arg : new ivm.ExternalCopy(arg).copyInto({ release: true }));
        const outcome = runtime.dispatch.applySync(undefined, callArgs, { result: { copy: true }, timeout }) as [0, unknown, unknown?] | [1];
        const [value, writes] = outcome[0] === 0
          ? [outcome[1], outcome[2]]
          : runtime.settle.applySync(undefined, [], { result: { copy: true }, timeout }) as [unknown, unknown?];
        if (writes !== undefined) applyWriteBatch(context.kv, writes);
        return value;
      }, `${moduleName} ${exportName}`);
    } finally {
      this.activeCall = undefined;
    }
  }

  /**
   * Calls `exportName` of `moduleName` once per string of `requests`, all in one isolate entry
   * (one time limit for the whole batch): a request crosses the boundary as its string, its
   * result and buffered writes come back together with the others'. Outcomes are in request
   * order; a request that threw or answered with a promise is reported as such, to be run again
   * on its own with `call`. A failure of the batch as a whole (time or memory limit) throws as
   * `call` does, and then no request of it has any effect.
   */
  callBatch(moduleName: string, exportName: string, requests: readonly string[], context: JsBatchContext): JsBatchOutcome[] {
    const runtime = this.ready();
    const timeout = this.timeLimitMs + CALL_DEADLINE_GRID_MS - (Date.now() % CALL_DEADLINE_GRID_MS);
    const nowMs = context.nowMs ?? this.clockMs();
    const seeds: number[] = [];
    let flags = "";
    for (let i = 0; i < requests.length; i++) {
      const seed = seedFrom(NO_CONTEXT, this.randomBytes);
      seeds.push(seed[0], seed[1], seed[2], seed[3]);
      flags += context.bufferWrites[i] === true ? "1" : "0";
    }
    const packed = `${requests.length};${requests.map((r) => r.length).join(",")};${seeds.join(",")};${flags};${requests.join("")}`;
    this.activeCall = { kv: context.kv, hooks: context.hooks, historical: undefined, select: context.select };
    try {
      const raw = this.guard(
        () => runtime.dispatchBatch.applySync(undefined, [moduleName, exportName, nowMs, packed], { result: { copy: true }, timeout }),
        `${moduleName} ${exportName}`,
      ) as ([0, unknown, unknown?] | [1] | [2])[];
      return raw.map((o) => (o[0] === 0 ? { ok: true, value: o[1], writes: o[2] } : { ok: false, reason: o[0] === 1 ? "threw" : "async" }));
    } finally {
      this.activeCall = undefined;
    }
  }

  /** Heap used by the isolate, in bytes (for metrics). */
  heapUsedBytes(): number {
    const stats = this.ready().isolate.getHeapStatisticsSync();
    return stats.used_heap_size + stats.externally_allocated_size;
  }

  dispose(): void {
    this.disposed = true;
    if (this.current !== undefined && !this.current.isolate.isDisposed) this.current.isolate.dispose();
    this.current = undefined;
  }

  /** The live isolate, rebuilt (prelude and modules replayed) if the last one was killed. */
  private ready(): Isolate {
    if (this.disposed) throw new CocoError("JsRuntimeDisposed", "the JS runtime was disposed");
    if (this.catastrophicError !== undefined) {
      throw new CocoError("JsRuntimeFailed", `the JS engine failed (${this.catastrophicError}); restart the node`);
    }
    if (this.current !== undefined && !this.current.isolate.isDisposed) return this.current;
    if (this.current !== undefined) this.isolatesRecreated++;
    const runtime = this.createIsolate();
    this.current = runtime;
    for (const name of this.sources.keys()) {
      this.guard(() => this.evaluateModule(runtime, name), `reloading module ${name}`);
    }
    return runtime;
  }

  private createIsolate(): Isolate {
    const isolate = new ivm.Isolate({
      memoryLimit: this.memoryLimitMiB,
      onCatastrophicError: (message) => {
        this.catastrophicError = message;
      },
    });
    const context = isolate.createContextSync();
    const host = makeHostFunctions(() => this.activeCall, this.consoleSink);
    for (const name of HOST_FUNCTION_NAMES) context.global.setSync(`__coco_${name}`, new ivm.Callback(host[name]));
    context.evalSync(PRELUDE_SOURCE, { timeout: this.timeLimitMs, filename: "coco:prelude" });
    const taken = context.evalSync("__coco_take()", { reference: true }) as ivm.Reference<unknown[]>;
    const get = (i: number) => taken.getSync(i, { reference: true }) as ivm.Reference<unknown>;
    return {
      isolate,
      context,
      dispatch: get(0),
      settle: get(1),
      register: get(2),
      dispatchBatch: get(3),
      modules: new Map(),
      moduleNames: new Map(),
    };
  }

  private evaluateModule(runtime: Isolate, name: string): void {
    const module = this.compileModule(runtime, name);
    module.instantiateSync(runtime.context, (specifier, referrer) => {
      const from = runtime.moduleNames.get(referrer) ?? "/";
      return this.compileModule(runtime, resolveModuleName(specifier, from));
    });
    module.evaluateSync({ timeout: this.timeLimitMs });
    runtime.register.applySync(undefined, [name, module.namespace.derefInto()], { timeout: this.timeLimitMs });
  }

  private compileModule(runtime: Isolate, name: string): ivm.Module {
    const cached = runtime.modules.get(name);
    if (cached !== undefined) return cached;
    const source = this.sources.get(name);
    if (source === undefined) throw new CocoError("JsError", `module ${name} not found: only modules of the bundle can be imported`);
    const module = runtime.isolate.compileModuleSync(source, { filename: name });
    runtime.modules.set(name, module);
    runtime.moduleNames.set(module, name);
    return module;
  }

  /** Runs `action`, translating engine failures into CocoErrors (the host is never harmed). */
  private guard<T>(action: () => T, what: string): T {
    try {
      return action();
    } catch (error) {
      throw this.translate(error, what);
    }
  }

  private translate(error: unknown, what: string): CocoError {
    if (error instanceof CocoError && error.code !== "JsHookUnavailable") return error;
    const message = error instanceof Error ? error.message : String(error);
    const stack = error instanceof Error && error.stack !== undefined ? guestStack(error.stack) : message;
    const isolateKilled = this.current !== undefined && this.current.isolate.isDisposed;
    if (isolateKilled || /memory limit|Array buffer allocation failed|allocation failed/i.test(message)) {
      // The isolate is rebuilt on the next use; module-level state of the old one is lost.
      return new CocoError("JsOutOfMemory", `${what}: exceeded the memory limit of ${this.memoryLimitMiB} MiB (${message})`, 500, { cause: error });
    }
    if (/execution timed out/i.test(message)) {
      return new CocoError("JsTimeout", `${what}: exceeded the time limit of ${this.timeLimitMs} ms`, 500, { cause: error });
    }
    return new CocoError("JsError", `${what}: ${stack}`, 500, { cause: error });
  }
}

/**
 * The guest's part of an error's stack: isolated-vm appends the host's frames after an
 * `<isolated-vm boundary>` line (file paths of the node's installation), and the prelude's
 * frames say nothing to an app author. Neither reaches a client or a log as an app's error.
 */
export function guestStack(stack: string): string {
  const lines = stack.split("\n");
  const boundary = lines.findIndex((line) => line.includes("<isolated-vm boundary>"));
  return (boundary === -1 ? lines : lines.slice(0, boundary)).filter((line) => !line.includes("coco:prelude")).join("\n");
}

/** seedFrom's context when the host gives no fixed seed (batch requests). */
const NO_CONTEXT: JsCallContext = Object.freeze({});

function isPrimitive(value: unknown): boolean {
  return value === null || (typeof value !== "object" && typeof value !== "function");
}

/** Resolves an import specifier against the importing module's bundle path. */
export function resolveModuleName(specifier: string, importer: string): string {
  const base = specifier.startsWith("./") || specifier.startsWith("../") ? importer.slice(0, importer.lastIndexOf("/") + 1) : "/";
  const parts: string[] = [];
  for (const part of (base + specifier).split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}

/**
 * node:crypto's CSPRNG drawn 4 KiB at a time: each call's Math.random seed (16 bytes) would
 * otherwise cost a randomBytes call (~1 µs) per request. Every byte is still used only once.
 */
function pooledRandomBytes(): (length: number) => Uint8Array {
  const POOL_BYTES = 4096;
  let pool = nodeRandomBytes(POOL_BYTES);
  let at = 0;
  return (length: number) => {
    if (length > POOL_BYTES) return nodeRandomBytes(length);
    if (at + length > POOL_BYTES) {
      pool = nodeRandomBytes(POOL_BYTES);
      at = 0;
    }
    const out = pool.subarray(at, at + length);
    at += length;
    return out;
  };
}
