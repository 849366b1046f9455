// `npm run bench -- --app evm`: ERC-20 transfers per second through Ethereum JSON-RPC, counted
// once receipts answer (committed, for Coco), for a Coco sandbox and for ganache side by side,
// driven by the same client and the same pre-signed load. Each funded development account is one
// sender; its transfers go out in nonce order as JSON-RPC batches of BATCH_SIZE, one batch in
// flight per account (no mempool in Coco: a later nonce must not overtake an earlier one), all
// accounts in parallel over keep-alive connections. Coco runs a batch as one Coco transaction
// (one ledger entry, one commit); ganache mines each transfer of a batch as its own block.
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { Pool } from "undici";
import { Interface, Wallet } from "ethers";
import { devAccounts } from "../src/apps/evm/dev-accounts.js";
import { secp256k1Backend } from "../src/apps/evm/crypto.js";
import type { BenchOptions } from "./args.js";
import { freePort, startNode } from "./servers.js";
import { startChild, stopChild, type ManagedChild } from "./child-processes.js";
import { sampleProcessTree } from "./proc-stats.js";
import { fmt, printSection, progress } from "./report.js";
import { summariseCpuProfile, type ProfileSummary } from "./cpu-profile-summary.js";
import { compileErc20, type CompiledToken } from "../test/helpers/erc20.js";

const CHAIN_ID = 31337n; // the sandbox's default, set on ganache too
const GWEI = 1_000_000_000n;
const SENDERS = 10;
const TRANSFERS_PER_SENDER = 1000;
/**
 * Transfers per sender sent first and not measured, through the same path: without them the
 * measured window included the JIT warming up the interpreter (a Coco node or ganache that has
 * just started and deployed one contract), as the logging benchmarks' warm-up phase avoids.
 */
const WARMUP_PER_SENDER = 100;
/** Transfers per JSON-RPC batch (the node accepts up to 100 requests per batch). */
const BATCH_SIZE = 20;
const THROUGHPUT_GOAL = 1600;
const RATIO_GOAL = 10;
const RECEIPT_WAIT_MS_MAX = 120_000;


type Compiled = CompiledToken;

function compileToken(): Compiled {
  // shanghai: what ganache 7 runs; Coco (Prague) runs it too.
  return compileErc20({ constructor: "holders", evmVersion: "shanghai", optimize: true });
}

/** A JSON-RPC endpoint reached through keep-alive connections (one per sender). */
class RpcClient {
  private nextId = 1;
  constructor(private readonly pool: Pool, private readonly path: string) {}

  async call(method: string, params: unknown[]): Promise<unknown> {
    const response = await this.pool.request({
      method: "POST", path: this.path, headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: this.nextId++, method, params }),
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`${method}: HTTP ${response.statusCode} ${text.slice(0, 300)}`);
    const body = JSON.parse(text) as { result?: unknown; error?: { message: string } };
    if (body.error !== undefined) throw new Error(`${method}: ${body.error.message}`);
    return body.result;
  }

  /** A JSON-RPC batch: one result or error per request, in request order. */
  async batch(method: string, paramsList: unknown[][]): Promise<({ result: unknown } | { error: string })[]> {
    const first = this.nextId;
    this.nextId += paramsList.length;
    const response = await this.pool.request({
      method: "POST", path: this.path, headers: { "content-type": "application/json" },
      body: JSON.stringify(paramsList.map((params, i) => ({ jsonrpc: "2.0", id: first + i, method, params }))),
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`${method} batch: HTTP ${response.statusCode} ${text.slice(0, 300)}`);
    const body = JSON.parse(text) as { id: number; result?: unknown; error?: { message: string } }[];
    if (!Array.isArray(body)) throw new Error(`${method} batch: not an array: ${text.slice(0, 300)}`);
    const byId = new Map(body.map((r) => [r.id, r]));
    return paramsList.map((_p, i) => {
      const r = byId.get(first + i);
      if (r === undefined) return { error: `no response for request ${i} of the batch` };
      return r.error !== undefined ? { error: r.error.message } : { result: r.result };
    });
  }

  async waitForReceipt(hash: string): Promise<{ status: string; contractAddress: string | null }> {
    const deadline = Date.now() + RECEIPT_WAIT_MS_MAX;
    for (;;) {
      const receipt = await this.call("eth_getTransactionReceipt", [hash]) as { status: string; contractAddress: string | null } | null;
      if (receipt !== null) return receipt;
      if (Date.now() > deadline) throw new Error(`no receipt for ${hash} within ${RECEIPT_WAIT_MS_MAX / 1000} s`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }
}

export interface EvmTargetFigures {
  readonly transfers: number;
  readonly seconds: number;
  readonly committedPerSecond: number;
  readonly serverCpuMicrosecondsPerTx: number | null;
  readonly failed: number;
}

async function signTransfers(token: Compiled, tokenAddress: string, nonces: number[], perSender: number): Promise<string[][]> {
  const wallets = devAccounts(SENDERS).map((a) => new Wallet(a.privateKey));
  const erc20 = new Interface(token.abi as never);
  return Promise.all(wallets.map(async (wallet, sender) => {
    const signed: string[] = [];
    for (let i = 0; i < perSender; i++) {
      const to = wallets[(sender + 1 + (i % (SENDERS - 1))) % SENDERS]!.address;
      signed.push(await wallet.signTransaction({
        chainId: CHAIN_ID, nonce: nonces[sender]! + i, to: tokenAddress, gasLimit: 100_000n, type: 2,
        maxFeePerGas: 10n * GWEI, maxPriorityFeePerGas: 0n, data: erc20.encodeFunctionData("transfer", [to, 1n]),
      }));
    }
    return signed;
  }));
}

/**
 * Sends each sender's transfers in nonce order, one batch in flight per sender, and waits for
 * the last receipt of every sender: returns those hashes' receipts and how many requests failed.
 */
async function send(client: RpcClient, perSender: string[][], name: string): Promise<{ failed: number }> {
  let failed = 0;
  const fail = (message: string): void => {
    if (failed++ === 0) progress(`  ${name}: first failure: ${message}`);
  };
  const lastHashes = await Promise.all(perSender.map(async (transfers) => {
    let last = "";
    for (let i = 0; i < transfers.length; i += BATCH_SIZE) {
      const chunk = transfers.slice(i, i + BATCH_SIZE);
      try {
        for (const r of await client.batch("eth_sendRawTransaction", chunk.map((raw) => [raw]))) {
          if ("error" in r) fail(r.error);
          else last = r.result as string;
        }
      } catch (error) {
        for (let j = 0; j < chunk.length; j++) fail((error as Error).message);
      }
    }
    return last;
  }));
  const receipts = await Promise.all(lastHashes.filter((h) => h !== "").map((h) => client.waitForReceipt(h)));
  if (receipts.some((r) => r.status !== "0x1")) throw new Error(`${name}: a transfer reverted`);
  return { failed };
}

/** Deploys the token, pre-signs the transfers, then sends them and waits for the last receipts. */
async function measure(name: string, client: RpcClient, token: Compiled, serverPid: number | null): Promise<EvmTargetFigures> {
  const accounts = devAccounts(SENDERS);
  const deployer = new Wallet(accounts[0]!.privateKey);
  const deployData = token.bytecode + new Interface(token.abi as never).encodeDeploy([accounts.map((a) => a.address), 10n ** 24n]).slice(2);
  const deployNonce = Number(BigInt(await client.call("eth_getTransactionCount", [deployer.address, "latest"]) as string));
  const deployHash = await client.call("eth_sendRawTransaction", [await deployer.signTransaction({
    chainId: CHAIN_ID, nonce: deployNonce, gasLimit: 3_000_000n, type: 2, maxFeePerGas: 10n * GWEI, maxPriorityFeePerGas: 0n, data: deployData,
  })]) as string;
  const deployed = await client.waitForReceipt(deployHash);
  if (deployed.status !== "0x1" || deployed.contractAddress === null) throw new Error(`${name}: the token did not deploy`);
  const nonces = await Promise.all(accounts.map(async (a) => Number(BigInt(await client.call("eth_getTransactionCount", [a.address, "latest"]) as string))));
  progress(`  ${name}: pre-signing ${SENDERS} × (${WARMUP_PER_SENDER} + ${TRANSFERS_PER_SENDER}) ERC-20 transfers`);
  const signed = await signTransfers(token, deployed.contractAddress, nonces, WARMUP_PER_SENDER + TRANSFERS_PER_SENDER);

  progress(`  ${name}: warm-up, ${SENDERS} × ${WARMUP_PER_SENDER} transfers (not measured)`);
  const warmUp = await send(client, signed.map((transfers) => transfers.slice(0, WARMUP_PER_SENDER)), name);
  if (warmUp.failed !== 0) throw new Error(`${name}: ${warmUp.failed} warm-up transfers failed`);

  progress(`  ${name}: sending`);
  const cpuBefore = serverPid === null ? null : sampleProcessTree(serverPid).cpuSeconds;
  const started = performance.now();
  const { failed } = await send(client, signed.map((transfers) => transfers.slice(WARMUP_PER_SENDER)), name);
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = serverPid === null ? null : sampleProcessTree(serverPid).cpuSeconds;
  const transfers = SENDERS * TRANSFERS_PER_SENDER - failed;
  return {
    transfers, seconds: round(seconds, 3), committedPerSecond: round(transfers / seconds, 1), failed,
    serverCpuMicrosecondsPerTx: cpuBefore === null || cpuAfter === null ? null : round(((cpuAfter - cpuBefore) * 1e6) / transfers, 1),
  };
}

const round = (n: number, digits: number): number => Number(n.toFixed(digits));

const GANACHE_SCRIPT = (port: number, accounts: { privateKey: string }[]) => `
const ganache = require("ganache");
const server = ganache.server({
  logging: { quiet: true },
  chain: { chainId: ${CHAIN_ID}, hardfork: "shanghai" },
  miner: { instamine: "eager" },
  wallet: { accounts: ${JSON.stringify(accounts.map((a) => ({ secretKey: a.privateKey, balance: "0x" + (10_000n * 10n ** 18n).toString(16) })))} },
});
server.listen(${port}, "127.0.0.1", (error) => { if (error) { console.error(error); process.exit(1); } console.log("ganache ready"); });
`;

async function startGanache(): Promise<{ child: ManagedChild; port: number }> {
  const port = await freePort();
  const child = startChild("ganache", ["-e", GANACHE_SCRIPT(port, devAccounts(SENDERS))], { cwd: process.cwd() });
  const deadline = Date.now() + 60_000;
  while (!child.outputTail().includes("ganache ready")) {
    if (Date.now() > deadline || child.process.exitCode !== null) throw new Error(`ganache did not start:\n${child.outputTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port };
}

export async function runEvmBench(options: BenchOptions): Promise<number> {
  const outPath = resolve(options.out);
  const tempDir = mkdtempSync(join(os.tmpdir(), "coco-bench-evm-"));
  progress(`${os.cpus().length} cores, node ${process.version}; sender recovery: ${secp256k1Backend}; results → ${outPath}`);
  const token = compileToken();
  const results: { coco?: EvmTargetFigures; ganache?: EvmTargetFigures; cocoProfile?: ProfileSummary; errors: Record<string, string> } = { errors: {} };
  // --profile: the Coco node runs under --cpu-prof; where its time goes is printed and saved.
  const profileDir = options.profile ? outPath.replace(/\.json$/, "") + "-cpuprofile" : undefined;
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });

  progress(`starting a Coco node (sandbox, durability ${options.durability})`);
  const workspace = join(tempDir, "node-workspace");
  mkdirSync(workspace);
  try {
    const node = await startNode({ workspace, durability: options.durability, ...(profileDir === undefined ? {} : { profileDir }) });
    const pool = new Pool(`https://${node.target.host}:${node.target.port}`, {
      connections: SENDERS, connect: { ca: node.target.ca, cert: node.target.cert, key: node.target.key, servername: "localhost" },
    });
    try {
      const client = new RpcClient(pool, "/app/evm");
      // The node answers PartOfNetwork before user0 is registered: wait for the app to let us in.
      for (let i = 0; ; i++) {
        try { await client.call("eth_chainId", []); break; } catch (error) { if (i > 100) throw error; await new Promise((r) => setTimeout(r, 100)); }
      }
      progress("Coco: ERC-20 transfers through POST /app/evm (receipts answer once committed)");
      results.coco = await measure("Coco", client, token, node.child.pid);
      progress(`  ${fmt(results.coco.committedPerSecond)} committed tx/s; node CPU ${fmt(results.coco.serverCpuMicrosecondsPerTx)} µs/tx`);
    } finally {
      await pool.close();
      await stopChild(node.child, 5_000);
    }
    const profile = profileDir === undefined ? undefined : readdirSync(profileDir).find((f) => f.endsWith(".cpuprofile"));
    if (profile !== undefined) {
      results.cocoProfile = summariseCpuProfile(join(profileDir!, profile), 25);
      printSection(`Coco node: self time by file (busy ${fmt(Math.round(results.cocoProfile.busyMs))} ms)`,
        results.cocoProfile.byFile.slice(0, 15).map((r) => ({ label: r.name, value: `${fmt(Math.round(r.selfMs))} ms  ${r.percentOfBusy.toFixed(1)}%` })));
      printSection("Coco node: self time by function",
        results.cocoProfile.byFunction.slice(0, 20).map((r) => ({ label: r.name, value: `${fmt(Math.round(r.selfMs))} ms  ${r.percentOfBusy.toFixed(1)}%` })));
    }
  } catch (error) {
    results.errors["coco"] = (error as Error).stack ?? String(error);
    progress(`Coco failed: ${(error as Error).message}`);
  }

  // COCO_BENCH_SKIP_GANACHE=1: Coco only (quick A/B runs of Coco changes; no ratio).
  if (process.env["COCO_BENCH_SKIP_GANACHE"] !== "1") try {
    progress("starting ganache (child process, instamine eager, plain HTTP)");
    const ganache = await startGanache();
    const pool = new Pool(`http://127.0.0.1:${ganache.port}`, { connections: SENDERS });
    try {
      progress("ganache: the same transfers, the same client");
      results.ganache = await measure("ganache", new RpcClient(pool, "/"), token, ganache.child.pid);
      progress(`  ${fmt(results.ganache.committedPerSecond)} mined tx/s; ganache CPU ${fmt(results.ganache.serverCpuMicrosecondsPerTx)} µs/tx`);
    } finally {
      await pool.close();
      await stopChild(ganache.child, 5_000);
    }
  } catch (error) {
    results.errors["ganache"] = (error as Error).stack ?? String(error);
    progress(`ganache failed: ${(error as Error).message}`);
  }

  const coco = results.coco?.committedPerSecond ?? null;
  const ratio = coco !== null && results.ganache ? round(coco / results.ganache.committedPerSecond, 2) : null;
  const result = {
    benchmark: "coco evm ERC-20 transfers vs ganache",
    machine: { cores: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? "unknown", nodeVersion: process.version },
    parameters: {
      senders: SENDERS, transfersPerSender: TRANSFERS_PER_SENDER, warmUpTransfersPerSender: WARMUP_PER_SENDER, inFlightPerSender: 1, batchSize: BATCH_SIZE, durability: options.durability,
      secp256k1Backend, chainId: Number(CHAIN_ID), coco: "POST /app/evm over mutual TLS, receipts committed", ganache: "plain HTTP, instamine eager",
    },
    headline: {
      cocoCommittedTxPerSecond: coco, ganacheTxPerSecond: results.ganache?.committedPerSecond ?? null, ratio,
      throughputGoal: THROUGHPUT_GOAL, throughputGoalMet: coco === null ? null : coco >= THROUGHPUT_GOAL,
      ratioGoal: RATIO_GOAL, ratioGoalMet: ratio === null ? null : ratio >= RATIO_GOAL,
      cocoNodeCpuMicrosecondsPerTx: results.coco?.serverCpuMicrosecondsPerTx ?? null,
    },
    results,
  };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify(result, null, 2));
  printSection("Coco EVM benchmark: ERC-20 transfers, committed, against ganache", [
    { label: "Coco committed tx/s", value: `${fmt(coco)}  (goal ${THROUGHPUT_GOAL}: ${result.headline.throughputGoalMet ? "met" : "not met"})` },
    { label: "ganache tx/s", value: fmt(results.ganache?.committedPerSecond) },
    { label: "ratio Coco / ganache", value: `${fmt(ratio, "×", 2)}  (goal ${RATIO_GOAL}×: ${result.headline.ratioGoalMet ? "met" : "not met"})` },
    { label: "node CPU per tx", value: fmt(results.coco?.serverCpuMicrosecondsPerTx, " µs") },
    { label: "ganache CPU per tx", value: fmt(results.ganache?.serverCpuMicrosecondsPerTx, " µs") },
    { label: "sender recovery", value: secp256k1Backend },
  ]);
  return Object.keys(results.errors).length === 0 ? 0 : 1;
}
