// In-process micro-benchmark of the EVM app: a Store-backed harness (as
// test/unit/apps/evm-rpc.test.ts), an ERC-20 deployed at genesis time, pre-signed transfers,
// then µs per eth_sendRawTransaction (each its own Coco transaction, committed) and per
// eth_getTransactionReceipt. No network, no consensus: the app's own cost per transaction.
// `node dist/bench/evm-micro.js [--transfers N] [--profile out.cpuprofile]`; for a profile run
// under `node --cpu-prof` and summarise with bench/cpu-profile-summary.ts.
import { performance } from "node:perf_hooks";
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { Interface, Wallet } from "ethers";
import { Store } from "../src/kv/index.js";
import { EndpointRegistry, type EndpointDefinition } from "../src/rpc/index.js";
import { installEvmApp, devAccounts, secp256k1Backend, evmConfigBytes, EVM_CONFIG_KEY, EVM_CONFIG_MAP } from "../src/apps/evm/index.js";
import { compileErc20 } from "../test/helpers/erc20.js";

const CHAIN_ID = 31337n;
const GWEI = 1_000_000_000n;
const SENDERS = 10;
const args = process.argv.slice(2);
const arg = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(args[i + 1]);
};
const TRANSFERS = arg("transfers", 2000);
const BATCH = arg("batch", 1);
const PROFILE = args.includes("--profile") ? args[args.indexOf("--profile") + 1] : undefined;


function compile(): { abi: unknown[]; bytecode: string } {
  return compileErc20({ constructor: "holders", evmVersion: "shanghai", optimize: true });
}

class Harness {
  readonly store = new Store();
  private readonly endpoint: EndpointDefinition;
  private nextId = 1;
  constructor() {
    // What the set_evm_genesis governance action writes.
    const config = this.store.begin();
    config.set(EVM_CONFIG_MAP, EVM_CONFIG_KEY, evmConfigBytes(CHAIN_ID,
      devAccounts(SENDERS).map((a) => ({ address: a.address, balanceWei: "0x" + (10_000n * 10n ** 18n).toString(16) }))));
    this.store.commit(config, 1);
    const registry = new EndpointRegistry();
    installEvmApp(registry, {
      committedSeqno: () => Number.MAX_SAFE_INTEGER,
      authPolicies: ["no_auth"],
      rateLimit: { requestsPerSecond: 0, burst: 1 },
    });
    this.endpoint = registry.route("POST", "/app/evm").endpoint;
  }
  async post(body: string): Promise<any> {
    const tx = this.store.begin();
    const result = await this.endpoint.handler({
      request: { method: "POST", path: "/app/evm", query: "", headers: {}, body: Buffer.from(body), callerCert: undefined },
      params: {}, caller: { policy: "no_auth" }, tx,
    });
    if ((result.status ?? 200) < 300 && tx.hasWrites) this.store.commit(tx, this.store.currentVersion + 1);
    return result.body;
  }
  body(method: string, ...params: unknown[]): string {
    return JSON.stringify({ jsonrpc: "2.0", id: this.nextId++, method, params });
  }
  async call(method: string, ...params: unknown[]): Promise<any> {
    const b = await this.post(this.body(method, ...params));
    if (b.error !== undefined) throw new Error(`${method}: ${b.error.message}`);
    return b.result;
  }
}

async function main(): Promise<void> {
  const token = compile();
  const h = new Harness();
  const accounts = devAccounts(SENDERS);
  const wallets = accounts.map((a) => new Wallet(a.privateKey));
  const erc20 = new Interface(token.abi as never);
  const deployData = token.bytecode + erc20.encodeDeploy([accounts.map((a) => a.address), 10n ** 24n]).slice(2);
  const deployHash = await h.call("eth_sendRawTransaction", await wallets[0]!.signTransaction({
    chainId: CHAIN_ID, nonce: 0, gasLimit: 3_000_000n, type: 2, maxFeePerGas: 10n * GWEI, maxPriorityFeePerGas: 0n, data: deployData,
  }));
  const tokenAddress = (await h.call("eth_getTransactionReceipt", deployHash)).contractAddress as string;
  const perSender = Math.ceil(TRANSFERS / SENDERS);
  const signed: string[][] = await Promise.all(wallets.map(async (w, s) => {
    const out: string[] = [];
    for (let i = 0; i < perSender; i++) {
      const to = wallets[(s + 1 + (i % (SENDERS - 1))) % SENDERS]!.address;
      out.push(await w.signTransaction({
        chainId: CHAIN_ID, nonce: (s === 0 ? 1 : 0) + i, to: tokenAddress, gasLimit: 100_000n, type: 2,
        maxFeePerGas: 10n * GWEI, maxPriorityFeePerGas: 0n, data: erc20.encodeFunctionData("transfer", [to, 1n]),
      }));
    }
    return out;
  }));
  // Round-robin over senders, nonce order per sender.
  const order: string[] = [];
  for (let i = 0; i < perSender; i++) for (let s = 0; s < SENDERS; s++) order.push(signed[s]![i]!);
  const warm = Math.min(200, Math.floor(order.length / 5));
  const hashes: string[] = [];
  const send = async (raws: string[]): Promise<void> => {
    const body = raws.length === 1 && BATCH === 1 ? h.body("eth_sendRawTransaction", raws[0]) : `[${raws.map((r) => h.body("eth_sendRawTransaction", r)).join(",")}]`;
    const out = await h.post(body);
    for (const r of Array.isArray(out) ? out : [out]) {
      if (r.error !== undefined) throw new Error(r.error.message);
      hashes.push(r.result);
    }
  };
  for (let i = 0; i < warm; i += BATCH) await send(order.slice(i, Math.min(warm, i + BATCH)));
  const session = PROFILE === undefined ? undefined : new Session();
  if (session !== undefined) {
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 100 });
    await session.post("Profiler.start");
  }
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = warm; i < order.length; i += BATCH) await send(order.slice(i, Math.min(order.length, i + BATCH)));
  const t1 = performance.now();
  const cpu1 = process.cpuUsage(cpu0);
  if (session !== undefined) {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(PROFILE!, JSON.stringify(profile));
    session.disconnect();
  }
  const measured = order.length - warm;
  const t2 = performance.now();
  let reverted = 0;
  for (const hash of hashes.slice(warm)) {
    const r = await h.call("eth_getTransactionReceipt", hash);
    if (r.status !== "0x1") reverted++;
  }
  const t3 = performance.now();
  const result = {
    secp256k1Backend, transfers: measured, batch: BATCH,
    sendMicrosecondsPerTx: Number((((t1 - t0) * 1000) / measured).toFixed(1)),
    sendCpuMicrosecondsPerTx: Number(((cpu1.user + cpu1.system) / measured).toFixed(1)),
    receiptMicrosecondsPerCall: Number((((t3 - t2) * 1000) / measured).toFixed(1)),
    reverted,
  };
  console.log(JSON.stringify(result));
  if (reverted !== 0) process.exitCode = 1;
}

await main();
