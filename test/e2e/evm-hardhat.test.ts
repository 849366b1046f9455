// Hardhat 2, unmodified, against a real `coco sandbox`: the project in test/fixtures/hardhat
// (a contract, a mocha test, a script) compiles, runs `hardhat test --network coco` and
// `hardhat run --network coco scripts/deploy.js` through the sandbox's plain-HTTP gateway. The
// project differs from a stock one only in its `coco` network entry and the offline compiler
// override (this machine cannot download solc builds). Hardhat runs in a copy of the project in
// a temporary directory, with its cache, config and data directories there too, so it writes
// nothing anywhere else.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, existsSync, readdirSync, symlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { Interface } from "ethers";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";

const CHAIN_ID = 31337;
const FIXTURE = resolve("test/fixtures/hardhat");
const HARDHAT_CLI = resolve("node_modules/hardhat/internal/cli/cli.js");
/** One Hardhat command: compiling with solcjs and a test run take a few seconds each on a loaded machine. */
const HARDHAT_TIMEOUT_MS = 120_000;

const sandboxDir = tempWorkspace("coco-evm-hardhat-");
const projectDir = tempWorkspace("coco-hardhat-project-");
let sandbox: NodeProcess;
let gatewayUrl: string;

interface Run { code: number | null; stdout: string; stderr: string }

function hardhat(args: string[]): Promise<Run> {
  const home = projectDir.dir;
  return new Promise((resolvePromise) => {
    execFile(process.execPath, [HARDHAT_CLI, ...args], {
      cwd: projectDir.dir,
      timeout: HARDHAT_TIMEOUT_MS,
      env: {
        PATH: process.env["PATH"] ?? "",
        HOME: home,
        // Hardhat keeps its compiler list, telemetry consent and analytics id under these (env-paths).
        XDG_CACHE_HOME: join(home, ".cache"),
        XDG_CONFIG_HOME: join(home, ".config"),
        XDG_DATA_HOME: join(home, ".data"),
        HARDHAT_DISABLE_TELEMETRY_PROMPT: "true",
        COCO_EVM_URL: gatewayUrl,
        COCO_EVM_CHAIN_ID: String(CHAIN_ID),
      },
    }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
      resolvePromise({ code, stdout, stderr });
    });
  });
}

before(async () => {
  sandbox = await NodeProcess.sandbox(sandboxDir.dir, ["--evm-chain-id", String(CHAIN_ID), "--durability", "none"]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const match = /without client certificates at (http:\/\/127\.0\.0\.1:\d+)/.exec(sandbox.output());
    if (match) {
      gatewayUrl = match[1]!;
      break;
    }
    if (Date.now() > deadline) throw new Error(`the sandbox did not print its EVM gateway:\n${sandbox.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  cpSync(FIXTURE, projectDir.dir, { recursive: true });
  // Hardhat must be the project's own installation (HH12 otherwise): the repository's modules.
  symlinkSync(resolve("node_modules"), join(projectDir.dir, "node_modules"), "dir");
});

after(async () => {
  await sandbox?.stop();
  sandboxDir.cleanup();
  projectDir.cleanup();
});

test("Hardhat compiles the project offline with solcjs (the subtask override) and writes only inside the project", async () => {
  const run = await hardhat(["compile"]);
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /Compiled 1 Solidity file successfully/);
  assert.ok(existsSync(join(projectDir.dir, "artifacts/contracts/Counter.sol/Counter.json")));
  // The fixture in the repository stays as committed: no artifacts or cache next to it.
  assert.deepEqual(readdirSync(FIXTURE).sort(), ["contracts", "hardhat.config.js", "package.json", "scripts", "test"]);
});

test("`hardhat test --network coco` deploys, calls and sees events and custom errors through the gateway", async () => {
  const run = await hardhat(["test", "--network", "coco"]);
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /4 passing/);
  assert.doesNotMatch(run.stdout, /failing/);
});

test("`hardhat run --network coco scripts/deploy.js` deploys a contract whose state the node then holds", async () => {
  const run = await hardhat(["run", "--network", "coco", "scripts/deploy.js"]);
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  const line = run.stdout.split("\n").find((l) => l.startsWith("{"));
  assert.ok(line, `the script printed no JSON line:\n${run.stdout}`);
  const { address, count, blockNumber } = JSON.parse(line) as { address: string; count: string; blockNumber: number };
  assert.equal(count, "8");
  // Read back over mutual TLS as user0, not through Hardhat: the node itself holds the contract.
  const counter = new Interface(["function count() view returns (uint256)"]);
  const call = await sandbox.request("POST", "/app/evm", {
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_call", params: [{ to: address, data: counter.encodeFunctionData("count") }, "latest"] }),
  });
  assert.equal(call.status, 200, call.text);
  assert.equal(counter.decodeFunctionResult("count", call.json().result)[0], 8n);
  const receiptBlock = await sandbox.request("POST", "/app/evm", {
    body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "eth_getBlockByNumber", params: [`0x${blockNumber.toString(16)}`, false] }),
  });
  assert.equal(receiptBlock.json().result.transactions.length, 1, receiptBlock.text);
});
