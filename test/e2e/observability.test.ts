// End-to-end: a sandbox node's GET /metrics (Prometheus text) and GET /node/metrics (CCF's JSON)
// move with traffic, and its access log has one line per request with the endpoint's template
// path and the caller, never the query or body.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { GovernanceClient } from "../../src/client/index.js";

const ws = tempWorkspace();
let node: NodeProcess;

before(async () => {
  node = await NodeProcess.sandbox(ws.dir, ["--no-evm-gateway"]);
});
after(async () => {
  await node?.stop();
  ws.cleanup();
});

/** Samples of a Prometheus text exposition: "name{labels}" -> value. */
async function scrape(): Promise<Map<string, number>> {
  const r = await node.request("GET", "/metrics", { identity: "none" });
  assert.equal(r.status, 200, r.text);
  assert.match(String(r.headers["content-type"]), /text\/plain/);
  const samples = new Map<string, number>();
  for (const line of r.text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const space = line.lastIndexOf(" ");
    // Drop the node_id default label so tests can name series without it.
    const name = line.slice(0, space).replace(/node_id="[0-9a-f]+",?/, "").replace("{}", "").replace(",}", "}");
    samples.set(name, Number(line.slice(space + 1)));
  }
  return samples;
}

const value = (samples: Map<string, number>, name: string): number => samples.get(name) ?? 0;
const WRITES = 'coco_rpc_requests_total{method="POST",endpoint="/app/log/private",status="200"}';

test("GET /metrics answers without a client certificate, with consensus, ledger and process metrics", async () => {
  const samples = await scrape();
  assert.equal(value(samples, 'coco_consensus_role{role="Primary"}'), 1);
  assert.equal(value(samples, 'coco_consensus_role{role="Backup"}'), 0);
  assert.ok(value(samples, "coco_consensus_view") >= 1);
  assert.ok(value(samples, "coco_consensus_commit_seqno") > 0, "the sandbox's governance transactions are committed");
  assert.ok(value(samples, "coco_ledger_bytes") > 0);
  assert.ok(value(samples, 'coco_ledger_chunks{state="uncommitted"}') + value(samples, 'coco_ledger_chunks{state="committed"}') >= 1);
  assert.ok(Number.isNaN(samples.get("coco_snapshot_age_seconds")), "no snapshot yet: NaN, not a made-up age");
  assert.ok(value(samples, "coco_process_resident_memory_bytes") > 0);
  assert.ok(samples.has("coco_process_cpu_user_seconds_total"));
  assert.ok([...samples.keys()].some((k) => k.startsWith("coco_nodejs_gc_duration_seconds")), "GC metrics are collected");
});

test("request, commit and latency metrics move with traffic", async () => {
  const before = await scrape();
  const writes = 5;
  let last = "";
  for (let i = 0; i < writes; i++) {
    const r = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 100 + i, msg: `metrics ${i}` }) });
    assert.equal(r.status, 200, r.text);
    last = String(r.headers["x-ms-ccf-transaction-id"]);
  }
  await node.waitForStatus(last);
  assert.equal((await node.request("GET", "/app/no/such/path")).status, 404);
  const after = await scrape();
  assert.equal(value(after, WRITES) - value(before, WRITES), writes);
  assert.equal(value(after, 'coco_rpc_requests_total{method="GET",endpoint="unmatched",status="404"}')
    - value(before, 'coco_rpc_requests_total{method="GET",endpoint="unmatched",status="404"}'), 1);
  const latencyCount = 'coco_rpc_request_duration_seconds_count{method="POST",endpoint="/app/log/private"}';
  assert.equal(value(after, latencyCount) - value(before, latencyCount), writes);
  assert.ok(value(after, "coco_committed_transactions_total") - value(before, "coco_committed_transactions_total") >= writes);
  assert.ok(value(after, "coco_consensus_commit_seqno") >= Number(last.split(".")[1]));
  assert.ok(value(after, "coco_commit_latency_seconds_count") - value(before, "coco_commit_latency_seconds_count") >= writes,
    "each write's commit latency was observed once the commit point passed it");
});

test("GET /node/metrics answers CCF's sessions shape and per-endpoint calls, errors, failures and retries", async () => {
  const first = (await node.request("GET", "/node/metrics", { identity: "none" })).json();
  const entry = (body: any) => body.metrics.find((m: any) => m.path === "/app/log/private" && m.method === "GET");
  const callsBefore = entry(first)?.calls ?? 0;
  const errorsBefore = entry(first)?.errors ?? 0;
  assert.equal((await node.request("GET", "/app/log/private?id=100")).status, 200);
  assert.equal((await node.request("GET", "/app/log/private?id=999999")).status, 404);
  const second = (await node.request("GET", "/node/metrics", { identity: "none" })).json();
  assert.deepEqual(Object.keys(entry(second)).sort(), ["calls", "errors", "failures", "method", "path", "retries"]);
  assert.equal(entry(second).calls - callsBefore, 2);
  assert.equal(entry(second).errors - errorsBefore, 1);
  assert.equal(entry(second).failures, 0);
  const rpc = second.sessions.interfaces.primary_rpc_interface;
  assert.ok(second.sessions.active >= 1 && second.sessions.peak >= second.sessions.active);
  assert.ok(rpc.hard_cap > rpc.soft_cap);
  assert.deepEqual(Object.keys(rpc.errors).sort(), ["parsing", "request_header_too_large", "request_payload_too_large"]);
});

test("the access log has a line per request with the template path and caller, never the query", async () => {
  const marker = `/app/log/private?id=4242424242`;
  assert.equal((await node.request("GET", marker)).status, 404);
  const file = join(ws.dir, "access.log");
  const deadline = Date.now() + 10_000;
  let lines: any[] = [];
  // The log is written in batches (every 200 ms): wait for the request's line.
  while (Date.now() < deadline) {
    lines = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    if (lines.some((l) => l.method === "GET" && l.path === "/app/log/private" && l.status === 404)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const line = lines.find((l) => l.method === "GET" && l.path === "/app/log/private" && l.status === 404);
  assert.ok(line, "the request's line was written");
  assert.equal(line.caller, "user_cert");
  assert.match(line.caller_id, /^[0-9a-f]{64}$/);
  assert.equal(typeof line.ms, "number");
  assert.ok(line.bytes > 0);
  assert.doesNotMatch(readFileSync(file, "utf8"), /4242424242/, "no query string in the access log");
  assert.ok(lines.some((l) => l.path === "/metrics" && l.caller === "no_auth"));
});

test("console.log in a ballot is a node log line, as CCF logs the constitution's", async () => {
  const gov = new GovernanceClient({
    url: `https://127.0.0.1:${node.port}`,
    serviceCertPem: readFileSync(join(ws.dir, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8"),
  });
  try {
    const marker = `ballot-ran-${Math.random().toString(36).slice(2)}`;
    const proposal = await gov.propose({ actions: [{ name: "set_recovery_threshold", args: { recovery_threshold: 1 } }] });
    const voted = await gov.vote(proposal.proposalId, `export function vote(proposal, proposerId) { console.log("${marker}"); return true; }`);
    assert.equal(voted.proposalState, "Accepted");
    const deadline = Date.now() + 10_000;
    let line: { constitution?: boolean; console?: string } | undefined;
    while (line === undefined && Date.now() < deadline) {
      line = readFileSync(join(ws.dir, "node.log"), "utf8").split("\n").filter((l) => l.includes(marker)).map((l) => JSON.parse(l))[0];
      if (line === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(line, "the ballot's console.log reached node.log");
    assert.equal(line.constitution, true);
    assert.equal(line.console, "info");
  } finally {
    await gov.close();
  }
});
