// Node-to-node channels between nodes of one service on loopback: ordered delivery both ways,
// batching of many frames, large frames, reconnect after a restart, bounded queues, clean close.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { NodeChannels } from "../../../src/channels/index.js";
import { createNodeIdentity, createService, FAST_BACKOFF, startNode, waitUntil, type TestNode } from "./fixtures.js";

const service = await createService();
const [identityA, identityB, identityC] = await Promise.all([createNodeIdentity(service), createNodeIdentity(service), createNodeIdentity(service)]);

const running = new Set<TestNode>();
async function start(identity = identityA, options: Parameters<typeof startNode>[1] = {}): Promise<TestNode> {
  const node = await startNode(identity, options);
  running.add(node);
  return node;
}
async function stop(node: TestNode): Promise<void> {
  running.delete(node);
  await node.channels.close();
}
after(async () => {
  await Promise.all([...running].map((node) => node.channels.close()));
});

function connect(nodes: TestNode[]): void {
  for (const from of nodes) for (const to of nodes) if (from !== to) from.channels.setPeer(to.identity.nodeId, to.address);
}

function texts(node: TestNode, from: TestNode): string[] {
  return node.received.filter((message) => message.from === from.identity.nodeId).map((message) => message.payload.toString());
}

test("two nodes exchange messages both ways, in order, with the sender's node id as `from`", async () => {
  const [a, b] = [await start(identityA), await start(identityB)];
  connect([a, b]);
  const expected = Array.from({ length: 100 }, (_, i) => `message ${i}`);
  for (const text of expected) {
    assert.equal(a.channels.send(b.identity.nodeId, 1, Buffer.from(text)), true);
    assert.equal(b.channels.send(a.identity.nodeId, 2, new TextEncoder().encode(text)), true);
  }
  await waitUntil(() => a.received.length === 100 && b.received.length === 100, "both nodes received 100 messages");
  assert.deepEqual(texts(b, a), expected);
  assert.deepEqual(texts(a, b), expected);
  assert.ok(b.received.every((message) => message.type === 1));
  assert.ok(a.received.every((message) => message.type === 2));
  const stats = a.channels.stats()[b.identity.nodeId]!;
  assert.equal(stats.connected, true);
  assert.equal(stats.sentFrames, 100);
  assert.equal(stats.queuedBytes, 0);
  assert.equal(stats.droppedFrames, 0);
  await Promise.all([stop(a), stop(b)]);
});

test("three nodes each reach the two others, every stream in order", async () => {
  const nodes = [await start(identityA), await start(identityB), await start(identityC)];
  connect(nodes);
  for (let i = 0; i < 50; i++) {
    for (const from of nodes) for (const to of nodes) if (from !== to) from.channels.send(to.identity.nodeId, 3, Buffer.from(`${i}`));
  }
  await waitUntil(() => nodes.every((node) => node.received.length === 100), "every node received 2 x 50 messages");
  const expected = Array.from({ length: 50 }, (_, i) => `${i}`);
  for (const to of nodes) for (const from of nodes) if (from !== to) assert.deepEqual(texts(to, from), expected);
  await Promise.all(nodes.map(stop));
});

test("many small frames and one 20 MiB frame arrive intact and in order", async () => {
  const [a, b] = [await start(identityA), await start(identityB)];
  a.channels.setPeer(b.identity.nodeId, b.address);
  const smallCount = 20_000;
  const large = Buffer.alloc(20 * 1024 * 1024);
  for (let i = 0; i < large.length; i += 997) large[i] = i % 251;
  for (let i = 0; i < smallCount / 2; i++) a.channels.send(b.identity.nodeId, 4, Buffer.from(`small ${i}`));
  a.channels.send(b.identity.nodeId, 5, large);
  for (let i = smallCount / 2; i < smallCount; i++) a.channels.send(b.identity.nodeId, 4, Buffer.from(`small ${i}`));
  await waitUntil(() => b.received.length === smallCount + 1, "all frames arrived", 8_000);
  const largeIndex = b.received.findIndex((message) => message.type === 5);
  assert.equal(largeIndex, smallCount / 2);
  assert.ok(b.received[largeIndex]!.payload.equals(large));
  const smalls = b.received.filter((message) => message.type === 4).map((message) => message.payload.toString());
  assert.deepEqual(smalls, Array.from({ length: smallCount }, (_, i) => `small ${i}`));
  assert.equal(a.channels.stats()[b.identity.nodeId]!.sentFrames, smallCount + 1);
  await Promise.all([stop(a), stop(b)]);
});

test("after the peer restarts on the same port the sender reconnects and later messages arrive", async () => {
  const a = await start(identityA);
  let b = await start(identityB);
  a.channels.setPeer(b.identity.nodeId, b.address);
  a.channels.send(b.identity.nodeId, 1, Buffer.from("before"));
  await waitUntil(() => b.received.length === 1, "the first message arrived");
  const port = b.address.port;
  await stop(b);
  await waitUntil(() => a.channels.stats()[identityB.nodeId]!.connected === false, "the sender noticed the restart");
  b = await start(identityB, { listen: { host: "127.0.0.1", port } });
  a.channels.send(identityB.nodeId, 1, Buffer.from("after"));
  await waitUntil(() => b.received.length === 1, "the message sent after the restart arrived");
  assert.equal(b.received[0]!.payload.toString(), "after");
  const stats = a.channels.stats()[identityB.nodeId]!;
  assert.equal(stats.connected, true);
  assert.ok(stats.reconnects >= 1, `reconnects ${stats.reconnects}`);
  await Promise.all([stop(a), stop(b)]);
});

test("onPeerConnected and onPeerDisconnected report the outbound connection going up and down (not on close())", async () => {
  const events: string[] = [];
  const a = await start(identityA, {
    onPeerConnected: (peer) => events.push(`up ${peer === identityB.nodeId ? "B" : peer}`),
    onPeerDisconnected: (peer) => events.push(`down ${peer === identityB.nodeId ? "B" : peer}`),
  });
  let b = await start(identityB);
  a.channels.setPeer(identityB.nodeId, b.address);
  await waitUntil(() => events.length === 1, "the connection to B was reported up");
  assert.equal(a.channels.isConnected(identityB.nodeId), true);
  const port = b.address.port;
  await stop(b);
  await waitUntil(() => events.length === 2, "the lost connection to B was reported");
  assert.equal(a.channels.isConnected(identityB.nodeId), false);
  b = await start(identityB, { listen: { host: "127.0.0.1", port } });
  await waitUntil(() => events.length === 3, "the new connection to B was reported up");
  a.channels.removePeer(identityB.nodeId);
  assert.deepEqual(events, ["up B", "down B", "up B", "down B"], "removing a connected peer reports it down");
  assert.equal(a.channels.isConnected(identityB.nodeId), false, "an unknown peer is not connected");
  a.channels.setPeer(identityB.nodeId, b.address);
  await waitUntil(() => events.length === 5, "the re-added peer was reported up");
  await stop(a);
  assert.deepEqual(events, ["up B", "down B", "up B", "down B", "up B"], "close() reports nothing");
  await stop(b);
});

test("moving a peer to a new address reconnects there and keeps what was queued", async () => {
  const a = await start(identityA);
  const unused = await freePort();
  a.channels.setPeer(identityB.nodeId, { host: "127.0.0.1", port: unused });
  a.channels.send(identityB.nodeId, 1, Buffer.from("queued while unreachable"));
  const b = await start(identityB);
  a.channels.setPeer(identityB.nodeId, b.address);
  await waitUntil(() => b.received.length === 1, "the queued message arrived at the new address");
  assert.equal(b.received[0]!.payload.toString(), "queued while unreachable");
  await Promise.all([stop(a), stop(b)]);
});

test("when the queue bound is reached send() returns false and droppedFrames counts", async () => {
  const a = await start(identityA, { queueBytesMax: 1_000 });
  a.channels.setPeer(identityB.nodeId, { host: "127.0.0.1", port: await freePort() });
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 20; i++) {
    if (a.channels.send(identityB.nodeId, 1, Buffer.alloc(95))) accepted += 1;
    else refused += 1;
  }
  assert.equal(accepted, 10); // 10 x (5 + 95) bytes fill the 1000-byte queue exactly
  assert.equal(refused, 10);
  const stats = a.channels.stats()[identityB.nodeId]!;
  assert.equal(stats.queuedBytes, 1_000);
  assert.equal(stats.droppedFrames, 10);
  assert.equal(stats.connected, false);
  assert.ok(a.logs.some((line) => line.level === "warn" && line.message.includes("queue to peer is full") && line.fields.peer === identityB.nodeId));
  await stop(a);
});

test("send() to an unknown peer returns false; a bad type, an oversized payload or a bad address throws", async () => {
  const a = await start(identityA, { frameBytesMax: 1024 });
  assert.equal(a.channels.send(identityB.nodeId, 1, Buffer.from("x")), false);
  assert.throws(() => a.channels.setPeer(identityB.nodeId, { host: "127.0.0.1", port: 0 }), /not a host and a TCP port/);
  assert.throws(() => a.channels.setPeer(identityA.nodeId, { host: "127.0.0.1", port: 1 }), /to itself/);
  a.channels.setPeer(identityB.nodeId, { host: "127.0.0.1", port: await freePort() });
  assert.throws(() => a.channels.send(identityB.nodeId, 256, Buffer.alloc(1)), /type must be an integer in 0..255/);
  assert.throws(() => a.channels.send(identityB.nodeId, -1, Buffer.alloc(1)), /type must be an integer/);
  assert.throws(() => a.channels.send(identityB.nodeId, 1, Buffer.alloc(1024)), /exceeds frameBytesMax/);
  assert.equal(a.channels.send(identityB.nodeId, 1, Buffer.alloc(1023)), true);
  a.channels.removePeer(identityB.nodeId);
  assert.equal(a.channels.send(identityB.nodeId, 1, Buffer.from("x")), false);
  assert.deepEqual(a.channels.stats(), {});
  await stop(a);
});

test("close() leaves no sockets, servers or timers behind, even while reconnecting", async () => {
  const timersBefore = countHandles().Timeout ?? 0;
  const a = await start(identityA);
  const b = await start(identityB);
  connect([a, b]);
  a.channels.setPeer(identityC.nodeId, { host: "127.0.0.1", port: await freePort() }); // keeps failing and retrying
  a.channels.send(b.identity.nodeId, 1, Buffer.from("x"));
  await waitUntil(() => b.received.length === 1, "a message arrived");
  await waitUntil(() => a.channels.stats()[identityC.nodeId]!.reconnects >= 1, "a reconnect attempt to the missing peer");
  await Promise.all([stop(a), stop(b)]);
  // libuv releases a closed handle a moment after its 'close' event.
  await waitUntil(() => networkHandles() === 0, "every socket and server handle is released", 1_000);
  assert.ok((countHandles().Timeout ?? 0) <= timersBefore, `timers left: ${JSON.stringify(countHandles())}`);
  assert.equal(a.channels.send(b.identity.nodeId, 1, Buffer.from("x")), false);
});

test("a node id that does not match the certificate is refused at construction", () => {
  assert.throws(
    () => new NodeChannels({ identity: { ...identityA, nodeId: identityB.nodeId }, listen: { host: "127.0.0.1", port: 0 }, onMessage() {}, backoff: FAST_BACKOFF }),
    /does not match the key in certPem/,
  );
});

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function networkHandles(): number {
  const counts = countHandles();
  return (counts.TCPSocketWrap ?? 0) + (counts.TCPServerWrap ?? 0) + (counts.TLSWrap ?? 0) + (counts.TCPWRAP ?? 0);
}

function countHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}
