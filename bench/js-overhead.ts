// Per-request overhead of the JS sandbox, in process and without HTTP: the benchmark's JS
// logging app (bench/js-logging/logging.js + app.json) is written into a Store as set_js_app
// would, and N `POST /app/log/private` requests (the load generator's body and headers) are
// dispatched through JsApp's registry handler, the node's code path from routing on. Each
// request runs in its own transaction, which is dropped (commit is not sandbox overhead). The
// same loop with a direct `tx.set` (what the built-in app's handler does) is the baseline.
// Prints µs/request for both and their difference; with --profile, a CPU profile summary of
// the JS loop (node:inspector, self time per function and per file).
// Run: node dist/bench/js-overhead.js [requests] [--profile] [--read]
import { readFileSync } from "node:fs";
import { Session } from "node:inspector";
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import ivm from "isolated-vm";
import { JsApp } from "../src/apps/js/index.js";
import { JS_APP_TABLES } from "../src/apps/js/bundle.js";
import { Store } from "../src/kv/index.js";
import type { EndpointContext, RpcRequest, Caller } from "../src/rpc/index.js";
import { summariseCpuProfile } from "./cpu-profile-summary.js";

const args = process.argv.slice(2);
const requests = Number(args.find((a) => /^\d+$/.test(a)) ?? 50_000);
const profile = args.includes("--profile");
const repeats = 5;
const here = path.dirname(fileURLToPath(import.meta.url));
const appDir = [path.join(here, "js-logging"), path.join(here, "../../bench/js-logging")].find((d) => {
  try { readFileSync(path.join(d, "app.json")); return true; } catch { return false; }
})!;

const appSource = readFileSync(path.join(appDir, "logging.js"), "utf8");
/** JS_OVERHEAD_APPEND="export function recordPrivate(request) { ... }" swaps the handler (what-if runs). */
function deploy(store: Store): void {
  const tx = store.begin();
  const appJson = JSON.parse(readFileSync(path.join(appDir, "app.json"), "utf8")) as { endpoints: Record<string, Record<string, Record<string, unknown>>> };
  tx.set(JS_APP_TABLES.modules, Buffer.from("/logging.js"), Buffer.from(process.env.JS_OVERHEAD_APPEND === undefined ? appSource : appSource.replace("export function recordPrivate", "function unusedRecordPrivate") + "\n" + process.env.JS_OVERHEAD_APPEND));
  for (const [p, verbs] of Object.entries(appJson.endpoints)) {
    for (const [verb, props] of Object.entries(verbs)) {
      tx.set(JS_APP_TABLES.endpoints, Buffer.from(`${verb.toUpperCase()} ${p}`), Buffer.from(JSON.stringify({ ...props, js_module: "/logging.js" })));
    }
  }
  store.commit(tx, store.currentVersion + 1);
}

const store = new Store();
deploy(store);
const app = new JsApp({ store });
const match = app.route("POST", "/app/log/private");
/** The same app as the node runs it: requests of one event-loop turn share one isolate entry. */
const batchingApp = new JsApp({ store, batchRequests: true });
const batchingHandler = batchingApp.route("POST", "/app/log/private").endpoint.handler;
const BATCH = 16;
const handler = match.endpoint.handler;
const caller = { policy: "user_cert", id: "a".repeat(64), cert: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" } as Caller;

function request(id: number): RpcRequest {
  const body = Buffer.from(`{"id":${id},"msg":"coco bench message ${id}"}`);
  return {
    method: "POST", path: "/app/log/private", query: "",
    headers: { host: "127.0.0.1:8000", "content-type": "application/json", "content-length": String(body.length) },
    body, callerCert: undefined,
  };
}
const prepared = Array.from({ length: 1000 }, (_, i) => request(i));

function runJs(n: number): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const tx = store.begin();
    const ctx: EndpointContext = { request: prepared[i % prepared.length]!, params: match.params, caller, tx };
    const result = handler(ctx) as { status?: number };
    if (result.status !== 200) throw new Error(`unexpected status ${JSON.stringify(result)}`);
  }
  return Number(process.hrtime.bigint() - started) / 1000 / n;
}

/** BATCH requests handed to the batching app at once (as pipelined requests arrive), then awaited. */
async function runJsBatched(n: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i += BATCH) {
    const pending: Promise<unknown>[] = [];
    for (let j = i; j < i + BATCH; j++) {
      const ctx: EndpointContext = { request: prepared[j % prepared.length]!, params: match.params, caller, tx: store.begin() };
      pending.push(Promise.resolve(batchingHandler(ctx)));
    }
    for (const result of await Promise.all(pending) as { status?: number }[]) {
      if (result.status !== 200) throw new Error(`unexpected status ${JSON.stringify(result)}`);
    }
  }
  return Number(process.hrtime.bigint() - started) / 1000 / n;
}

/** What the built-in app's handler does for the same request: parse, validate, one KV write. */
function runBaseline(n: number): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const tx = store.begin();
    const r = prepared[i % prepared.length]!;
    const body = JSON.parse(r.body.toString("utf8")) as { id: number; msg: string };
    if (!Number.isSafeInteger(body.id) || typeof body.msg !== "string") throw new Error("bad");
    tx.set("records", Buffer.from(String(body.id)), Buffer.from(JSON.stringify(body.msg)));
  }
  return Number(process.hrtime.bigint() - started) / 1000 / n;
}

/** The app's isolate: private to JsApp and JsRuntime, reached here for profiling only. */
function guestIsolate(): ivm.Isolate {
  return (app as unknown as { runtime: { current: { isolate: ivm.Isolate } } }).runtime.current.isolate;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
runJs(5000);
runBaseline(5000);
await runJsBatched(5000);
const js: number[] = [];
const base: number[] = [];
const batched: number[] = [];
for (let r = 0; r < repeats; r++) {
  js.push(runJs(requests));
  base.push(runBaseline(requests));
  batched.push(await runJsBatched(requests));
}
const fmt = (x: number) => x.toFixed(2);
console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}; ${requests} requests x ${repeats}`);
console.log(`JS app handler     µs/request: median ${fmt(median(js))}  (runs ${js.map(fmt).join(" ")})`);
console.log(`direct tx.set      µs/request: median ${fmt(median(base))}  (runs ${base.map(fmt).join(" ")})`);
console.log(`sandbox overhead   µs/request: ${fmt(median(js) - median(base))}`);
console.log(`JS, batches of ${BATCH}  µs/request: median ${fmt(median(batched))}  (runs ${batched.map(fmt).join(" ")}; ${batchingApp.batchStats.batches} isolate entries for ${batchingApp.batchStats.requests} requests)`);
console.log(`sandbox overhead, batched µs/request: ${fmt(median(batched) - median(base))}`);
{
  const isolate = guestIsolate();
  const cpu0 = isolate.cpuTime;
  const wall0 = isolate.wallTime;
  const total = runJs(requests);
  const cpuUs = Number(isolate.cpuTime - cpu0) / 1000 / requests;
  const wallUs = Number(isolate.wallTime - wall0) / 1000 / requests;
  console.log(`split of one run (${fmt(total)} µs/request): isolate cpuTime ${fmt(cpuUs)} µs, isolate wallTime ${fmt(wallUs)} µs, outside ${fmt(total - wallUs)} µs`);
}

if (profile) {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) => new Promise<unknown>((resolve, reject) =>
    session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: 100 });
  await post("Profiler.start");
  const isolate = guestIsolate();
  isolate.startCpuProfiler("guest");
  runJs(requests);
  const { profile: cpu } = (await post("Profiler.stop")) as { profile: unknown };
  const guest = await isolate.stopCpuProfiler("guest");
  const file = path.join(mkdtempSync(path.join(tmpdir(), "js-overhead-")), "js.cpuprofile");
  writeFileSync(file, JSON.stringify(cpu));
  const summary = summariseCpuProfile(file, 15);
  console.log(`\nCPU profile of ${requests} JS requests (${file}): busy ${summary.busyMs.toFixed(0)} ms`);
  for (const [title, rows] of [["self time by function", summary.byFunction], ["by file", summary.byFile]] as const) {
    console.log(`  ${title}:`);
    for (const row of rows) console.log(`    ${row.percentOfBusy.toFixed(1).padStart(5)}%  ${row.selfMs.toFixed(0).padStart(6)} ms  ${row.name}`);
  }
  for (const thread of guest) {
    const guestFile = path.join(path.dirname(file), `guest-${thread.threadId}.cpuprofile`);
    writeFileSync(guestFile, JSON.stringify(thread.profile));
    const g = summariseCpuProfile(guestFile, 15);
    console.log(`\nInside the isolate (thread ${thread.threadId}, ${guestFile}): busy ${g.busyMs.toFixed(0)} ms`);
    for (const row of g.byFunction) console.log(`    ${row.percentOfBusy.toFixed(1).padStart(5)}%  ${row.selfMs.toFixed(0).padStart(6)} ms  ${row.name}`);
  }
}
app.dispose();
