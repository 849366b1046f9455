// The access log: one line per request, written in batches, bounded, with template paths only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AccessLog, ACCESS_LOG_PENDING_MAX, type AccessLogEntry } from "../../../src/rpc/index.js";

const entry = (i: number): AccessLogEntry => ({
  method: "GET", endpoint: "/app/records/{id}", status: 200, seconds: 0.00125, bytes: 10 + i, callerKind: "user_cert", callerId: "ab".repeat(32),
});

test("requests are written as pino-style JSON lines, many per write", () => {
  const writes: string[] = [];
  const log = new AccessLog({ write: (text) => writes.push(text) }, "node-1");
  for (let i = 0; i < 3; i++) log.record(entry(i));
  assert.equal(writes.length, 0, "nothing is written on the request path");
  log.flush();
  assert.equal(writes.length, 1);
  const lines = writes[0]!.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  assert.deepEqual({ ...lines[2], time: 0 }, {
    level: 30, time: 0, node_id: "node-1", msg: "request", method: "GET", path: "/app/records/{id}", status: 200, ms: 1.25, bytes: 12,
    caller: "user_cert", caller_id: "ab".repeat(32),
  });
  log.close();
});

test("beyond the pending limit lines are dropped, and the next batch says how many", () => {
  const writes: string[] = [];
  const log = new AccessLog({ write: (text) => writes.push(text) }, "node-1");
  for (let i = 0; i < ACCESS_LOG_PENDING_MAX + 5; i++) log.record(entry(i));
  log.flush();
  const lines = writes.join("").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.filter((l) => l.msg === "request").length, ACCESS_LOG_PENDING_MAX);
  const warning = lines.find((l) => l.level === 40);
  assert.equal(warning?.dropped, 5);
  log.close();
});
