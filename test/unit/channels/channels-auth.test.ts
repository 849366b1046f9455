// Channel authentication: only nodes endorsed by this service get through, a dialled server must
// be the node we meant to reach, and acceptPeer can refuse a known node (retired, unknown).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createNodeIdentity, createService, hasLog, sleep, startNode, waitUntil, type TestNode } from "./fixtures.js";

const service = await createService();
const otherService = await createService(); // same name "CN=CCF Service", different key
const [identityA, identityB, identityC] = await Promise.all([createNodeIdentity(service), createNodeIdentity(service), createNodeIdentity(service)]);
// Endorsed by another service, and trusting both services: only the honest node's own checks
// can stop a connection with it, in either direction.
const impostor = { ...(await createNodeIdentity(otherService)), serviceCertPem: otherService.certPem + service.certPem };

const running = new Set<TestNode>();
async function start(...args: Parameters<typeof startNode>): Promise<TestNode> {
  const node = await startNode(...args);
  running.add(node);
  return node;
}
after(async () => {
  await Promise.all([...running].map((node) => node.channels.close()));
});

test("an acceptor refuses a node whose certificate another service issued; nothing is delivered", async () => {
  const b = await start(identityB);
  const intruder = await start(impostor);
  intruder.channels.setPeer(identityB.nodeId, b.address);
  intruder.channels.send(identityB.nodeId, 1, Buffer.from("let me in"));
  await waitUntil(() => hasLog(b, "warn", "TLS handshake failed", "client certificate refused"), "the acceptor logged the refused certificate");
  await waitUntil(() => hasLog(intruder, "warn", "channel to peer failed", identityB.nodeId), "the intruder saw its dial fail");
  await sleep(100);
  assert.equal(b.received.length, 0);
  assert.equal(intruder.channels.stats()[identityB.nodeId]!.connected, false);
  assert.equal(intruder.channels.stats()[identityB.nodeId]!.sentFrames, 0);
});

test("a dialler refuses a server whose certificate another service issued", async () => {
  const intruder = await start(impostor);
  const a = await start(identityA);
  a.channels.setPeer(impostor.nodeId, intruder.address);
  a.channels.send(impostor.nodeId, 1, Buffer.from("secret"));
  await waitUntil(() => hasLog(a, "warn", "channel to peer failed", impostor.nodeId), "the dialler logged the refusal");

  await sleep(100);
  assert.equal(intruder.received.length, 0);
  assert.ok(!hasLog(intruder, "warn", "TLS handshake failed", "client certificate refused"), "the impostor, trusting both services, did not refuse");
  assert.equal(a.channels.stats()[impostor.nodeId]!.sentFrames, 0);
});

test("a dialled server that is not the expected node is refused, naming both node ids", async () => {
  const a = await start(identityA);
  const b = await start(identityB);
  a.channels.setPeer(identityC.nodeId, b.address); // C was expected at B's address
  a.channels.send(identityC.nodeId, 1, Buffer.from("for C only"));
  await waitUntil(() => hasLog(a, "warn", "channel to peer failed", `not the expected node ${identityC.nodeId}`), "the dialler logged the mismatch");
  const line = a.logs.find((entry) => entry.message.includes("channel to peer failed"))!;
  assert.match(String(line.fields.err), new RegExp(`server is node ${identityB.nodeId}`));
  await sleep(100);
  assert.equal(b.received.length, 0);
  assert.equal(a.channels.stats()[identityC.nodeId]!.sentFrames, 0);
});

test("acceptPeer returning false refuses the node with a log line naming it; nothing is delivered", async () => {
  const b = await start(identityB, { acceptPeer: (nodeId) => nodeId !== identityA.nodeId });
  const a = await start(identityA);
  const c = await start(identityC);
  a.channels.setPeer(identityB.nodeId, b.address);
  c.channels.setPeer(identityB.nodeId, b.address);
  a.channels.send(identityB.nodeId, 1, Buffer.from("from a retired node"));
  c.channels.send(identityB.nodeId, 1, Buffer.from("from an accepted node"));
  await waitUntil(() => hasLog(b, "warn", "not accepted", identityA.nodeId), "the acceptor logged the refusal");
  await waitUntil(() => b.received.length === 1, "the accepted node's message arrived");
  await sleep(100);
  assert.deepEqual(b.received.map((message) => message.from), [identityC.nodeId]);
  // The dialler never got the greeting, so it kept its message queued rather than losing it.
  const stats = a.channels.stats()[identityB.nodeId]!;
  assert.equal(stats.connected, false);
  assert.equal(stats.sentFrames, 0);
  assert.ok(stats.queuedBytes > 0);
});

test("recheckInboundPeers closes the connection of a node acceptPeer no longer accepts", async () => {
  const trusted = new Set([identityA.nodeId]);
  const b = await start(identityB, { acceptPeer: (nodeId) => trusted.has(nodeId) });
  const a = await start(identityA);
  a.channels.setPeer(identityB.nodeId, b.address);
  a.channels.send(identityB.nodeId, 1, Buffer.from("while trusted"));
  await waitUntil(() => b.received.length === 1, "the first message arrived");
  trusted.delete(identityA.nodeId); // A is retired
  b.channels.recheckInboundPeers();
  assert.ok(hasLog(b, "warn", "no longer accepted", identityA.nodeId));
  await waitUntil(() => a.channels.stats()[identityB.nodeId]!.connected === false, "A's channel was closed");
  a.channels.send(identityB.nodeId, 1, Buffer.from("after retirement"));
  await waitUntil(() => hasLog(b, "warn", "not accepted", identityA.nodeId), "A's redial was refused too");
  await sleep(50);
  assert.equal(b.received.length, 1);
});

test("acceptPeer's refusal reason is logged at the handshake and when an open connection is closed", async () => {
  let answer: true | { refused: string } = true;
  const b = await start(identityB, { acceptPeer: () => answer });
  const a = await start(identityA);
  a.channels.setPeer(identityB.nodeId, b.address);
  a.channels.send(identityB.nodeId, 1, Buffer.from("while accepted"));
  await waitUntil(() => b.received.length === 1, "the first message arrived");
  answer = { refused: "retired from the service and out of the configuration" };
  b.channels.recheckInboundPeers();
  const closed = b.logs.find((line) => line.message.includes("no longer accepted"));
  assert.equal(closed?.fields["reason"], "retired from the service and out of the configuration");
  await waitUntil(() => b.logs.some((line) => line.message.includes("refused an inbound channel") && line.fields["reason"] === "retired from the service and out of the configuration"),
    "A's redial was refused with the reason");
  assert.equal(b.received.length, 1);
});

test("a refused node that keeps redialling is logged once per interval, with the count suppressed; another refused node gets its own line", async () => {
  const b = await start(identityB, { acceptPeer: () => ({ refused: "retired from the service and out of the configuration" }) });
  const a = await start(identityA);
  a.channels.setPeer(identityB.nodeId, b.address);
  a.channels.send(identityB.nodeId, 1, Buffer.from("from a retired node"));
  const refusalsOf = (nodeId: string) => b.logs.filter((line) => line.message.includes("not accepted") && line.fields["peer"] === nodeId);
  await waitUntil(() => refusalsOf(identityA.nodeId).length === 1, "the first refusal is logged at once");
  // A redials with the fast test backoff (tens of ms): many refusals, one line.
  await sleep(1_000);
  assert.equal(refusalsOf(identityA.nodeId).length, 1, "the redials within the interval were not logged again");
  const c = await start(identityC);
  c.channels.setPeer(identityB.nodeId, b.address);
  c.channels.send(identityB.nodeId, 1, Buffer.from("from another refused node"));
  await waitUntil(() => refusalsOf(identityC.nodeId).length === 1, "another node's refusal has its own line");
  assert.equal(b.received.length, 0);
});
