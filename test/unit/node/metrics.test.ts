// The request metrics are plain counts on the request path, exposed when scraped in prom-client's
// own text format: cumulative buckets (a value equal to a bound falls in it), +Inf, sum and count.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NodeMetrics } from "../../../src/node/metrics.js";

function metrics(): NodeMetrics {
  return new NodeMetrics({
    nodeId: "ab".repeat(32), startCommitSeqno: 0,
    consensus: () => ({ role: "Primary", view: 1, commitSeqno: 0, lastSeqno: 0, primaryId: undefined, peers: [] }),
    ledgerDirectory: "/nonexistent", snapshotsDirectory: "/nonexistent",
    sessions: () => ({ active: 0, peak: 0, parsingErrors: 0, payloadTooLarge: 0, headerTooLarge: 0 }),
    sessionCaps: { soft: 1, hard: 2 }, rpcInterfaceName: "primary_rpc_interface",
  });
}

async function samples(m: NodeMetrics): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await m.prometheusText()).split("\n")) {
    if (!line.startsWith("coco_rpc_")) continue;
    const space = line.lastIndexOf(" ");
    out.set(line.slice(0, space).replace(/,?node_id="[0-9a-f]+"/, "").replace("{,", "{"), Number(line.slice(space + 1)));
  }
  return out;
}

test("request counts and durations are exposed as a Prometheus counter and histogram", async () => {
  const m = metrics();
  for (const seconds of [0.0001, 0.0005, 0.003, 0.2, 12]) m.requestAnswered("POST", "/app/log/private", 200, seconds);
  m.requestAnswered("POST", "/app/log/private", 409, 0.001);
  m.requestAnswered("BREW", "/app/log/private", 405, 0.001);
  m.requestAnswered("GET", "unmatched", 404, 0.0002);
  const s = await samples(m);
  assert.equal(s.get('coco_rpc_requests_total{method="POST",endpoint="/app/log/private",status="200"}'), 5);
  assert.equal(s.get('coco_rpc_requests_total{method="POST",endpoint="/app/log/private",status="409"}'), 1);
  assert.equal(s.get('coco_rpc_requests_total{method="other",endpoint="/app/log/private",status="405"}'), 1, "unknown methods share one label");
  assert.equal(s.get('coco_rpc_requests_total{method="GET",endpoint="unmatched",status="404"}'), 1);
  const bucket = (le: string) => s.get(`coco_rpc_request_duration_seconds_bucket{le="${le}",method="POST",endpoint="/app/log/private"}`);
  assert.equal(bucket("0.0005"), 2, "0.0001 and 0.0005 (a value equal to a bound is in its bucket)");
  assert.equal(bucket("0.001"), 3);
  assert.equal(bucket("0.005"), 4);
  assert.equal(bucket("0.25"), 5);
  assert.equal(bucket("10"), 5, "12 s is above every bound");
  assert.equal(bucket("+Inf"), 6);
  assert.equal(s.get('coco_rpc_request_duration_seconds_count{method="POST",endpoint="/app/log/private"}'), 6);
  assert.ok(Math.abs(s.get('coco_rpc_request_duration_seconds_sum{method="POST",endpoint="/app/log/private"}')! - 12.2046) < 1e-9);
  // CCF's per-endpoint JSON counts the same requests: 4xx are errors, unmatched requests are not an endpoint.
  const json = m.nodeMetricsJson() as { metrics: { path: string; method: string; calls: number; errors: number }[] };
  assert.deepEqual(json.metrics.find((e) => e.method === "POST"), { path: "/app/log/private", method: "POST", calls: 6, errors: 1, failures: 0, retries: 0 });
  assert.equal(json.metrics.some((e) => e.path === "unmatched"), false);
});
