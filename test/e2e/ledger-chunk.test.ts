// trigger_ledger_chunk on a real 3-node network: the ledger chunk ends at the first signature
// after the proposal's transaction, on every node at the same seqno (closed chunks stay
// identical across nodes), long before the chunk reaches its size limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { parseChunkName } from "../../src/ledger/files.js";
import { Network, type NetworkNode } from "../helpers/network.js";
import { tempWorkspace } from "../helpers/node-process.js";

function closedChunks(node: NetworkNode): { first: number; last: number }[] {
  const chunks: { first: number; last: number }[] = [];
  for (const name of readdirSync(join(node.dir, "ledger"))) {
    const parsed = parseChunkName(name);
    if (parsed !== null && parsed.lastSeqno !== null) chunks.push({ first: parsed.firstSeqno, last: parsed.lastSeqno });
  }
  return chunks.sort((a, b) => a.first - b.first);
}

async function eventually(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("trigger_ledger_chunk ends the chunk at the next signature on every node, at the same seqno", { timeout: 120_000 }, async () => {
  const ws = tempWorkspace("coco-ledger-chunk-");
  const net = await Network.start(ws.dir, 3).catch((e) => { ws.cleanup(); throw e; });
  try {
    await net.waitForConfiguration(3);
    // The default chunk size (5 MiB) is far away: nothing closes a chunk but the trigger.
    for (const node of net.nodes) assert.deepEqual(closedChunks(node), [], `node ${node.index} has no closed chunk yet`);
    const before = (await net.nodes[0]!.process!.request("GET", "/node/commit", { identity: "none" })).json().transaction_id as string;
    await net.propose([{ name: "trigger_ledger_chunk", args: {} }]);
    for (let i = 0; i < 5; i++) {
      const r = await net.nodes[0]!.process!.request("POST", "/app/log/public", { body: JSON.stringify({ id: i, msg: `after ${i}` }) });
      assert.equal(r.status, 200, r.text);
    }
    await eventually(() => net.nodes.every((n) => closedChunks(n).length === 1), "a closed chunk on every node");
    const ends = net.nodes.map((n) => closedChunks(n)[0]!);
    assert.deepEqual(ends[1], ends[0], "node 1's chunk ends where node 0's does");
    assert.deepEqual(ends[2], ends[0], "node 2's chunk ends where node 0's does");
    assert.equal(ends[0]!.first, 1);
    assert.ok(ends[0]!.last > Number(before.split(".")[1]), `the chunk ends after the proposal (${ends[0]!.last} > ${before})`);
  } finally {
    await net.stop();
    ws.cleanup();
  }
});
