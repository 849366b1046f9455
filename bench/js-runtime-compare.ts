// Throwaway comparison of the three candidate JS sandboxes for src/js/ (isolated-vm,
// quickjs-emscripten, node:vm). Kept in the repo because docs/js-runtime.md quotes its
// figures. Candidates that are not dependencies are loaded from JS_BENCH_MODULE_DIRS
// (colon-separated folders that each hold a node_modules/), e.g. after
//   (cd /tmp/qjs && npm i quickjs-emscripten@0.32.0)
//   JS_BENCH_MODULE_DIRS=/tmp/qjs node dist-js/bench/js-runtime-compare.js
/* eslint-disable @typescript-eslint/no-explicit-any */
import { createRequire } from "node:module";
import path from "node:path";
import vm from "node:vm";

const CALLS = Number(process.env.JS_BENCH_CALLS ?? 20_000);
const REPEATS = 3;
const TIME_LIMIT_MS = 100;
const MEMORY_LIMIT_MIB = 64;
/** The allocation tests get a long time limit so that the memory limit, not the clock, stops them. */
const HEAP_TIME_LIMIT_MS = 20_000;

/** Utf-8 encoder written in plain JS: neither V8 isolates nor QuickJS have TextEncoder. */
const PRELUDE = `
function strToBuf(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out).buffer;
}
function handler(request) {
  const id = request.params.id;
  const key = strToBuf(String(id));
  kvSet("records", key, strToBuf(request.body.msg));
  const value = kvGet("records", key);
  return { status: 200, body: { id: id, bytes: value.byteLength } };
}
function __callJson(json) { return JSON.stringify(handler(JSON.parse(json))); }
`;

const ESCAPES: Record<string, string> = {
  "this.constructor.constructor('return process')()": `(function(){ try { const p = this.constructor.constructor('return process')(); return typeof p === 'object' && p !== null && typeof p.pid === 'number' ? 'ESCAPED pid ' + p.pid : 'blocked (' + typeof p + ')'; } catch (e) { return 'blocked: ' + e.message; } }).call(globalThis)`,
  "globalThis.process": `typeof globalThis.process === 'object' ? 'ESCAPED' : 'blocked (' + typeof globalThis.process + ')'`,
  "typeof require": `typeof require === 'function' ? 'ESCAPED' : 'blocked (' + typeof require + ')'`,
  "kvGet.constructor.constructor('return process')()": `(function(){ try { const p = kvGet.constructor.constructor('return process')(); return p && p.pid ? 'ESCAPED pid ' + p.pid : 'blocked (' + typeof p + ')'; } catch (e) { return 'blocked: ' + e.message; } })()`,
};
const ALLOCATE_1GIB_BUFFER = `new ArrayBuffer(1024 * 1024 * 1024).byteLength`;
const ALLOCATE_1GIB_HEAP = `(function(){ const a = []; for (let i = 0; i < 1024; i++) a.push(new Array(131072).fill(i)); return a.length; })()`;
const ALLOCATE_1GIB_TYPED = `(function(){ const a = []; for (let i = 0; i < 1024; i++) a.push(new Uint8Array(1 << 20).fill(i)); return a.length; })()`;
const INFINITE_LOOP = `(function(){ for (;;) {} })()`;

interface Candidate {
  name: string;
  /** Creates a fresh sandbox and loads PRELUDE. */
  create(): Promise<Sandbox>;
}
interface Sandbox {
  /** Calls handler(request) with a structured copy of the request. */
  callObject(request: unknown): unknown;
  /** Calls handler through JSON strings (one string in, one out). */
  callJson(request: unknown): unknown;
  /** Evaluates a script with the limits; returns a description of the outcome. */
  evalLimited(code: string, timeLimitMs?: number): string;
  dispose(): void;
}

function makeHostKv() {
  const store = new Map<string, Uint8Array>();
  const keyOf = (key: ArrayBuffer | Uint8Array) => Buffer.from(key as ArrayBuffer).toString("latin1");
  return {
    get(map: string, key: ArrayBuffer): ArrayBuffer | undefined {
      const v = store.get(map + "\0" + keyOf(key));
      return v === undefined ? undefined : v.slice().buffer;
    },
    set(map: string, key: ArrayBuffer, value: ArrayBuffer): void {
      store.set(map + "\0" + keyOf(key), new Uint8Array(value.slice(0)));
    },
  };
}

function loadOptional(name: string): any | undefined {
  const dirs = [process.cwd(), ...(process.env.JS_BENCH_MODULE_DIRS ?? "").split(":").filter(Boolean)];
  for (const dir of dirs) {
    try {
      return createRequire(path.join(dir, "noop.js"))(name);
    } catch {
      /* try the next folder */
    }
  }
  return undefined;
}

const isolatedVm: Candidate = {
  name: "isolated-vm",
  async create() {
    const ivm = loadOptional("isolated-vm");
    if (ivm === undefined) throw new Error("isolated-vm not installed");
    const kv = makeHostKv();
    let isolate = new ivm.Isolate({ memoryLimit: MEMORY_LIMIT_MIB });
    let handler: any, callJson: any, context: any;
    const setup = () => {
      context = isolate.createContextSync();
      context.global.setSync("kvGet", new ivm.Callback(kv.get));
      context.global.setSync("kvSet", new ivm.Callback(kv.set));
      context.evalSync(PRELUDE);
      handler = context.global.getSync("handler", { reference: true });
      callJson = context.global.getSync("__callJson", { reference: true });
    };
    setup();
    return {
      callObject: (request) =>
        handler.applySync(undefined, [request], { arguments: { copy: true }, result: { copy: true }, timeout: TIME_LIMIT_MS }),
      callJson: (request) => JSON.parse(callJson.applySync(undefined, [JSON.stringify(request)], { timeout: TIME_LIMIT_MS })),
      evalLimited(code, timeLimitMs = TIME_LIMIT_MS) {
        try {
          return "returned " + String(context.evalSync(code, { timeout: timeLimitMs, copy: true }));
        } catch (error) {
          const outcome = "threw: " + (error as Error).message.split("\n")[0];
          if (isolate.isDisposed) {
            isolate = new ivm.Isolate({ memoryLimit: MEMORY_LIMIT_MIB });
            setup();
            return outcome + " (isolate disposed, recreated)";
          }
          return outcome;
        }
      },
      dispose: () => isolate.dispose(),
    };
  },
};

const quickJs: Candidate = {
  name: "quickjs-emscripten",
  async create() {
    const qjs = loadOptional("quickjs-emscripten");
    if (qjs === undefined) throw new Error("quickjs-emscripten not installed");
    const module = await qjs.getQuickJS();
    const kv = makeHostKv();
    const runtime = module.newRuntime();
    runtime.setMemoryLimit(MEMORY_LIMIT_MIB * 1024 * 1024);
    runtime.setMaxStackSize(1024 * 1024);
    let deadline = Infinity;
    runtime.setInterruptHandler(() => Date.now() > deadline);
    const context = runtime.newContext();
    const bufferArg = (h: any): ArrayBuffer => {
      const lifetime = context.getArrayBuffer(h);
      const copy = lifetime.value.slice().buffer;
      lifetime.dispose();
      return copy;
    };
    context.newFunction("kvGet", (mapH: any, keyH: any) => {
      const v = kv.get(context.getString(mapH), bufferArg(keyH));
      return v === undefined ? context.undefined : context.newArrayBuffer(v);
    }).consume((f: any) => context.setProp(context.global, "kvGet", f));
    context.newFunction("kvSet", (mapH: any, keyH: any, valueH: any) => {
      kv.set(context.getString(mapH), bufferArg(keyH), bufferArg(valueH));
    }).consume((f: any) => context.setProp(context.global, "kvSet", f));
    context.unwrapResult(context.evalCode(PRELUDE, "prelude.js", { type: "global" })).dispose();
    const handler = context.getProp(context.global, "handler");
    const callJsonFn = context.getProp(context.global, "__callJson");
    const JSON_ = context.getProp(context.global, "JSON");
    const parse = context.getProp(JSON_, "parse");
    const callJson = (request: unknown) => {
      deadline = Date.now() + TIME_LIMIT_MS;
      const arg = context.newString(JSON.stringify(request));
      const result = context.callFunction(callJsonFn, context.undefined, arg);
      arg.dispose();
      const out = context.getString(context.unwrapResult(result));
      result.value?.dispose();
      return JSON.parse(out);
    };
    return {
      // Object transfer through handles: build the request inside with JSON.parse, dump the result.
      callObject(request) {
        deadline = Date.now() + TIME_LIMIT_MS;
        const json = context.newString(JSON.stringify(request));
        const requestH = context.unwrapResult(context.callFunction(parse, context.undefined, json));
        json.dispose();
        const result = context.unwrapResult(context.callFunction(handler, context.undefined, requestH));
        requestH.dispose();
        const out = context.dump(result);
        result.dispose();
        return out;
      },
      callJson,
      evalLimited(code, timeLimitMs = TIME_LIMIT_MS) {
        deadline = Date.now() + timeLimitMs;
        const result = context.evalCode(code, "eval.js", { type: "global" });
        if (result.error) {
          const e = context.dump(result.error);
          result.error.dispose();
          return "threw: " + (e?.message ?? String(e));
        }
        const v = context.dump(result.value);
        result.value.dispose();
        return "returned " + String(v);
      },
      dispose() {
        for (const h of [handler, callJsonFn, JSON_, parse]) h.dispose();
        context.dispose();
        runtime.dispose();
      },
    };
  },
};

const nodeVm: Candidate = {
  name: "node:vm",
  async create() {
    const kv = makeHostKv();
    const context = vm.createContext({ kvGet: kv.get, kvSet: kv.set });
    vm.runInContext(PRELUDE, context);
    const handler = context.handler as (r: unknown) => unknown;
    const callJson = context.__callJson as (s: string) => string;
    const callScript = new vm.Script("handler(__request)");
    return {
      // A direct call has no time limit; the timed variant runs a script per call.
      callObject: (request) => handler(request),
      callJson: (request) => {
        context.__request = request;
        try {
          return callScript.runInContext(context, { timeout: TIME_LIMIT_MS });
        } catch (error) {
          // Seen on the loaded 2-core machine: the per-call watchdog fires on a plain call.
          spuriousTimeouts++;
          return { status: 200, error: String(error) };
        }
      },
      evalLimited(code, timeLimitMs = TIME_LIMIT_MS) {
        try {
          return "returned " + String(vm.runInContext(code, context, { timeout: timeLimitMs }));
        } catch (error) {
          return "threw: " + (error as Error).message;
        }
      },
      dispose() {},
    };
  },
};

let spuriousTimeouts = 0;

function measureCallsPerSecond(call: (r: unknown) => unknown): number {
  let best = 0;
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) {
      const r = call({ params: { id: i % 1000 }, body: { msg: "hello world " + i }, headers: { "content-type": "application/json" } }) as any;
      if (r.status !== 200) throw new Error("bad result " + JSON.stringify(r));
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    best = Math.max(best, CALLS / seconds);
  }
  return Math.round(best);
}

function timed<T>(f: () => T): [T, number] {
  const start = process.hrtime.bigint();
  const value = f();
  return [value, Number(process.hrtime.bigint() - start) / 1e6];
}

async function runCandidate(candidate: Candidate): Promise<void> {
  console.log(`\n## ${candidate.name}`);
  const rssBefore = process.memoryUsage().rss;
  let sandbox: Sandbox;
  let createMs = Infinity;
  try {
    for (let i = 0; i < REPEATS; i++) {
      const start = process.hrtime.bigint();
      const s = await candidate.create();
      createMs = Math.min(createMs, Number(process.hrtime.bigint() - start) / 1e6);
      if (i < REPEATS - 1) s.dispose();
      else sandbox = s;
    }
  } catch (error) {
    console.log(`unavailable: ${(error as Error).message}`);
    return;
  }
  const s = sandbox!;
  console.log(`create sandbox + load prelude: ${createMs.toFixed(2)} ms (best of ${REPEATS})`);
  for (let i = 0; i < 2000; i++) s.callObject({ params: { id: i }, body: { msg: "warm" }, headers: {} });
  console.log(`calls/s, object args: ${measureCallsPerSecond(s.callObject)}`);
  console.log(`calls/s, JSON string args${candidate.name === "node:vm" ? " (Script.runInContext with timeout)" : ""}: ${measureCallsPerSecond(s.callJson)}`);
  if (spuriousTimeouts > 0) console.log(`spurious timeouts on plain calls: ${spuriousTimeouts}`);
  console.log(`rss growth for 1 sandbox after the runs: ${((process.memoryUsage().rss - rssBefore) / 2 ** 20).toFixed(1)} MiB`);
  for (const [name, code] of Object.entries(ESCAPES)) console.log(`escape ${name}: ${s.evalLimited(code)}`);
  const [loop, loopMs] = timed(() => s.evalLimited(INFINITE_LOOP));
  console.log(`infinite loop (limit ${TIME_LIMIT_MS} ms): ${loop} after ${loopMs.toFixed(0)} ms`);
  const [buf, bufMs] = timed(() => s.evalLimited(ALLOCATE_1GIB_BUFFER));
  console.log(`1 GiB ArrayBuffer (limit ${MEMORY_LIMIT_MIB} MiB): ${buf} after ${bufMs.toFixed(0)} ms`);
  const [heap, heapMs] = timed(() => s.evalLimited(ALLOCATE_1GIB_HEAP, HEAP_TIME_LIMIT_MS));
  console.log(`1 GiB of arrays (limit ${MEMORY_LIMIT_MIB} MiB, ${HEAP_TIME_LIMIT_MS} ms): ${heap} after ${heapMs.toFixed(0)} ms`);
  const [typed, typedMs] = timed(() => s.evalLimited(ALLOCATE_1GIB_TYPED, HEAP_TIME_LIMIT_MS));
  console.log(`1 GiB of 1 MiB Uint8Arrays (limit ${MEMORY_LIMIT_MIB} MiB, ${HEAP_TIME_LIMIT_MS} ms): ${typed} after ${typedMs.toFixed(0)} ms`);
  console.log(`usable afterwards: ${JSON.stringify(s.callJson({ params: { id: 1 }, body: { msg: "x" }, headers: {} }))}`);
  console.log(`host rss now: ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
  s.dispose();
}

const only = process.argv[2];
for (const candidate of [isolatedVm, quickJs, nodeVm]) {
  if (only === undefined || only === candidate.name) await runCandidate(candidate);
}
