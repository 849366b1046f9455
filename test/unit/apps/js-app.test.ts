// JS apps end to end in process: a bundle deployed by the default constitution's set_js_app,
// served by JsApp's registry through a dispatcher that mirrors src/node/frontend.ts (route,
// authenticate, run the handler in a transaction, commit on 2xx).
import { test } from "node:test";
import assert from "node:assert/strict";
import { installJsApp, type JsApp } from "../../../src/apps/js/index.js";
import { defaultConstitutionSource } from "../../../src/governance/index.js";
import { authenticate, RerunRequest, type HandlerResult, type RpcRequest } from "../../../src/rpc/index.js";
import type { Transaction } from "../../../src/kv/index.js";
import { CocoError } from "../../../src/util/errors.js";
import { serialiseWriteSet } from "../../../src/kv/index.js";
import { HistoricalStates } from "../../../src/node/historical.js";
import { GovHarness, makeIdentity, YES, type Identity } from "../governance/harness.js";
import { buildBundle } from "../../../src/cli/app.js";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [member, user] = (await Promise.all([makeIdentity("member0"), makeIdentity("user0")])) as [Identity, Identity];

const APP_SOURCE = String.raw`
import { helper } from "./lib/helper.js";
const records = () => ccf.kv["records"];
export function getRecord(request) {
  const value = records().get(ccf.strToBuf(request.params.id));
  if (value === undefined) return { statusCode: 404, body: { error: "No such record " + request.params.id } };
  return { body: { id: request.params.id, msg: ccf.bufToStr(value) } };
}
export function putRecord(request) {
  records().set(ccf.strToBuf(request.params.id), ccf.strToBuf(request.body.json().msg));
  return { statusCode: 204 };
}
export function deleteRecord(request) {
  return { body: records().delete(ccf.strToBuf(request.params.id)) };
}
export function count(request) {
  const ids = [];
  records().forEach((v, k) => ids.push(ccf.bufToStr(k)));
  const version = request.query === "" ? null : records().getVersionOfPreviousWrite(ccf.strToBuf(request.query)) ?? null;
  return { body: { size: records().size, ids: ids.sort(), version } };
}
export function echo(request) {
  return {
    statusCode: 201,
    headers: { "X-Echo": "yes", "x-number": 7 },
    body: {
      url: request.url, path: request.path, route: request.route, query: request.query, method: request.method,
      hostname: request.hostname, params: request.params, header: request.headers["x-test"],
      text: request.body.text(), json: request.body.json(), bytes: request.body.arrayBuffer().byteLength,
      caller: request.caller, helper: helper(),
    },
  };
}
export function binary(request) {
  const bytes = new Uint8Array(request.body.arrayBuffer());
  return { body: bytes.map((b) => 255 - b) };
}
export function text() { return { body: "plain words", headers: { "content-type": "text/x-custom" } }; }
export function whoami(request) { return { body: request.caller }; }
export function increment() {
  const m = ccf.kv["records"];
  const current = m.get(ccf.strToBuf("counter"));
  const next = current === undefined ? 1 : Number(ccf.bufToStr(current)) + 1;
  m.set(ccf.strToBuf("counter"), ccf.strToBuf(String(next)));
  return { body: next };
}
export function random() { return { body: [Math.random(), Math.random()] }; }
export function slow() {
  let x = 0;
  for (let i = 0; i < 4e7; i++) x += i % 7;
  return { body: x > 0 };
}
let kept;
let keptWithCaller;
export function keep(request) {
  if (request.query === "read") {
    keptWithCaller = request;
    void request.caller;
  } else {
    kept = request;
  }
  return { body: true };
}
export function readKept() {
  let stale;
  try { void kept.caller; } catch (error) { stale = String(error.message); }
  return { body: { stale, earlier: keptWithCaller.caller.policy } };
}
export function lateHeaders(request) {
  return Promise.resolve().then(() => ({ body: { host: request.headers.host, caller: request.caller.policy } }));
}
export function writeInReadonly() { ccf.kv["records"].set(ccf.strToBuf("ro"), ccf.strToBuf("nope")); return { body: "wrote" }; }
export function chatty(request) {
  console.log("hello from", request.method, { n: 1 });
  console.warn("careful");
  console.error(new Error("shown as its stack"));
  return { body: "ok" };
}
export function writeThenThrow() { ccf.kv["records"].set(ccf.strToBuf("partial"), ccf.strToBuf("x")); throw new Error("handler exploded"); }
export function loop() { for (;;) {} }
export function allocate() { const chunks = []; for (let i = 0; i < 1024; i++) chunks.push(new Array(1024 * 1024 / 8).fill(i + 0.5)); return { body: chunks.length }; }
export function allocateBuffer() { const b = new Uint8Array(1024 * 1024 * 1024); b[5] = 1; return { body: b.length }; }
export async function asyncHandler() { await null; return { body: { async: true } }; }
export function claims(request) { ccf.rpc.setClaimsDigest(ccf.crypto.digest("SHA-256", ccf.strToBuf("claim"))); return { body: true }; }
export function errorStatus() { ccf.kv["records"].set(ccf.strToBuf("err"), ccf.strToBuf("x")); return { statusCode: 400, body: { error: "bad" } }; }
export function readSecretMap() { return { body: ccf.kv["ccf.internal.secrets"].size }; }
export function writeGovMap() { ccf.kv["public:ccf.gov.users.certs"].set(ccf.strToBuf("x"), ccf.strToBuf("y")); return { body: true }; }
export function noop() { return { body: true }; }
export function kvSet(request) { ccf.kv["records"].set(ccf.strToBuf("k"), ccf.strToBuf("v")); return { body: true }; }
export function bufferedWrites(request) {
  const m = ccf.kv["records"];
  m.set(ccf.strToBuf("b1"), ccf.strToBuf("one"));
  const seen = ccf.bufToStr(m.get(ccf.strToBuf("b1")));
  const had = m.has(ccf.strToBuf("b1"));
  m.set(ccf.strToBuf("b2"), new Uint8Array([116, 119, 111]));
  const ids = [];
  m.forEach((v, k) => ids.push(ccf.bufToStr(k)));
  m.set(ccf.strToBuf("b1"), ccf.strToBuf("uno"));
  return { body: { seen, had, sawB2: ids.includes("b2"), last: ccf.bufToStr(m.get(ccf.strToBuf("b1"))) } };
}
export function bigValue(request) {
  const bytes = new Uint8Array(100000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = i % 256;
  const m = ccf.kv["records"];
  m.set(ccf.strToBuf("big"), bytes);
  const back = new Uint8Array(m.get(ccf.strToBuf("big")));
  let same = back.length === bytes.length;
  for (let i = 0; same && i < bytes.length; i++) same = back[i] === bytes[i];
  return { body: same };
}
export async function asyncWrite() { await null; ccf.kv["records"].set(ccf.strToBuf("async"), ccf.strToBuf("yes")); return { body: true }; }
export function historicalRead(request) {
  const h = ccf.historicalState;
  const records = h.kv["records"];
  const key = ccf.strToBuf(request.query);
  const ids = [];
  records.forEach((v, k) => ids.push(ccf.bufToStr(k) + "=" + ccf.bufToStr(v)));
  const msg = records.get(key);
  return { body: {
    transactionId: h.transactionId, receipt: h.receipt, msg: msg === undefined ? null : ccf.bufToStr(msg), has: records.has(key),
    size: records.size, ids, version: records.getVersionOfPreviousWrite(key) ?? null, current: ccf.bufToStr(ccf.kv["records"].get(key)),
    usersInfo: h.kv["public:ccf.gov.users.info"].size,
  } };
}
export function historicalWrite(request) {
  try { ccf.historicalState.kv["records"].delete(ccf.strToBuf("x")); } catch (e) { return { statusCode: 409, body: e.message }; }
  return { body: "deleted" };
}
export function historicalSecret() { return { body: ccf.historicalState.kv["ccf.internal.secrets"].size }; }
export function historicalCurrentWrite() { ccf.kv["records"].set(ccf.strToBuf("hw"), ccf.strToBuf("x")); return { body: true }; }
export function historicalRange(request) {
  const [from, to] = request.query.split("-").map(Number);
  const states = ccf.historical.getStateRange(1, from, to, 60);
  if (states === null) return { statusCode: 202, headers: { "retry-after": "1" }, body: "fetching" };
  return { body: states.map((s) => s.transactionId + ":" + s.kv["records"].size) };
}
export function applyOnError(request) {
  ccf.kv["records"].set(ccf.strToBuf("apply-" + request.query), ccf.strToBuf("x"));
  ccf.rpc.setApplyWrites(request.query !== "drop");
  if (request.query === "throw") throw new Error("thrown after setApplyWrites(true)");
  return { statusCode: request.query === "drop" ? 200 : 400, body: request.query };
}
`;

const HELPER_SOURCE = `export function helper() { return "from helper"; }`;

type Policies = (string | { all_of: string[] })[];
function ep(fn: string, mode: string, authn_policies: Policies = ["user_cert"]) {
  return { js_module: "app.js", js_function: fn, forwarding_required: "sometimes", authn_policies, mode, openapi: {} };
}

function bundle() {
  return {
    metadata: {
      endpoints: {
        "/records/{id}": { get: ep("getRecord", "readonly"), put: ep("putRecord", "readwrite"), delete: ep("deleteRecord", "readwrite") },
        "/count": { get: ep("count", "readonly") },
        "/echo/{a}/{b}": { post: ep("echo", "readwrite", ["no_auth"]) },
        "/binary": { post: ep("binary", "readonly", ["no_auth"]) },
        "/text": { get: ep("text", "readonly", []) },
        "/whoami": { get: ep("whoami", "readonly", ["jwt", "user_cert", "member_cert"]) },
        "/jwt-only": { get: ep("whoami", "readonly", ["jwt"]) },
        "/increment": { post: ep("increment", "readwrite", ["no_auth"]) },
        "/random": { get: ep("random", "readonly", ["no_auth"]) },
        "/slow": { get: ep("slow", "readonly", ["no_auth"]) },
        "/keep": { get: ep("keep", "readonly", ["no_auth"]) },
        "/read-kept": { get: ep("readKept", "readonly", ["no_auth"]) },
        "/late-headers": { get: ep("lateHeaders", "readonly", ["no_auth"]) },
        "/readonly-write": { post: ep("writeInReadonly", "readonly") },
        "/throws": { post: ep("writeThenThrow", "readwrite") },
        "/chatty": { get: ep("chatty", "readonly", ["no_auth"]) },
        "/loop": { get: ep("loop", "readonly") },
        "/allocate": { get: ep("allocate", "readonly") },
        "/allocate-buffer": { get: ep("allocateBuffer", "readonly") },
        "/async": { get: ep("asyncHandler", "readonly") },
        "/claims": { post: ep("claims", "readwrite") },
        "/error-status": { post: ep("errorStatus", "readwrite") },
        "/historical": { get: ep("historicalRead", "historical") },
        "/historical-write": { get: ep("historicalWrite", "historical") },
        "/historical-secret": { get: ep("historicalSecret", "historical") },
        "/historical-current-write": { get: ep("historicalCurrentWrite", "historical") },
        "/historical-range": { get: ep("historicalRange", "readonly") },
        "/apply-writes": { post: ep("applyOnError", "readwrite") },
        "/buffered": { post: ep("bufferedWrites", "readwrite") },
        "/async-write": { post: ep("asyncWrite", "readwrite") },
        "/big-value": { post: ep("bigValue", "readwrite") },
        "/secret": { get: ep("readSecretMap", "readonly") },
        "/gov-write": { post: ep("writeGovMap", "readwrite") },
        "/noop": { post: ep("noop", "readwrite", ["no_auth"]) },
        "/kv-set": { post: ep("kvSet", "readwrite", ["no_auth"]) },
      },
    },
    modules: [
      { name: "app.js", module: APP_SOURCE },
      { name: "lib/helper.js", module: HELPER_SOURCE },
    ],
  };
}

interface Reply { status: number; headers: Record<string, string>; body: Buffer; text: string; json: any; claimsDigest?: Buffer }

/** The write sets the harness committed, as a ledger would hold them (view 1), for historical queries. */
class CommittedWrites {
  readonly entries = new Map<number, { publicDomain: Buffer; privatePlain: Buffer }>();
  constructor(private readonly harness: { gov: GovHarness }) {}
  get commitTxId() { return { view: 1, seqno: this.harness.gov.store.currentVersion }; }
  viewAt(seqno: number) { return seqno >= 1 && seqno <= this.commitTxId.seqno ? 1 : null; }
  status(view: number, seqno: number) { return seqno > this.commitTxId.seqno ? "Unknown" : view === 1 ? "Committed" : "Invalid"; }
  async readEntry(seqno: number) {
    const entry = this.entries.get(seqno) ?? { publicDomain: Buffer.alloc(0), privatePlain: Buffer.alloc(0) };
    return { view: 1, seqno, isSignature: false, claimsDigest: Buffer.alloc(32), ...entry };
  }
  async receipt(view: number, seqno: number) {
    return { cert: "CERT", node_id: "n1", signature: "c2ln", proof: [], leaf_components: { write_set_digest: "00", commit_evidence: `ce:${view}.${seqno}:00`, claims_digest: "00" } };
  }
}

class AppHarness {
  readonly gov = new GovHarness(defaultConstitutionSource(), { hooks: { refreshAppBytecodeCache() {} } });
  readonly app: JsApp;
  readonly committed = new CommittedWrites(this);

  readonly logLines: { level: string; details: Record<string, unknown>; message: string }[] = [];
  private readonly limits: { timeLimitMs: number; memoryLimitMiB: number };

  constructor(options: { timeLimitMs?: number; memoryLimitMiB?: number; historical?: boolean; batch?: boolean } = {}) {
    this.limits = { timeLimitMs: options.timeLimitMs ?? 500, memoryLimitMiB: options.memoryLimitMiB ?? 64 };
    const line = (level: string) => (details: object, message: string) => void this.logLines.push({ level, details: details as Record<string, unknown>, message });
    this.gov.addMember(member);
    const consensus = options.historical === true ? {
      lastCommittedTxId: () => this.committed.commitTxId,
      viewForSeqno: (seqno: number) => this.committed.viewAt(seqno),
      statusForTxId: (view: number, seqno: number) => this.committed.status(view, seqno),
      historical: new HistoricalStates(this.committed),
    } : undefined;
    this.app = installJsApp({
      store: this.gov.store,
      runtimeOptions: this.limits,
      logger: { info: line("info"), debug: line("debug"), warn: line("warn"), error: line("error") },
      ...(consensus === undefined ? {} : { consensus }),
      ...(options.batch === true ? { batchRequests: true } : {}),
    });
    const tx = this.gov.store.begin();
    tx.set("public:ccf.gov.users.certs", Buffer.from(user.id), Buffer.from(user.certPem));
    tx.set("public:ccf.gov.users.info", Buffer.from(user.id), Buffer.from(JSON.stringify({ user_data: { role: "writer" } })));
    this.gov.store.commit(tx, this.gov.store.currentVersion + 1);
  }

  /** Passes a proposal with the member's single vote; returns the final proposal state. */
  govern(actions: unknown[]): string {
    const created = this.gov.propose(member, actions);
    assert.equal(created.status, 200, created.text);
    const voted = this.gov.vote(member, created.json.proposalId, YES);
    assert.equal(voted.status, 200, voted.text);
    return voted.json.proposalState;
  }

  /** CCF's set_js_runtime_options with this harness's limits and the given exception options. */
  setExceptionOptions(options: { return_exception_details?: boolean; log_exception_details?: boolean }): void {
    assert.equal(this.govern([{ name: "set_js_runtime_options", args: {
      max_heap_bytes: this.limits.memoryLimitMiB * 1024 * 1024, max_stack_bytes: 1024 * 1024, max_execution_time_ms: this.limits.timeLimitMs, ...options,
    } }]), "Accepted");
  }

  deploy(b: unknown = bundle()): void {
    assert.equal(this.govern([{ name: "set_js_app", args: { bundle: b, disable_bytecode_cache: true } }]), "Accepted");
  }

  /** Mirrors Frontend.dispatch for `/app/*`, for handlers that answer at once. */
  request(method: string, target: string, options: RequestOptions = {}): Reply {
    const reply = this.dispatch(method, target, options);
    if (reply instanceof Promise) throw new Error("this handler answered asynchronously: use requestAsync");
    return reply;
  }

  /** As request(), awaiting handlers that answer asynchronously (historical endpoints). */
  async requestAsync(method: string, target: string, options: RequestOptions = {}): Promise<Reply> {
    return this.dispatch(method, target, options);
  }

  private dispatch(method: string, target: string, options: RequestOptions): Reply | Promise<Reply> {
    const [path, query = ""] = target.split("?") as [string, string?];
    const body = typeof options.body === "string" ? Buffer.from(options.body) : options.body ?? Buffer.alloc(0);
    const request: RpcRequest = {
      method, path, query, body,
      headers: { host: "coco.example:8000", ...options.headers },
      callerCert: options.as === undefined ? undefined : { der: Buffer.alloc(0), fingerprint: options.as.id, idKey: Buffer.from(options.as.id) },
    };
    const store = this.gov.store;
    const finish = (tx: Transaction, mode: string, result: HandlerResult): Reply => {
      const status = result.status ?? 200;
      if (tx.hasWrites && (result.applyWrites ?? (status >= 200 && status < 300))) {
        if (mode === "readonly") throw new CocoError("InternalError", "readonly endpoint wrote", 500);
        const seqno = store.currentVersion + 1;
        const { publicDomain, privateDomain } = serialiseWriteSet(store.commit(tx, seqno));
        this.committed.entries.set(seqno, { publicDomain, privatePlain: privateDomain });
      }
      const raw = result.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(result.body) ? result.body
        : Buffer.from(typeof result.body === "string" ? result.body : JSON.stringify(result.body));
      return { status, headers: result.headers ?? {}, body: raw, text: raw.toString(), json: parse(raw.toString()), ...(result.claimsDigest ? { claimsDigest: result.claimsDigest } : {}) };
    };
    const fail = (error: unknown): Reply => {
      if (!(error instanceof CocoError)) throw error;
      const text = JSON.stringify({ error: { code: error.code, message: error.message } });
      return { status: error.status, headers: {}, body: Buffer.from(text), text, json: JSON.parse(text) };
    };
    // As Frontend.run: a conflict at commit, or a handler asking for it (RerunRequest), runs the
    // request again in a fresh transaction.
    const run = (attempt: number): Reply | Promise<Reply> => {
      const again = (error: unknown): Reply | Promise<Reply> => {
        const retry = error instanceof RerunRequest || (error instanceof CocoError && error.code === "TransactionConflict");
        if (retry && attempt < 30) return run(attempt + 1);
        return fail(error);
      };
      try {
        const { endpoint, params } = this.app.route(method, path);
        const tx = store.begin();
        const caller = authenticate(endpoint.authPolicies, request, tx);
        const result = endpoint.handler({ request, params, caller, tx });
        if (result instanceof Promise) {
          return result.then((r) => {
            try {
              return finish(tx, endpoint.mode, r);
            } catch (error) {
              return again(error);
            }
          }, again);
        }
        return finish(tx, endpoint.mode, result);
      } catch (error) {
        return again(error);
      }
    };
    return run(0);
  }

  record(id: string): string | undefined {
    return this.gov.store.begin().get("records", Buffer.from(id))?.toString();
  }
}

interface RequestOptions { body?: string | Buffer; headers?: Record<string, string>; as?: Identity }

function parse(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const h = new AppHarness();
h.deploy();
// Most tests below check the JS message of an exception: they ask for it, as a developer would.
h.setExceptionOptions({ return_exception_details: true });

/** The JS message of a 500 answered with return_exception_details, else the error message. */
function jsMessage(r: Reply): string {
  return r.json.error.details?.[0]?.message ?? r.json.error.message;
}

test("before any deployment the app has no endpoints", () => {
  const empty = new AppHarness();
  assert.equal(empty.request("GET", "/app/count", { as: user }).status, 404);
  empty.app.dispose();
});

test("set_js_app installs app.json's endpoints under /app with templated params", () => {
  assert.equal(h.request("PUT", "/app/records/a%20b", { as: user, body: JSON.stringify({ msg: "hello" }) }).status, 204);
  assert.equal(h.record("a b"), "hello");
  const got = h.request("GET", "/app/records/a%20b", { as: user });
  assert.equal(got.status, 200, got.text);
  assert.deepEqual(got.json, { id: "a b", msg: "hello" });
  assert.equal(got.headers["content-type"], "application/json");
  assert.equal(h.request("GET", "/app/records/missing", { as: user }).status, 404);
  assert.equal(h.request("PATCH", "/app/records/x", { as: user }).status, 405);
});

test("the request carries url, path, route, query, method, hostname, headers, params, body and caller", () => {
  const r = h.request("POST", "/app/echo/one/two?x=1&y=2", { body: JSON.stringify({ k: "é" }), headers: { "x-test": "header value" } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers["x-echo"], "yes");
  assert.equal(r.headers["x-number"], "7");
  assert.deepEqual(r.json, {
    url: "/app/echo/one/two?x=1&y=2", path: "/app/echo/one/two", route: "/app/echo/{a}/{b}", query: "x=1&y=2", method: "POST",
    hostname: "coco.example", params: { a: "one", b: "two" }, header: "header value",
    text: '{"k":"é"}', json: { k: "é" }, bytes: Buffer.byteLength('{"k":"é"}'), caller: { policy: "no_auth" }, helper: "from helper",
  });
});

test("headers and caller come from the host on first read, also after an await, but never for another request", () => {
  const late = h.request("GET", "/app/late-headers");
  assert.equal(late.status, 200, late.text);
  assert.deepEqual(late.json, { host: "coco.example:8000", caller: "no_auth" });
  assert.equal(h.request("GET", "/app/keep?read").status, 200);
  assert.equal(h.request("GET", "/app/keep").status, 200);
  const r = h.request("GET", "/app/read-kept");
  assert.equal(r.status, 200, r.text);
  assert.match(r.json.stale, /request\.caller was first read after its request ended/);
  assert.equal(r.json.earlier, "no_auth");
});

test("binary bodies round-trip as ArrayBuffers and answer application/octet-stream", () => {
  const r = h.request("POST", "/app/binary", { body: Buffer.from([0, 1, 254, 255]) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers["content-type"], "application/octet-stream");
  assert.deepEqual([...r.body], [255, 254, 1, 0]);
});

test("string bodies answer text/plain unless the handler sets content-type; no policies means caller undefined", () => {
  const r = h.request("GET", "/app/text");
  assert.equal(r.status, 200, r.text);
  assert.equal(r.text, "plain words");
  assert.equal(r.headers["content-type"], "text/x-custom");
});

test("the caller of a user_cert endpoint is CCF's { policy, id, data, cert }; jwt needs a bearer token", () => {
  const r = h.request("GET", "/app/whoami", { as: user });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { policy: "user_cert", id: user.id, data: { role: "writer" }, cert: user.certPem });
  assert.equal(h.request("GET", "/app/whoami").status, 401);
  const jwtOnly = h.request("GET", "/app/jwt-only", { as: user });
  assert.equal(jwtOnly.status, 401);
  assert.match(jwtOnly.json.error.message, /jwt: Missing Authorization header/);
});

test("ccf.kv reads, writes, deletes, counts, iterates and reports versions through the request's transaction", () => {
  h.request("PUT", "/app/records/k1", { as: user, body: '{"msg":"v1"}' });
  const version = h.gov.store.currentVersion;
  h.request("PUT", "/app/records/k2", { as: user, body: '{"msg":"v2"}' });
  const counted = h.request("GET", "/app/count?k1", { as: user }).json;
  assert.ok(counted.ids.includes("k1") && counted.ids.includes("k2"));
  assert.equal(counted.size, counted.ids.length);
  assert.equal(counted.version, version);
  assert.equal(h.request("DELETE", "/app/records/k1", { as: user }).json, true);
  assert.equal(h.record("k1"), undefined);
  assert.equal(h.request("DELETE", "/app/records/k1", { as: user }).json, false);
});

test("a readonly endpoint that writes fails with 500 and writes nothing", () => {
  const r = h.request("POST", "/app/readonly-write", { as: user });
  assert.equal(r.status, 500);
  assert.equal(r.json.error.code, "InternalError");
  assert.match(jsMessage(r), /readonly endpoint/);
  assert.equal(h.record("ro"), undefined);
});

test("a throwing handler answers 500 InternalError with the JS message and its writes are discarded", () => {
  const before = h.gov.store.currentVersion;
  const r = h.request("POST", "/app/throws", { as: user });
  assert.equal(r.status, 500);
  assert.equal(r.json.error.code, "InternalError");
  assert.equal(r.json.error.message, "Exception thrown while executing.");
  assert.equal(r.json.error.details[0].code, "JSException");
  assert.match(r.json.error.details[0].message, /handler exploded/);
  assert.match(r.json.error.details[0].trace, /writeThenThrow/);
  assert.equal(h.record("partial"), undefined);
  assert.equal(h.gov.store.currentVersion, before);
});

test("by default (CCF's js_runtime_options) an exception answers CCF's message without the JS message or stack, and logs neither; log_exception_details logs them", () => {
  const plain = new AppHarness();
  plain.deploy();
  const r = plain.request("POST", "/app/throws", { as: user });
  assert.equal(r.status, 500);
  assert.deepEqual(r.json, { error: { code: "InternalError", message: "Exception thrown while executing." } });
  assert.doesNotMatch(r.text, /exploded|writeThenThrow/);
  assert.equal(plain.record("partial"), undefined);
  const logged = plain.logLines.filter((l) => l.message.includes("exception thrown"));
  assert.equal(logged.length, 1);
  assert.equal(logged[0]!.details.endpoint, "POST /app/throws");
  assert.doesNotMatch(JSON.stringify(logged), /exploded/);
  // log_exception_details alone: the node's log has the message and trace, the caller still does not.
  plain.setExceptionOptions({ log_exception_details: true });
  const again = plain.request("POST", "/app/throws", { as: user });
  assert.deepEqual(again.json, { error: { code: "InternalError", message: "Exception thrown while executing." } });
  const detailed = plain.logLines.filter((l) => l.level === "error" && l.message.includes("exception thrown"));
  assert.equal(detailed.length, 1);
  assert.match(String(detailed[0]!.details.reason), /handler exploded/);
  assert.match(String(detailed[0]!.details.trace), /writeThenThrow/);
});

test("console.log/warn/error in a handler are node log lines tagged with the app and endpoint", () => {
  const before = h.logLines.length;
  assert.equal(h.request("GET", "/app/chatty").status, 200);
  const lines = h.logLines.slice(before).filter((l) => l.details.console !== undefined);
  assert.deepEqual(lines.map((l) => [l.level, l.details.app, l.details.endpoint]), [
    ["info", "js", "GET /app/chatty"], ["warn", "js", "GET /app/chatty"], ["error", "js", "GET /app/chatty"],
  ]);
  assert.equal(lines[0]!.message, 'hello from GET {"n":1}');
  assert.match(lines[2]!.message, /shown as its stack\n\s+at chatty/);
});

test("an exception's trace names the TypeScript source lines of a bundle built by coco app build (inline source maps)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-sourcemap-"));
  try {
    mkdirSync(join(dir, "src", "endpoints"), { recursive: true });
    writeFileSync(join(dir, "app.json"), JSON.stringify({ endpoints: { "/boom": { get: {
      js_module: "endpoints/boom.js", js_function: "boom", forwarding_required: "never", authn_policies: ["no_auth"], mode: "readonly", openapi: {},
    } } } }));
    writeFileSync(join(dir, "src", "endpoints", "boom.ts"), [
      "// A handler that throws on line 5.",
      "interface Thing { n: number }",
      "export function boom(): never {",
      "  const thing: Thing = { n: 1 };",
      "  throw new Error(`boom ${thing.n}`);",
      "}",
      "",
    ].join("\n"));
    const built = await buildBundle(dir, () => undefined);
    const local = new AppHarness();
    local.deploy(built);
    local.setExceptionOptions({ return_exception_details: true });
    const r = local.request("GET", "/app/boom");
    assert.equal(r.status, 500);
    assert.match(r.json.error.details[0].message, /boom 1/);
    assert.match(r.json.error.details[0].trace, /at boom \(src\/endpoints\/boom\.ts:5:\d+\)/);
    // Without the map, the same frame names the bundled module.
    const unmapped = new AppHarness();
    unmapped.deploy(await buildBundle(dir, () => undefined, { sourceMaps: false }));
    unmapped.setExceptionOptions({ return_exception_details: true });
    assert.match(unmapped.request("GET", "/app/boom").json.error.details[0].trace, /at boom \(\/?endpoints\/boom\.js:\d+:\d+\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a non-2xx answer discards the handler's writes", () => {
  assert.equal(h.request("POST", "/app/error-status", { as: user }).status, 400);
  assert.equal(h.record("err"), undefined);
});

test("apps cannot read private ccf.* maps nor write governance maps", () => {
  assert.match(jsMessage(h.request("GET", "/app/secret", { as: user })), /private ccf\.\* maps/);
  const r = h.request("POST", "/app/gov-write", { as: user });
  assert.equal(r.status, 500);
  assert.equal(h.gov.store.begin().get("public:ccf.gov.users.certs", Buffer.from("x")), undefined);
});

test("an infinite loop is stopped by the time limit and the app keeps serving", () => {
  const started = Date.now();
  const r = h.request("GET", "/app/loop", { as: user });
  assert.equal(r.status, 500);
  assert.match(r.json.error.message, /time limit/);
  assert.ok(Date.now() - started < 5000);
  assert.equal(h.request("GET", "/app/records/a%20b", { as: user }).status, 200);
});

test("allocating 1 GiB is stopped by the memory limit and the app keeps serving", () => {
  for (const path of ["/app/allocate", "/app/allocate-buffer"]) {
    const r = h.request("GET", path, { as: user });
    assert.equal(r.status, 500, r.text);
    // On a loaded machine the time limit can stop the allocation before the heap limit does;
    // either way it is stopped, the process never holds the 1 GiB, and the app keeps serving.
    assert.match(r.json.error.message, /memory limit|allocation failed|time limit/i);
    assert.equal(h.request("GET", "/app/records/a%20b", { as: user }).status, 200);
  }
  assert.ok(process.memoryUsage().rss < 1024 * 1024 * 1024);
});

test("async handlers, claims digests, and historical endpoints on a node without historical queries (501)", () => {
  assert.deepEqual(h.request("GET", "/app/async", { as: user }).json, { async: true });
  const claimed = h.request("POST", "/app/claims", { as: user });
  assert.equal(claimed.claimsDigest?.length, 32);
  assert.equal(h.request("GET", "/app/historical", { as: user }).status, 501);
});

const hh = new AppHarness({ historical: true });
hh.deploy();
hh.setExceptionOptions({ return_exception_details: true });
const asUser = (txid?: string): RequestOptions => ({ as: user, headers: txid === undefined ? {} : { "x-ms-ccf-transaction-id": txid } });

test("ccf.historicalState is the transaction named by x-ms-ccf-transaction-id: its id, receipt and writes only", async () => {
  hh.request("PUT", "/app/records/h1", { as: user, body: '{"msg":"one"}' });
  const first = hh.gov.store.currentVersion;
  hh.request("PUT", "/app/records/h2", { as: user, body: '{"msg":"other"}' });
  hh.request("PUT", "/app/records/h1", { as: user, body: '{"msg":"two"}' });
  const r = await hh.requestAsync("GET", "/app/historical?h1", asUser(`1.${first}`));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, {
    transactionId: `1.${first}`, msg: "one", has: true, size: 1, ids: ["h1=one"], version: first, current: "two", usersInfo: 0,
    receipt: { cert: "CERT", node_id: "n1", signature: "c2ln", proof: [], is_signature_transaction: false,
      leaf_components: { write_set_digest: "00", commit_evidence: `ce:1.${first}:00`, claims_digest: "00" } },
  });
  const other = await hh.requestAsync("GET", "/app/historical?h1", asUser(`1.${first + 1}`));
  assert.deepEqual([other.json.msg, other.json.has, other.json.ids], [null, false, ["h2=other"]]);
});

test("historical endpoints answer CCF's 400s and 404s for a missing, malformed, unknown or invalid transaction id", async () => {
  const missing = await hh.requestAsync("GET", "/app/historical?h1", asUser());
  assert.deepEqual([missing.status, missing.json.error.code], [400, "MissingRequiredHeader"]);
  assert.match(missing.json.error.message, /missing 'x-ms-ccf-transaction-id' header/);
  const malformed = await hh.requestAsync("GET", "/app/historical?h1", asUser("1-2"));
  assert.deepEqual([malformed.status, malformed.json.error.code], [400, "InvalidHeaderValue"]);
  const unknown = await hh.requestAsync("GET", "/app/historical?h1", asUser(`1.${hh.gov.store.currentVersion + 5}`));
  assert.deepEqual([unknown.status, unknown.json.error.code, unknown.headers["cache-control"]], [404, "TransactionPendingOrUnknown", "no-cache"]);
  const invalid = await hh.requestAsync("GET", "/app/historical?h1", asUser("7.1"));
  assert.deepEqual([invalid.status, invalid.json.error.code], [404, "TransactionInvalid"]);
});

test("the historical KV is read-only, hides private ccf.* maps, and the current KV is read-only there too", async () => {
  const txid = `1.${hh.gov.store.currentVersion}`;
  const write = await hh.requestAsync("GET", "/app/historical-write", asUser(txid));
  assert.deepEqual([write.status, write.text], [409, 'ccf.historicalState.kv["records"].delete: all tables are read-only during a historical transaction']);
  const secret = await hh.requestAsync("GET", "/app/historical-secret", asUser(txid));
  assert.equal(secret.status, 500);
  assert.match(jsMessage(secret), /private ccf\.\* maps/);
  const current = await hh.requestAsync("GET", "/app/historical-current-write", asUser(txid));
  assert.equal(current.status, 500);
  assert.match(jsMessage(current), /readonly endpoint|read-only/i);
});

test("getStateRange: a call that answers 202 while the range is fetched runs again once it is", async () => {
  const to = hh.gov.store.currentVersion;
  const r = await hh.requestAsync("GET", `/app/historical-range?${to - 2}-${to}`, { as: user });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.length, 3);
  assert.equal(r.json[2], `1.${to}:1`);
  const uncommitted = await hh.requestAsync("GET", `/app/historical-range?${to}-${to + 1}`, { as: user });
  assert.equal(uncommitted.status, 202, "a range past the commit point is never fetched");
});

test("ccf.rpc.setApplyWrites(true) keeps the writes of an error answer or an exception; false drops those of a 2xx", () => {
  assert.equal(h.request("POST", "/app/apply-writes?keep", { as: user }).status, 400);
  assert.equal(h.record("apply-keep"), "x");
  const thrown = h.request("POST", "/app/apply-writes?throw", { as: user });
  assert.equal(thrown.status, 500);
  assert.match(jsMessage(thrown), /thrown after setApplyWrites/);
  assert.equal(h.record("apply-throw"), "x");
  assert.equal(h.request("POST", "/app/apply-writes?drop", { as: user }).status, 200);
  assert.equal(h.record("apply-drop"), undefined);
});

test("a call's writes reach the transaction when it returns, and its reads see them before", async () => {
  const r = h.request("POST", "/app/buffered", { as: user });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { seen: "one", had: true, sawB2: true, last: "uno" });
  assert.deepEqual([h.record("b1"), h.record("b2")], ["uno", "two"]);
  assert.equal((await h.requestAsync("POST", "/app/async-write", { as: user })).status, 200);
  assert.equal(h.record("async"), "yes");
  assert.equal(h.request("POST", "/app/big-value", { as: user }).json, true, "every byte value survives the crossing");
  const big = h.gov.store.begin().get("records", Buffer.from("big"))!;
  assert.deepEqual([big.length, big[255], big[256], big[99_999]], [100_000, 255, 0, 99_999 % 256]);
});

test("a redeploy replaces the endpoints and remove_js_app removes them", () => {
  const local = new AppHarness();
  local.deploy();
  assert.equal(local.request("GET", "/app/count", { as: user }).status, 200);
  local.deploy({
    metadata: { endpoints: { "/v2": { get: { ...ep("hello", "readonly", ["no_auth"]), js_module: "v2.js" } } } },
    modules: [{ name: "v2.js", module: "export function hello() { return { body: 'v2' }; }" }],
  });
  assert.equal(local.request("GET", "/app/count", { as: user }).status, 404);
  assert.equal(local.request("GET", "/app/v2").text, "v2");
  assert.equal(local.govern([{ name: "remove_js_app" }]), "Accepted");
  assert.equal(local.request("GET", "/app/v2").status, 404);
  local.app.dispose();
});

test("a bundle that fails to load answers 500 naming the failure", () => {
  const local = new AppHarness();
  local.deploy({
    metadata: { endpoints: { "/broken": { get: { ...ep("f", "readonly", ["no_auth"]), js_module: "broken.js" } } } },
    modules: [{ name: "broken.js", module: "export function f( {" }],
  });
  const r = local.request("GET", "/app/broken");
  assert.equal(r.status, 500);
  assert.match(r.json.error.message, /failed to load/);
  local.app.dispose();
});

test("throughput of a trivial handler and of a KV set handler, in process", () => {
  const bench = new AppHarness();
  bench.deploy();
  for (const [label, path] of [["noop", "/app/noop"], ["kv set + commit", "/app/kv-set"]] as const) {
    for (let i = 0; i < 2000; i++) bench.request("POST", path);
    const n = 20000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) bench.request("POST", path);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`# JS app ${label}: ${Math.round(n / seconds)} requests/s (${((seconds / n) * 1e6).toFixed(1)} µs each)`);
  }
  bench.app.dispose();
});

// ---- batching (what the node runs): requests of one event-loop turn share one isolate entry ----

// A limit well above one slow request's time even on a loaded machine (a slow request run alone
// must not hit it), and below 60 of them together.
const hb = new AppHarness({ batch: true, timeLimitMs: 1000 });
hb.deploy();
hb.setExceptionOptions({ return_exception_details: true });

test("batched requests each run in their own transaction, see their own request, headers and caller", async () => {
  const before = { ...hb.app.batchStats };
  const replies = await Promise.all([
    ...Array.from({ length: 6 }, (_, i) => hb.requestAsync("PUT", `/app/records/b${i}`, { as: user, body: JSON.stringify({ msg: `m${i}` }) })),
    hb.requestAsync("POST", "/app/echo/x/y?q=1", { body: "{}", headers: { "x-test": "first" } }),
    hb.requestAsync("POST", "/app/echo/z/w", { body: "[1]", headers: { "x-test": "second" } }),
    hb.requestAsync("GET", "/app/whoami", { as: user }),
  ]);
  for (let i = 0; i < 6; i++) {
    assert.equal(replies[i]!.status, 204, replies[i]!.text);
    assert.equal(hb.record(`b${i}`), `m${i}`);
  }
  assert.deepEqual([replies[6]!.json.header, replies[6]!.json.params, replies[6]!.json.json], ["first", { a: "x", b: "y" }, {}]);
  assert.deepEqual([replies[7]!.json.header, replies[7]!.json.params, replies[7]!.json.json], ["second", { a: "z", b: "w" }, [1]]);
  assert.equal(replies[8]!.json.cert, user.certPem);
  assert.equal(hb.app.batchStats.batches - before.batches, 1, "one isolate entry for the whole batch");
  assert.equal(hb.app.batchStats.requests - before.requests, 9);
});

test("in a batch, a throwing handler answers its 500 alone and its neighbours' writes still apply", async () => {
  const [ok1, thrown, ok2] = await Promise.all([
    hb.requestAsync("PUT", "/app/records/n1", { as: user, body: JSON.stringify({ msg: "one" }) }),
    hb.requestAsync("POST", "/app/throws", { as: user }),
    hb.requestAsync("PUT", "/app/records/n2", { as: user, body: JSON.stringify({ msg: "two" }) }),
  ]);
  assert.equal(ok1!.status, 204);
  assert.equal(ok2!.status, 204);
  assert.equal(thrown!.status, 500);
  assert.match(jsMessage(thrown!), /handler exploded/);
  assert.equal(hb.record("partial"), undefined);
  assert.deepEqual([hb.record("n1"), hb.record("n2")], ["one", "two"]);
});

test("in a batch, an infinite loop fails alone by the time limit; the others are answered", async () => {
  const [a, looped, b] = await Promise.all([
    hb.requestAsync("PUT", "/app/records/l1", { as: user, body: JSON.stringify({ msg: "x" }) }),
    hb.requestAsync("GET", "/app/loop", { as: user }),
    hb.requestAsync("GET", "/app/records/l1", { as: user }),
  ]);
  assert.equal(a!.status, 204);
  assert.equal(looped!.status, 500);
  assert.match(looped!.json.error.message, /time limit/);
  assert.ok(b!.status === 200 || b!.status === 404, b!.text);
});

test("in a batch, conflicting read-modify-writes are re-run until each one counted", async () => {
  const replies = await Promise.all(Array.from({ length: 10 }, () => hb.requestAsync("POST", "/app/increment")));
  assert.deepEqual(replies.map((r) => r.status), Array(10).fill(200));
  assert.deepEqual(replies.map((r) => r.json).sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(hb.record("counter"), "10");
});

test("in a batch, async handlers, readonly writes and Math.random behave as when run alone", async () => {
  const [asyncReply, readonlyWrite, r1, r2] = await Promise.all([
    hb.requestAsync("GET", "/app/async", { as: user }),
    hb.requestAsync("POST", "/app/readonly-write", { as: user }),
    hb.requestAsync("GET", "/app/random"),
    hb.requestAsync("GET", "/app/random"),
  ]);
  assert.deepEqual(asyncReply!.json, { async: true });
  assert.equal(readonlyWrite!.status, 500);
  assert.equal(hb.record("ro"), undefined);
  assert.notDeepEqual(r1!.json, r2!.json, "each request has its own Math.random seed");
});

test("in a batch, requests slow enough to exceed the shared time limit run again alone, and their endpoint leaves batching", async () => {
  // 60 slow requests (~40 ms each, quiet) together exceed the 1 s limit of one isolate entry
  // (2.4 times over), while one alone stays far below it even on a loaded machine.
  const first = await Promise.all(Array.from({ length: 60 }, () => hb.requestAsync("GET", "/app/slow")));
  assert.deepEqual(first.map((r) => r.status), Array(60).fill(200), first.find((r) => r.status !== 200)?.text);
  const before = { ...hb.app.batchStats };
  const second = await Promise.all([
    ...Array.from({ length: 5 }, () => hb.requestAsync("GET", "/app/slow")),
    hb.requestAsync("GET", "/app/random"),
    hb.requestAsync("GET", "/app/random"),
  ]);
  assert.deepEqual(second.map((r) => r.status), Array(7).fill(200));
  assert.equal(hb.app.batchStats.requests - before.requests, 2, "only the two fast requests were batched");
});
