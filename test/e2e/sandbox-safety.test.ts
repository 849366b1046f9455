// End-to-end: the sandbox owns its workspace and its nodes. A second sandbox or node on a
// workspace in use is refused, naming the running PID; a lock left by a killed sandbox is taken
// over; the nodes a sandbox started exit when it is killed with SIGKILL; a port in use is
// reported before the workspace is created.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { NodeProcess, runCli, tempWorkspace } from "../helpers/node-process.js";

const workspaces: { cleanup: () => void }[] = [];
const nodes: NodeProcess[] = [];
after(async () => {
  for (const node of nodes) await node.stop("SIGKILL").catch(() => undefined);
  for (const ws of workspaces) ws.cleanup();
});

function workspace(): string {
  const ws = tempWorkspace();
  workspaces.push(ws);
  return ws.dir;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("a second sandbox, or a node, on a workspace in use is refused naming the running PID; a dead holder's lock is taken over", async () => {
  const dir = workspace();
  const first = await NodeProcess.sandbox(dir, ["--no-evm-gateway"]);
  nodes.push(first);
  const pid = first.child.pid!;
  const second = await runCli(["sandbox", "--workspace", dir, "--port", "0", "--no-evm-gateway"]);
  assert.notEqual(second.code, 0);
  assert.match(second.stderr, new RegExp(`in use by process ${pid}\\b`));
  const node = await runCli(["node", "start", "--config", join(dir, "config.json")]);
  assert.notEqual(node.code, 0);
  assert.match(node.stderr, new RegExp(`WorkspaceLocked: .*in use by process ${pid}\\b`));
  // The first sandbox still serves, alone on its ledger.
  assert.equal((await first.request("GET", "/node/state", { identity: "none" })).status, 200);
  // Killed without a chance to clean up, it leaves its lock behind: the next sandbox takes it over.
  await first.stop("SIGKILL");
  assert.equal(JSON.parse(readFileSync(join(dir, "coco.lock"), "utf8")).pid, pid, "the dead sandbox's lock is still there");
  const third = await NodeProcess.sandbox(dir, ["--no-evm-gateway"]);
  nodes.push(third);
  assert.equal(JSON.parse(readFileSync(join(dir, "coco.lock"), "utf8")).pid, third.child.pid);
  assert.equal((await third.request("GET", "/node/state", { identity: "none" })).status, 200);
  await third.stop();
  assert.equal(existsSync(join(dir, "coco.lock")), false, "a clean stop removes the lock");
});

test("after kill -9 of a 2-node sandbox, the node it started exits too (no orphan)", async () => {
  const dir = workspace();
  const sandbox = await NodeProcess.sandbox(dir, ["--nodes", "2", "--no-evm-gateway"]);
  nodes.push(sandbox);
  assert.match(sandbox.output(), /node 1\/1: trusted, in the configuration, serving/);
  assert.match(sandbox.output(), /primary {7}node 0 \(/);
  // The joiner's own workspace lock names its PID.
  const joinerPid = JSON.parse(readFileSync(join(dir, "node1", "coco.lock"), "utf8")).pid as number;
  assert.notEqual(joinerPid, sandbox.child.pid);
  assert.ok(alive(joinerPid));
  await sandbox.stop("SIGKILL");
  await waitUntil(`node 1 (pid ${joinerPid}) has exited`, () => !alive(joinerPid));
});

test("a port in use is reported before the workspace is created", async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    const dir = join(workspace(), "not-yet");
    const result = await runCli(["sandbox", "--workspace", dir, "--port", String(port), "--no-evm-gateway"]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${port} for node 0`));
    assert.equal(existsSync(dir), false, "nothing was created");
  } finally {
    blocker.close();
  }
});

test("a joiner that fails makes the sandbox fail loudly, with the joiner's log", async () => {
  const dir = workspace();
  // node 1's configuration is broken on purpose: the node exits at once with a configuration error.
  mkdirSync(join(dir, "node1"), { recursive: true });
  writeFileSync(join(dir, "node1", "config.json"), JSON.stringify({
    network: { rpc_interfaces: { primary_rpc_interface: { bind_address: "127.0.0.1:0" } } },
    command: { type: "Bogus" },
  }));
  const result = await runCli(["sandbox", "--workspace", dir, "--port", "0", "--nodes", "2", "--no-evm-gateway"], { timeoutMs: 90_000 });
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stderr, /node 1 of the sandbox exited \(code 1\) before asking to join; the sandbox stops/);
  assert.match(result.stderr, /last lines of .*node1\/stdout\.log:\n[^]*InvalidConfiguration/);
  assert.equal(existsSync(join(dir, "coco.lock")), false, "the sandbox released its workspace on the way out");
});

test("--no-evm: no EVM app, chain or gateway; a later sandbox without it sets the chain up, and one with it again keeps that chain's data", async () => {
  const dir = workspace();
  const chainIdCall = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] });
  // The EVM app's own options with the app off are refused by name, before anything is created.
  const contradiction = await runCli(["sandbox", "--workspace", dir, "--port", "0", "--no-evm", "--evm-gateway-port", "9545"]);
  assert.equal(contradiction.code, 1);
  assert.match(contradiction.stderr, /--evm-gateway-port cannot be used with --no-evm/);
  assert.equal(existsSync(join(dir, "config.json")), false);
  let sandbox = await NodeProcess.sandbox(dir, ["--no-evm"]);
  nodes.push(sandbox);
  assert.match(sandbox.output(), /addresses {5}none: the EVM app is off \(--no-evm\)/);
  assert.doesNotMatch(sandbox.output(), /Ethereum JSON-RPC|EVM gateway|set_evm_genesis/);
  assert.equal(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).coco.evm, undefined, "the node's configuration has no EVM app");
  let evm = await sandbox.request("POST", "/app/evm", { body: chainIdCall });
  assert.equal(evm.status, 404, evm.text);
  assert.equal(typeof evm.json().error.code, "string", evm.text);
  const write = await sandbox.request("POST", "/app/log/private", { body: JSON.stringify({ id: 7, msg: "kept" }) });
  assert.equal(write.status, 200, write.text);
  await sandbox.waitForStatus(String(write.headers["x-ms-ccf-transaction-id"]));
  assert.equal(await sandbox.stop(), 0);

  // The same workspace without --no-evm: the service comes back (recovery) and gets its chain.
  sandbox = await NodeProcess.sandbox(dir, ["--no-evm-gateway", "--evm-chain-id", "4242"]);
  nodes.push(sandbox);
  assert.match(sandbox.output(), /member0 proposed set_evm_genesis \(chain id 4242/);
  evm = await sandbox.request("POST", "/app/evm", { body: chainIdCall });
  assert.equal(evm.status, 200, evm.text);
  assert.equal(evm.json().result, "0x1092");
  assert.equal(await sandbox.stop(), 0);

  // --no-evm again: the EVM app is off; its chain stays in the ledger for the next sandbox with it.
  sandbox = await NodeProcess.sandbox(dir, ["--no-evm"]);
  nodes.push(sandbox);
  assert.equal((await sandbox.request("POST", "/app/evm", { body: chainIdCall })).status, 404);
  assert.equal((await sandbox.request("GET", "/app/log/private?id=7")).json().msg, "kept");
  assert.equal(await sandbox.stop(), 0);
  sandbox = await NodeProcess.sandbox(dir, ["--no-evm-gateway"]);
  nodes.push(sandbox);
  assert.doesNotMatch(sandbox.output(), /set_evm_genesis/, "the chain was set up before: no second genesis");
  evm = await sandbox.request("POST", "/app/evm", { body: chainIdCall });
  assert.equal(evm.json().result, "0x1092", "the chain id given first is kept");
  assert.equal(await sandbox.stop(), 0);
});
