// Users and Ethereum addresses, two users against a real node with the default address policy
// ("bound"): each user binds its address with a personal_sign of the binding message; then each
// sends transactions only from its own address, runs eth_call only as itself (an absent `from`
// is its own address, another user's is refused), and sees a transaction, its receipt and its
// logs (queried, polled or subscribed to) only as one of its participants: its sender, its
// recipient, a party of its Transfer events, a reader a contract declares (CocoReaders), or
// anyone for a public contract (CocoPublic). Others' balances and nonces, and the gas and blooms
// of others' blocks, are hidden. Each test is one row of the "who sees what" table of docs/evm.md.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createRequire } from "node:module";
import { ContractFactory, Interface, Wallet, getCreateAddress, id, parseEther, Transaction as EthTransaction, zeroPadValue } from "ethers";
import { NodeProcess, runCli, tempWorkspace, type Identity } from "../helpers/node-process.js";
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
    // No address_policy: the node's default, "bound", is under test.
    coco: { durability: "none", evm: {} },
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

/** The next nonce of `wallet`, asked as the user that owns it (others are told 0). */
async function nonceOf(wallet: Wallet): Promise<number> {
  const owner = wallet === users.bob.wallet ? users.bob : users.alice;
  return Number(BigInt((await rpc(owner.identity, "eth_getTransactionCount", wallet.address, "latest")).result));
}

async function signedTransfer(wallet: Wallet, to: string): Promise<string> {
  return wallet.signTransaction(EthTransaction.from({
    type: 2, chainId: CHAIN_ID, nonce: await nonceOf(wallet), to, value: 1n, gasLimit: 21_000n, maxFeePerGas: 2n * GWEI, maxPriorityFeePerGas: 0n,
  }));
}

/** Sends a signed transaction as `who` and waits for its receipt (as `who`, who may see it). */
async function send(who: Identity, wallet: Wallet, request: { to?: string; data?: string; gasLimit: bigint; value?: bigint }): Promise<any> {
  const raw = await wallet.signTransaction(EthTransaction.from({
    type: 2, chainId: CHAIN_ID, nonce: await nonceOf(wallet), maxFeePerGas: 2n * GWEI, maxPriorityFeePerGas: 0n, value: 0n, ...request,
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

test("eth_getStorageAt is refused for everyone unless the contract declared itself public; eth_getProof is not served", async () => {
  for (const user of [users.alice, users.bob]) {
    const answer = await rpc(user.identity, "eth_getStorageAt", user.wallet.address, "0x0", "latest");
    assert.equal(answer.error?.code, -32000, JSON.stringify(answer));
    assert.match(answer.error.message, /eth_getStorageAt is not available/);
    const proof = await rpc(user.identity, "eth_getProof", user.wallet.address, [], "latest");
    assert.equal(proof.error?.code, -32601, JSON.stringify(proof));
  }
});

const TRANSFER_TOPIC = id("Transfer(address,address,uint256)");
const EMPTY_BLOOM = `0x${"00".repeat(256)}`;
const carol = Wallet.createRandom().address; // nobody's: no user bound it

/** Alice's ERC-20, deployed once, with its whole supply hers. */
let token: { address: string; erc20: Interface } | undefined;
async function aliceToken(): Promise<{ address: string; erc20: Interface }> {
  if (token !== undefined) return token;
  const { alice } = users;
  const compiled = compileErc20({ constructor: "deployer" });
  const deployData = (await new ContractFactory(compiled.abi as never, compiled.bytecode).getDeployTransaction(1_000_000n)).data;
  const address = getCreateAddress({ from: alice.wallet.address, nonce: await nonceOf(alice.wallet) });
  assert.equal((await send(alice.identity, alice.wallet, { data: deployData, gasLimit: 1_000_000n })).status, "0x1");
  return (token = { address, erc20: new Interface(compiled.abi as never) });
}

/** Alice pays `to` `amount` tokens: the receipt (as Alice). */
async function aliceTransfers(to: string, amount: bigint): Promise<any> {
  const { address, erc20 } = await aliceToken();
  return send(users.alice.identity, users.alice.wallet, { to: address, data: erc20.encodeFunctionData("transfer", [to, amount]), gasLimit: 100_000n });
}

/** The contracts of test/fixtures/evm/CocoVisibility.sol (the docs' example), compiled with solc. */
function compileFixture(): Record<"Notes" | "Board", { abi: never[]; bytecode: string }> {
  const solc = createRequire(import.meta.url)("solc") as { compile(input: string): string };
  const output = JSON.parse(solc.compile(JSON.stringify({
    language: "Solidity", sources: { "CocoVisibility.sol": { content: readFileSync(resolve("test/fixtures/evm/CocoVisibility.sol"), "utf8") } },
    settings: { evmVersion: "cancun", outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
  })));
  const errors = (output.errors ?? []).filter((e: { severity: string }) => e.severity === "error");
  assert.deepEqual(errors, []);
  const contract = (name: string) => ({ abi: output.contracts["CocoVisibility.sol"][name].abi, bytecode: `0x${output.contracts["CocoVisibility.sol"][name].evm.bytecode.object}` });
  return { Notes: contract("Notes"), Board: contract("Board") };
}

/** Deploys a contract as Alice: its address and the deployment's receipt. */
async function aliceDeploys(compiled: { abi: never[]; bytecode: string }): Promise<{ address: string; receipt: any; contract: Interface }> {
  const address = getCreateAddress({ from: users.alice.wallet.address, nonce: await nonceOf(users.alice.wallet) });
  const receipt = await send(users.alice.identity, users.alice.wallet, { data: compiled.bytecode, gasLimit: 1_000_000n });
  assert.equal(receipt.status, "0x1");
  return { address, receipt, contract: new Interface(compiled.abi) };
}

/** What `who` is told of one transaction, by every method that tells of it. */
async function viewOf(who: Identity, receipt: any, logsQuery: object): Promise<{ transaction: any; receipt: any; cocoId: any; logs: string[]; body: any[]; header: any }> {
  return {
    transaction: (await rpc(who, "eth_getTransactionByHash", receipt.transactionHash)).result,
    receipt: (await rpc(who, "eth_getTransactionReceipt", receipt.transactionHash)).result,
    cocoId: (await rpc(who, "coco_getTransactionId", receipt.transactionHash)).result,
    logs: (await rpc(who, "eth_getLogs", logsQuery)).result.map((l: any) => l.transactionHash),
    body: (await rpc(who, "eth_getBlockByNumber", receipt.blockNumber, true)).result.transactions,
    header: (await rpc(who, "eth_getBlockByNumber", receipt.blockNumber, false)).result,
  };
}

function assertSeesAll(view: Awaited<ReturnType<typeof viewOf>>, receipt: any, who: string): void {
  assert.equal(view.transaction?.hash, receipt.transactionHash, `${who} sees the transaction`);
  assert.equal(view.receipt?.logs.length, receipt.logs.length, `${who} sees the receipt and its logs`);
  assert.equal(view.cocoId?.seqno !== undefined, true, `${who} gets its Coco transaction id`);
  assert.ok(view.logs.includes(receipt.transactionHash), `${who} finds its logs with eth_getLogs`);
  assert.deepEqual(view.body.map((t: any) => t.hash), [receipt.transactionHash], `${who} sees it in the full block body`);
  assert.deepEqual(view.header.transactions, [receipt.transactionHash], `${who} sees its hash in the block`);
  assert.equal(view.header.gasUsed, receipt.gasUsed, `${who} sees the block's gas`);
}

function assertSeesNothing(view: Awaited<ReturnType<typeof viewOf>>, receipt: any, who: string): void {
  assert.equal(view.transaction, null, `${who}: no transaction`);
  assert.equal(view.receipt, null, `${who}: no receipt`);
  assert.equal(view.cocoId, null, `${who}: no Coco transaction id`);
  assert.ok(!view.logs.includes(receipt.transactionHash), `${who}: no logs`);
  assert.deepEqual(view.body, [], `${who}: an empty full block body`);
  // The block itself stays, well-formed (clients walk the chain), without what reveals activity.
  assert.equal(view.header.hash, receipt.blockHash);
  assert.deepEqual(view.header.transactions, [], `${who}: no transaction hash in the block`);
  assert.equal(view.header.gasUsed, "0x0", `${who}: no gas used`);
  assert.equal(view.header.logsBloom, EMPTY_BLOOM, `${who}: an empty bloom`);
}

test("a user that took no part in a transaction sees nothing of it: body, receipt, logs, block body, the block's hashes, gas and bloom, fee history", async () => {
  const { alice, bob } = users;
  const { address } = await aliceToken();
  const receipt = await aliceTransfers(carol, 5n);
  const logsQuery = { address, fromBlock: "0x0", toBlock: "latest" };
  assertSeesAll(await viewOf(alice.identity, receipt, logsQuery), receipt, "Alice (sender)");
  assertSeesNothing(await viewOf(bob.identity, receipt, logsQuery), receipt, "Bob (no part)");
  // eth_feeHistory: the block's gas ratio is Alice's to see.
  const history = async (who: Identity) => (await rpc(who, "eth_feeHistory", "0x1", receipt.blockNumber, [50])).result;
  assert.ok((await history(alice.identity)).gasUsedRatio[0] > 0);
  assert.deepEqual((await history(bob.identity)).gasUsedRatio, [0]);
  // The contract itself decides what Bob may read through its functions: here, any balance.
  const { erc20 } = await aliceToken();
  const balance = await rpc(bob.identity, "eth_call", { to: address, data: erc20.encodeFunctionData("balanceOf", [carol]) }, "latest");
  assert.ok(BigInt(balance.result) >= 5n);
});

test("a token's recipient sees the Transfer that paid it (transaction, receipt, logs); an ether recipient the payment", async () => {
  const { alice, bob } = users;
  const { address } = await aliceToken();
  const receipt = await aliceTransfers(bob.wallet.address, 5n);
  const toBob = { address, topics: [TRANSFER_TOPIC, null, zeroPadValue(bob.wallet.address, 32)], fromBlock: "0x0", toBlock: "latest" };
  assertSeesAll(await viewOf(bob.identity, receipt, toBob), receipt, "Bob (recipient)");
  assertSeesAll(await viewOf(alice.identity, receipt, toBob), receipt, "Alice (sender)");
  const paid = await send(alice.identity, alice.wallet, { to: bob.wallet.address, value: 1n, gasLimit: 21_000n });
  assert.equal((await rpc(bob.identity, "eth_getTransactionByHash", paid.transactionHash)).result?.value, "0x1");
  assert.equal((await rpc(bob.identity, "eth_getTransactionReceipt", paid.transactionHash)).result?.status, "0x1");
});

test("the readers a contract declares (event CocoReaders) see the transaction; a transaction that declares none stays its sender's", async () => {
  const { alice, bob } = users;
  const notes = await aliceDeploys(compileFixture().Notes);
  const shared = await send(alice.identity, alice.wallet, { to: notes.address, data: notes.contract.encodeFunctionData("share", [bob.wallet.address, 42n]), gasLimit: 200_000n });
  const kept = await send(alice.identity, alice.wallet, { to: notes.address, data: notes.contract.encodeFunctionData("keep", [7n]), gasLimit: 200_000n });
  assert.equal(shared.logs.length, 2, "CocoReaders and Noted");
  const query = { address: notes.address, fromBlock: "0x0", toBlock: "latest" };
  assertSeesAll(await viewOf(bob.identity, shared, query), shared, "Bob (declared reader)");
  assertSeesNothing(await viewOf(bob.identity, kept, query), kept, "Bob (not declared)");
  assertSeesNothing(await viewOf(bob.identity, notes.receipt, query), notes.receipt, "Bob (the deployment)");
  assertSeesAll(await viewOf(alice.identity, kept, query), kept, "Alice (sender)");
  assert.deepEqual((await rpc(bob.identity, "eth_getLogs", query)).result.map((l: any) => l.transactionHash), [shared.transactionHash, shared.transactionHash]);
});

test("a contract that declares itself public (event CocoPublic) is readable by every user: its transactions, logs and storage", async () => {
  const { alice, bob } = users;
  const fixture = compileFixture();
  const board = await aliceDeploys(fixture.Board);
  const posted = await send(alice.identity, alice.wallet, { to: board.address, data: board.contract.encodeFunctionData("post", [99n]), gasLimit: 200_000n });
  const query = { address: board.address, fromBlock: "0x0", toBlock: "latest" };
  for (const [who, name] of [[alice.identity, "Alice"], [bob.identity, "Bob"]] as const) {
    assertSeesAll(await viewOf(who, board.receipt, query), board.receipt, `${name} (the public deployment)`);
    assertSeesAll(await viewOf(who, posted, query), posted, `${name} (a public transaction)`);
    const slot = await rpc(who, "eth_getStorageAt", board.address, "0x0", "latest");
    assert.equal(BigInt(slot.result ?? -1), 99n, `${name} reads the public contract's storage: ${JSON.stringify(slot)}`);
  }
  // A private contract's storage stays refused.
  const notes = await aliceDeploys(fixture.Notes);
  const refused = await rpc(bob.identity, "eth_getStorageAt", notes.address, "0x0", "latest");
  assert.match(refused.error?.message ?? "", /eth_getStorageAt is not available/);
});

test("another user's balance and nonce answer as an unknown account's; unbound addresses and contract code stay visible", async () => {
  const { alice, bob } = users;
  const { address } = await aliceToken();
  const unbound = Wallet.createRandom().address;
  await send(alice.identity, alice.wallet, { to: unbound, value: 3n, gasLimit: 21_000n });
  await send(bob.identity, bob.wallet, { to: unbound, value: 4n, gasLimit: 21_000n });
  for (const [who, self, other] of [[alice, "Alice", bob], [bob, "Bob", alice]] as const) {
    assert.ok(BigInt((await rpc(who.identity, "eth_getBalance", who.wallet.address, "latest")).result) > 0n, `${self} sees its balance`);
    assert.ok(BigInt((await rpc(who.identity, "eth_getTransactionCount", who.wallet.address, "latest")).result) > 0n, `${self} sees its nonce`);
    assert.equal((await rpc(who.identity, "eth_getBalance", other.wallet.address, "latest")).result, "0x0", `${self} is told 0 for the other's balance`);
    assert.equal((await rpc(who.identity, "eth_getTransactionCount", other.wallet.address, "latest")).result, "0x0", `${self} is told 0 for the other's nonce`);
    assert.equal((await rpc(who.identity, "eth_getCode", other.wallet.address, "latest")).result, "0x");
    assert.equal((await rpc(who.identity, "eth_getBalance", unbound, "latest")).result, "0x7", `${self} sees the balance of an address nobody bound`);
    assert.notEqual((await rpc(who.identity, "eth_getCode", address, "latest")).result, "0x", `${self} sees contract code`);
  }
});

test("polling filters: block hashes for everyone, transaction hashes for participants only", async () => {
  const { bob } = users;
  const blocks = (await rpc(bob.identity, "eth_newBlockFilter")).result;
  const pending = (await rpc(bob.identity, "eth_newPendingTransactionFilter")).result;
  const hidden = await aliceTransfers(carol, 1n);
  const own = await send(bob.identity, bob.wallet, { to: carol, value: 1n, gasLimit: 21_000n });
  const seenBlocks: string[] = [];
  const seenHashes: string[] = [];
  const deadline = Date.now() + 20_000;
  // Bob's own transaction comes after Alice's: once its hash is polled, Alice's would have been too.
  while (!seenHashes.includes(own.transactionHash)) {
    if (Date.now() > deadline) throw new Error(`Bob's filter did not report his own transaction: ${seenHashes}`);
    seenBlocks.push(...(await rpc(bob.identity, "eth_getFilterChanges", blocks)).result);
    seenHashes.push(...(await rpc(bob.identity, "eth_getFilterChanges", pending)).result);
    await new Promise((r) => setTimeout(r, 20));
  }
  seenBlocks.push(...(await rpc(bob.identity, "eth_getFilterChanges", blocks)).result);
  assert.ok(!seenHashes.includes(hidden.transactionHash), "Alice's transaction hash is not reported to Bob");
  assert.ok(seenBlocks.includes(hidden.blockHash), "its block's hash is");
  assert.ok(seenBlocks.includes(own.blockHash));
});

/** A WebSocket as `who` with a logs subscription (first) and a newHeads one (second) on `address`. */
async function subscribe(who: { cert: string; key: string }, address: string): Promise<{ logs: any[]; heads: any[]; close: () => void }> {
  const socket = new WebSocket(`wss://127.0.0.1:${node.port}/app/evm`, { ca: readFileSync(join(ws.dir, "service_cert.pem")), cert: who.cert, key: who.key });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const ids: string[] = [];
  const logs: any[] = [];
  const heads: any[] = [];
  const answered: (() => void)[] = [];
  socket.on("message", (data) => {
    const message = JSON.parse(data.toString());
    if (message.method !== "eth_subscription") {
      ids[message.id] = message.result;
      answered.shift()?.();
    } else if (message.params.subscription === ids[1]) logs.push(message.params.result);
    else if (message.params.subscription === ids[2]) heads.push(message.params.result);
  });
  // In this order: a block's logs are sent before its header, so a header is the sentinel that its logs would have come.
  for (const [id, params] of [[1, ["logs", { address }]], [2, ["newHeads"]]] as const) {
    const done = new Promise<void>((resolve) => answered.push(resolve));
    socket.send(JSON.stringify({ jsonrpc: "2.0", id, method: "eth_subscribe", params }));
    await done;
  }
  return { logs, heads, close: () => socket.close() };
}

test("logs subscriptions deliver a transaction's logs to its participants only; newHeads hide others' gas and bloom", async () => {
  const { alice, bob } = users;
  const { address } = await aliceToken();
  const asAlice = await subscribe(alice.identity, address);
  const asBob = await subscribe(bob.identity, address);
  try {
    const toCarol = await aliceTransfers(carol, 3n);
    const toBob = await aliceTransfers(bob.wallet.address, 3n);
    const deadline = Date.now() + 20_000;
    const has = (heads: any[], number: string) => heads.some((h) => h.number === number);
    while (!(has(asAlice.heads, toBob.blockNumber) && has(asBob.heads, toBob.blockNumber))) {
      if (Date.now() > deadline) throw new Error(`the block's header did not arrive: alice ${asAlice.heads.map((h) => h.number)}, bob ${asBob.heads.map((h) => h.number)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(asAlice.logs.map((l) => l.transactionHash), [toCarol.transactionHash, toBob.transactionHash]);
    assert.deepEqual(asBob.logs.map((l) => l.transactionHash), [toBob.transactionHash], "Bob got the header after which Alice's other log would have come, and only his");
    const header = (heads: any[], number: string) => heads.find((h) => h.number === number);
    assert.equal(header(asAlice.heads, toCarol.blockNumber).gasUsed, toCarol.gasUsed);
    assert.equal(header(asBob.heads, toCarol.blockNumber).gasUsed, "0x0");
    assert.equal(header(asBob.heads, toCarol.blockNumber).logsBloom, EMPTY_BLOOM);
    assert.equal(header(asBob.heads, toBob.blockNumber).gasUsed, toBob.gasUsed);
  } finally {
    asAlice.close();
    asBob.close();
  }
});

test("coco evm bind binds the addresses of a key file to a user; a key already bound to another user is reported and exits 1", async () => {
  const { alice, bob } = users;
  const extra = Wallet.createRandom();
  const keyFile = join(ws.dir, "bob_keys.txt");
  writeFileSync(keyFile, `${extra.privateKey}\n`);
  const common = ["evm", "bind", "--node", `https://127.0.0.1:${node.port}`, "--cacert", join(ws.dir, "service_cert.pem"),
    "--user-cert", join(ws.dir, "bob_cert.pem"), "--user-key", join(ws.dir, "bob_privk.pem"), "--chain-id", String(CHAIN_ID)];
  const bound = await runCli([...common, "--private-key-file", keyFile]);
  assert.equal(bound.code, 0, bound.stderr);
  assert.match(bound.stdout, new RegExp(`${extra.address.toLowerCase()}  bound`));
  const listed = await node.request("GET", "/app/evm/addresses", { identity: bob.identity });
  assert.deepEqual(listed.json().addresses, [bob.wallet.address.toLowerCase(), extra.address.toLowerCase()]);
  const taken = await runCli([...common, "--private-key", alice.wallet.privateKey]);
  assert.equal(taken.code, 1);
  assert.match(taken.stdout, /refused \(HTTP 409\): .*bound to another user/);
});

test("an unbound address can no longer send", async () => {
  const { bob } = users;
  const removed = await node.request("DELETE", `/app/evm/addresses/${bob.wallet.address.toLowerCase()}`, { identity: bob.identity });
  assert.equal(removed.status, 204, removed.text);
  const refused = await rpc(bob.identity, "eth_sendRawTransaction", await signedTransfer(bob.wallet, Wallet.createRandom().address));
  assert.equal(refused.error?.code, -32000, JSON.stringify(refused));
  assert.match(refused.error.message, /not one of your addresses/);
});
