// End-to-end: a JS app bundle in CCF's format, deployed through governance (set_js_app) on a
// real node, serves requests against the KV, historical queries (modelled on CCF's logging
// sample: read a record back by transaction id with its receipt, and by seqno range) and
// `ccf.rpc.setApplyWrites`; remove_js_app takes it down again.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { GovernanceClient, parseCommitEvidence, verifyReceipt, type CcfReceipt } from "../../src/client/index.js";

const ws = tempWorkspace();
let node: NodeProcess;
let gov: GovernanceClient;

const APP_SOURCE = `
export function hello(request) {
  return { body: { greeting: "hello " + request.params.name, caller: request.caller.policy } };
}
export function increment(request) {
  const counters = ccf.kv["counters"];
  const key = ccf.strToBuf(request.body.json().name);
  const current = counters.has(key) ? ccf.bufToJsonCompatible(counters.get(key)) : 0;
  counters.set(key, ccf.jsonCompatibleToBuf(current + 1));
  return { statusCode: 201, headers: { "x-count": String(current + 1) }, body: { count: current + 1 } };
}
export function fail() {
  ccf.kv["counters"].set(ccf.strToBuf("poison"), ccf.jsonCompatibleToBuf(1));
  throw new Error("handler failed on purpose");
}
`;

// A logging app in the style of CCF's samples/apps/logging/js (query parameters, private
// records, historical reads by x-ms-ccf-transaction-id, paged ranges with getStateRange).
const LOG_SOURCE = `
function query(request) {
  const out = {};
  for (const kv of request.query.split("&")) { const [k, v] = kv.split("="); out[k] = v; }
  return out;
}
export function post(request) {
  const p = request.body.json();
  ccf.kv["records"].set(ccf.strToBuf(String(p.id)), ccf.strToBuf(p.msg));
  return { body: true };
}
export function get(request) {
  const msg = ccf.kv["records"].get(ccf.strToBuf(query(request).id));
  return { body: msg === undefined ? { error: "No such key" } : { msg: ccf.bufToStr(msg) } };
}
export function historicalWithReceipt(request) {
  const h = ccf.historicalState;
  const msg = h.kv["records"].get(ccf.strToBuf(query(request).id));
  return { body: { transactionId: h.transactionId, msg: msg === undefined ? null : ccf.bufToStr(msg), receipt: h.receipt } };
}
export function historicalWrite() {
  ccf.historicalState.kv["records"].set(ccf.strToBuf("x"), ccf.strToBuf("y"));
  return { body: true };
}
export function range(request) {
  const q = query(request);
  const from = parseInt(q.from_seqno), to = parseInt(q.to_seqno);
  const status = ccf.consensus.getStatusForTxId(ccf.consensus.getViewForSeqno(to), to);
  if (status !== "Committed") throw new Error("End of range must be committed");
  const handle = new DataView(ccf.crypto.digest("SHA-256", ccf.strToBuf(from + "-" + to + "-" + q.id))).getUint32(0);
  const states = ccf.historical.getStateRange(handle, from, to, 1800);
  if (states === null) return { statusCode: 202, headers: { "retry-after": "1" }, body: "fetching" };
  const entries = [];
  for (const state of states) {
    const msg = state.kv["records"].get(ccf.strToBuf(q.id));
    if (msg !== undefined) entries.push({ seqno: parseInt(state.transactionId.split(".")[1]), msg: ccf.bufToStr(msg) });
  }
  ccf.historical.dropCachedStates(handle);
  return { body: { entries } };
}
export function keepOnError(request) {
  ccf.kv["records"].set(ccf.strToBuf("kept"), ccf.strToBuf("despite 400"));
  ccf.rpc.setApplyWrites(true);
  return { statusCode: 400, body: "bad request, writes kept" };
}
export function dropOnSuccess(request) {
  ccf.kv["records"].set(ccf.strToBuf("dropped"), ccf.strToBuf("despite 200"));
  ccf.rpc.setApplyWrites(false);
  return { body: "ok, writes dropped" };
}
`;

function endpoint(fn: string, mode: string, module = "app.js") {
  return { js_module: module, js_function: fn, authn_policies: ["user_cert"], mode, forwarding_required: "never", openapi: {} };
}
const logEndpoint = (fn: string, mode: string) => endpoint(fn, mode, "logging.js");

async function passProposal(actions: { name: string; args?: unknown }[]): Promise<void> {
  let proposal = await gov.propose({ actions });
  if (proposal.proposalState === "Open") proposal = await gov.accept(proposal.proposalId);
  assert.equal(proposal.proposalState, "Accepted", JSON.stringify(proposal));
  if (proposal.transactionId) await gov.waitForCommit(proposal.transactionId);
}

before(async () => {
  node = await NodeProcess.sandbox(ws.dir);
  gov = new GovernanceClient({
    url: `https://127.0.0.1:${node.port}`,
    serviceCertPem: readFileSync(join(ws.dir, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8"),
  });
  await passProposal([{
    name: "set_js_app",
    args: {
      bundle: {
        metadata: {
          endpoints: {
            "/hello/{name}": { get: endpoint("hello", "readonly") },
            "/counter": { post: endpoint("increment", "readwrite") },
            "/fail": { post: endpoint("fail", "readwrite") },
            "/jslog/private": { post: logEndpoint("post", "readwrite"), get: logEndpoint("get", "readonly") },
            "/jslog/private/historical_receipt": { get: logEndpoint("historicalWithReceipt", "historical") },
            "/jslog/private/historical_write": { get: logEndpoint("historicalWrite", "historical") },
            "/jslog/private/historical/range": { get: logEndpoint("range", "readonly") },
            "/jslog/keep-on-error": { post: logEndpoint("keepOnError", "readwrite") },
            "/jslog/drop-on-success": { post: logEndpoint("dropOnSuccess", "readwrite") },
            "/jslog/jwt-only": { get: { ...logEndpoint("get", "readonly"), authn_policies: ["user_cert", "jwt"] } },
          },
        },
        modules: [{ name: "app.js", module: APP_SOURCE }, { name: "logging.js", module: LOG_SOURCE }],
      },
      disable_bytecode_cache: false,
    },
  }]);
});

after(async () => {
  await gov?.close();
  await node?.stop();
  ws.cleanup();
});

test("a deployed JS endpoint answers with templated parameters and the caller", async () => {
  const r = await node.request("GET", "/app/hello/world");
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json(), { greeting: "hello world", caller: "user_cert" });
});

test("a JS write commits, with the handler's status and headers", async () => {
  const first = await node.request("POST", "/app/counter", { body: JSON.stringify({ name: "a" }) });
  assert.equal(first.status, 201, first.text);
  const second = await node.request("POST", "/app/counter", { body: JSON.stringify({ name: "a" }) });
  assert.deepEqual(second.json(), { count: 2 });
  assert.equal(second.headers["x-count"], "2");
  await node.waitForStatus(String(second.headers["x-ms-ccf-transaction-id"]));
});

test("a JS handler that throws answers 500 and its writes are discarded", async () => {
  const r = await node.request("POST", "/app/fail", { body: "{}" });
  assert.equal(r.status, 500);
  // CCF's default js_runtime_options: the caller learns nothing of the exception.
  assert.deepEqual(r.json(), { error: { code: "InternalError", message: "Exception thrown while executing." } });
  const after = await node.request("POST", "/app/counter", { body: JSON.stringify({ name: "poison" }) });
  assert.deepEqual(after.json(), { count: 1 }, "the failed handler's write was not applied");
});

test("with set_js_runtime_options return_exception_details, a JS exception's message and trace are returned", async () => {
  await passProposal([{
    name: "set_js_runtime_options",
    args: { max_heap_bytes: 100 * 1024 * 1024, max_stack_bytes: 1024 * 1024, max_execution_time_ms: 1000, return_exception_details: true },
  }]);
  const r = await node.request("POST", "/app/fail", { body: "{}" });
  assert.equal(r.status, 500);
  const error = r.json().error as { message: string; details: { code: string; message: string; trace?: string }[] };
  assert.equal(error.message, "Exception thrown while executing.");
  assert.equal(error.details[0]!.code, "JSException");
  assert.match(error.details[0]!.message, /handler failed on purpose/);
});

async function logWrite(id: number, msg: string): Promise<string> {
  const r = await node.request("POST", "/app/jslog/private", { body: JSON.stringify({ id, msg }) });
  assert.equal(r.status, 200, r.text);
  return String(r.headers["x-ms-ccf-transaction-id"]);
}

function historical(txid: string | undefined, id: number) {
  return node.request("GET", `/app/jslog/private/historical_receipt?id=${id}`, { headers: txid === undefined ? {} : { "x-ms-ccf-transaction-id": txid } });
}

test("a historical endpoint reads the record as the transaction wrote it, with a receipt that verifies", async () => {
  const first = await logWrite(42, "first");
  const second = await logWrite(42, "second");
  await node.waitForStatus(second);
  assert.deepEqual((await node.request("GET", "/app/jslog/private?id=42")).json(), { msg: "second" });
  const serviceCertPem = readFileSync(join(ws.dir, "service_cert.pem"), "utf8");
  for (const [txid, msg] of [[first, "first"], [second, "second"]] as const) {
    const r = await historical(txid, 42);
    assert.equal(r.status, 200, r.text);
    const body = r.json() as { transactionId: string; msg: string; receipt: CcfReceipt & { is_signature_transaction: boolean } };
    assert.equal(body.transactionId, txid);
    assert.equal(body.msg, msg);
    assert.equal(body.receipt.is_signature_transaction, false);
    const verified = verifyReceipt(body.receipt, serviceCertPem);
    assert.equal(`${verified.txId.view}.${verified.txId.seqno}`, txid);
    assert.deepEqual(parseCommitEvidence(body.receipt.leaf_components.commit_evidence), verified.txId);
  }
});

test("a historical state holds only its transaction's writes, read-only", async () => {
  const other = await logWrite(7, "other key");
  await node.waitForStatus(other);
  const r = await historical(other, 42);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().msg, null, "id 42 was not written by this transaction");
  const write = await node.request("GET", "/app/jslog/private/historical_write", { headers: { "x-ms-ccf-transaction-id": other } });
  assert.equal(write.status, 500);
  assert.match(write.json().error.details[0].message, /read-only during a historical transaction/);
});

test("historical queries answer CCF's errors for a missing, malformed, pending or invalid transaction id", async () => {
  const missing = await historical(undefined, 42);
  assert.equal(missing.status, 400);
  assert.equal(missing.json().error.code, "MissingRequiredHeader");
  const malformed = await historical("not-a-txid", 42);
  assert.equal(malformed.status, 400);
  assert.equal(malformed.json().error.code, "InvalidHeaderValue");
  const last = await logWrite(8, "latest");
  const [view, seqno] = last.split(".").map(Number) as [number, number];
  const future = await historical(`${view}.${seqno + 1000}`, 42);
  assert.equal(future.status, 404);
  assert.equal(future.json().error.code, "TransactionPendingOrUnknown");
  assert.equal(future.headers["cache-control"], "no-cache");
  await node.waitForStatus(last);
  const wrongView = await historical(`${view + 3}.${seqno}`, 42);
  assert.equal(wrongView.status, 404);
  assert.equal(wrongView.json().error.code, "TransactionInvalid");
});

test("getStateRange serves every committed state of a range (Coco waits for the fetch rather than answering 202)", async () => {
  const a = await logWrite(99, "v1");
  await logWrite(5, "unrelated");
  const b = await logWrite(99, "v2");
  await node.waitForStatus(b);
  const from = Number(a.split(".")[1]);
  const to = Number(b.split(".")[1]);
  const r = await node.request("GET", `/app/jslog/private/historical/range?id=99&from_seqno=${from}&to_seqno=${to}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json(), { entries: [{ seqno: from, msg: "v1" }, { seqno: to, msg: "v2" }] });
});

test("ccf.rpc.setApplyWrites keeps writes of an error answer and drops those of a success", async () => {
  const kept = await node.request("POST", "/app/jslog/keep-on-error", { body: "{}" });
  assert.equal(kept.status, 400);
  assert.deepEqual((await node.request("GET", "/app/jslog/private?id=kept")).json(), { msg: "despite 400" });
  const dropped = await node.request("POST", "/app/jslog/drop-on-success", { body: "{}" });
  assert.equal(dropped.status, 200);
  assert.deepEqual((await node.request("GET", "/app/jslog/private?id=dropped")).json(), { error: "No such key" });
});

test("a 401 from an endpoint whose last policy is jwt carries CCF's WWW-Authenticate challenge", async () => {
  const r = await node.request("GET", "/app/jslog/jwt-only?id=1", { identity: "none" });
  assert.equal(r.status, 401);
  assert.equal(r.json().error.code, "InvalidAuthenticationInfo");
  assert.equal(r.headers["www-authenticate"], 'Bearer realm="JWT bearer token access", error="invalid_token"');
});

test("the built-in logging app still answers beside the JS app", async () => {
  const w = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1, msg: "still here" }) });
  assert.equal(w.status, 200);
});

test("remove_js_app takes the JS endpoints down", async () => {
  await passProposal([{ name: "remove_js_app" }]);
  const r = await node.request("GET", "/app/hello/world");
  assert.equal(r.status, 404);
});
