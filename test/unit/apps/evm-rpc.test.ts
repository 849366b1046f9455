// The EVM app's JSON-RPC endpoint driven in-process: each call runs the real handler in a
// Store transaction that commits on 2xx, as the frontend does; transactions are signed by
// ethers' Wallet and the ERC-20 is compiled with solc.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { Contract, Interface, Wallet, Transaction as EthTransaction, id as eventTopic, parseEther, zeroPadValue, type TransactionRequest } from "ethers";
import { ConflictError, Store, type Transaction } from "../../../src/kv/index.js";
import { EndpointRegistry, type EndpointDefinition } from "../../../src/rpc/index.js";
import {
  installEvmApp, evmMaps, evmConfigBytes, EVM_CONFIG_KEY, EVM_CONFIG_MAP, FilterRegistry, FILTERS_MAX, FILTER_IDLE_MS, RpcError, type EvmAppOptions,
} from "../../../src/apps/evm/index.js";

const CHAIN_ID = 4242n;
const GWEI = 1_000_000_000n;
const alice = new Wallet("0x" + "11".repeat(32));
const bob = new Wallet("0x" + "22".repeat(32));
const carol = Wallet.createRandom();

const TOKEN_SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;
contract Token {
  string public constant name = "Coco Token";
  uint256 public totalSupply;
  mapping(address => uint256) public balanceOf;
  mapping(address => mapping(address => uint256)) public allowance;
  event Transfer(address indexed from, address indexed to, uint256 value);
  event Approval(address indexed owner, address indexed spender, uint256 value);
  error Unauthorized(address caller);
  constructor(uint256 supply) { totalSupply = supply; balanceOf[msg.sender] = supply; emit Transfer(address(0), msg.sender, supply); }
  function transfer(address to, uint256 value) external returns (bool) {
    require(balanceOf[msg.sender] >= value, "insufficient balance");
    balanceOf[msg.sender] -= value; balanceOf[to] += value;
    emit Transfer(msg.sender, to, value);
    return true;
  }
  function approve(address spender, uint256 value) external returns (bool) {
    allowance[msg.sender][spender] = value; emit Approval(msg.sender, spender, value); return true;
  }
  function transferFrom(address from, address to, uint256 value) external returns (bool) {
    require(allowance[from][msg.sender] >= value, "allowance exceeded");
    require(balanceOf[from] >= value, "insufficient balance");
    allowance[from][msg.sender] -= value; balanceOf[from] -= value; balanceOf[to] += value;
    emit Transfer(from, to, value); return true;
  }
  function restricted() external view { revert Unauthorized(msg.sender); }
}
contract Probe {
  function context() external view returns (uint256 number, uint256 timestamp, uint256 chainId, uint256 baseFee, bytes32 parentHash) {
    return (block.number, block.timestamp, block.chainid, block.basefee, blockhash(block.number - 1));
  }
}`;

interface Compiled { abi: unknown[]; bytecode: string }
let token: Compiled;
let probe: Compiled;

before(() => {
  const solc = createRequire(import.meta.url)("solc") as { compile(input: string): string };
  const output = JSON.parse(solc.compile(JSON.stringify({
    language: "Solidity",
    sources: { "Token.sol": { content: TOKEN_SOURCE } },
    settings: { evmVersion: "cancun", optimizer: { enabled: true, runs: 200 }, outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
  }))) as { errors?: { severity: string; formattedMessage: string }[]; contracts: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>> };
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  assert.deepEqual(errors.map((e) => e.formattedMessage), []);
  const contract = output.contracts["Token.sol"]!["Token"]!;
  token = { abi: contract.abi, bytecode: "0x" + contract.evm.bytecode.object };
  const probeOut = output.contracts["Token.sol"]!["Probe"]!;
  probe = { abi: probeOut.abi, bytecode: "0x" + probeOut.evm.bytecode.object };
});

/** A Coco service in miniature: a Store, the EVM endpoint, commit on 2xx, a movable commit point. */
class Harness {
  readonly store = new Store();
  private readonly endpoint: EndpointDefinition;
  committed = Number.MAX_SAFE_INTEGER;
  private nextId = 1;

  /** `configured: false` leaves public:ccf.gov.evm.config unset, as before set_evm_genesis is accepted. */
  constructor(options: Partial<EvmAppOptions> = {}, configured = true) {
    if (configured) this.configure();
    const registry = new EndpointRegistry();
    installEvmApp(registry, {
      committedSeqno: () => this.committed,
      nowSeconds: () => 1_700_000_000n,
      // The handler is called directly, without a TLS connection: no caller to authenticate.
      authPolicies: ["no_auth"],
      ...options,
    });
    this.endpoint = registry.route("POST", "/app/evm").endpoint;
  }

  /** What the set_evm_genesis governance action writes (seqno 1 here). */
  configure(chainId = CHAIN_ID): void {
    const tx = this.store.begin();
    const genesis = [{ address: alice.address, balanceWei: parseEther("1000").toString() }, { address: bob.address, balanceWei: "0x" + (10n ** 18n).toString(16) }];
    tx.set(EVM_CONFIG_MAP, EVM_CONFIG_KEY, evmConfigBytes(chainId, genesis));
    this.store.commit(tx, this.store.currentVersion + 1);
  }

  async post(body: unknown): Promise<{ status: number; body: any; tx: Transaction; consistency?: string }> {
    const tx = this.store.begin();
    const result = await this.endpoint.handler({
      request: { method: "POST", path: "/app/evm", query: "", headers: {}, body: Buffer.from(typeof body === "string" ? body : JSON.stringify(body)), callerCert: undefined },
      params: {}, caller: { policy: "no_auth" }, tx,
    });
    const status = result.status ?? 200;
    if (status >= 200 && status < 300 && tx.hasWrites) {
      try {
        this.store.commit(tx, this.store.currentVersion + 1);
      } catch (error) {
        // As the frontend: a transaction whose reads went stale runs again.
        if (error instanceof ConflictError) return this.post(body);
        throw error;
      }
    }
    return { status, body: result.body, tx, ...(result.consistency === undefined ? {} : { consistency: result.consistency }) };
  }

  async call(method: string, ...params: unknown[]): Promise<any> {
    const { body } = await this.post({ jsonrpc: "2.0", id: this.nextId++, method, params });
    if (body.error !== undefined) throw Object.assign(new Error(body.error.message), { rpc: body.error });
    return body.result;
  }

  async rpcError(method: string, ...params: unknown[]): Promise<{ code: number; message: string; data?: string }> {
    const { body } = await this.post({ jsonrpc: "2.0", id: this.nextId++, method, params });
    assert.ok(body.error, `expected an error from ${method}, got ${JSON.stringify(body.result)}`);
    return body.error;
  }

  async nonce(wallet: Wallet): Promise<number> {
    return Number(BigInt(await this.call("eth_getTransactionCount", wallet.address, "latest")));
  }

  async sign(wallet: Wallet, request: TransactionRequest): Promise<string> {
    return wallet.signTransaction({
      chainId: CHAIN_ID, nonce: await this.nonce(wallet), gasLimit: 1_000_000n,
      ...(request.type === 0 || request.type === 1 ? { gasPrice: 2n * GWEI } : { type: 2, maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: GWEI }),
      ...request,
    });
  }

  async send(wallet: Wallet, request: TransactionRequest): Promise<any> {
    const hash = await this.call("eth_sendRawTransaction", await this.sign(wallet, request));
    return this.call("eth_getTransactionReceipt", hash);
  }

  async deployToken(supply: bigint): Promise<string> {
    const data = new Interface(token.abi as never).encodeDeploy([supply]);
    const receipt = await this.send(alice, { data: token.bytecode + data.slice(2) });
    assert.equal(receipt.status, "0x1");
    return receipt.contractAddress as string;
  }
}

test("identity methods answer the configured chain", async () => {
  const h = new Harness();
  assert.equal(await h.call("eth_chainId"), "0x1092");
  assert.equal(await h.call("net_version"), "4242");
  assert.match(await h.call("web3_clientVersion"), /^Coco\//);
  assert.equal(await h.call("eth_blockNumber"), "0x0");
  assert.equal(await h.call("eth_gasPrice"), "0x3b9aca00");
  assert.equal(await h.call("eth_maxPriorityFeePerGas"), "0x0");
});

test("genesis allocation is readable and is written in the first request's transaction", async () => {
  const h = new Harness();
  assert.equal(BigInt(await h.call("eth_getBalance", alice.address, "latest")), parseEther("1000"));
  assert.equal(BigInt(await h.call("eth_getBalance", carol.address, "latest")), 0n);
  assert.equal(h.store.currentVersion, 2, "the genesis writes committed once, after the configuration (seqno 1)");
  await h.call("eth_getBalance", alice.address, "latest");
  assert.equal(h.store.currentVersion, 2, "later reads write nothing");
  assert.ok(h.store.get(evmMaps.ACCOUNTS, Buffer.from(alice.address.slice(2), "hex")), "accounts live in the private map evm.accounts");
  for (const map of evmMaps.ALL_MAPS) assert.ok(!map.startsWith("public:"));
});

test("before governance configures the chain every method but web3_clientVersion is refused, and nothing is written", async () => {
  const h = new Harness({}, false);
  assert.match(await h.call("web3_clientVersion"), /^Coco\//);
  for (const method of ["eth_chainId", "eth_blockNumber", "net_version"]) {
    const error = await h.rpcError(method);
    assert.equal(error.code, -32000);
    assert.match(error.message, /EVM chain is not configured yet.*set_evm_genesis/);
  }
  const raw = await alice.signTransaction({ chainId: CHAIN_ID, nonce: 0, to: carol.address, gasLimit: 21_000n, maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: 0n, type: 2 });
  assert.match((await h.rpcError("eth_sendRawTransaction", raw)).message, /not configured yet/);
  assert.equal(h.store.currentVersion, 0, "no genesis without a configuration");
  h.configure();
  assert.equal(await h.call("eth_chainId"), "0x1092");
  assert.equal(BigInt(await h.call("eth_getBalance", alice.address, "latest")), parseEther("1000"));
  assert.equal((await h.send(alice, { to: carol.address, value: 1n, gasLimit: 21_000n })).status, "0x1");
});

test("the genesis allocation is credited once: later requests and a repeated configuration value leave balances alone", async () => {
  const h = new Harness();
  await h.send(alice, { to: carol.address, value: parseEther("1"), gasLimit: 21_000n });
  const after = BigInt(await h.call("eth_getBalance", alice.address, "latest"));
  assert.ok(after < parseEther("999"));
  h.configure();
  assert.equal(BigInt(await h.call("eth_getBalance", alice.address, "latest")), after);
  assert.equal(BigInt(await h.call("eth_getBalance", carol.address, "latest")), parseEther("1"));
});

test("a signed EIP-1559 transfer moves value, charges gas and increments the nonce", async () => {
  const h = new Harness();
  const receipt = await h.send(alice, { to: carol.address, value: parseEther("1.5"), gasLimit: 21_000n });
  assert.equal(receipt.status, "0x1");
  assert.equal(receipt.gasUsed, "0x5208");
  assert.equal(receipt.type, "0x2");
  assert.equal(receipt.effectiveGasPrice, "0x" + (2n * GWEI).toString(16));
  assert.equal(BigInt(await h.call("eth_getBalance", carol.address, "latest")), parseEther("1.5"));
  const expected = parseEther("1000") - parseEther("1.5") - 21_000n * 2n * GWEI;
  assert.equal(BigInt(await h.call("eth_getBalance", alice.address, "latest")), expected);
  assert.equal(await h.call("eth_getTransactionCount", alice.address, "pending"), "0x1");
  assert.equal(await h.call("eth_blockNumber"), "0x1");
});

test("legacy (EIP-155) and EIP-2930 transactions are accepted", async () => {
  const h = new Harness();
  const legacy = await h.send(alice, { type: 0, to: carol.address, value: 1n, gasLimit: 21_000n });
  assert.equal(legacy.status, "0x1");
  assert.equal(legacy.type, "0x0");
  const accessList = await h.send(alice, { type: 1, to: carol.address, value: 2n, gasLimit: 30_000n, accessList: [] });
  assert.equal(accessList.status, "0x1");
  assert.equal(accessList.type, "0x1");
  assert.equal(await h.call("eth_getBalance", carol.address, "latest"), "0x3");
  const tx = await h.call("eth_getTransactionByHash", legacy.transactionHash);
  assert.equal(tx.from.toLowerCase(), alice.address.toLowerCase());
  assert.equal(tx.chainId, "0x1092");
  const parsed = EthTransaction.from({
    type: Number(tx.type), chainId: BigInt(tx.chainId), nonce: Number(tx.nonce), to: tx.to, value: BigInt(tx.value), data: tx.input,
    gasLimit: BigInt(tx.gas), gasPrice: BigInt(tx.gasPrice), signature: { r: tx.r, s: tx.s, v: Number(tx.v) },
  });
  assert.equal(parsed.hash, legacy.transactionHash, "the stored transaction is the signed one");
});

test("wrong chain id, unprotected legacy, bad nonce, insufficient funds and low fees are rejected with geth's messages", async () => {
  const h = new Harness();
  const otherChain = await alice.signTransaction({ chainId: 1n, nonce: 0, to: carol.address, gasLimit: 21_000n, maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: 0n, type: 2 });
  assert.match((await h.rpcError("eth_sendRawTransaction", otherChain)).message, /chain id/);
  const unprotected = EthTransaction.from({ type: 0, nonce: 0, to: carol.address, gasLimit: 21_000n, gasPrice: 2n * GWEI, value: 0n });
  unprotected.signature = alice.signingKey.sign(unprotected.unsignedHash);
  assert.match((await h.rpcError("eth_sendRawTransaction", unprotected.serialized)).message, /replay-protected/);
  assert.match((await h.rpcError("eth_sendRawTransaction", await h.sign(alice, { to: carol.address, nonce: 5 }))).message, /^nonce too high/);
  await h.send(alice, { to: carol.address, value: 1n });
  assert.match((await h.rpcError("eth_sendRawTransaction", await h.sign(alice, { to: carol.address, nonce: 0 }))).message, /^nonce too low/);
  const poor = await h.rpcError("eth_sendRawTransaction", await h.sign(bob, { to: carol.address, value: parseEther("2") }));
  assert.equal(poor.code, -32000);
  assert.match(poor.message, /^insufficient funds for gas \* price \+ value/);
  assert.match((await h.rpcError("eth_sendRawTransaction", await h.sign(alice, { to: carol.address, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n }))).message, /less than block base fee/);
  assert.match((await h.rpcError("eth_sendRawTransaction", await h.sign(alice, { to: carol.address, gasLimit: 20_000n }))).message, /intrinsic gas too low/);
  assert.equal((await h.rpcError("eth_sendRawTransaction", "0x1234")).code, -32602);
  assert.equal(await h.call("eth_blockNumber"), "0x1", "no rejected transaction made a block");
});

test("malformed RLP, a replayed transaction and an oversized transaction are refused and leave no block", async () => {
  const h = new Harness();
  const signed = await h.sign(alice, { to: carol.address, value: 1n });
  for (const malformed of ["0xdeadbeef", signed.slice(0, -10), "0x02" + "ff".repeat(40), "0xc0", "0x"]) {
    const error = await h.rpcError("eth_sendRawTransaction", malformed);
    assert.equal(error.code, -32602, `${malformed.slice(0, 20)}: ${error.message}`);
  }
  assert.equal((await h.rpcError("eth_sendRawTransaction", "not hex")).code, -32602);
  await h.call("eth_sendRawTransaction", signed);
  const replayed = await h.rpcError("eth_sendRawTransaction", signed);
  assert.equal(replayed.code, -32000);
  assert.equal(replayed.message, "already known");
  const oversized = await h.rpcError("eth_sendRawTransaction", await h.sign(alice, { to: carol.address, data: "0x" + "01".repeat(130 * 1024), gasLimit: 29_000_000n }));
  assert.equal(oversized.code, -32000);
  assert.match(oversized.message, /^oversized data: transaction size \d+, limit 131072$/);
  assert.equal(await h.call("eth_blockNumber"), "0x1", "only the good transfer made a block");
});

test("a bad signature is rejected", async () => {
  const h = new Harness();
  const signed = EthTransaction.from(await h.sign(alice, { to: carol.address }));
  const tampered = signed.clone();
  tampered.signature = { r: signed.signature!.r, s: "0x" + "7f".repeat(32), v: signed.signature!.v } as never;
  const error = await h.rpcError("eth_sendRawTransaction", tampered.serialized);
  assert.equal(error.code, -32000);
});

test("an ERC-20 compiled with solc deploys, transfers, emits logs and answers eth_call", async () => {
  const h = new Harness();
  const address = await h.deployToken(1_000_000n);
  const code = await h.call("eth_getCode", address, "latest");
  assert.ok(code.length > 100);
  const erc20 = new Interface(token.abi as never);
  const balanceOf = async (who: string) => BigInt(await h.call("eth_call", { to: address, data: erc20.encodeFunctionData("balanceOf", [who]) }, "latest"));
  assert.equal(await balanceOf(alice.address), 1_000_000n);

  const receipt = await h.send(alice, { to: address, data: erc20.encodeFunctionData("transfer", [bob.address, 250n]) });
  assert.equal(receipt.status, "0x1");
  assert.equal(receipt.logs.length, 1);
  const log = erc20.parseLog(receipt.logs[0])!;
  assert.equal(log.name, "Transfer");
  assert.equal(log.args[1], bob.address);
  assert.equal(log.args[2], 250n);
  assert.equal(await balanceOf(bob.address), 250n);
  assert.equal(await balanceOf(alice.address), 999_750n);
  // Storage slot of balanceOf[bob] = keccak(bob ‖ slot 1).
  const { keccak256, AbiCoder } = await import("ethers");
  const slot = keccak256(AbiCoder.defaultAbiCoder().encode(["address", "uint256"], [bob.address, 1]));
  assert.equal(BigInt(await h.call("eth_getStorageAt", address, slot, "latest")), 250n);

  const contract = new Contract(address, token.abi as never);
  assert.equal(receipt.to.toLowerCase(), (await contract.getAddress()).toLowerCase());
});

test("reverts: eth_call answers code 3 with the revert data; a reverted transaction is mined with status 0", async () => {
  const h = new Harness();
  const address = await h.deployToken(100n);
  const erc20 = new Interface(token.abi as never);
  const transfer = erc20.encodeFunctionData("transfer", [alice.address, 1000n]);
  const error = await h.rpcError("eth_call", { from: bob.address, to: address, data: transfer }, "latest");
  assert.equal(error.code, 3);
  assert.equal(error.message, "execution reverted: insufficient balance");
  assert.deepEqual([...new Interface(["error Error(string)"]).decodeErrorResult("Error", error.data!)], ["insufficient balance"]);

  const custom = await h.rpcError("eth_call", { from: bob.address, to: address, data: erc20.encodeFunctionData("restricted") }, "latest");
  assert.equal(custom.code, 3);
  assert.equal(custom.message, "execution reverted");
  assert.equal(erc20.parseError(custom.data!)!.name, "Unauthorized");

  const estimate = await h.rpcError("eth_estimateGas", { from: bob.address, to: address, data: transfer });
  assert.equal(estimate.code, 3);

  const nonceBefore = await h.nonce(bob);
  const receipt = await h.send(bob, { to: address, data: transfer, gasLimit: 100_000n });
  assert.equal(receipt.status, "0x0");
  assert.equal(receipt.logs.length, 0);
  assert.equal(await h.nonce(bob), nonceBefore + 1, "a reverted transaction still uses its nonce and gas");
});

test("eth_estimateGas is enough for the transaction and close to its use", async () => {
  const h = new Harness();
  const address = await h.deployToken(1000n);
  const erc20 = new Interface(token.abi as never);
  const data = erc20.encodeFunctionData("transfer", [carol.address, 10n]);
  const estimate = BigInt(await h.call("eth_estimateGas", { from: alice.address, to: address, data }));
  const receipt = await h.send(alice, { to: address, data, gasLimit: estimate });
  assert.equal(receipt.status, "0x1");
  assert.ok(estimate - BigInt(receipt.gasUsed) < 25_000n, `estimate ${estimate} vs used ${receipt.gasUsed}`);
  assert.equal(await h.call("eth_estimateGas", { from: alice.address, to: carol.address, value: "0x1" }), "0x5208");
  // EIP-7623 (Prague): calldata-heavy transactions pay at least 10 gas per calldata token.
  const heavy = "0x" + "ff".repeat(1000);
  const floor = BigInt(await h.call("eth_estimateGas", { from: alice.address, to: carol.address, data: heavy }));
  assert.equal(floor, 21_000n + 10n * 4n * 1000n);
  assert.match((await h.rpcError("eth_sendRawTransaction", await h.sign(alice, { to: carol.address, data: heavy, gasLimit: floor - 1n }))).message, /intrinsic gas too low/);
  assert.equal((await h.send(alice, { to: carol.address, data: heavy, gasLimit: floor })).status, "0x1");
});

test("blocks: one per transaction, linked by parent hash, found by number and hash", async () => {
  const h = new Harness();
  const r1 = await h.send(alice, { to: carol.address, value: 1n });
  const r2 = await h.send(alice, { to: carol.address, value: 2n });
  const b1 = await h.call("eth_getBlockByNumber", "0x1", false);
  const b2 = await h.call("eth_getBlockByNumber", "latest", true);
  assert.equal(b1.hash, r1.blockHash);
  assert.deepEqual(b1.transactions, [r1.transactionHash]);
  assert.equal(b2.number, "0x2");
  assert.equal(b2.parentHash, b1.hash);
  assert.equal(b2.transactions[0].hash, r2.transactionHash);
  assert.deepEqual(await h.call("eth_getBlockByHash", b1.hash, false), b1);
  assert.equal(await h.call("eth_getBlockByNumber", "0x99", false), null);
  const genesis = await h.call("eth_getBlockByNumber", "earliest", false);
  assert.equal(b1.parentHash, genesis.hash);
});

test("contracts see this chain's block context: number, timestamp, chain id, base fee and BLOCKHASH", async () => {
  const h = new Harness();
  const deployed = await h.send(alice, { data: probe.bytecode });
  const iface = new Interface(probe.abi as never);
  const head = await h.call("eth_getBlockByNumber", "latest", false);
  const raw = await h.call("eth_call", { to: deployed.contractAddress, data: iface.encodeFunctionData("context") }, "latest");
  const [number, timestamp, chainId, baseFee, parentHash] = iface.decodeFunctionResult("context", raw);
  assert.equal(number, BigInt(head.number) + 1n, "a call runs in the block after the head, as geth's pending block");
  assert.equal(timestamp, 1_700_000_000n);
  assert.equal(chainId, CHAIN_ID);
  assert.equal(baseFee, GWEI);
  assert.equal(parentHash, head.hash);
});

test("eth_getLogs filters by block range, block hash, address and topics", async () => {
  const h = new Harness();
  const address = await h.deployToken(1000n);
  const erc20 = new Interface(token.abi as never);
  await h.send(alice, { to: address, data: erc20.encodeFunctionData("transfer", [bob.address, 1n]) });
  const approval = await h.send(alice, { to: address, data: erc20.encodeFunctionData("approve", [carol.address, 5n]) });
  await h.send(alice, { to: address, data: erc20.encodeFunctionData("transfer", [carol.address, 2n]) });
  const transferTopic = erc20.getEvent("Transfer")!.topicHash;
  const all = await h.call("eth_getLogs", { fromBlock: "earliest", toBlock: "latest", address });
  assert.equal(all.length, 4);
  const transfers = await h.call("eth_getLogs", { fromBlock: "0x0", address: [address], topics: [transferTopic] });
  assert.equal(transfers.length, 3);
  const toCarol = await h.call("eth_getLogs", { fromBlock: "0x0", topics: [transferTopic, null, "0x" + carol.address.slice(2).toLowerCase().padStart(64, "0")] });
  assert.equal(toCarol.length, 1);
  assert.equal(toCarol[0].blockNumber, "0x4");
  const byHash = await h.call("eth_getLogs", { blockHash: approval.blockHash });
  assert.equal(byHash.length, 1);
  assert.equal(erc20.parseLog(byHash[0])!.name, "Approval");
  assert.deepEqual(await h.call("eth_getLogs", { fromBlock: "0x0", address: carol.address }), []);
  assert.equal((await h.rpcError("eth_getLogs", { fromBlock: "0x0", toBlock: "0x1", blockHash: approval.blockHash })).code, -32602);
});

test("receipts answer only once the Coco transaction is committed", async () => {
  const h = new Harness();
  await h.call("eth_blockNumber");
  h.committed = h.store.currentVersion;
  const hash = await h.call("eth_sendRawTransaction", await h.sign(alice, { to: carol.address, value: 1n }));
  assert.equal(await h.call("eth_getTransactionReceipt", hash), null, "executed, not yet committed");
  assert.ok(await h.call("eth_getTransactionByHash", hash), "the transaction itself is visible at once");
  h.committed = h.store.currentVersion;
  assert.equal((await h.call("eth_getTransactionReceipt", hash)).status, "0x1");
  const executed = new Harness({ receiptFinality: "executed" });
  executed.committed = 0;
  assert.ok(await executed.send(alice, { to: carol.address, value: 1n }), "receiptFinality 'executed' answers at once");
});

test("coco_getTransactionId names the committed Coco transaction that executed an Ethereum transaction", async () => {
  const h = new Harness({ viewForSeqno: (seqno) => (seqno > 0 ? 3 : null) });
  await h.call("eth_blockNumber");
  h.committed = h.store.currentVersion;
  const hash = await h.call("eth_sendRawTransaction", await h.sign(alice, { to: carol.address, value: 1n }));
  const seqno = h.store.currentVersion;
  assert.equal(await h.call("coco_getTransactionId", hash), null, "not committed yet");
  h.committed = seqno;
  assert.deepEqual(await h.call("coco_getTransactionId", hash), { seqno, view: 3, transactionId: `3.${seqno}` });
  assert.equal(await h.call("coco_getTransactionId", "0x" + "00".repeat(32)), null, "unknown hash");
  const withoutViews = new Harness();
  const other = await withoutViews.call("eth_sendRawTransaction", await withoutViews.sign(alice, { to: carol.address, value: 1n }));
  assert.deepEqual(await withoutViews.call("coco_getTransactionId", other), { seqno: withoutViews.store.currentVersion, view: null, transactionId: null });
});

test("JSON-RPC envelope: batches, unknown methods, bad params, parse errors, notifications, historical state", async () => {
  const h = new Harness();
  const batch = await h.post([
    { jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] },
    { jsonrpc: "2.0", id: "two", method: "eth_nope", params: [] },
    { jsonrpc: "2.0", id: 3, method: "eth_getBalance", params: ["0x1234", "latest"] },
    { jsonrpc: "2.0", method: "eth_chainId", params: [] },
    { jsonrpc: "1.0", id: 5, method: "eth_chainId" },
  ]);
  assert.equal(batch.status, 200);
  assert.deepEqual(batch.body, [
    { jsonrpc: "2.0", id: 1, result: "0x1092" },
    { jsonrpc: "2.0", id: "two", error: { code: -32601, message: "the method eth_nope does not exist/is not available" } },
    { jsonrpc: "2.0", id: 3, error: { code: -32602, message: batch.body[2].error.message } },
    { jsonrpc: "2.0", id: 5, error: { code: -32600, message: batch.body[3].error.message } },
  ]);
  assert.equal((await h.post("{not json")).body.error.code, -32700);
  assert.equal((await h.post([])).body.error.code, -32600);
  assert.equal((await h.post({ jsonrpc: "2.0", method: "eth_chainId" })).status, 204);
  assert.equal((await h.rpcError("eth_getBalance")).code, -32602);
  assert.equal((await h.rpcError("eth_getBalance", alice.address, "latest", "extra")).code, -32602);
  assert.equal((await h.rpcError("eth_getBlockByNumber", "0x0", "yes")).code, -32602);
  assert.equal((await h.rpcError("eth_call", "not an object")).code, -32602);
  assert.equal((await h.rpcError("toString")).code, -32601);
  await h.send(alice, { to: carol.address, value: 1n });
  assert.match((await h.rpcError("eth_getBalance", alice.address, "0x0")).message, /historical state not available/);
  assert.equal(await h.call("eth_getBalance", carol.address, "0x1"), "0x1");
});

test("eth_feeHistory reports the constant base fee and each block's tip", async () => {
  const h = new Harness();
  await h.send(alice, { to: carol.address, value: 1n });
  const history = await h.call("eth_feeHistory", "0x4", "latest", [50]);
  assert.equal(history.oldestBlock, "0x0");
  assert.deepEqual(history.baseFeePerGas, ["0x3b9aca00", "0x3b9aca00", "0x3b9aca00"]);
  assert.equal(history.gasUsedRatio.length, 2);
  assert.deepEqual(history.reward, [["0x0"], ["0x3b9aca00"]]);
});

test("concurrent transactions conflict on the chain head and re-run into consecutive blocks", async () => {
  const h = new Harness();
  await h.call("eth_blockNumber");
  const raws = [await h.sign(alice, { to: carol.address, value: 1n }), await h.sign(bob, { to: carol.address, value: 2n })];
  const answers = await Promise.all(raws.map((raw) => h.post({ jsonrpc: "2.0", id: 1, method: "eth_sendRawTransaction", params: [raw] })));
  const hashes = answers.map((a) => a.body.result as string);
  const receipts = await Promise.all(hashes.map((hash) => h.call("eth_getTransactionReceipt", hash)));
  assert.deepEqual(receipts.map((r) => r.blockNumber).sort(), ["0x1", "0x2"]);
  assert.equal(await h.call("eth_getBalance", carol.address, "latest"), "0x3");
});

const TRANSFER_TOPIC = eventTopic("Transfer(address,address,uint256)");

test("a log filter reports each new matching log once; eth_getFilterLogs runs its whole query", async () => {
  const h = new Harness();
  const address = await h.deployToken(1000n);
  const erc20 = new Interface(token.abi as never);
  const toCarol = await h.call("eth_newFilter", { address, topics: [TRANSFER_TOPIC, null, zeroPadValue(carol.address, 32)] });
  const everything = await h.call("eth_newFilter", { fromBlock: "earliest", address });
  assert.match(toCarol, /^0x[0-9a-f]{32}$/);
  assert.deepEqual(await h.call("eth_getFilterChanges", toCarol), [], "logs before the filter existed are not changes");
  const receipt = await h.send(alice, { to: address, data: erc20.encodeFunctionData("transfer", [carol.address, 7n]) });
  await h.send(alice, { to: address, data: erc20.encodeFunctionData("transfer", [bob.address, 1n]) });
  const changes = await h.call("eth_getFilterChanges", toCarol);
  assert.equal(changes.length, 1);
  assert.equal(changes[0].transactionHash, receipt.transactionHash);
  assert.equal(changes[0].blockHash, receipt.blockHash);
  assert.equal(BigInt(changes[0].data), 7n);
  assert.deepEqual(await h.call("eth_getFilterChanges", toCarol), [], "a change is reported once");
  assert.equal((await h.call("eth_getFilterChanges", everything)).length, 2, "changes start at the filter: both transfers, not the mint");
  assert.equal((await h.call("eth_getFilterLogs", everything)).length, 3, "the query from earliest: the mint too");
  assert.equal(await h.call("eth_uninstallFilter", toCarol), true);
  assert.equal(await h.call("eth_uninstallFilter", toCarol), false);
  assert.deepEqual(await h.rpcError("eth_getFilterChanges", toCarol), { code: -32000, message: "filter not found" });
  assert.equal((await h.rpcError("eth_newFilter", { blockHash: receipt.blockHash })).code, -32602);
});

test("block and pending-transaction filters report new blocks' hashes and transactions once, only once committed", async () => {
  const h = new Harness();
  await h.call("eth_blockNumber");
  const blocks = await h.call("eth_newBlockFilter");
  const transactions = await h.call("eth_newPendingTransactionFilter");
  h.committed = h.store.currentVersion;
  const raw = await h.sign(alice, { to: carol.address, value: 1n });
  const hash = await h.call("eth_sendRawTransaction", raw);
  assert.deepEqual(await h.call("eth_getFilterChanges", blocks), [], "not committed yet: not reported");
  h.committed = Number.MAX_SAFE_INTEGER;
  const receipt = await h.call("eth_getTransactionReceipt", hash);
  assert.deepEqual(await h.call("eth_getFilterChanges", blocks), [receipt.blockHash]);
  assert.deepEqual(await h.call("eth_getFilterChanges", transactions), [hash]);
  assert.deepEqual(await h.call("eth_getFilterChanges", blocks), []);
  assert.deepEqual(await h.call("eth_getFilterChanges", transactions), []);
});

test("filters are bounded: at most FILTERS_MAX, and idle ones expire", () => {
  let now = 0;
  const registry = new FilterRegistry(() => now);
  const first = registry.install("blocks", 1n);
  for (let i = 1; i < FILTERS_MAX; i++) registry.install("blocks", 1n);
  assert.throws(() => registry.install("blocks", 1n), (error: unknown) => error instanceof RpcError && error.code === -32005);
  now = FILTER_IDLE_MS - 1;
  registry.poll(first);
  now = FILTER_IDLE_MS + 1;
  registry.install("blocks", 1n);
  assert.equal(registry.size, 2, "the polled filter and the new one");
  assert.throws(() => registry.poll("0x00"), /filter not found/);
});

test("throughput: sequential ERC-20 transfers in-process", async () => {
  const h = new Harness();
  const address = await h.deployToken(1_000_000n);
  const erc20 = new Interface(token.abi as never);
  const count = 200;
  let nonce = await h.nonce(alice);
  const raws: string[] = [];
  for (let i = 0; i < count; i++) {
    raws.push(await alice.signTransaction({ chainId: CHAIN_ID, nonce: nonce++, type: 2, maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: GWEI, gasLimit: 100_000n, to: address, data: erc20.encodeFunctionData("transfer", [bob.address, 1n]) }));
  }
  const start = performance.now();
  for (const raw of raws) {
    const { body } = await h.post({ jsonrpc: "2.0", id: 1, method: "eth_sendRawTransaction", params: [raw] });
    assert.ok(body.result, JSON.stringify(body.error));
  }
  const seconds = (performance.now() - start) / 1000;
  console.log(`# evm in-process: ${count} ERC-20 transfers in ${seconds.toFixed(2)} s = ${(count / seconds).toFixed(0)} tx/s`);
  const balance = BigInt(await h.call("eth_call", { to: address, data: erc20.encodeFunctionData("balanceOf", [bob.address]) }));
  assert.equal(balance, BigInt(count));
});

test("a request that executed a transaction answers once it is committed (receipts wait for commit); reads answer at once", async () => {
  const h = new Harness();
  await h.call("eth_blockNumber"); // writes the genesis block
  const read = await h.post({ jsonrpc: "2.0", id: 1, method: "eth_blockNumber", params: [] });
  assert.equal(read.consistency, undefined);
  const raw = await h.sign(alice, { to: bob.address, value: 1n });
  const sent = await h.post({ jsonrpc: "2.0", id: 2, method: "eth_sendRawTransaction", params: [raw] });
  assert.match(sent.body.result, /^0x[0-9a-f]{64}$/);
  assert.equal(sent.consistency, "committed");
  // A refused transaction wrote nothing: nothing to wait for.
  const refused = await h.post({ jsonrpc: "2.0", id: 3, method: "eth_sendRawTransaction", params: [raw] });
  assert.ok(refused.body.error);
  assert.equal(refused.consistency, undefined);
  // Receipts answered at execution: nothing waits.
  const executed = new Harness({ receiptFinality: "executed" });
  const again = await executed.post({ jsonrpc: "2.0", id: 4, method: "eth_sendRawTransaction", params: [await executed.sign(alice, { to: bob.address, value: 1n })] });
  assert.match(again.body.result, /^0x[0-9a-f]{64}$/);
  assert.equal(again.consistency, undefined);
});
