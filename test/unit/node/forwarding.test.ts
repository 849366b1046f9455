// The Forwarder on a backup: requests sent to a primary that is then lost (its channel closed,
// or consensus names another primary) are answered at once with 503 ForwardedPrimaryLost;
// requests never sent wait for a reachable primary and go to it; pending requests are bounded.
// The channels are an in-memory transport; the "primary" is a second Forwarder.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CocoError } from "../../../src/util/index.js";
import { Forwarder, type ForwarderOptions, type ForwardingTransport } from "../../../src/node/forwarding.js";
import { FRAME_FORWARD_REQUEST, FRAME_FORWARD_RESPONSE } from "../../../src/node/replication.js";
import { serviceUnavailable, type RpcRequest, type RpcResponse } from "../../../src/rpc/index.js";

const quiet = { warn() {}, info() {} };

function request(path = "/app/log/private", body = "{}"): RpcRequest {
  return { method: "POST", path, query: "", headers: { "content-type": "application/json" }, body: Buffer.from(body), callerCert: undefined };
}

interface Frame { to: string; type: number; payload: Buffer }

/** An in-memory transport: records frames; `connected` says which peers are reachable. */
class FakeTransport implements ForwardingTransport {
  readonly frames: Frame[] = [];
  readonly connected = new Set<string>();
  private waiters: (() => void)[] = [];
  send(to: string, type: number, payload: Buffer): boolean {
    this.frames.push({ to, type, payload });
    for (const wake of this.waiters.splice(0)) wake();
    return true;
  }
  isConnected(nodeId: string): boolean {
    return this.connected.has(nodeId);
  }
  /** Resolves once `count` frames were sent (fails the test after a deadline). */
  async sent(count: number, deadlineMs = 5_000): Promise<Frame[]> {
    const deadline = Date.now() + deadlineMs;
    while (this.frames.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} frames, got ${this.frames.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
    return this.frames;
  }
}

/** A backup whose consensus names `state.primary`, forwarding over a FakeTransport. */
type Limits = Pick<ForwarderOptions, "responseTimeoutMs" | "primaryWaitMs" | "pendingRequestsMax">;
function backup(options: Partial<Limits> & { primary?: string | undefined; connected?: string[] } = {}) {
  const { primary, connected, ...limits } = options;
  const transport = new FakeTransport();
  for (const peer of connected ?? ["primary-1"]) transport.connected.add(peer);
  const state = { primary: "primary" in options ? primary : "primary-1" };
  const local: RpcRequest[] = [];
  const forwarder = new Forwarder({
    transport, nodeId: "backup-1", primary: () => state.primary, logger: quiet, isTrustedForwarder: () => true,
    dispatchLocal: (r) => { local.push(r); return { status: 200, body: "ran here" }; },
    ...limits,
  });
  return { forwarder, transport, state, local };
}

/** The primary's side: a Forwarder whose dispatchLocal answers, sending its response frames to `reply`. */
function primaryAnswering(nodeId: string, answer: (r: RpcRequest) => RpcResponse | Promise<RpcResponse>, reply: (from: string, frame: Frame) => void): Forwarder {
  return new Forwarder({
    transport: { send: (to, type, payload) => { reply(nodeId, { to, type, payload }); return true; }, isConnected: () => true },
    nodeId, primary: () => nodeId, dispatchLocal: answer, logger: quiet, isTrustedForwarder: (peer) => peer === "backup-1",
  });
}

async function rejection(promise: Promise<unknown>): Promise<CocoError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof CocoError, `a CocoError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the request to fail");
}

function assertPrimaryLost(error: CocoError, primary: string): void {
  assert.equal(error.status, 503);
  assert.equal(error.code, "ForwardedPrimaryLost");
  assert.equal(error.headers?.["retry-after"], "1");
  assert.match(error.message, new RegExp(`primary \\(${primary}\\)`));
  assert.match(error.message, /may or may not have executed/);
  assert.match(error.message, /GET \/node\/tx\?transaction_id=/);
  assert.match(error.message, /read back/);
}

test("a forwarded request is answered with the primary's response", async () => {
  const { forwarder, transport } = backup();
  const primary = primaryAnswering("primary-1", (r) => ({ status: 200, headers: { "x-ms-ccf-transaction-id": "2.7" }, body: `ran ${r.path}` }),
    (from, frame) => forwarder.onResponse(from, frame.payload));
  const answered = forwarder.forward(request());
  const [sent] = await transport.sent(1);
  assert.equal(sent!.to, "primary-1");
  assert.equal(sent!.type, FRAME_FORWARD_REQUEST);
  await primary.onRequest("backup-1", sent!.payload);
  const response = await answered;
  assert.equal(response.status, 200);
  assert.equal(response.headers?.["x-ms-ccf-transaction-id"], "2.7");
  assert.equal(String(response.body), "ran /app/log/private");
  assert.equal(forwarder.pendingCount, 0);
});

test("when the channel to the primary closes, requests sent to it fail at once with 503 ForwardedPrimaryLost", async () => {
  const { forwarder, transport } = backup({ connected: ["primary-1", "node-3"] });
  const first = forwarder.forward(request());
  const second = forwarder.forward(request());
  await transport.sent(2);
  assert.equal(forwarder.pendingCount, 2);
  forwarder.peerDisconnected("node-3");
  assert.equal(forwarder.pendingCount, 2, "another peer's disconnection fails nothing");
  forwarder.peerDisconnected("primary-1");
  assert.equal(forwarder.pendingCount, 0);
  assertPrimaryLost(await rejection(first), "primary-1");
  assertPrimaryLost(await rejection(second), "primary-1");
  assert.match((await rejection(first)).message, /connection to it closed/);
});

test("when consensus names another primary, requests sent to the old one fail at once with 503 ForwardedPrimaryLost", async () => {
  const { forwarder, transport, state } = backup();
  const pending = forwarder.forward(request());
  await transport.sent(1);
  state.primary = "primary-2";
  forwarder.primaryChanged("primary-2");
  const error = await rejection(pending);
  assertPrimaryLost(error, "primary-1");
  assert.match(error.message, /node primary-2 was elected primary/);
  assert.equal(transport.frames.length, 1, "the request is not resent to the new primary: it may have executed");
});

test("when consensus loses its primary (an election starts), requests sent to it fail at once", async () => {
  const { forwarder, transport, state } = backup();
  const pending = forwarder.forward(request());
  await transport.sent(1);
  state.primary = undefined;
  forwarder.primaryChanged(undefined);
  const error = await rejection(pending);
  assertPrimaryLost(error, "primary-1");
  assert.match(error.message, /election is in progress/);
});

test("primaryChanged with the primary unchanged fails nothing: the primary's answer still arrives", async () => {
  const { forwarder, transport } = backup();
  const answered = forwarder.forward(request());
  const [sent] = await transport.sent(1);
  forwarder.primaryChanged("primary-1");
  const primary = primaryAnswering("primary-1", () => ({ status: 201, body: "created" }), (from, frame) => forwarder.onResponse(from, frame.payload));
  await primary.onRequest("backup-1", sent!.payload);
  assert.equal((await answered).status, 201);
});

test("a request that arrives while no primary is known waits, and is sent to the new primary once elected", async () => {
  const { forwarder, transport, state } = backup({ primary: undefined, connected: ["primary-2"] });
  const answered = forwarder.forward(request("/app/log/private", '{"id":1}'));
  assert.equal(forwarder.pendingCount, 1);
  assert.equal(transport.frames.length, 0, "nothing is sent while no primary is known");
  state.primary = "primary-2";
  forwarder.primaryChanged("primary-2");
  const [sent] = await transport.sent(1);
  assert.equal(sent!.to, "primary-2");
  const primary = primaryAnswering("primary-2", (r) => ({ status: 200, body: r.body }), (from, frame) => forwarder.onResponse(from, frame.payload));
  await primary.onRequest("backup-1", sent!.payload);
  const response = await answered;
  assert.equal(response.status, 200);
  assert.equal(String(response.body), '{"id":1}');
});

test("a request for a primary this node cannot reach yet waits for the connection, then is sent", async () => {
  const { forwarder, transport } = backup({ connected: [] });
  const answered = forwarder.forward(request());
  assert.equal(transport.frames.length, 0, "nothing is queued on a connection that is down");
  transport.connected.add("primary-1");
  forwarder.peerConnected("primary-1");
  const [sent] = await transport.sent(1);
  assert.equal(sent!.to, "primary-1");
  forwarder.peerDisconnected("primary-1");
  assertPrimaryLost(await rejection(answered), "primary-1");
});

test("a waiting request runs on this node when this node is elected primary", async () => {
  const { forwarder, transport, state, local } = backup({ primary: undefined });
  const answered = forwarder.forward(request("/app/log/private"));
  state.primary = "backup-1";
  forwarder.primaryChanged("backup-1");
  const response = await answered;
  assert.equal(response.body, "ran here");
  assert.deepEqual(local.map((r) => r.path), ["/app/log/private"]);
  assert.equal(transport.frames.length, 0);
});

test("a request that finds no reachable primary within primaryWaitMs gets 503 ServiceUnavailable saying it was not executed", async () => {
  const { forwarder, transport } = backup({ primary: undefined, primaryWaitMs: 20 });
  const error = await rejection(forwarder.forward(request()));
  assert.equal(error.status, 503);
  assert.equal(error.code, "ServiceUnavailable");
  assert.equal(error.headers?.["retry-after"], "1");
  assert.match(error.message, /not executed: retry shortly/);
  assert.equal(transport.frames.length, 0);
  assert.equal(forwarder.pendingCount, 0);
});

test("pending requests are bounded: beyond pendingRequestsMax a request gets 503 TooManyForwardedRequests and is not sent", async () => {
  const { forwarder, transport } = backup({ pendingRequestsMax: 2, connected: ["primary-1"] });
  const first = forwarder.forward(request());
  const second = forwarder.forward(request());
  await transport.sent(2);
  const error = await rejection(forwarder.forward(request()));
  assert.equal(error.status, 503);
  assert.equal(error.code, "TooManyForwardedRequests");
  assert.equal(error.headers?.["retry-after"], "1");
  assert.match(error.message, /was not sent/);
  assert.equal(transport.frames.length, 2);
  forwarder.peerDisconnected("primary-1");
  await Promise.allSettled([first, second]);
  assert.equal(forwarder.pendingCount, 0);
});

test("waiting requests count towards pendingRequestsMax", async () => {
  const { forwarder } = backup({ primary: undefined, pendingRequestsMax: 1 });
  const waiting = forwarder.forward(request());
  assert.equal((await rejection(forwarder.forward(request()))).code, "TooManyForwardedRequests");
  forwarder.close();
  assert.equal((await rejection(waiting)).code, "ServiceUnavailable");
});

test("a live primary that does not answer within responseTimeoutMs gives 504 RequestForwardingTimedOut (outcome unknown)", async () => {
  const { forwarder } = backup({ responseTimeoutMs: 20 });
  const error = await rejection(forwarder.forward(request()));
  assert.equal(error.status, 504);
  assert.equal(error.code, "RequestForwardingTimedOut");
  assert.match(error.message, /may or may not have executed/);
});

test("on the primary, a 503 from the request is relayed with its Retry-After", async () => {
  const { forwarder, transport } = backup();
  const primary = primaryAnswering("primary-1", () => { throw serviceUnavailable("TooManyPendingTransactions", "Backlog.", 4); },
    (from, frame) => { assert.equal(frame.type, FRAME_FORWARD_RESPONSE); forwarder.onResponse(from, frame.payload); });
  const answered = forwarder.forward(request());
  const [sent] = await transport.sent(1);
  await primary.onRequest("backup-1", sent!.payload);
  const response = await answered;
  assert.equal(response.status, 503);
  assert.equal(response.headers?.["retry-after"], "4");
  assert.deepEqual(JSON.parse(String(response.body)), { error: { code: "TooManyPendingTransactions", message: "Backlog." } });
});

test("an answer from a node the request was not sent to is ignored", async () => {
  const { forwarder, transport } = backup();
  const answered = forwarder.forward(request());
  const [sent] = await transport.sent(1);
  const impostor = primaryAnswering("node-3", () => ({ status: 200, body: "impostor" }), (from, frame) => forwarder.onResponse(from, frame.payload));
  await impostor.onRequest("backup-1", sent!.payload);
  assert.equal(forwarder.pendingCount, 1);
  const primary = primaryAnswering("primary-1", () => ({ status: 200, body: "primary" }), (from, frame) => forwarder.onResponse(from, frame.payload));
  await primary.onRequest("backup-1", sent!.payload);
  assert.equal(String((await answered).body), "primary");
});

test("close() fails what is pending and refuses new requests", async () => {
  const { forwarder, transport } = backup();
  const pending = forwarder.forward(request());
  await transport.sent(1);
  forwarder.close();
  assert.ok(await rejection(pending));
  assert.equal((await rejection(forwarder.forward(request()))).code, "ServiceUnavailable");
});

/** A backup whose forwarder is `nodeId`; the frame it sends to the primary for one request. */
async function forwardedFrame(nodeId: string): Promise<{ forwarder: Forwarder; answered: Promise<RpcResponse>; payload: Buffer }> {
  const transport = new FakeTransport();
  transport.connected.add("primary-1");
  const forwarder = new Forwarder({
    transport, nodeId, primary: () => "primary-1", logger: quiet, isTrustedForwarder: () => true,
    dispatchLocal: () => ({ status: 200, body: "ran here" }),
  });
  const answered = forwarder.forward(request());
  const [sent] = await transport.sent(1);
  return { forwarder, answered, payload: sent!.payload };
}

test("the primary refuses (403, unrun) a request forwarded by a node that is not Trusted", async () => {
  const { forwarder, answered, payload } = await forwardedFrame("retired-1");
  const ran: RpcRequest[] = [];
  const warnings: object[] = [];
  const primary = new Forwarder({
    transport: { send: (_to, _type, response) => { forwarder.onResponse("primary-1", response); return true; }, isConnected: () => true },
    nodeId: "primary-1", primary: () => "primary-1", logger: { warn: (fields) => warnings.push(fields) },
    isTrustedForwarder: (peer) => peer === "backup-1",
    dispatchLocal: (r) => { ran.push(r); return { status: 200, body: "ran" }; },
  });
  await primary.onRequest("retired-1", payload);
  assert.equal(ran.length, 0, "the request did not run");
  const response = await answered;
  assert.equal(response.status, 403);
  assert.equal(JSON.parse(String(response.body)).error.code, "ForwardingNodeNotTrusted");
  assert.match(JSON.parse(String(response.body)).error.message, /not a Trusted node/);
  assert.equal(warnings.length, 1, "the refusal is logged");
});

test("the primary refuses a forwarded request that names another node than the channel it came on", async () => {
  const { forwarder, answered, payload } = await forwardedFrame("backup-1");
  answered.catch(() => undefined); // answered by nobody here: close() fails it at the end
  const ran: RpcRequest[] = [];
  const answers: Buffer[] = [];
  const primary = new Forwarder({
    transport: { send: (_to, _type, response) => { answers.push(response); return true; }, isConnected: () => true },
    nodeId: "primary-1", primary: () => "primary-1", logger: quiet, isTrustedForwarder: () => true,
    dispatchLocal: (r) => { ran.push(r); return { status: 200, body: "ran" }; },
  });
  // backup-1's frame replayed on node-3's (authenticated, trusted) channel.
  await primary.onRequest("node-3", payload);
  assert.equal(ran.length, 0);
  assert.equal(answers.length, 1);
  assert.match(answers[0]!.toString("utf8"), /ForwardingNodeNotTrusted.*arrived on the authenticated channel of node node-3/);
  // On its own channel, from a trusted node, the same frame runs.
  await primary.onRequest("backup-1", payload);
  assert.equal(ran.length, 1);
  forwarder.close();
});
