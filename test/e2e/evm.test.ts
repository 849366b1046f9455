// The EVM app end to end: a real Coco node process serving POST /app/evm, driven by ethers'
// JsonRpcProvider over mutual TLS as user0 (the endpoint keeps its default user_cert policy).
// Until `coco sandbox` can install the EVM app, the node is composed here as the sandbox does.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { NodeProcess } from "../helpers/node-process.js";
import { devAccounts } from "../../src/apps/evm/index.js";
import { ContractFactory, Contract, FetchRequest, JsonRpcProvider, Network, Wallet, parseEther } from "ethers";
import { compileErc20 } from "../helpers/erc20.js";

const CHAIN_ID = 4243n;
// The sandbox funds the well-known development accounts; alice is the first of them.
const alice = new Wallet(devAccounts(1)[0]!.privateKey);
const bob = Wallet.createRandom();


let sandbox: NodeProcess;
let workspace: string;
let provider: JsonRpcProvider;
let agent: https.Agent;
/** Compiled once, before the node's clock matters. */
let compiled: { abi: never[]; evm: { bytecode: { object: string } } };

before(async () => {
  const token = compileErc20<never[]>({ constructor: "deployer" });
  compiled = { abi: token.abi, evm: { bytecode: { object: token.bytecode.slice(2) } } };
  workspace = mkdtempSync(join(tmpdir(), "coco-evm-"));
  sandbox = await NodeProcess.sandbox(workspace, ["--evm-chain-id", String(CHAIN_ID), "--durability", "none"]);
  const url = `https://127.0.0.1:${sandbox.port}`;
  agent = new https.Agent({
    keepAlive: true,
    ca: readFileSync(join(workspace, "service_cert.pem")),
    cert: readFileSync(join(workspace, "user0_cert.pem")),
    key: readFileSync(join(workspace, "user0_privk.pem")),
  });
  const request = new FetchRequest(`${url}/app/evm`);
  request.getUrlFunc = FetchRequest.createGetUrlFunc({ agent });
  // cacheTimeout -1: ethers otherwise answers identical calls within 250 ms from a cache, so a
  // nonce read right after a fast (tens of ms) commit would be stale.
  provider = new JsonRpcProvider(request, Network.from(CHAIN_ID), { staticNetwork: true, pollingInterval: 50, cacheTimeout: -1 });
});

after(async () => {
  provider?.destroy();
  agent?.destroy();
  await sandbox?.stop();
  rmSync(workspace, { recursive: true, force: true });
});

test("ethers talks to /app/evm: chain id, balances, a transfer awaited to its committed receipt", async () => {
  assert.equal((await provider.getNetwork()).chainId, CHAIN_ID);
  assert.equal(await provider.getBalance(alice.address), parseEther("10000"));
  const signer = alice.connect(provider);
  const sent = await signer.sendTransaction({ to: bob.address, value: parseEther("1") });
  const receipt = await sent.wait();
  assert.equal(receipt?.status, 1);
  assert.equal(await provider.getBalance(bob.address), parseEther("1"));
});

test("an ERC-20 compiled with solc deploys, transfers and is queried through ethers' Contract", async () => {
  const signer = alice.connect(provider);
  const factory = new ContractFactory(compiled.abi, compiled.evm.bytecode.object, signer);
  const deployed = await factory.deploy(1000n);
  await deployed.waitForDeployment();
  const erc20 = new Contract(await deployed.getAddress(), compiled.abi, signer);
  const tx = await erc20.getFunction("transfer")(bob.address, 40n);
  await tx.wait();
  assert.equal(await erc20.getFunction("balanceOf")(bob.address), 40n);
  const events = await erc20.queryFilter(erc20.filters["Transfer"]!(), 0, "latest");
  assert.equal(events.length, 2);
  const readOnly = new Contract(await deployed.getAddress(), compiled.abi, provider);
  // As another of user0's addresses (bound by the sandbox), which holds no tokens.
  await assert.rejects(readOnly.getFunction("transfer").staticCall(alice.address, 1000n, { from: devAccounts(2)[1]!.address }), /insufficient balance/);
});

test("ethers' contract.on receives Transfer events through a polling filter (eth_newFilter, eth_getFilterChanges)", async () => {
  // A provider of its own that records the methods it sends, to see which mechanism ethers used.
  const methods: string[] = [];
  let filterInstalled: () => void = () => {};
  const installed = new Promise<void>((resolve) => (filterInstalled = resolve));
  const request = new FetchRequest(`https://127.0.0.1:${sandbox.port}/app/evm`);
  const fetchWithAgent = FetchRequest.createGetUrlFunc({ agent });
  request.getUrlFunc = async (req, signal) => {
    const body = req.body === null ? [] : [JSON.parse(Buffer.from(req.body).toString("utf8"))].flat() as { method: string }[];
    const response = await fetchWithAgent(req, signal);
    for (const call of body) {
      methods.push(call.method);
      if (call.method === "eth_newFilter") filterInstalled();
    }
    return response;
  };
  const listening = new JsonRpcProvider(request, Network.from(CHAIN_ID), { staticNetwork: true, pollingInterval: 50, cacheTimeout: -1 });
  try {
    const signer = alice.connect(provider);
    const deployed = await new ContractFactory(compiled.abi, compiled.evm.bytecode.object, signer).deploy(1000n);
    await deployed.waitForDeployment();
    const address = await deployed.getAddress();
    const watched = new Contract(address, compiled.abi, listening);
    const events: { from: string; to: string; value: bigint; hash: string }[] = [];
    let received: () => void = () => {};
    const arrived = new Promise<void>((resolve) => (received = resolve));
    // By event name: ethers then decodes the arguments (with a prepared topic filter it passes only the payload).
    await watched.on("Transfer", (from: string, to: string, value: bigint, event: { log: { transactionHash: string } }) => {
      if (to !== bob.address) return;
      events.push({ from, to, value, hash: event.log.transactionHash });
      received();
    });
    await installed;
    // ethers polls a filter once per new block number it sees, and it stops watching block numbers
    // between polls unless something else listens to blocks; Coco makes blocks only for
    // transactions, so a dapp's usual block listener keeps the poller running (docs/evm.md).
    await listening.on("block", () => {});
    const erc20 = new Contract(address, compiled.abi, signer);
    const toSomeoneElse = await erc20.getFunction("transfer")(Wallet.createRandom().address, 3n);
    await toSomeoneElse.wait();
    const toBob = await erc20.getFunction("transfer")(bob.address, 5n);
    await toBob.wait();
    await Promise.race([arrived, new Promise((_, reject) => setTimeout(() => reject(new Error(`no Transfer event within 10 s; sent ${methods.join(", ")}`)), 10_000))]);
    assert.deepEqual(events, [{ from: alice.address, to: bob.address, value: 5n, hash: toBob.hash }]);
    await watched.removeAllListeners();
    assert.ok(methods.includes("eth_getFilterChanges"), `ethers polled the filter: ${[...new Set(methods)].join(", ")}`);
    assert.ok(!methods.includes("eth_getLogs"), "no eth_getLogs fallback");
  } finally {
    listening.destroy();
  }
});
