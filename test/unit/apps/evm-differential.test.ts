// Differential check of the EVM app against a plain @ethereumjs/vm: the same signed transactions
// (deploys, ERC-20 transfers and a reverting one, value transfers, legacy, EIP-2930 and EIP-1559
// types) run through Coco's app (KV state manager, shared Common, fast paths, sender-recovery
// worker) and through a stock VM in a worker thread; status, gas, logs, created addresses and
// final balances and nonces must be identical.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { Interface, Wallet, parseEther, type TransactionRequest } from "ethers";
import { Store } from "../../../src/kv/index.js";
import { EndpointRegistry, type EndpointDefinition } from "../../../src/rpc/index.js";
import { installEvmApp, evmConfigBytes, EVM_CONFIG_KEY, EVM_CONFIG_MAP } from "../../../src/apps/evm/index.js";
import { compileErc20 } from "../../helpers/erc20.js";
import type { ReferenceInput, ReferenceOutput } from "../../helpers/evm-reference.js";

const CHAIN_ID = 4246;
const GWEI = 1_000_000_000n;
const NOW = 1_700_000_000n;
const wallets = [new Wallet("0x" + "31".repeat(32)), new Wallet("0x" + "32".repeat(32)), new Wallet("0x" + "33".repeat(32))];
const alloc = wallets.map((w) => ({ address: w.address, balanceWei: parseEther("100").toString() }));

class App {
  private readonly store = new Store();
  private readonly endpoint: EndpointDefinition;
  private id = 1;

  constructor() {
    const config = this.store.begin();
    config.set(EVM_CONFIG_MAP, EVM_CONFIG_KEY, evmConfigBytes(CHAIN_ID, alloc));
    this.store.commit(config, 1);
    const registry = new EndpointRegistry();
    installEvmApp(registry, { nowSeconds: () => NOW, authPolicies: ["no_auth"] });
    this.endpoint = registry.route("POST", "/app/evm").endpoint;
  }

  async call(method: string, ...params: unknown[]): Promise<any> {
    const tx = this.store.begin();
    const result = await this.endpoint.handler({
      request: { method: "POST", path: "/app/evm", query: "", headers: {}, body: Buffer.from(JSON.stringify({ jsonrpc: "2.0", id: this.id++, method, params })), callerCert: undefined },
      params: {}, caller: { policy: "no_auth" }, tx,
    });
    if (tx.hasWrites) this.store.commit(tx, this.store.currentVersion + 1);
    const body = result.body as { result?: unknown; error?: { message: string } };
    if (body.error !== undefined) throw new Error(`${method}: ${body.error.message}`);
    return body.result;
  }
}

function reference(input: ReferenceInput): Promise<ReferenceOutput> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("../../helpers/evm-reference.js", import.meta.url), { workerData: input });
    worker.once("message", (output: ReferenceOutput & { error?: string }) => {
      void worker.terminate();
      if (output.error !== undefined) reject(new Error(output.error));
      else resolve(output);
    });
    worker.once("error", reject);
  });
}

test("Coco's EVM app and a stock ethereumjs VM agree on every transaction's outcome and the final state", async () => {
  const token = compileErc20({ constructor: "deployer" });
  const erc20 = new Interface(token.abi as never);
  const app = new App();
  const nonces = [0, 0, 0];
  const fees = { type: 2, maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: GWEI } as const;
  const sign = (from: number, request: TransactionRequest): Promise<string> =>
    wallets[from]!.signTransaction({ chainId: CHAIN_ID, nonce: nonces[from]!++, gasLimit: 1_000_000n, ...fees, ...request });

  const raws: string[] = [await sign(0, { data: token.bytecode + erc20.encodeDeploy([1_000_000n]).slice(2) })];
  const tokenAddress = (await import("ethers")).getCreateAddress({ from: wallets[0]!.address, nonce: 0 });
  raws.push(await sign(0, { to: tokenAddress, data: erc20.encodeFunctionData("transfer", [wallets[1]!.address, 500_000n]) }));
  for (let i = 0; i < 12; i++) {
    raws.push(await sign(i % 2, { to: tokenAddress, data: erc20.encodeFunctionData("transfer", [wallets[(i + 1) % 3]!.address, BigInt(1000 + i)]) }));
  }
  raws.push(await sign(2, { to: tokenAddress, data: erc20.encodeFunctionData("transfer", [wallets[0]!.address, 10n ** 30n]) })); // reverts
  raws.push(await sign(1, { to: wallets[2]!.address, value: parseEther("1.5"), gasLimit: 21_000n }));
  raws.push(await sign(2, { to: wallets[0]!.address, value: 7n, gasLimit: 21_000n, type: 0, gasPrice: 2n * GWEI, maxFeePerGas: undefined, maxPriorityFeePerGas: undefined }));
  raws.push(await sign(0, {
    to: tokenAddress, type: 1, gasPrice: 2n * GWEI, maxFeePerGas: undefined, maxPriorityFeePerGas: undefined,
    accessList: [{ address: tokenAddress, storageKeys: ["0x" + "00".repeat(32)] }], data: erc20.encodeFunctionData("transfer", [wallets[2]!.address, 5n]),
  }));
  // Frames that fail: out of gas inside the token (all the gas is used), a deployment whose
  // init code is the INVALID opcode, and a contract that calls the token with empty calldata
  // (the token reverts in the inner frame, the outer frame logs and succeeds).
  raws.push(await sign(1, { to: tokenAddress, gasLimit: 30_000n, data: erc20.encodeFunctionData("transfer", [wallets[0]!.address, 1n]) }));
  raws.push(await sign(1, { data: "0xfe", gasLimit: 100_000n }));
  const callerRuntime = `6000600060006000600073${tokenAddress.slice(2)}5af15060006000a000`;
  const callerLength = (callerRuntime.length / 2).toString(16).padStart(2, "0");
  const callerAddress = (await import("ethers")).getCreateAddress({ from: wallets[2]!.address, nonce: nonces[2]! });
  raws.push(await sign(2, { data: `0x60${callerLength}80600b6000396000f3${callerRuntime}`, gasLimit: 200_000n }));
  raws.push(await sign(2, { to: callerAddress, gasLimit: 200_000n }));
  // Batches of a few, as clients send them: each transaction still its own block.
  const hashes: string[] = [];
  for (let i = 0; i < raws.length; i += 4) {
    for (const raw of raws.slice(i, i + 4)) hashes.push(await app.call("eth_sendRawTransaction", raw));
  }
  const receipts = await Promise.all(hashes.map((hash) => app.call("eth_getTransactionReceipt", hash)));
  const expected = await reference({
    chainId: CHAIN_ID, alloc, baseFeeWei: GWEI.toString(), gasLimit: "30000000",
    transactions: raws.map((raw, i) => ({ raw, number: receipts[i].blockNumber, timestamp: NOW.toString() })),
    reads: [...wallets.map((w) => ({ address: w.address })), { address: `0x${"00".repeat(20)}` }],
  });
  assert.deepEqual(receipts.flatMap((r, i) => r.status === "0x0" ? [i] : []), [14, 18, 19], "the over-large transfer reverts, the starved transfer and the INVALID deployment fail");
  assert.equal(receipts[19].gasUsed, "0x186a0", "a frame ended by INVALID uses all its gas");
  assert.equal(receipts[21].logs.length, 1, "the calling contract's LOG0 survives its inner frame's revert");
  receipts.forEach((receipt, i) => {
    const ours = {
      status: receipt.status, gasUsed: receipt.gasUsed, contractAddress: receipt.contractAddress,
      logs: receipt.logs.map((l: { address: string; topics: string[]; data: string }) => ({ address: l.address, topics: l.topics, data: l.data })),
    };
    assert.deepEqual(ours, expected.outcomes[i], `transaction ${i}`);
  });
  for (const [i, w] of [...wallets.map((w) => w.address), `0x${"00".repeat(20)}`].entries()) {
    assert.equal(await app.call("eth_getBalance", w, "latest"), expected.accounts[i]!.balance, `balance of ${w}`);
    assert.equal(await app.call("eth_getTransactionCount", w, "latest"), expected.accounts[i]!.nonce, `nonce of ${w}`);
  }
});
