// End to end: the EVM chain is set by governance. A real node (`coco node start` with the EVM app
// enabled by `coco.evm: {}`) refuses Ethereum calls until the consortium accepts a
// set_evm_genesis proposal; malformed proposals are refused at submission with the field at
// fault; once accepted, the chain answers its chain id and the allocation is funded, exactly
// once; a second set_evm_genesis fails and changes nothing. The tests run in file order.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Wallet, parseEther } from "ethers";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { createIdentityCertificate, generateEcP384KeyPair } from "../../src/crypto/index.js";
import { GovernanceClient, openServiceAsMember } from "../../src/client/index.js";
import { CocoError } from "../../src/util/index.js";
import { bindAddresses } from "../../src/cli/evm-bind.js";

const CHAIN_ID = 4245;
const GWEI = 1_000_000_000n;
const alice = Wallet.createRandom();
const bob = Wallet.createRandom();
const carol = Wallet.createRandom();

const ws = tempWorkspace("coco-evm-gov-");
let node: NodeProcess;
let member: GovernanceClient;
let nextId = 1;

before(async () => {
  for (const name of ["member0", "user0"]) {
    const keys = generateEcP384KeyPair();
    writeFileSync(join(ws.dir, `${name}_cert.pem`), await createIdentityCertificate(keys, name));
    writeFileSync(join(ws.dir, `${name}_privk.pem`), keys.privateKeyPem);
  }
  writeFileSync(join(ws.dir, "config.json"), JSON.stringify({
    network: { rpc_interfaces: { primary: { bind_address: "127.0.0.1:0" } } },
    command: { type: "Start", service_certificate_file: "service_cert.pem", start: { members: [{ certificate_file: "member0_cert.pem" }] } },
    ledger: { directory: "ledger" },
    ledger_signatures: { delay: "10ms" },
    coco: { durability: "none", evm: {} },
  }));
  node = await NodeProcess.nodeStart(ws.dir, join(ws.dir, "config.json"));
  const identity = {
    url: `https://127.0.0.1:${node.port}`,
    serviceCertPem: readFileSync(join(ws.dir, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8"),
  };
  await openServiceAsMember({ ...identity, userCertPems: [readFileSync(join(ws.dir, "user0_cert.pem"), "utf8")] });
  member = new GovernanceClient(identity);
});

after(async () => {
  await member?.close();
  await node?.stop();
  ws.cleanup();
});

async function rpc(method: string, ...params: unknown[]): Promise<{ result?: any; error?: { code: number; message: string } }> {
  const response = await node.request("POST", "/app/evm", { identity: "user0", body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }) });
  assert.equal(response.status, 200, response.text);
  return response.json();
}

async function result(method: string, ...params: unknown[]): Promise<any> {
  const answer = await rpc(method, ...params);
  assert.equal(answer.error, undefined, `${method}: ${answer.error?.message}`);
  return answer.result;
}

/** Submits a one-action proposal and expects the constitution's validate() to refuse it, naming `message`. */
async function assertRefused(args: unknown, message: RegExp): Promise<void> {
  await assert.rejects(member.propose({ actions: [{ name: "set_evm_genesis", args }] }), (error: unknown) => {
    assert.ok(error instanceof CocoError, String(error));
    assert.equal(error.code, "ProposalFailedToValidate");
    assert.match(error.message, message);
    return true;
  });
}

async function waitForReceipt(hash: string): Promise<any> {
  for (let i = 0; i < 200; i++) {
    const receipt = await result("eth_getTransactionReceipt", hash);
    if (receipt !== null) return receipt;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no receipt for ${hash}`);
}

test("before set_evm_genesis every Ethereum call is refused with a JSON-RPC error that names the action", async () => {
  for (const method of ["eth_chainId", "eth_blockNumber"]) {
    const answer = await rpc(method);
    assert.equal(answer.error?.code, -32000);
    assert.match(answer.error!.message, /EVM chain is not configured yet.*set_evm_genesis/);
  }
  const raw = await alice.signTransaction({ chainId: CHAIN_ID, nonce: 0, to: bob.address, gasLimit: 21_000n, maxFeePerGas: 2n * GWEI, maxPriorityFeePerGas: 0n, type: 2 });
  assert.match((await rpc("eth_sendRawTransaction", raw)).error!.message, /not configured yet/);
  assert.match(await result("web3_clientVersion"), /^Coco\//);
});

test("malformed set_evm_genesis proposals are refused at submission, naming the field at fault", async () => {
  await assertRefused({ alloc: {} }, /args\.chain_id must be an integer/);
  await assertRefused({ chain_id: 0 }, /args\.chain_id must be at least 1/);
  await assertRefused({ chain_id: 1.5 }, /args\.chain_id must be an integer/);
  await assertRefused({ chain_id: CHAIN_ID, alloc: [] }, /args\.alloc must be an object/);
  await assertRefused({ chain_id: CHAIN_ID, alloc: { "0x1234": "1" } }, /args\.alloc keys must be 0x-prefixed 20-byte hex addresses/);
  await assertRefused({ chain_id: CHAIN_ID, alloc: { [alice.address]: 5 } }, /must be a string/);
  await assertRefused({ chain_id: CHAIN_ID, alloc: { [alice.address]: "-5" } }, /must be wei as a decimal string/);
  await assertRefused({ chain_id: CHAIN_ID, alloc: { [alice.address]: "0x" + "f".repeat(65) } }, /must be wei/);
  await assertRefused({ chain_id: CHAIN_ID, alloc: { [alice.address]: (1n << 256n).toString() } }, /at most 2\^256 - 1 wei/);
  await assertRefused({ chain_id: CHAIN_ID, alloc: { [alice.address.toLowerCase()]: "1", [alice.address.toUpperCase().replace("0X", "0x")]: "2" } }, /more than once/);
  await assertRefused({ chain_id: CHAIN_ID, genesis: [] }, /unknown field\(s\) genesis/);
  assert.equal((await rpc("eth_chainId")).error?.code, -32000, "nothing was configured");
});

test("an accepted set_evm_genesis sets the chain id and funds the allocation; transactions then run", async () => {
  let proposal = await member.propose({ actions: [{
    name: "set_evm_genesis",
    args: { chain_id: CHAIN_ID, alloc: { [alice.address]: parseEther("100").toString(), [bob.address]: "0x" + (10n ** 18n).toString(16) } },
  }] });
  if (proposal.proposalState === "Open") proposal = await member.accept(proposal.proposalId);
  assert.equal(proposal.proposalState, "Accepted", JSON.stringify(proposal.failure));
  await member.waitForCommit(proposal.transactionId!);

  assert.equal(await result("eth_chainId"), `0x${CHAIN_ID.toString(16)}`);
  assert.equal(await result("net_version"), String(CHAIN_ID));
  assert.equal(BigInt(await result("eth_getBalance", alice.address, "latest")), parseEther("100"));
  assert.equal(BigInt(await result("eth_getBalance", bob.address, "latest")), 10n ** 18n);
  assert.equal(BigInt(await result("eth_getBalance", carol.address, "latest")), 0n);

  // user0 sends from alice's address: bound to it first (the node's default address policy is "bound").
  const bound = await bindAddresses({
    nodeUrl: `https://127.0.0.1:${node.port}`, chainId: CHAIN_ID, privateKeys: [alice.privateKey],
    caPem: readFileSync(join(ws.dir, "service_cert.pem")), userCertPem: readFileSync(join(ws.dir, "user0_cert.pem")), userKeyPem: readFileSync(join(ws.dir, "user0_privk.pem")),
  });
  assert.deepEqual(bound.map((b) => b.status), [201], JSON.stringify(bound));
  const wrongChain = await alice.signTransaction({ chainId: CHAIN_ID + 1, nonce: 0, to: carol.address, gasLimit: 21_000n, maxFeePerGas: 2n * GWEI, maxPriorityFeePerGas: 0n, type: 2 });
  assert.match((await rpc("eth_sendRawTransaction", wrongChain)).error!.message, /invalid chain id for signer/);
  const raw = await alice.signTransaction({ chainId: CHAIN_ID, nonce: 0, to: carol.address, value: parseEther("1"), gasLimit: 21_000n, maxFeePerGas: 2n * GWEI, maxPriorityFeePerGas: 0n, type: 2 });
  const receipt = await waitForReceipt(await result("eth_sendRawTransaction", raw));
  assert.equal(receipt.status, "0x1");
  assert.equal(BigInt(await result("eth_getBalance", carol.address, "latest")), parseEther("1"));
});

test("a second set_evm_genesis fails in apply and credits nothing: the genesis is set once", async () => {
  const aliceBefore = BigInt(await result("eth_getBalance", alice.address, "latest"));
  let proposal = await member.propose({ actions: [{ name: "set_evm_genesis", args: { chain_id: CHAIN_ID + 1, alloc: { [carol.address]: parseEther("5").toString() } } }] });
  if (proposal.proposalState === "Open") proposal = await member.accept(proposal.proposalId);
  assert.equal(proposal.proposalState, "Failed");
  assert.match(proposal.failure?.reason ?? "", /already configured \(chain id 4245\).*set once/);
  assert.equal(await result("eth_chainId"), `0x${CHAIN_ID.toString(16)}`);
  assert.equal(BigInt(await result("eth_getBalance", carol.address, "latest")), parseEther("1"));
  assert.equal(BigInt(await result("eth_getBalance", alice.address, "latest")), aliceBefore);
});
