// `npm run bench -- --app evm`: ERC-20 transfers per second through Ethereum JSON-RPC, counted
// once receipts answer (committed, for Coco), for a Coco sandbox, Hardhat's own node (`hardhat
// node`, automine) and ganache, one after the other in the same run, driven by the same client
// and the same pre-signed load. Each funded development account is one
// sender; its transfers go out in nonce order as JSON-RPC batches of BATCH_SIZE, one batch in
// flight per account (no mempool in Coco: a later nonce must not overtake an earlier one), all
// accounts in parallel over keep-alive connections. Coco runs a batch as one Coco transaction
// (one ledger entry, one commit); Hardhat and ganache mine each transfer of a batch as its own
// block. CPU per transfer sums every process of a server's process tree (threads included).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { Pool } from "undici";
import { getCreateAddress, Interface, Wallet } from "ethers";
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
/**
 * Hardhat's node runs the requests of a JSON-RPC batch concurrently (Promise.all), so a batch's
 * transfers reach its automining chain out of nonce order and are refused ("Nonce too high …
 * transactions can't be queued when automining"): Hardhat gets one transfer per request, still
 * one request in flight per sender.
 */
const HARDHAT_BATCH_SIZE = 1;
/** Goals of issue 17 on the 2-core machine: committed transfers/s, ratios within one run, node CPU. */
const THROUGHPUT_GOAL = 2000;
const HARDHAT_RATIO_GOAL = 5;
const GANACHE_RATIO_GOAL = 10;
const CPU_PER_TX_GOAL_US = 400;
const RECEIPT_WAIT_MS_MAX = 120_000;
/** The repository (dist/bench/ is two levels down): its node_modules hold Hardhat and ganache, whatever the working directory. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const hardhatVersion = (): string =>
  (JSON.parse(readFileSync(join(REPO_ROOT, "node_modules/hardhat/package.json"), "utf8")) as { version: string }).version;


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
  /** Transfers per JSON-RPC request. */
  readonly batchSize: number;
  readonly seconds: number;
  readonly committedPerSecond: number;
  readonly serverCpuMicrosecondsPerTx: number | null;
  readonly failed: number;
}

/**
 * The load, signed once before any server starts and sent unchanged to each: the token's
 * deployment (the deployer's nonce 0, so the token's address is known in advance) and every
 * sender's transfers from its first free nonce. Signing ~11,000 transactions takes seconds (more
 * on a busy machine); done while a server waited, it let the servers' keep-alive timeouts close
 * the client's idle connections under it.
 */
interface SignedLoad { readonly deployment: string; readonly tokenAddress: string; readonly transfers: string[][] }

async function signLoad(token: Compiled, perSender: number): Promise<SignedLoad> {
  const accounts = devAccounts(SENDERS);
  const wallets = accounts.map((a) => new Wallet(a.privateKey));
  const erc20 = new Interface(token.abi as never);
  const deployData = token.bytecode + erc20.encodeDeploy([accounts.map((a) => a.address), 10n ** 24n]).slice(2);
  const deployment = await wallets[0]!.signTransaction({
    chainId: CHAIN_ID, nonce: 0, gasLimit: 3_000_000n, type: 2, maxFeePerGas: 10n * GWEI, maxPriorityFeePerGas: 0n, data: deployData,
  });
  const tokenAddress = getCreateAddress({ from: wallets[0]!.address, nonce: 0 });
  const transfers = await Promise.all(wallets.map(async (wallet, sender) => {
    const firstNonce = sender === 0 ? 1 : 0;
    const signed: string[] = [];
    for (let i = 0; i < perSender; i++) {
      const to = wallets[(sender + 1 + (i % (SENDERS - 1))) % SENDERS]!.address;
      signed.push(await wallet.signTransaction({
        chainId: CHAIN_ID, nonce: firstNonce + i, to: tokenAddress, gasLimit: 100_000n, type: 2,
        maxFeePerGas: 10n * GWEI, maxPriorityFeePerGas: 0n, data: erc20.encodeFunctionData("transfer", [to, 1n]),
      }));
    }
    return signed;
  }));
  return { deployment, tokenAddress, transfers };
}

/**
 * Sends each sender's transfers in nonce order, one batch in flight per sender, and waits for
 * the last receipt of every sender: returns those hashes' receipts and how many requests failed.
 */
async function send(client: RpcClient, perSender: string[][], name: string, batchSize: number): Promise<{ failed: number }> {
  let failed = 0;
  const fail = (message: string): void => {
    if (failed++ === 0) progress(`  ${name}: first failure: ${message}`);
  };
  const lastHashes = await Promise.all(perSender.map(async (transfers) => {
    let last = "";
    for (let i = 0; i < transfers.length; i += batchSize) {
      const chunk = transfers.slice(i, i + batchSize);
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

/** Deploys the token, then sends the signed transfers (warm-up, then measured) and waits for the last receipts. */
async function measure(name: string, client: RpcClient, load: SignedLoad, serverPid: number | null, batchSize = BATCH_SIZE): Promise<EvmTargetFigures> {
  const accounts = devAccounts(SENDERS);
  // The load was signed for fresh accounts: a server whose accounts have sent anything already cannot take it.
  const nonces = await Promise.all(accounts.map(async (a) => Number(BigInt(await client.call("eth_getTransactionCount", [a.address, "latest"]) as string))));
  if (nonces.some((n) => n !== 0)) throw new Error(`${name}: the development accounts' nonces are ${nonces.join(", ")}, not all 0`);
  const deployed = await client.waitForReceipt(await client.call("eth_sendRawTransaction", [load.deployment]) as string);
  if (deployed.status !== "0x1" || deployed.contractAddress?.toLowerCase() !== load.tokenAddress.toLowerCase()) {
    throw new Error(`${name}: the token did not deploy at ${load.tokenAddress} (receipt: ${JSON.stringify(deployed)})`);
  }
  const signed = load.transfers;

  progress(`  ${name}: warm-up, ${SENDERS} × ${WARMUP_PER_SENDER} transfers (not measured)`);
  const warmUp = await send(client, signed.map((transfers) => transfers.slice(0, WARMUP_PER_SENDER)), name, batchSize);
  if (warmUp.failed !== 0) throw new Error(`${name}: ${warmUp.failed} warm-up transfers failed`);

  progress(`  ${name}: sending`);
  const cpuBefore = serverPid === null ? null : sampleProcessTree(serverPid).cpuSeconds;
  const started = performance.now();
  const { failed } = await send(client, signed.map((transfers) => transfers.slice(WARMUP_PER_SENDER)), name, batchSize);
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = serverPid === null ? null : sampleProcessTree(serverPid).cpuSeconds;
  const transfers = SENDERS * TRANSFERS_PER_SENDER - failed;
  return {
    transfers, batchSize, seconds: round(seconds, 3), committedPerSecond: round(transfers / seconds, 1), failed,
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
  const child = startChild("ganache", ["-e", GANACHE_SCRIPT(port, devAccounts(SENDERS))], { cwd: REPO_ROOT });
  const deadline = Date.now() + 60_000;
  while (!child.outputTail().includes("ganache ready")) {
    if (Date.now() > deadline || child.process.exitCode !== null) throw new Error(`ganache did not start:\n${child.outputTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port };
}

/**
 * Hardhat's own node (`hardhat node`, Hardhat 2 on EDR), automining: each transaction is mined
 * in its own block as it arrives, and its receipt answers at once. It runs in a temporary
 * project (Hardhat refuses to run outside one, and its project must have Hardhat installed
 * locally: the repository's node_modules), funds the same development accounts, and, as ganache
 * here, does not log each request (`loggingEnabled: false`; `hardhat node` logs every call by
 * default, which costs it CPU). Prague, as Coco (Hardhat 2.29 defaults to Osaka).
 */
async function startHardhat(projectDir: string): Promise<{ child: ManagedChild; port: number }> {
  const accounts = devAccounts(SENDERS).map((a) => ({ privateKey: a.privateKey, balance: (10_000n * 10n ** 18n).toString() }));
  writeFileSync(join(projectDir, "hardhat.config.js"), `module.exports = ${JSON.stringify({
    networks: { hardhat: { chainId: Number(CHAIN_ID), hardfork: "prague", loggingEnabled: false, mining: { auto: true, interval: 0 }, accounts } },
  }, null, 2)};\n`);
  symlinkSync(join(REPO_ROOT, "node_modules"), join(projectDir, "node_modules"), "dir");
  const port = await freePort();
  const cli = join(REPO_ROOT, "node_modules/hardhat/internal/cli/cli.js");
  const child = startChild("hardhat node", [cli, "node", "--hostname", "127.0.0.1", "--port", String(port)], {
    cwd: projectDir,
    env: {
      PATH: process.env["PATH"] ?? "", HOME: projectDir, HARDHAT_DISABLE_TELEMETRY_PROMPT: "true",
      // Hardhat keeps its compiler list, telemetry consent and analytics id under these (env-paths).
      XDG_CACHE_HOME: join(projectDir, ".cache"), XDG_CONFIG_HOME: join(projectDir, ".config"), XDG_DATA_HOME: join(projectDir, ".data"),
    },
  });
  const deadline = Date.now() + 60_000;
  while (!child.outputTail().includes("Started HTTP and WebSocket JSON-RPC server")) {
    if (Date.now() > deadline || child.process.exitCode !== null) throw new Error(`hardhat node did not start:\n${child.outputTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port };
}

/** Measures a plain-HTTP reference node (ganache, Hardhat) started by `start`, then stops it. */
async function measureReference(name: string, start: () => Promise<{ child: ManagedChild; port: number }>, load: SignedLoad, batchSize: number): Promise<EvmTargetFigures> {
  const server = await start();
  const pool = new Pool(`http://127.0.0.1:${server.port}`, { connections: SENDERS });
  try {
    return await measure(name, new RpcClient(pool, "/"), load, server.child.pid, batchSize);
  } finally {
    await pool.close();
    await stopChild(server.child, 5_000);
  }
}

export async function runEvmBench(options: BenchOptions): Promise<number> {
  const outPath = resolve(options.out);
  const tempDir = mkdtempSync(join(os.tmpdir(), "coco-bench-evm-"));
  progress(`${os.cpus().length} cores, node ${process.version}; sender recovery: ${secp256k1Backend}; results → ${outPath}`);
  const token = compileToken();
  progress(`pre-signing the token's deployment and ${SENDERS} × (${WARMUP_PER_SENDER} + ${TRANSFERS_PER_SENDER}) ERC-20 transfers (sent unchanged to each server)`);
  const load = await signLoad(token, WARMUP_PER_SENDER + TRANSFERS_PER_SENDER);
  const results: { coco?: EvmTargetFigures; hardhat?: EvmTargetFigures; ganache?: EvmTargetFigures; cocoProfile?: ProfileSummary; errors: Record<string, string> } = { errors: {} };
  // --profile: the Coco node runs under --cpu-prof; where its time goes is printed and saved.
  const profileDir = options.profile ? outPath.replace(/\.json$/, "") + "-cpuprofile" : undefined;
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });

  progress(`starting a Coco node (sandbox, durability ${options.durability})`);
  const workspace = join(tempDir, "node-workspace");
  mkdirSync(workspace);
  try {
    const node = await startNode({ workspace, durability: options.durability, evm: true, ...(profileDir === undefined ? {} : { profileDir }) });
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
      results.coco = await measure("Coco", client, load, node.child.pid);
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

  // COCO_BENCH_SKIP_GANACHE=1 / COCO_BENCH_SKIP_HARDHAT=1: leave a reference node out (quick
  // A/B runs of Coco changes; no ratio against the one left out).
  if (process.env["COCO_BENCH_SKIP_HARDHAT"] !== "1") try {
    progress("starting Hardhat's node (`hardhat node`, child process, automine, plain HTTP)");
    const projectDir = join(tempDir, "hardhat-project");
    mkdirSync(projectDir);
    progress("Hardhat: the same transfers, the same client");
    results.hardhat = await measureReference("Hardhat", () => startHardhat(projectDir), load, HARDHAT_BATCH_SIZE);
    progress(`  ${fmt(results.hardhat.committedPerSecond)} mined tx/s; Hardhat CPU ${fmt(results.hardhat.serverCpuMicrosecondsPerTx)} µs/tx`);
  } catch (error) {
    results.errors["hardhat"] = (error as Error).stack ?? String(error);
    progress(`Hardhat failed: ${(error as Error).message}`);
  }
  if (process.env["COCO_BENCH_SKIP_GANACHE"] !== "1") try {
    progress("starting ganache (child process, instamine eager, plain HTTP)");
    progress("ganache: the same transfers, the same client");
    results.ganache = await measureReference("ganache", startGanache, load, BATCH_SIZE);
    progress(`  ${fmt(results.ganache.committedPerSecond)} mined tx/s; ganache CPU ${fmt(results.ganache.serverCpuMicrosecondsPerTx)} µs/tx`);
  } catch (error) {
    results.errors["ganache"] = (error as Error).stack ?? String(error);
    progress(`ganache failed: ${(error as Error).message}`);
  }
  rmSync(tempDir, { recursive: true, force: true });

  const coco = results.coco?.committedPerSecond ?? null;
  const cpu = results.coco?.serverCpuMicrosecondsPerTx ?? null;
  const ratioTo = (other: EvmTargetFigures | undefined): number | null => coco !== null && other !== undefined ? round(coco / other.committedPerSecond, 2) : null;
  const hardhatRatio = ratioTo(results.hardhat);
  const ganacheRatio = ratioTo(results.ganache);
  const met = (value: number | null, goal: number, atMost = false): boolean | null => value === null ? null : atMost ? value <= goal : value >= goal;
  const result = {
    benchmark: "coco evm ERC-20 transfers vs Hardhat and ganache",
    machine: { cores: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? "unknown", nodeVersion: process.version },
    parameters: {
      senders: SENDERS, transfersPerSender: TRANSFERS_PER_SENDER, warmUpTransfersPerSender: WARMUP_PER_SENDER, inFlightPerSender: 1, batchSize: BATCH_SIZE, durability: options.durability,
      secp256k1Backend, chainId: Number(CHAIN_ID), coco: "POST /app/evm over mutual TLS, receipts committed",
      hardhat: `hardhat node ${hardhatVersion()}, plain HTTP, automine, prague, logging off, one transfer per request`, ganache: "plain HTTP, instamine eager",
    },
    headline: {
      cocoCommittedTxPerSecond: coco, hardhatTxPerSecond: results.hardhat?.committedPerSecond ?? null, ganacheTxPerSecond: results.ganache?.committedPerSecond ?? null,
      throughputGoal: THROUGHPUT_GOAL, throughputGoalMet: met(coco, THROUGHPUT_GOAL),
      hardhatRatio, hardhatRatioGoal: HARDHAT_RATIO_GOAL, hardhatRatioGoalMet: met(hardhatRatio, HARDHAT_RATIO_GOAL),
      ganacheRatio, ganacheRatioGoal: GANACHE_RATIO_GOAL, ganacheRatioGoalMet: met(ganacheRatio, GANACHE_RATIO_GOAL),
      cocoNodeCpuMicrosecondsPerTx: cpu, cpuGoalMicrosecondsPerTx: CPU_PER_TX_GOAL_US, cpuGoalMet: met(cpu, CPU_PER_TX_GOAL_US, true),
    },
    results,
  };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify(result, null, 2));
  const verdict = (isMet: boolean | null): string => isMet === null ? "not measured" : isMet ? "met" : "not met";
  printSection("Coco EVM benchmark: ERC-20 transfers, committed, against Hardhat and ganache", [
    { label: "Coco committed tx/s", value: `${fmt(coco)}  (goal > ${fmt(THROUGHPUT_GOAL)}: ${verdict(result.headline.throughputGoalMet)})` },
    { label: "Hardhat tx/s", value: fmt(results.hardhat?.committedPerSecond) },
    { label: "ganache tx/s", value: fmt(results.ganache?.committedPerSecond) },
    { label: "ratio Coco / Hardhat", value: `${fmt(hardhatRatio, "×", 2)}  (goal ${HARDHAT_RATIO_GOAL}×: ${verdict(result.headline.hardhatRatioGoalMet)})` },
    { label: "ratio Coco / ganache", value: `${fmt(ganacheRatio, "×", 2)}  (goal ${GANACHE_RATIO_GOAL}×: ${verdict(result.headline.ganacheRatioGoalMet)})` },
    { label: "node CPU per tx", value: `${fmt(cpu, " µs")}  (goal ≤ ${CPU_PER_TX_GOAL_US} µs: ${verdict(result.headline.cpuGoalMet)})` },
    { label: "Hardhat CPU per tx", value: fmt(results.hardhat?.serverCpuMicrosecondsPerTx, " µs") },
    { label: "ganache CPU per tx", value: fmt(results.ganache?.serverCpuMicrosecondsPerTx, " µs") },
    { label: "sender recovery", value: secp256k1Backend },
  ]);
  return Object.keys(results.errors).length === 0 ? 0 : 1;
}
