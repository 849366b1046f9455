// End-to-end: `coco sandbox --host 0.0.0.0 --nodes 2` listens on every address, yet dials its
// nodes on loopback (a wildcard is no address to connect to, and loopback is in the nodes'
// certificates), and its nodes publish a loopback node-to-node address to each other
// (docs/deployment.md: a wildcard bind needs a published address).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";

test("a sandbox on 0.0.0.0 opens its service, joins its second node, and publishes loopback between its nodes", { timeout: 120_000 }, async () => {
  const ws = tempWorkspace();
  let sandbox: NodeProcess | undefined;
  try {
    sandbox = await NodeProcess.sandbox(ws.dir, ["--host", "0.0.0.0", "--nodes", "2", "--no-evm-gateway"]);
    const node1 = JSON.parse(readFileSync(join(ws.dir, "node1", "config.json"), "utf8"));
    assert.match(node1.network.rpc_interfaces.primary_rpc_interface.bind_address, /^0\.0\.0\.0:\d+$/);
    const listed = (await sandbox.request("GET", "/node/network/nodes", { identity: "none" })).json().nodes as any[];
    assert.equal(listed.length, 2);
    for (const node of listed) {
      assert.equal(node.status, "Trusted");
      assert.match(node.node_to_node_interface.bind_address, /^0\.0\.0\.0:\d+$/);
      assert.match(node.node_to_node_interface.published_address, /^127\.0\.0\.1:\d+$/);
    }
    const write = await sandbox.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1, msg: "on every address" }) });
    assert.equal(write.status, 200, write.text);
    await sandbox.waitForStatus(write.headers["x-ms-ccf-transaction-id"] as string, "Committed", 20_000);
  } finally {
    await sandbox?.stop();
    ws.cleanup();
  }
});
