// eth_subscribe over WebSocket against a real `coco sandbox`, with the clients developers use:
// ethers' WebSocketProvider over wss:// with a client certificate, and with an API key in the
// path or a Bearer header; viem's webSocket transport through the sandbox's plain-HTTP gateway.
// Each receives newHeads and filtered logs of real ERC-20 transfers, only once committed. Then
// the refusals and limits: a handshake without credentials, a browser origin not allowed, the
// cap on subscriptions per connection and on connections per user, a revoked key.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { Contract, ContractFactory, Wallet, WebSocketProvider, JsonRpcProvider, Network, id as topicOf, zeroPadValue, type Log } from "ethers";
import { createPublicClient, defineChain, webSocket, type Abi, type Hex } from "viem";
import { NodeProcess, tempWorkspace, type Response } from "../helpers/node-process.js";
import { devAccounts } from "../../src/apps/evm/index.js";
import { compileErc20 } from "../helpers/erc20.js";

const CHAIN_ID = 4247;
const SUPPLY = 10n ** 30n;
const WAIT_MS = 20_000;
const dir = tempWorkspace("coco-evm-subscriptions-");
let sandbox: NodeProcess;
let gatewayUrl: string;
let wssUrl: string;
let tls: { ca: Buffer; cert: Buffer; key: Buffer };
let token: Contract;
let tokenAddress: string;
let tokenAbi: Abi;
let httpProvider: JsonRpcProvider;
const deployer = () => new Wallet(devAccounts(1)[0]!.privateKey, httpProvider);

/** Resolves with the first value `take` returns that is not undefined, or rejects after WAIT_MS. */
function waitFor<T>(what: string, subscribe: (resolve: (value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
    subscribe((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

async function transfer(to: string, amount: bigint): Promise<{ hash: string; blockNumber: number }> {
  const receipt = await (await (token.connect(deployer()) as Contract).getFunction("transfer")(to, amount)).wait();
  assert.equal(receipt?.status, 1);
  return { hash: receipt!.hash, blockNumber: receipt!.blockNumber };
}

before(async () => {
  sandbox = await NodeProcess.sandbox(dir.dir, ["--evm-chain-id", String(CHAIN_ID), "--durability", "none"]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const match = /without client certificates at (http:\/\/127\.0\.0\.1:\d+)/.exec(sandbox.output());
    if (match) {
      gatewayUrl = match[1]!;
      break;
    }
    if (Date.now() > deadline) throw new Error(`the sandbox did not print its EVM gateway:\n${sandbox.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  wssUrl = `wss://127.0.0.1:${sandbox.port}/app/evm`;
  tls = {
    ca: readFileSync(join(dir.dir, "service_cert.pem")),
    cert: readFileSync(join(dir.dir, "user0_cert.pem")),
    key: readFileSync(join(dir.dir, "user0_privk.pem")),
  };
  httpProvider = new JsonRpcProvider(gatewayUrl, Network.from(CHAIN_ID), { staticNetwork: true, pollingInterval: 50, cacheTimeout: -1 });
  const compiled = compileErc20({ constructor: "deployer" });
  tokenAbi = compiled.abi as Abi;
  const deployed = await new ContractFactory(compiled.abi as never, compiled.bytecode, deployer()).deploy(SUPPLY);
  await deployed.waitForDeployment();
  tokenAddress = await deployed.getAddress();
  token = new Contract(tokenAddress, compiled.abi as never, httpProvider);
});

after(async () => {
  httpProvider?.destroy();
  await sandbox?.stop();
  dir.cleanup();
});

function wss(path = "/app/evm", options: WebSocket.ClientOptions = {}): WebSocket {
  return new WebSocket(`wss://127.0.0.1:${sandbox.port}${path}`, { ca: tls.ca, ...options });
}

/** A handshake's refusal: the HTTP status and the JSON-RPC body the node answers instead of 101. */
function handshakeRefusal(path: string, headers: Record<string, string>, identity: "user0" | "none" = "none"): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: "127.0.0.1", port: sandbox.port, path, method: "GET", ca: tls.ca, servername: "localhost", agent: false,
      ...(identity === "user0" ? { cert: tls.cert, key: tls.key } : {}),
      headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", ...headers },
    });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      reject(new Error("the handshake was accepted"));
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Opens a client socket: the open socket, or the handshake's refusal (status and JSON-RPC body). */
function tryOpen(socket: WebSocket): Promise<{ socket: WebSocket } | { status: number; body: any }> {
  return new Promise((resolve, reject) => {
    socket.once("open", () => resolve({ socket }));
    socket.once("unexpected-response", (_req, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
    });
    socket.once("error", reject);
  });
}

async function createApiKey(): Promise<{ key: string; id: string }> {
  const created: Response = await sandbox.request("POST", "/app/evm/keys", { identity: "user0", body: "{}" });
  assert.equal(created.status, 201, created.text);
  return created.json();
}

/** Sends JSON-RPC messages on an open socket and collects answers by id (and notifications). */
class RawClient {
  readonly answers = new Map<number, any>();
  readonly notifications: any[] = [];
  private nextId = 1;
  private waiters: (() => void)[] = [];

  constructor(readonly socket: WebSocket) {
    socket.on("message", (data) => {
      const message = JSON.parse(data.toString());
      if (message.method === "eth_subscription") this.notifications.push(message.params);
      else this.answers.set(message.id, message);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async open(socket: WebSocket): Promise<RawClient> {
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    return new RawClient(socket);
  }

  async call(method: string, params: unknown[]): Promise<any> {
    const id = this.nextId++;
    this.socket.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    return this.until(`the answer to ${method}`, () => this.answers.get(id));
  }

  until<T>(what: string, check: () => T | undefined): Promise<T> {
    const deadline = Date.now() + WAIT_MS;
    return new Promise((resolve, reject) => {
      const poll = () => {
        const value = check();
        if (value !== undefined) return resolve(value);
        if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
        this.waiters.push(poll);
        setTimeout(poll, 200).unref();
      };
      poll();
    });
  }
}

test("ethers' WebSocketProvider (wss://, client certificate) receives newHeads and only the logs its filter matches, once committed", async () => {
  const provider = new WebSocketProvider(() => wss("/app/evm", { cert: tls.cert, key: tls.key }), Network.from(CHAIN_ID), { staticNetwork: true });
  try {
    assert.equal(await provider.getBlockNumber() > 0, true);
    const watched = Wallet.createRandom().address;
    const other = Wallet.createRandom().address;
    const blocks: number[] = [];
    const logs: Log[] = [];
    await provider.on("block", (n: number) => blocks.push(n));
    // Transfer(from, to, value) to `watched` only: address and topics filter on the node.
    const filter = { address: tokenAddress, topics: [topicOf("Transfer(address,address,uint256)"), null, zeroPadValue(watched, 32)] };
    await provider.on(filter, (log: Log) => logs.push(log));
    // ethers sends eth_subscribe when a listener is added; wait until both are registered on the node.
    await new Promise((r) => setTimeout(r, 200));
    const unwatched = await transfer(other, 5n);
    const watchedTransfer = await transfer(watched, 7n);
    // The receipt answered, so the block is committed: a notification must follow.
    await waitFor<void>("the log of the watched transfer", (done) => {
      const check = () => (logs.length > 0 ? done() : setTimeout(check, 20));
      check();
    });
    await waitFor<void>("the watched transfer's block", (done) => {
      const check = () => (blocks.includes(watchedTransfer.blockNumber) ? done() : setTimeout(check, 20));
      check();
    });
    assert.ok(blocks.includes(unwatched.blockNumber), `newHeads delivered blocks ${blocks.join(",")}, not ${unwatched.blockNumber}`);
    assert.equal(logs.length, 1, "only the matching transfer's log");
    assert.equal(logs[0]!.transactionHash, watchedTransfer.hash);
    assert.equal(logs[0]!.blockNumber, watchedTransfer.blockNumber);
    assert.equal(BigInt(logs[0]!.data), 7n);
    // Every block delivered is committed: its receipt is there at once.
    const receipt = await httpProvider.getTransactionReceipt(logs[0]!.transactionHash);
    assert.equal(receipt?.status, 1);
  } finally {
    await provider.destroy();
  }
});

test("viem's webSocket transport through the plain-HTTP gateway (ws://, as user0) watches blocks and contract events", async () => {
  const chain = defineChain({ id: CHAIN_ID, name: "coco", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [gatewayUrl], webSocket: [gatewayUrl.replace("http", "ws")] } } });
  const client = createPublicClient({ chain, transport: webSocket(gatewayUrl.replace("http", "ws")) });
  const heads: bigint[] = [];
  const events: { to: string; value: bigint; blockNumber: bigint }[] = [];
  const recipient = Wallet.createRandom().address;
  const stopBlocks = client.watchBlocks({ onBlock: (block) => heads.push(block.number) });
  const stopEvents = client.watchContractEvent({
    address: tokenAddress as Hex, abi: tokenAbi, eventName: "Transfer", args: { to: recipient as Hex },
    onLogs: (logs) => {
      for (const log of logs) {
        const args = (log as unknown as { args: { to: string; value: bigint } }).args;
        events.push({ to: args.to, value: args.value, blockNumber: log.blockNumber! });
      }
    },
  });
  try {
    await new Promise((r) => setTimeout(r, 300));
    await transfer(Wallet.createRandom().address, 1n);
    const sent = await transfer(recipient, 11n);
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + WAIT_MS;
      const check = () => {
        if (events.length > 0 && heads.includes(BigInt(sent.blockNumber))) return resolve();
        if (Date.now() > deadline) return reject(new Error(`viem saw events ${JSON.stringify(events, (_k, v) => typeof v === "bigint" ? v.toString() : v)} and heads ${heads.join(",")}`));
        setTimeout(check, 20);
      };
      check();
    });
    assert.equal(events.length, 1, "only the transfer to the watched recipient");
    assert.equal(events[0]!.to.toLowerCase(), recipient.toLowerCase());
    assert.equal(events[0]!.value, 11n);
    assert.equal(events[0]!.blockNumber, BigInt(sent.blockNumber));
  } finally {
    stopBlocks();
    stopEvents();
    (await client.transport.getRpcClient()).close();
  }
});

test("an API key works in the path and as a Bearer header; a revoked key's connection is closed at the next block", async () => {
  const { key, id } = await createApiKey();
  const viaPath = await RawClient.open(wss(`/app/evm/${key}`));
  const viaHeader = await RawClient.open(wss("/app/evm", { headers: { authorization: `Bearer ${key}` } }));
  for (const client of [viaPath, viaHeader]) {
    const chainId = await client.call("eth_chainId", []);
    assert.equal(chainId.result, `0x${CHAIN_ID.toString(16)}`);
    const subscribed = await client.call("eth_subscribe", ["newHeads"]);
    assert.match(subscribed.result, /^0x[0-9a-f]{32}$/);
  }
  const closed = new Promise<{ code: number; reason: string }>((resolve) => viaPath.socket.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  const revoked = await sandbox.request("DELETE", `/app/evm/keys/${id}`, { identity: "user0" });
  assert.equal(revoked.status, 204, revoked.text);
  await transfer(Wallet.createRandom().address, 1n);
  const { code, reason } = await waitFor<{ code: number; reason: string }>("the revoked key's connection to close", (done) => void closed.then(done));
  assert.equal(code, 1008);
  assert.match(reason, /revoked/);
  viaHeader.socket.close();
});

test("eth_subscribe refuses unknown names and past blocks, and over HTTP says notifications need a WebSocket", async () => {
  const client = await RawClient.open(wss("/app/evm", { cert: tls.cert, key: tls.key }));
  try {
    const unknown = await client.call("eth_subscribe", ["syncing"]);
    assert.equal(unknown.error.code, -32601);
    const past = await client.call("eth_subscribe", ["logs", { fromBlock: "0x0" }]);
    assert.equal(past.error.code, -32602);
    assert.match(past.error.message, /eth_getLogs/);
    const subscribed = await client.call("eth_subscribe", ["newHeads"]);
    assert.equal((await client.call("eth_unsubscribe", [subscribed.result])).result, true);
    assert.equal((await client.call("eth_unsubscribe", [subscribed.result])).result, false);
  } finally {
    client.socket.close();
  }
  const overHttp = await sandbox.request("POST", "/app/evm", { body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_subscribe", params: ["newHeads"] }) });
  assert.equal(overHttp.json().error.code, -32601);
  assert.match(overHttp.json().error.message, /WebSocket/);
});

test("handshakes are authenticated like HTTP: no credential, an unknown key, or a browser origin not allowed are refused with JSON-RPC bodies", async () => {
  const none = await handshakeRefusal("/app/evm", {});
  assert.equal(none.status, 401);
  assert.equal(none.body.error.code, -32001);
  const unknownKey = await handshakeRefusal(`/app/evm/coco_${"A".repeat(43)}`, {});
  assert.equal(unknownKey.status, 401);
  assert.match(unknownKey.body.error.message, /unknown or revoked API key/);
  // A page on another site could otherwise use a browser's client certificate (no CORS for WebSockets).
  const origin = await handshakeRefusal("/app/evm", { origin: "https://evil.example" }, "user0");
  assert.equal(origin.status, 403);
  assert.equal(origin.body.error.code, -32003);
});

test("a connection holds at most 128 subscriptions, and a user at most 16 connections per node", async () => {
  const client = await RawClient.open(wss("/app/evm", { cert: tls.cert, key: tls.key }));
  const extra: WebSocket[] = [];
  try {
    for (let i = 0; i < 128; i++) assert.ok((await client.call("eth_subscribe", ["newHeads"])).result, `subscription ${i}`);
    const over = await client.call("eth_subscribe", ["newHeads"]);
    assert.equal(over.error.code, -32005);
    assert.match(over.error.message, /too many subscriptions on this connection \(128\)/);
    // Connections of earlier tests may still be closing on the node: open until refused, at most 16 in all.
    let refused: { status: number; body: any } | undefined;
    for (let i = 0; i < 16 && refused === undefined; i++) {
      const opened = await tryOpen(wss("/app/evm", { cert: tls.cert, key: tls.key }));
      if ("socket" in opened) extra.push(opened.socket);
      else refused = opened;
    }
    assert.ok(refused !== undefined, `17 connections of one user were accepted`);
    assert.equal(refused.status, 429);
    assert.match(refused.body.error.message, /too many WebSocket connections for this user on this node \(16\)/);
  } finally {
    client.socket.close();
    for (const socket of extra) socket.close();
  }
});
