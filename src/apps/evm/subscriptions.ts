// eth_subscribe's notifications: newHeads, logs (address/topics filters) and
// newPendingTransactions, delivered once a block's Coco transaction is **committed** (what Coco
// promises: a client told about a block or a log can fetch its receipt at once, and nothing it
// is told is ever rolled back). The hub walks the committed blocks each time the node's commit
// point advances, reading them from one KV transaction, and hands each subscriber the
// notifications its subscriptions match. Subscriptions are node-local memory, like polling
// filters: they live as long as their WebSocket connection.
import type { Transaction } from "../../kv/index.js";
import { assert } from "../../util/index.js";
import type { EvmChain, StoredBlock } from "./chain.js";
import { RpcError, RpcErrorCodes } from "./errors.js";
import { data } from "./hex.js";
import { logsOfBlock, parseLogCriteria, type LogCriteria } from "./logs.js";
import { blockHeader } from "./rpc.js";
import { visibleBlock, type Visibility } from "./visibility.js";

/** Subscriptions one connection may hold at once (geth has none; each costs a scan per block). */
export const SUBSCRIPTIONS_PER_CONNECTION_MAX = 128;
/** Blocks delivered per turn of the event loop; a longer backlog continues on the next turn. */
export const BLOCKS_PER_DELIVERY_MAX = 500;

export type SubscriptionKind = "newHeads" | "logs" | "newPendingTransactions";

interface Subscription {
  readonly id: string;
  readonly kind: SubscriptionKind;
  readonly criteria?: LogCriteria;
  /** The first block this subscription is told about: the one after the committed head when it was made. */
  readonly fromBlock: bigint;
}

/** A connection as the hub sees it (websocket.ts). */
export interface Subscriber {
  /** Whether the connection's credential still names a user (a revoked key, a removed user: no). */
  stillAuthorized(tx: Transaction): boolean;
  /** What it may be told of transactions, logs and blocks (undefined: everything). */
  visibility(tx: Transaction): Visibility | undefined;
  /** Queues one notification (JSON text); the connection closes itself when its queue is full. */
  notify(text: string): void;
  readonly closed: boolean;
}

export interface SubscriptionHubOptions {
  /** A transaction on the node's latest state. */
  readonly beginReadTransaction: () => Transaction;
  /** The configured chain as `tx` sees it (undefined before set_evm_genesis). */
  readonly chainOf: (tx: Transaction) => EvmChain | undefined;
  /** The node's commit seqno. */
  readonly committedSeqno: () => number;
  readonly subscriptionsPerConnectionMax?: number;
}

function subscriptionKind(value: unknown): SubscriptionKind {
  if (value === "newHeads" || value === "logs" || value === "newPendingTransactions") return value;
  // geth's answer to an unknown subscription name.
  throw new RpcError(RpcErrorCodes.MethodNotFound, `no ${JSON.stringify(value)} subscription in eth namespace (Coco serves newHeads, logs, newPendingTransactions)`);
}

/** A logs subscription's filter: address and topics only; past logs are eth_getLogs' job. */
function subscriptionCriteria(value: unknown): LogCriteria {
  const criteria = parseLogCriteria(value ?? {});
  const o = (value ?? {}) as Record<string, unknown>;
  const isLatest = (tag: unknown): boolean => tag == null || tag === "latest" || tag === "pending";
  if (criteria.blockHash !== undefined || !isLatest(o["fromBlock"]) || !isLatest(o["toBlock"])) {
    throw new RpcError(RpcErrorCodes.InvalidParams, "a logs subscription delivers new logs only: give it address and topics, and query past blocks with eth_getLogs");
  }
  return criteria;
}

export class SubscriptionHub {
  private readonly bySubscriber = new Map<Subscriber, Map<string, Subscription>>();
  /** The last block delivered (undefined while nobody subscribes: then nothing is scanned). */
  private delivered: bigint | undefined;
  private scheduled = false;
  private readonly perConnectionMax: number;

  constructor(private readonly options: SubscriptionHubOptions) {
    this.perConnectionMax = options.subscriptionsPerConnectionMax ?? SUBSCRIPTIONS_PER_CONNECTION_MAX;
    if (!Number.isSafeInteger(this.perConnectionMax) || this.perConnectionMax < 1) {
      throw new Error(`subscriptionsPerConnectionMax must be a positive integer, got ${this.perConnectionMax}`);
    }
  }

  /** Subscriptions held by all connections (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const subscriptions of this.bySubscriber.values()) n += subscriptions.size;
    return n;
  }

  /** eth_subscribe: the new subscription's id, or an RpcError. */
  subscribe(subscriber: Subscriber, params: readonly unknown[]): string {
    if (params.length < 1 || params.length > 2) throw new RpcError(RpcErrorCodes.InvalidParams, "eth_subscribe takes [name] or [\"logs\", {address?, topics?}]");
    const kind = subscriptionKind(params[0]);
    if (kind !== "logs" && params[1] !== undefined) throw new RpcError(RpcErrorCodes.InvalidParams, `a ${kind} subscription takes no options`);
    const criteria = kind === "logs" ? subscriptionCriteria(params[1]) : undefined;
    let subscriptions = this.bySubscriber.get(subscriber);
    if ((subscriptions?.size ?? 0) >= this.perConnectionMax) {
      throw new RpcError(RpcErrorCodes.LimitExceeded, `too many subscriptions on this connection (${this.perConnectionMax}): eth_unsubscribe unused ones or open another connection`);
    }
    const tx = this.options.beginReadTransaction();
    const chain = this.options.chainOf(tx);
    if (chain === undefined) throw new RpcError(RpcErrorCodes.ServerError, "the EVM chain is not configured yet: the consortium sets it with a set_evm_genesis proposal");
    const head = chain.committedHeadNumber(tx, this.options.committedSeqno());
    // Random ids, as geth's: another connection cannot guess one.
    const id = data(crypto.getRandomValues(new Uint8Array(16)));
    if (subscriptions === undefined) this.bySubscriber.set(subscriber, (subscriptions = new Map()));
    subscriptions.set(id, { id, kind, fromBlock: head + 1n, ...(criteria === undefined ? {} : { criteria }) });
    if (this.delivered === undefined || this.delivered > head) this.delivered = head;
    return id;
  }

  /** eth_unsubscribe: whether the id was one of this connection's subscriptions. */
  unsubscribe(subscriber: Subscriber, id: unknown): boolean {
    if (typeof id !== "string") throw new RpcError(RpcErrorCodes.InvalidParams, "eth_unsubscribe takes [subscriptionId]");
    const subscriptions = this.bySubscriber.get(subscriber);
    const removed = subscriptions?.delete(id.toLowerCase()) ?? false;
    if (subscriptions?.size === 0) this.drop(subscriber);
    return removed;
  }

  /** The connection closed: its subscriptions end. */
  drop(subscriber: Subscriber): void {
    this.bySubscriber.delete(subscriber);
    if (this.bySubscriber.size === 0) this.delivered = undefined;
  }

  /** The commit point advanced: deliver the newly committed blocks on the next turn. */
  readonly committed = (): void => {
    if (this.scheduled || this.delivered === undefined) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.deliver();
    });
  };

  /** Delivers committed blocks after `delivered`, at most BLOCKS_PER_DELIVERY_MAX per call. */
  deliver(): void {
    if (this.delivered === undefined) return;
    const tx = this.options.beginReadTransaction();
    const chain = this.options.chainOf(tx);
    if (chain === undefined) return;
    const head = chain.committedHeadNumber(tx, this.options.committedSeqno());
    const from = this.delivered + 1n;
    if (head < from) return;
    const last = head - from >= BigInt(BLOCKS_PER_DELIVERY_MAX) ? from + BigInt(BLOCKS_PER_DELIVERY_MAX) - 1n : head;
    // A credential revoked since the last delivery ends its connection's notifications now
    // (dropping the last subscriber resets `delivered`).
    for (const subscriber of [...this.bySubscriber.keys()]) {
      if (subscriber.closed || !subscriber.stillAuthorized(tx)) this.drop(subscriber);
    }
    // Each subscriber's visibility once per delivery: its addresses are read once.
    const visibilities = new Map<Subscriber, Visibility | undefined>();
    for (let number = from; number <= last && this.bySubscriber.size > 0; number++) {
      const block = chain.block(tx, number);
      assert(block !== undefined, `committed block ${number} is missing (committed head ${head})`);
      this.deliverBlock(chain, tx, block, number, visibilities);
    }
    if (this.delivered !== undefined) this.delivered = last;
    // A backlog longer than one turn's share continues on the next turn.
    if (last < head) this.committed();
  }

  private deliverBlock(chain: EvmChain, tx: Transaction, block: StoredBlock, number: bigint, visibilities: Map<Subscriber, Visibility | undefined>): void {
    // Headers are built once for everyone who sees the whole block, else per subscriber.
    let header: unknown;
    const logsOf = (hash: string) => chain.receipt(tx, Buffer.from(hash.slice(2), "hex"))?.logs ?? [];
    for (const [subscriber, subscriptions] of this.bySubscriber) {
      if (!visibilities.has(subscriber)) visibilities.set(subscriber, subscriber.visibility(tx));
      const visibility = visibilities.get(subscriber);
      for (const subscription of subscriptions.values()) {
        if (subscription.fromBlock > number || subscriber.closed) continue;
        let results: unknown[];
        if (subscription.kind === "newHeads") {
          const visible = visibleBlock(block, visibility, logsOf);
          results = [visible === block ? (header ??= blockHeader(block)) : blockHeader(visible)];
        } else if (subscription.kind === "newPendingTransactions") {
          results = block.transactions.filter((hash) => visibility?.seesTransaction(hash) !== false);
        } else results = logsOfBlock(chain, tx, block, subscription.criteria!, visibility);
        for (const result of results) {
          subscriber.notify(JSON.stringify({ jsonrpc: "2.0", method: "eth_subscription", params: { subscription: subscription.id, result } }));
        }
      }
    }
  }
}
