// A multi-node network of real node processes on loopback: joins through governance,
// forwarding from backups, elections after SIGKILL, catch-up after restart, retirement.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tempWorkspace } from "../helpers/node-process.js";
import { Network, type NetworkNode } from "../helpers/network.js";

async function write(node: NetworkNode, id: number, msg: string): Promise<string> {
  const r = await node.process!.request("POST", "/app/log/private", { body: JSON.stringify({ id, msg }) });
  assert.equal(r.status, 200, `write ${id} via node ${node.index}: ${r.text}`);
  return r.headers["x-ms-ccf-transaction-id"] as string;
}

async function waitCommitted(node: NetworkNode, txid: string, timeoutMs = 15_000): Promise<void> {
  await node.process!.waitForStatus(txid, "Committed", timeoutMs);
}

async function read(node: NetworkNode, id: number): Promise<string | undefined> {
  const r = await node.process!.request("GET", `/app/log/private?id=${id}`);
  return r.status === 200 ? r.json().msg : undefined;
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("three nodes: joins through governance, writes on any node commit everywhere", { timeout: 120_000 }, async () => {
  const ws = tempWorkspace("coco-net-");
  const net = await Network.start(ws.dir, 3).catch((e) => { ws.cleanup(); throw e; });
  try {
    await net.waitForConfiguration(3);
    const nodes = await net.nodes[0]!.process!.request("GET", "/node/network/nodes", { identity: "none" });
    assert.equal(nodes.json().nodes.length, 3);
    assert.equal(nodes.json().nodes.filter((n: any) => n.primary).length, 1);
    const txids: string[] = [];
    for (let i = 0; i < 30; i++) txids.push(await write(net.nodes[i % 3]!, i, `message ${i}`));
    for (const node of net.nodes) await waitCommitted(node, txids[txids.length - 1]!);
    for (const node of net.nodes) {
      for (let i = 0; i < 30; i++) assert.equal(await read(node, i), `message ${i}`, `node ${node.index} reads ${i}`);
    }
    // A backup answers with the primary's transaction id, and reports the same commit.
    const commits = await Promise.all(net.nodes.map(async (n) => (await n.process!.request("GET", "/node/commit", { identity: "none" })).json().transaction_id));
    assert.ok(commits.every((c) => c !== "0.0"));
    const primary = await net.primary();
    const backup = net.nodes.find((n) => n !== primary)!;
    const redirect = await backup.process!.request("GET", "/node/primary", { identity: "none" });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers["location"], `https://127.0.0.1:${primary.rpcPort}/node/primary`);
  } finally {
    await net.stop();
    ws.cleanup();
  }
});
