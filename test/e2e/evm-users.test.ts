// Users and Ethereum addresses, two users against a real node with `coco.evm.address_policy:
// "bound"`: each user binds its address with a personal_sign of the binding message; then each
// sends transactions only from its own address, runs eth_call only as itself (an absent `from`
// is its own address, another user's is refused), nobody reads raw contract storage, and a
// transaction, its receipt and its logs (queried or subscribed to) are its sender's only.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ContractFactory, Interface, Wallet, getCreateAddress, parseEther, Transaction as EthTransaction, zeroPadValue } from "ethers";
import { NodeProcess, tempWorkspace, type Identity } from "../helpers/node-process.js";
import { createIdentityCertificate, generateEcP384KeyPair } from "../../src/crypto/index.js";
import { GovernanceClient, openServiceAsMember } from "../../src/client/index.js";
import { bindingMessage, devAccounts } from "../../src/apps/evm/index.js";
import { compileErc20 } from "../helpers/erc20.js";
import WebSocket from "ws";

const CHAIN_ID = 4248;
const GWEI = 1_000_000_000n;
/** Init code returning CALLER as a word: what `from` a call ran as. */
const WHO_AM_I = "0x3360005260206000f3";

const ws = tempWorkspace("coco-evm-users-");
let node: NodeProcess;
const users: Record<"alice" | "bob", { identity: { cert: string; key: string }; id: string; wallet: Wallet }> = {} as never;
let nextId = 1;

before(async () => {
  for (const name of ["member0", "alice", "bob"]) {
    const keys = generateEcP384KeyPair();
    writeFileSync(join(ws.dir, `${name}_cert.pem`), await createIdentityCertificate(keys, name));
    writeFileSync(join(ws.dir, `${name}_privk.pem`), keys.privateKeyPem);
  }
  const [first, second] = devAccounts(2);
  for (const [name, account] of [["alice", first!], ["bob", second!]] as const) {
    const cert = readFileSync(join(ws.dir, `${name}_cert.pem`), "utf8");
    users[name] = {
      identity: { cert, key: readFileSync(join(ws.dir, `${name}_privk.pem`), "utf8") },
      id: createHash("sha256").update(new X509Certificate(cert).raw).digest("hex"),
      wallet: new Wallet(account.privateKey),
    };
  }
  writeFileSync(join(ws.dir, "config.json"), JSON.stringify({
    network: { rpc_interfaces: { primary: { bind_address: "127.0.0.1:0" } } },
    command: { type: "Start", service_certificate_file: "service_cert.pem", start: { members: [{ certificate_file: "member0_cert.pem" }] } },
    ledger: { directory: "ledger" },
    ledger_signatures: { delay: "10ms" },
    coco: { durability: "none", evm: { address_policy: "bound" } },
  }));
  node = await NodeProcess.nodeStart(ws.dir, join(ws.dir, "config.json"));
  const identity = {
    url: `https://127.0.0.1:${node.port}`,
    serviceCertPem: readFileSync(join(ws.dir, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8"),
  };
  await openServiceAsMember({ ...identity, userCertPems: [users.alice.identity.cert, users.bob.identity.cert] });
  const member = new GovernanceClient(identity);
  try {
    const alloc = { [users.alice.wallet.address]: parseEther("100").toString(), [users.bob.wallet.address]: parseEther("100").toString() };
    let proposal = await member.propose({ actions: [{ name: "set_evm_genesis", args: { chain_id: CHAIN_ID, alloc } }] });
    if (proposal.proposalState === "Open") proposal = await member.accept(proposal.proposalId);
    assert.equal(proposal.proposalState, "Accepted");
    if (proposal.transactionId) await member.waitForCommit(proposal.transactionId, { timeoutMs: 30_000 });
  } finally {
    await member.close();
  }
});

after(async () => {
  await node?.stop();
  ws.cleanup();
});

async function rpc(who: Identity, method: string, ...params: unknown[]): Promise<any> {
  const response = await node.request("POST", "/app/evm", { identity: who, body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }) });
  assert.equal(response.status, 200, response.text);
  return response.json();
}

async function bind(who: Identity, address: string, signature: string): Promise<{ status: number; json: any }> {
  const response = await node.request("POST", "/app/evm/addresses", { identity: who, body: JSON.stringify({ address, signature }) });
  return { status: response.status, json: response.text === "" ? undefined : response.json() };
}

async function nonceOf(address: string): Promise<number> {
  return Number(BigInt((await rpc(users.alice.identity, "eth_getTransactionCount", address, "latest")).result));
}

async function signedTransfer(wallet: Wallet, to: string): Promise<string> {
  return wallet.signTransaction(EthTransaction.from({
    type: 2, chainId: CHAIN_ID, nonce: await nonceOf(wallet.address), to, value: 1n, gasLimit: 21_000n, maxFeePerGas: 2n * GWEI, maxPriorityFeePerGas: 0n,
  }));
}

/** Sends a signed transaction as `who` and waits for its receipt (as `who`, who may see it). */
async function send(who: Identity, wallet: Wallet, request: { to?: string; data?: string; gasLimit: bigint }): Promise<any> {
  const raw = await wallet.signTransaction(EthTransaction.from({
    type: 2, chainId: CHAIN_ID, nonce: await nonceOf(wallet.address), maxFeePerGas: 2n * GWEI, maxPriorityFeePerGas: 0n, value: 0n, ...request,
  }));
  const sent = await rpc(who, "eth_sendRawTransaction", raw);
  assert.match(sent.result ?? "", /^0x[0-9a-f]{64}$/, JSON.stringify(sent));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const receipt = (await rpc(who, "eth_getTransactionReceipt", sent.result)).result;
    if (receipt !== null) return receipt;
    if (Date.now() > deadline) throw new Error(`no receipt for ${sent.result}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("a user binds an address with its personal_sign; a signature for another user or an address bound to another user is refused", async () => {
  const { alice, bob } = users;
  // A signature made for Bob's user id does not bind the address to Alice.
  const forBob = await alice.wallet.signMessage(bindingMessage(alice.wallet.address, bob.id, BigInt(CHAIN_ID)));
  const wrong = await bind(alice.identity, alice.wallet.address, forBob);
  assert.equal(wrong.status, 400);
  assert.equal(wrong.json.error.code, "InvalidSignature");
  const bound = await bind(alice.identity, alice.wallet.address, await alice.wallet.signMessage(bindingMessage(alice.wallet.address, alice.id, BigInt(CHAIN_ID))));
  assert.equal(bound.status, 201, JSON.stringify(bound.json));
  assert.equal(bound.json.user_id, alice.id);
  // Bob, even holding a valid signature of Alice's address for himself, cannot take it.
  const taken = await bind(bob.identity, alice.wallet.address, await alice.wallet.signMessage(bindingMessage(alice.wallet.address, bob.id, BigInt(CHAIN_ID))));
  assert.equal(taken.status, 409);
  assert.equal((await bind(bob.identity, bob.wallet.address, await bob.wallet.signMessage(bindingMessage(bob.wallet.address, bob.id, BigInt(CHAIN_ID))))).status, 201);
  const listed = await node.request("GET", "/app/evm/addresses", { identity: alice.identity });
  assert.deepEqual(listed.json().addresses, [alice.wallet.address.toLowerCase()]);
});

test("eth_sendRawTransaction is accepted only from the caller's own addresses", async () => {
  const { alice, bob } = users;
  const raw = await signedTransfer(alice.wallet, Wallet.createRandom().address);
  // Bob relays a transaction Alice signed: refused, though the signature is valid.
  const relayed = await rpc(bob.identity, "eth_sendRawTransaction", raw);
  assert.equal(relayed.error?.code, -32000, JSON.stringify(relayed));
  assert.match(relayed.error.message, /sender 0x[0-9a-f]{40} is not one of your addresses/);
  const sent = await rpc(alice.identity, "eth_sendRawTransaction", raw);
  assert.match(sent.result, /^0x[0-9a-f]{64}$/, JSON.stringify(sent));
});

test("eth_call and eth_estimateGas run as the caller: no from means its address, another user's from is refused", async () => {
  const { alice, bob } = users;
  assert.equal((await rpc(alice.identity, "eth_call", { data: WHO_AM_I }, "latest")).result, zeroPadValue(alice.wallet.address, 32).toLowerCase());
  assert.equal((await rpc(bob.identity, "eth_call", { data: WHO_AM_I }, "latest")).result, zeroPadValue(bob.wallet.address, 32).toLowerCase());
  const asAlice = await rpc(bob.identity, "eth_call", { from: alice.wallet.address, data: WHO_AM_I }, "latest");
  assert.equal(asAlice.error?.code, -32000, JSON.stringify(asAlice));
  assert.match(asAlice.error.message, /from 0x[0-9a-f]{40} is not one of your addresses/);
  const estimate = await rpc(bob.identity, "eth_estimateGas", { from: alice.wallet.address, to: bob.wallet.address, value: "0x1" }, "latest");
  assert.equal(estimate.error?.code, -32000, JSON.stringify(estimate));
  assert.match((await rpc(bob.identity, "eth_estimateGas", { from: bob.wallet.address, to: alice.wallet.address, value: "0x1" }, "latest")).result, /^0x/);
});

test("eth_getStorageAt is refused under the bound policy, for everyone", async () => {
  for (const user of [users.alice, users.bob]) {
    const answer = await rpc(user.identity, "eth_getStorageAt", user.wallet.address, "0x0", "latest");
    assert.equal(answer.error?.code, -32000, JSON.stringify(answer));
    assert.match(answer.error.message, /eth_getStorageAt is not available/);
  }
});

test("a transaction, its receipt, its logs and its full block body are visible to its sender only", async () => {
  const { alice, bob } = users;
  const token = compileErc20({ constructor: "deployer" });
  const deployData = (await new ContractFactory(token.abi as never, token.bytecode).getDeployTransaction(1_000_000n)).data;
  const tokenAddress = getCreateAddress({ from: alice.wallet.address, nonce: await nonceOf(alice.wallet.address) });
  assert.equal((await send(alice.identity, alice.wallet, { data: deployData, gasLimit: 1_000_000n })).status, "0x1");
  const erc20 = new Interface(token.abi as never);
  // Alice pays Bob: Bob is the recipient, not a participant under this policy (readers are not declared yet).
  const receipt = await send(alice.identity, alice.wallet, { to: tokenAddress, data: erc20.encodeFunctionData("transfer", [bob.wallet.address, 5n]), gasLimit: 100_000n });
  const hash = receipt.transactionHash;
  const logsQuery = { address: tokenAddress, fromBlock: "0x0", toBlock: "latest" };
  // Alice sees everything of her own transaction.
  assert.equal((await rpc(alice.identity, "eth_getTransactionByHash", hash)).result.hash, hash);
  assert.equal((await rpc(alice.identity, "eth_getTransactionReceipt", hash)).result.logs.length, 1);
  assert.equal((await rpc(alice.identity, "eth_getLogs", logsQuery)).result.length, 2, "the mint at deployment and the transfer");
  assert.equal((await rpc(alice.identity, "eth_getBlockByNumber", receipt.blockNumber, true)).result.transactions.length, 1);
  // Bob sees none of it: not the input data, not the receipt, not the logs, not the full body.
  assert.equal((await rpc(bob.identity, "eth_getTransactionByHash", hash)).result, null);
  assert.equal((await rpc(bob.identity, "eth_getTransactionReceipt", hash)).result, null);
  assert.equal((await rpc(bob.identity, "coco_getTransactionId", hash)).result, null);
  assert.deepEqual((await rpc(bob.identity, "eth_getLogs", logsQuery)).result, []);
  const block = (await rpc(bob.identity, "eth_getBlockByNumber", receipt.blockNumber, true)).result;
  assert.deepEqual(block.transactions, []);
  // The contract itself decides what Bob may read through its functions: here, any balance.
  const balance = await rpc(bob.identity, "eth_call", { to: tokenAddress, data: erc20.encodeFunctionData("balanceOf", [bob.wallet.address]) }, "latest");
  assert.equal(BigInt(balance.result), 5n);
});

/** A WebSocket as `who` with a logs subscription (first) and a newHeads one (second) on `address`. */
async function subscribe(who: { cert: string; key: string }, address: string): Promise<{ logs: any[]; heads: string[]; close: () => void }> {
  const socket = new WebSocket(`wss://127.0.0.1:${node.port}/app/evm`, { ca: readFileSync(join(ws.dir, "service_cert.pem")), cert: who.cert, key: who.key });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const ids: string[] = [];
  const logs: any[] = [];
  const heads: string[] = [];
  const answered: (() => void)[] = [];
  socket.on("message", (data) => {
    const message = JSON.parse(data.toString());
    if (message.method !== "eth_subscription") {
      ids[message.id] = message.result;
      answered.shift()?.();
    } else if (message.params.subscription === ids[1]) logs.push(message.params.result);
    else if (message.params.subscription === ids[2]) heads.push(message.params.result.number);
  });
  // In this order: a block's logs are sent before its header, so a header is the sentinel that its logs would have come.
  for (const [id, params] of [[1, ["logs", { address }]], [2, ["newHeads"]]] as const) {
    const done = new Promise<void>((resolve) => answered.push(resolve));
    socket.send(JSON.stringify({ jsonrpc: "2.0", id, method: "eth_subscribe", params }));
    await done;
  }
  return { logs, heads, close: () => socket.close() };
}

test("logs subscriptions deliver a transaction's logs to its sender only", async () => {
  const { alice, bob } = users;
  const token = compileErc20({ constructor: "deployer" });
  const deployData = (await new ContractFactory(token.abi as never, token.bytecode).getDeployTransaction(1_000_000n)).data;
  const tokenAddress = getCreateAddress({ from: alice.wallet.address, nonce: await nonceOf(alice.wallet.address) });
  assert.equal((await send(alice.identity, alice.wallet, { data: deployData, gasLimit: 1_000_000n })).status, "0x1");
  const asAlice = await subscribe(alice.identity, tokenAddress);
  const asBob = await subscribe(bob.identity, tokenAddress);
  try {
    const erc20 = new Interface(token.abi as never);
    const receipt = await send(alice.identity, alice.wallet, { to: tokenAddress, data: erc20.encodeFunctionData("transfer", [bob.wallet.address, 3n]), gasLimit: 100_000n });
    const deadline = Date.now() + 20_000;
    while (!(asAlice.heads.includes(receipt.blockNumber) && asBob.heads.includes(receipt.blockNumber))) {
      if (Date.now() > deadline) throw new Error(`the block's header did not arrive: alice ${asAlice.heads}, bob ${asBob.heads}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(asAlice.logs.map((l) => l.transactionHash), [receipt.transactionHash]);
    assert.deepEqual(asBob.logs, [], "Bob got the header, after which the log would have come, and no log");
  } finally {
    asAlice.close();
    asBob.close();
  }
});

test("an unbound address can no longer send", async () => {
  const { bob } = users;
  const removed = await node.request("DELETE", `/app/evm/addresses/${bob.wallet.address.toLowerCase()}`, { identity: bob.identity });
  assert.equal(removed.status, 204, removed.text);
  const refused = await rpc(bob.identity, "eth_sendRawTransaction", await signedTransfer(bob.wallet, Wallet.createRandom().address));
  assert.equal(refused.error?.code, -32000, JSON.stringify(refused));
  assert.match(refused.error.message, /not one of your addresses/);
});
