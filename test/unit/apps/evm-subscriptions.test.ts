// eth_subscribe's hub and WebSocket connections in-process: which blocks and logs a subscription
// is told about (committed ones after it was made, filtered), what happens when the last
// subscriber is dropped in the middle of a delivery, the cap per connection, and a slow
// consumer disconnected with close code 1008 once its unsent bytes pass the limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import WebSocket from "ws";
import { Store, type Transaction } from "../../../src/kv/index.js";
import type { EvmChain, StoredBlock, StoredReceipt } from "../../../src/apps/evm/chain.js";
import { SubscriptionHub, type Subscriber } from "../../../src/apps/evm/subscriptions.js";
import type { Visibility } from "../../../src/apps/evm/visibility.js";
import { EvmWebSockets } from "../../../src/apps/evm/websocket.js";
import { RateLimiter } from "../../../src/apps/evm/rate-limit.js";
import type { RpcRequest } from "../../../src/rpc/index.js";

const TOKEN = `0x${"11".repeat(20)}`;
const OTHER = `0x${"22".repeat(20)}`;
const TOPIC = `0x${"aa".repeat(32)}`;

/** A chain of `count` blocks, block n holding one transaction whose receipt logs one event of `logAddress(n)`. */
class FakeChain {
  committedHead = 0n;
  constructor(private readonly count: number, private readonly logAddress: (n: number) => string, private readonly senderOf: (n: number) => string = () => OTHER) {}
  committedHeadNumber(): bigint {
    return this.committedHead;
  }
  block(_tx: Transaction, number: bigint): StoredBlock | undefined {
    if (number > BigInt(this.count)) return undefined;
    const hex = `0x${number.toString(16)}`;
    return {
      number: hex, hash: `0x${number.toString(16).padStart(64, "0")}`, parentHash: `0x${"00".repeat(32)}`, timestamp: hex,
      gasLimit: "0x1c9c380", gasUsed: "0x5208", baseFeePerGas: "0x3b9aca00", miner: `0x${"00".repeat(20)}`, logsBloom: "0x",
      transactions: [`0x${(number + 1000n).toString(16).padStart(64, "0")}`],
    };
  }
  receipt(_tx: Transaction, hash: Buffer): StoredReceipt {
    const number = Number(BigInt(`0x${hash.toString("hex")}`) - 1000n);
    return {
      transactionHash: `0x${hash.toString("hex")}`, transactionIndex: "0x0", blockHash: `0x${number.toString(16).padStart(64, "0")}`,
      blockNumber: `0x${number.toString(16)}`, from: this.senderOf(number), to: TOKEN, contractAddress: null, cumulativeGasUsed: "0x0", gasUsed: "0x0",
      effectiveGasPrice: "0x0", status: "0x1", logsBloom: "0x", type: "0x2",
      logs: [{ address: this.logAddress(number), topics: [TOPIC], data: `0x${number.toString(16).padStart(64, "0")}`, logIndex: "0x0" }],
    };
  }
}

class RecordingSubscriber implements Subscriber {
  closed = false;
  authorized = true;
  sees: Visibility | undefined;
  readonly received: { subscription: string; result: any }[] = [];
  stillAuthorized(): boolean {
    return this.authorized;
  }
  visibility(): Visibility | undefined {
    return this.sees;
  }
  notify(text: string): void {
    this.received.push(JSON.parse(text).params);
  }
}

function hubOver(chain: FakeChain, options: { perConnectionMax?: number } = {}): SubscriptionHub {
  const store = new Store();
  return new SubscriptionHub({
    beginReadTransaction: () => store.begin(),
    chainOf: () => chain as unknown as EvmChain,
    committedSeqno: () => 0,
    ...(options.perConnectionMax === undefined ? {} : { subscriptionsPerConnectionMax: options.perConnectionMax }),
  });
}

test("a subscription is told about committed blocks after it was made, in order, and logs only as its filter says", () => {
  const chain = new FakeChain(10, (n) => (n % 2 === 0 ? TOKEN : OTHER));
  chain.committedHead = 3n;
  const hub = hubOver(chain);
  const subscriber = new RecordingSubscriber();
  const heads = hub.subscribe(subscriber, ["newHeads"]);
  const logs = hub.subscribe(subscriber, ["logs", { address: TOKEN, topics: [TOPIC] }]);
  const pending = hub.subscribe(subscriber, ["newPendingTransactions"]);
  chain.committedHead = 7n;
  hub.deliver();
  const of = (id: string) => subscriber.received.filter((r) => r.subscription === id).map((r) => r.result);
  assert.deepEqual(of(heads).map((h) => h.number), ["0x4", "0x5", "0x6", "0x7"]);
  assert.equal(of(heads)[0].transactions, undefined, "newHeads carries headers, not transactions");
  assert.deepEqual(of(logs).map((l) => l.blockNumber), ["0x4", "0x6"], "only the token's logs");
  assert.equal(of(logs)[0].removed, false);
  assert.equal(of(pending).length, 4);
  // Nothing is told twice.
  hub.deliver();
  assert.equal(of(heads).length, 4);
});

test("under the bound policy a subscriber is told only of the logs and transactions it may see, and others' headers without their gas", () => {
  const MINE = `0x${"33".repeat(20)}`;
  const chain = new FakeChain(6, () => TOKEN, (n) => (n % 3 === 0 ? MINE : OTHER));
  const hub = hubOver(chain);
  const subscriber = new RecordingSubscriber();
  const mine = (hash: string) => chain.receipt(undefined as never, Buffer.from(hash.slice(2), "hex")).from === MINE;
  subscriber.sees = { seesTransaction: mine, seesLog: (hash) => mine(hash), seesAccount: () => true, seesStorage: () => false };
  const logs = hub.subscribe(subscriber, ["logs", { address: TOKEN }]);
  const pending = hub.subscribe(subscriber, ["newPendingTransactions"]);
  const heads = hub.subscribe(subscriber, ["newHeads"]);
  chain.committedHead = 6n;
  hub.deliver();
  const of = (id: string) => subscriber.received.filter((r) => r.subscription === id).map((r) => r.result);
  assert.deepEqual(of(logs).map((l) => l.blockNumber), ["0x3", "0x6"]);
  assert.equal(of(pending).length, 2);
  assert.equal(of(heads).length, 6, "block headers are for everyone");
  assert.deepEqual(of(heads).map((h) => h.gasUsed), ["0x0", "0x0", "0x5208", "0x0", "0x0", "0x5208"], "others' blocks show no gas used");
  assert.equal(of(heads)[0].logsBloom, `0x${"00".repeat(256)}`, "nor the bloom of their logs");
});

test("a revoked subscriber is dropped during a delivery; the hub stays usable (dropping the last one once crashed it)", () => {
  const chain = new FakeChain(10, () => TOKEN);
  const hub = hubOver(chain);
  const revoked = new RecordingSubscriber();
  hub.subscribe(revoked, ["newHeads"]);
  revoked.authorized = false;
  chain.committedHead = 2n;
  hub.deliver();
  assert.equal(revoked.received.length, 0);
  assert.equal(hub.size, 0);
  const later = new RecordingSubscriber();
  hub.subscribe(later, ["newHeads"]);
  chain.committedHead = 4n;
  hub.deliver();
  assert.deepEqual(later.received.map((r) => r.result.number), ["0x3", "0x4"]);
});

test("subscriptions per connection are capped, and logs subscriptions refuse past blocks", () => {
  const hub = hubOver(new FakeChain(1, () => TOKEN), { perConnectionMax: 2 });
  const subscriber = new RecordingSubscriber();
  hub.subscribe(subscriber, ["newHeads"]);
  hub.subscribe(subscriber, ["newHeads"]);
  assert.throws(() => hub.subscribe(subscriber, ["newHeads"]), /too many subscriptions on this connection \(2\)/);
  assert.throws(() => hub.subscribe(new RecordingSubscriber(), ["logs", { fromBlock: "0x0" }]), /new logs only/);
  assert.throws(() => hub.subscribe(new RecordingSubscriber(), ["syncing"]), /no "syncing" subscription/);
  assert.equal(hub.unsubscribe(subscriber, "0x00"), false);
});

test("a client that does not read its answers is disconnected with 1008 once its unsent bytes pass the limit", async () => {
  const store = new Store();
  const answer = JSON.stringify({ jsonrpc: "2.0", id: 1, result: `0x${"ab".repeat(32 * 1024)}` }); // ~64 KiB
  const sockets = new EvmWebSockets("/app/evm", {
    access: { authPolicies: ["no_auth"], corsAllowedOrigins: [], rateLimiter: new RateLimiter({ requestsPerSecond: 0, burst: 1 }) },
    hub: hubOver(new FakeChain(0, () => TOKEN)),
    beginReadTransaction: () => store.begin(),
    dispatch: async () => ({ status: 200, body: answer }),
    sendBufferBytesMax: 512 * 1024,
  });
  const server = http.createServer();
  server.on("upgrade", (message: http.IncomingMessage, socket, head) => {
    const request: RpcRequest = { method: "GET", path: message.url ?? "/", query: "", headers: message.headers, body: Buffer.alloc(0), callerCert: undefined };
    sockets.handleUpgrade({ request, message, socket, head });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/app/evm`);
  try {
    await new Promise<void>((resolve, reject) => {
      client.once("open", () => resolve());
      client.once("error", reject);
    });
    const closed = new Promise<{ code: number; reason: string }>((resolve) => client.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    // Stop reading: the kernel's buffers fill, then the node's queue grows until the limit.
    (client as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const request = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_blockNumber", params: [] });
    const deadline = Date.now() + 30_000;
    let sent = 0;
    while (sockets.size > 0 && sent < 5_000) {
      if (Date.now() > deadline) throw new Error("the server kept an unread connection open");
      client.send(request);
      sent++;
      if (sent % 50 === 0) await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(sockets.size, 0, `the connection is still open after ${sent} unread answers of 64 KiB`);
    (client as unknown as { _socket: { resume(): void } })._socket.resume();
    const { code, reason } = await closed;
    assert.equal(code, 1008);
    assert.match(reason, /slow consumer/);
  } finally {
    client.terminate();
    sockets.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
