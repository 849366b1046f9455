// End-to-end: `coco gov`, `coco app` and `coco receipt` find a sandbox that listens on a port the
// OS chose, from another directory, through --workspace or COCO_WORKSPACE (the node writes its
// address to rpc_addresses.json once it listens), and say what is missing when they cannot.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { NodeProcess, runCli, tempWorkspace, type CliResult } from "../helpers/node-process.js";

const ws = tempWorkspace("coco-cli-context-");
const sandboxDir = join(ws.dir, "service");
const elsewhere = join(ws.dir, "somewhere", "else");
let node: NodeProcess;

function ok(result: CliResult, what: string): void {
  assert.equal(result.code, 0, `${what} failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
}

/** The environment without any COCO_* variable the test runner may have. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith("COCO_")) env[key] = value;
  return { ...env, ...extra };
}

before(async () => {
  mkdirSync(elsewhere, { recursive: true });
  node = await NodeProcess.sandbox(sandboxDir, ["--no-evm-gateway"]);
  assert.notEqual(node.port, 8000);
});

after(async () => {
  await node?.stop();
  ws.cleanup();
});

test("the node writes its actual RPC address (port 0 resolved) to rpc_addresses.json", () => {
  const addresses = JSON.parse(readFileSync(join(sandboxDir, "rpc_addresses.json"), "utf8"));
  assert.deepEqual(addresses, { primary_rpc_interface: `127.0.0.1:${node.port}` });
});

test("coco gov members --workspace finds the service from another directory", async () => {
  const result = await runCli(["gov", "members", "--workspace", sandboxDir, "--json"], { cwd: elsewhere, env: cleanEnv() });
  ok(result, "gov members --workspace");
  const members = JSON.parse(result.stdout) as { memberId: string }[] | Record<string, unknown>;
  assert.match(JSON.stringify(members), /Active/);
});

test("COCO_WORKSPACE does the same without flags; COCO_URL overrides the workspace's address", async () => {
  ok(await runCli(["gov", "members"], { cwd: elsewhere, env: cleanEnv({ COCO_WORKSPACE: sandboxDir }) }), "gov members with COCO_WORKSPACE");
  const wrongUrl = await runCli(["gov", "members"], { cwd: elsewhere, env: cleanEnv({ COCO_WORKSPACE: sandboxDir, COCO_URL: "https://127.0.0.1:1" }) });
  assert.notEqual(wrongUrl.code, 0, "COCO_URL was used (nothing listens on port 1)");
  assert.match(wrongUrl.stderr, /127\.0\.0\.1:1/);
});

test("without a workspace, the command says which file it could not read and how to name it", async () => {
  const result = await runCli(["gov", "members"], { cwd: elsewhere, env: cleanEnv() });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /cannot read service certificate '.*somewhere\/else\/workspace\/service_cert\.pem'/);
});

test("coco receipt get --workspace fetches a receipt as user0 and verifies it; coco receipt verify --workspace too", async () => {
  const write = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 7, msg: "context" }) });
  assert.equal(write.status, 200, write.text);
  const txid = String(write.headers["x-ms-ccf-transaction-id"]);
  const out = join(elsewhere, "receipt.json");
  const got = await runCli(["receipt", "get", txid, "--workspace", sandboxDir, "--out", out, "--verify"], { cwd: elsewhere, env: cleanEnv() });
  ok(got, "receipt get");
  assert.match(got.stdout, new RegExp(`Receipt is valid: transaction ${txid.replace(".", "\\.")}`));
  ok(await runCli(["receipt", "verify", out], { cwd: elsewhere, env: cleanEnv({ COCO_WORKSPACE: sandboxDir }) }), "receipt verify with COCO_WORKSPACE");
});

test("coco app deploy --workspace deploys from another directory", async () => {
  const project = join(elsewhere, "app");
  ok(await runCli(["app", "init", project], { cwd: elsewhere, env: cleanEnv() }), "app init");
  ok(await runCli(["app", "deploy", project, "--vote", "--workspace", sandboxDir], { cwd: elsewhere, env: cleanEnv(), timeoutMs: 60_000 }), "app deploy --workspace");
  const whoami = await node.request("GET", "/app/whoami");
  assert.equal(whoami.status, 200, whoami.text);
});
