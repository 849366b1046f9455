// End-to-end: a JS app bundle in CCF's format, deployed through governance (set_js_app) on a
// real node, serves requests against the KV; remove_js_app takes it down again.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { GovernanceClient } from "../../src/client/index.js";

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

function endpoint(fn: string, mode: string) {
  return { js_module: "app.js", js_function: fn, authn_policies: ["user_cert"], mode, forwarding_required: "never", openapi: {} };
}

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
          },
        },
        modules: [{ name: "app.js", module: APP_SOURCE }],
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
  assert.match(r.json().error.message, /handler failed on purpose/);
  const after = await node.request("POST", "/app/counter", { body: JSON.stringify({ name: "poison" }) });
  assert.deepEqual(after.json(), { count: 1 }, "the failed handler's write was not applied");
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
