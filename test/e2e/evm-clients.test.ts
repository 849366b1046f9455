// Real Ethereum clients, unmodified, against a real `coco sandbox` node over mutual TLS as user0:
// ethers v6, web3 v4 and viem each deploy a solc-compiled ERC-20, transfer, read balances and
// events, see a `require` revert reason and wait for committed receipts. Then the workspace is
// scanned to show the contract's storage never reaches disk in plaintext, and malformed input
// is sent to the node, which must answer JSON-RPC errors and keep working.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { inspect } from "node:util";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { Agent as UndiciAgent, fetch as undiciFetch } from "undici";
import { Contract, ContractFactory, FetchRequest, JsonRpcProvider, Network, Wallet, Transaction as EthTransaction, getAddress } from "ethers";
import { Web3, HttpProvider } from "web3";
import { createPublicClient, createWalletClient, defineChain, http, type Abi, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { NodeProcess } from "../helpers/node-process.js";
import { devAccounts } from "../../src/apps/evm/index.js";
import { compileErc20 } from "../helpers/erc20.js";
import { bindAddresses } from "../../src/cli/evm-bind.js";

const CHAIN_ID = 4244;
const GWEI = 1_000_000_000n;
const SUPPLY = 10n ** 30n;
// Distinctive amounts, one per client, so the plaintext scan can look for each balance's bytes.
const AMOUNTS = { ethers: 0x5ec7e7a11ce0000001n, web3: 0x5ec7e7a11ce0000002n, viem: 0x5ec7e7a11ce0000003n } as const;
type ClientName = keyof typeof AMOUNTS;
// Dev accounts 1-3 (account 0 is left to the other EVM test file's habits); fresh recipients.
const senders = devAccounts(4).slice(1).map((a) => a.privateKey as Hex);
// Dev accounts 6-8: ether but no tokens, bound to user0 by the sandbox (the "bound" address
// policy lets user0 send only from its addresses): their token transfers revert.
const tokenless = devAccounts(9).slice(6).map((a) => a.privateKey as Hex);
const recipients: Record<ClientName, string> = {
  ethers: Wallet.createRandom().address, web3: Wallet.createRandom().address, viem: Wallet.createRandom().address,
};


let sandbox: NodeProcess;
let workspace: string;
let url: string;
let tls: { ca: Buffer; cert: Buffer; key: Buffer };
let abi: Abi;
let bytecode: Hex;
/** A committed Ethereum transaction (from the bad-input test) whose Coco receipt is fetched. */
let committedHash: string | undefined;

before(async () => {
  const token = compileErc20<Abi>({ constructor: "deployer" });
  abi = token.abi;
  bytecode = token.bytecode as Hex;
  workspace = mkdtempSync(join(tmpdir(), "coco-evm-clients-"));
  sandbox = await NodeProcess.sandbox(workspace, ["--evm-chain-id", String(CHAIN_ID), "--durability", "none"]);
  url = `https://127.0.0.1:${sandbox.port}/app/evm`;
  tls = {
    ca: readFileSync(join(workspace, "service_cert.pem")),
    cert: readFileSync(join(workspace, "user0_cert.pem")),
    key: readFileSync(join(workspace, "user0_privk.pem")),
  };
});

after(async () => {
  await sandbox?.stop();
  rmSync(workspace, { recursive: true, force: true });
});

/** Every client wraps the node's `execution reverted: <reason>` differently; the reason must be in there. */
async function assertRevertReason(action: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(action, (error: unknown) => {
    assert.match(inspect(error, { depth: 12 }), new RegExp(reason));
    return true;
  });
}

test("ethers v6: deploy, transfer, balances, Transfer events by recipient, revert reason on send, receipts", async () => {
  const agent = new https.Agent({ keepAlive: true, ...tls });
  const request = new FetchRequest(url);
  request.getUrlFunc = FetchRequest.createGetUrlFunc({ agent });
  const provider = new JsonRpcProvider(request, Network.from(CHAIN_ID), { staticNetwork: true, pollingInterval: 50, cacheTimeout: -1 });
  try {
    const signer = new Wallet(senders[0]!, provider);
    const deployed = await new ContractFactory(abi as never, bytecode, signer).deploy(SUPPLY);
    await deployed.waitForDeployment();
    const erc20 = new Contract(await deployed.getAddress(), abi as never, signer);
    const receipt = await (await erc20.getFunction("transfer")(recipients.ethers, AMOUNTS.ethers)).wait();
    assert.equal(receipt.status, 1);
    assert.equal(await erc20.getFunction("balanceOf")(recipients.ethers), AMOUNTS.ethers);
    assert.equal(await erc20.getFunction("balanceOf")(signer.address), SUPPLY - AMOUNTS.ethers);
    const toRecipient = await erc20.queryFilter(erc20.filters["Transfer"]!(null, recipients.ethers), 0, "latest");
    assert.equal(toRecipient.length, 1);
    assert.equal((toRecipient[0] as unknown as { args: unknown[] }).args[2], AMOUNTS.ethers);
    const poor = new Wallet(tokenless[0]!, provider);
    await assertRevertReason(
      (erc20.connect(poor) as Contract).getFunction("transfer")(signer.address, 1n), "insufficient balance");
  } finally {
    provider.destroy();
    agent.destroy();
  }
});

test("web3 v4: deploy, transfer, balances, past events by recipient, revert reason on send, receipts", async () => {
  // web3's HttpProvider fetches with node-fetch (via cross-fetch), which takes an https.Agent:
  // that is where the client certificate goes.
  const agent = new https.Agent({ keepAlive: true, ...tls });
  const web3 = new Web3(new HttpProvider(url, { providerOptions: { agent } as RequestInit }));
  web3.setConfig({ transactionPollingInterval: 50, transactionReceiptPollingInterval: 50, transactionConfirmationPollingInterval: 50 });
  try {
    assert.equal(await web3.eth.getChainId(), BigInt(CHAIN_ID));
    const account = web3.eth.accounts.wallet.add(senders[1]!).get(0)!;
    const deployed = await new web3.eth.Contract(abi as never).deploy({ data: bytecode, arguments: [SUPPLY] } as never).send({ from: account.address });
    const erc20 = new web3.eth.Contract(abi as never, deployed.options.address);
    const receipt = await (erc20.methods as never as Record<string, (...a: unknown[]) => { send(o: object): Promise<{ status: bigint }> }>)["transfer"]!(recipients.web3, AMOUNTS.web3).send({ from: account.address });
    assert.equal(receipt.status, 1n);
    const balanceOf = (who: string) => (erc20.methods as never as Record<string, (...a: unknown[]) => { call(): Promise<bigint> }>)["balanceOf"]!(who).call();
    assert.equal(await balanceOf(recipients.web3), AMOUNTS.web3);
    assert.equal(await balanceOf(account.address), SUPPLY - AMOUNTS.web3);
    const events = await erc20.getPastEvents("Transfer" as never, { filter: { to: recipients.web3 }, fromBlock: 0, toBlock: "latest" }) as { returnValues: Record<string, unknown> }[];
    assert.equal(events.length, 1);
    assert.equal(events[0]!.returnValues["value"], AMOUNTS.web3);
    const poor = web3.eth.accounts.wallet.add(tokenless[1]!).get(1)!;
    await assertRevertReason(
      (erc20.methods as never as Record<string, (...a: unknown[]) => { send(o: object): Promise<unknown> }>)["transfer"]!(account.address, 1n).send({ from: poor.address }),
      "insufficient balance");
  } finally {
    agent.destroy();
  }
});

test("viem: deploy, transfer, balances, contract events by recipient, revert reason on write, receipts", async () => {
  // viem fetches with the global fetch; a custom fetchFn sends it through an undici Agent with the certificate.
  const dispatcher = new UndiciAgent({ connect: { ...tls } });
  const fetchFn = ((input: string, init?: RequestInit) => undiciFetch(input, { ...(init as object), dispatcher })) as unknown as typeof fetch;
  const chain = defineChain({
    id: CHAIN_ID, name: "Coco sandbox", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [url] } },
  });
  const transport = http(url, { fetchFn, retryCount: 0 });
  const client = createPublicClient({ chain, transport, pollingInterval: 50 });
  const account = privateKeyToAccount(senders[2]!);
  const wallet = createWalletClient({ chain, transport, account, pollingInterval: 50 });
  try {
    const deployHash = await wallet.deployContract({ abi, bytecode, args: [SUPPLY] });
    const deployed = await client.waitForTransactionReceipt({ hash: deployHash, pollingInterval: 50 });
    const address = deployed.contractAddress!;
    const hash = await wallet.writeContract({ address, abi, functionName: "transfer", args: [recipients.viem, AMOUNTS.viem] });
    assert.equal((await client.waitForTransactionReceipt({ hash, pollingInterval: 50 })).status, "success");
    assert.equal(await client.readContract({ address, abi, functionName: "balanceOf", args: [recipients.viem] }), AMOUNTS.viem);
    assert.equal(await client.readContract({ address, abi, functionName: "balanceOf", args: [account.address] }), SUPPLY - AMOUNTS.viem);
    const events = await client.getContractEvents({ address, abi, eventName: "Transfer", args: { to: recipients.viem }, fromBlock: 0n }) as unknown as { args: { value: bigint } }[];
    assert.equal(events.length, 1);
    assert.equal(events[0]!.args.value, AMOUNTS.viem);
    const poor = createWalletClient({ chain, transport, account: privateKeyToAccount(tokenless[2]!) });
    await assertRevertReason(poor.writeContract({ address, abi, functionName: "transfer", args: [account.address, 1n] }), "insufficient balance");
  } finally {
    await dispatcher.close();
  }
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

test("the contract's storage values and the recipients never appear in plaintext in the workspace (ledger, logs, config)", () => {
  const files = filesUnder(workspace).map((path) => ({ path, bytes: readFileSync(path) }));
  assert.ok(files.some((f) => f.path.includes("ledger")), "the ledger has been written");
  const needles: { what: string; bytes: Buffer }[] = [];
  for (const [client, amount] of Object.entries(AMOUNTS)) {
    const hex = amount.toString(16).padStart(18, "0");
    // The storage value as stored (no leading zeros, so also any 32-byte big-endian word) and as hex text.
    needles.push({ what: `${client} balance bytes`, bytes: Buffer.from(hex, "hex") });
    needles.push({ what: `${client} balance hex`, bytes: Buffer.from(hex) });
    const recipient = recipients[client as ClientName];
    needles.push({ what: `${client} recipient bytes`, bytes: Buffer.from(recipient.slice(2), "hex") });
    needles.push({ what: `${client} recipient hex`, bytes: Buffer.from(recipient.slice(2).toLowerCase()) });
    needles.push({ what: `${client} recipient checksummed`, bytes: Buffer.from(getAddress(recipient).slice(2)) });
  }
  for (const needle of needles) {
    const found = files.filter((f) => f.bytes.includes(needle.bytes)).map((f) => f.path);
    assert.deepEqual(found, [], `${needle.what} found in plaintext`);
  }
  // Control: public data (user0's certificate in public:ccf.gov.users.certs) is in the ledger in
  // the clear, so a scan that finds nothing is not blind.
  const certLine = readFileSync(join(workspace, "user0_cert.pem"), "utf8").split("\n")[2]!;
  assert.ok(certLine.length > 40);
  const ledgerFiles = files.filter((f) => f.path.includes(join(workspace, "ledger")));
  assert.ok(ledgerFiles.some((f) => f.bytes.includes(Buffer.from(certLine))), "the scan finds public ledger data");
});

test("bad input reaches the real node as JSON-RPC errors and a good transaction still goes through", async () => {
  const post = async (body: string) => {
    const response = await sandbox.request("POST", "/app/evm", { body });
    assert.equal(response.status, 200, response.text);
    return response.json() as { error?: { code: number; message: string }; result?: unknown }[] & { error?: { code: number; message: string }; result?: unknown };
  };
  const rpc = (method: string, ...params: unknown[]) => post(JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }));
  const errorOf = async (method: string, ...params: unknown[]) => {
    const answer = await rpc(method, ...params);
    assert.ok(answer.error, `expected an error, got ${JSON.stringify(answer)}`);
    return answer.error;
  };
  const sender = new Wallet(devAccounts(5)[4]!.privateKey);
  const nonceOf = async (address: string) => Number(BigInt((await rpc("eth_getTransactionCount", address, "latest")).result as string));
  const sign = async (wallet: Wallet, extra: object = {}) => wallet.signTransaction({
    chainId: BigInt(CHAIN_ID), nonce: await nonceOf(wallet.address), to: recipients.ethers, value: 1n, gasLimit: 21_000n,
    type: 2, maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: 0n, ...extra,
  });

  assert.equal((await errorOf("eth_sendRawTransaction", "0xdeadbeef")).code, -32602, "malformed RLP");
  assert.equal((await errorOf("eth_sendRawTransaction", (await sign(sender)).slice(0, -8))).code, -32602, "truncated RLP");
  const wrongChain = await errorOf("eth_sendRawTransaction", await sign(sender, { chainId: 1n }));
  assert.equal(wrongChain.code, -32000);
  assert.match(wrongChain.message, /invalid chain id for signer/);
  // An address without ether, bound to user0 first (else it is refused as not user0's).
  const penniless = new Wallet(Wallet.createRandom().privateKey);
  const bound = await bindAddresses({ nodeUrl: `https://127.0.0.1:${sandbox.port}`, chainId: CHAIN_ID, privateKeys: [penniless.privateKey], caPem: tls.ca, userCertPem: tls.cert, userKeyPem: tls.key });
  assert.deepEqual(bound.map((b) => b.status), [201], JSON.stringify(bound));
  const poor = await errorOf("eth_sendRawTransaction", await sign(penniless));
  assert.match(poor.message, /^insufficient funds for gas \* price \+ value/);
  const oversized = await errorOf("eth_sendRawTransaction", await sign(sender, { data: "0x" + "ab".repeat(129 * 1024), gasLimit: 29_000_000n }));
  assert.match(oversized.message, /^oversized data/);
  const unprotected = EthTransaction.from({ type: 0, nonce: 0, to: recipients.ethers, gasLimit: 21_000n, gasPrice: 2n * GWEI });
  unprotected.signature = sender.signingKey.sign(unprotected.unsignedHash);
  assert.match((await errorOf("eth_sendRawTransaction", unprotected.serialized)).message, /replay-protected/);

  assert.equal((await post("{not json")).error?.code, -32700);
  assert.equal((await post("[]")).error?.code, -32600);
  assert.equal((await post("42")).error?.code, -32600);
  assert.equal((await post(JSON.stringify({ jsonrpc: "1.0", id: 1, method: "eth_chainId" }))).error?.code, -32600);
  assert.equal((await post(JSON.stringify({ jsonrpc: "2.0", id: 1, method: 7 }))).error?.code, -32600);
  assert.equal((await errorOf("eth_nope")).code, -32601);
  assert.equal((await errorOf("eth_getBalance", "0x12")).code, -32602);
  const batch = await post(JSON.stringify(Array.from({ length: 101 }, (_, id) => ({ jsonrpc: "2.0", id, method: "eth_chainId" }))));
  assert.ok((batch.error ?? batch[0]?.error) !== undefined, "an oversized batch is refused");

  const good = await sign(sender);
  const hash = (await rpc("eth_sendRawTransaction", good)).result as string;
  assert.match(hash, /^0x[0-9a-f]{64}$/);
  const replayed = await errorOf("eth_sendRawTransaction", good);
  assert.equal(replayed.message, "already known");
  const stale = await errorOf("eth_sendRawTransaction", await sender.signTransaction({
    chainId: BigInt(CHAIN_ID), nonce: 0, to: recipients.web3, value: 2n, gasLimit: 21_000n, type: 2, maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: 0n,
  }));
  assert.match(stale.message, /^nonce too low/, "a replayed nonce with different contents");
  let receipt: { status: string } | null = null;
  for (let i = 0; i < 200 && receipt === null; i++) {
    receipt = (await rpc("eth_getTransactionReceipt", hash)).result as { status: string } | null;
    if (receipt === null) await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(receipt?.status, "0x1");
  assert.equal((await sandbox.request("GET", "/node/commit")).status, 200, "the node is unharmed");
  committedHash = hash;
});

test("a Coco receipt (Merkle proof and signature) is fetched for an Ethereum transaction hash", async () => {
  assert.ok(committedHash);
  const answer = JSON.parse((await sandbox.request("POST", "/app/evm", {
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "coco_getTransactionId", params: [committedHash] }),
  })).text) as { result: { seqno: number; view: number | null; transactionId: string | null } };
  assert.ok(answer.result.seqno > 0);
  // The sandbox does not yet give the app the node's viewForSeqno (view is null): a single node
  // never changes view, so the commit's view is the transaction's.
  const commitView = (JSON.parse((await sandbox.request("GET", "/node/commit")).text) as { transaction_id: string }).transaction_id.split(".")[0];
  const transactionId = answer.result.transactionId ?? `${commitView}.${answer.result.seqno}`;
  const receipt = await sandbox.request("GET", `/app/receipt?transaction_id=${transactionId}`);
  assert.equal(receipt.status, 200, receipt.text);
  const body = receipt.json() as { signature?: string; proof?: unknown[]; leaf_components?: unknown };
  assert.ok(body.signature, receipt.text);
  assert.ok(Array.isArray(body.proof), receipt.text);
});
