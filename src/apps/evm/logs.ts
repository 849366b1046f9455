// Log queries: the criteria of eth_getLogs and of log filters (addresses, topics, block range),
// their matching, and the scan of blocks' receipts that both share.
import type { EvmChain, StoredBlock, StoredLog } from "./chain.js";
import type { Transaction } from "../../kv/index.js";
import { RpcError, RpcErrorCodes } from "./errors.js";
import { data, parseAddress, parseHash } from "./hex.js";
import { arity, param, parseTag, type MethodContext, type Params } from "./params.js";
import type { Visibility } from "./visibility.js";

export const LOGS_BLOCK_RANGE_MAX = 10_000n;
export const LOGS_RESULTS_MAX = 10_000;

/** What a log filter asks for; the block bounds stay unresolved (tags) until a query runs. */
export interface LogCriteria {
  readonly addresses?: ReadonlySet<string>;
  readonly topics: readonly (ReadonlySet<string> | null)[];
  readonly fromBlock: unknown;
  readonly toBlock: unknown;
  readonly blockHash?: Buffer;
}

/** Checks a filter object's shape (no KV reads): `{fromBlock?, toBlock?, blockHash?, address?, topics?}`. */
export function parseLogCriteria(value: unknown): LogCriteria {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RpcError(RpcErrorCodes.InvalidParams, "invalid argument 0: expected a filter object {fromBlock?, toBlock?, blockHash?, address?, topics?}");
  }
  const o = value as Record<string, unknown>;
  let addresses: Set<string> | undefined;
  if (o["address"] != null) {
    const list = Array.isArray(o["address"]) ? o["address"] : [o["address"]];
    addresses = new Set(list.map((a, i) => data(parseAddress(a, `address[${i}]`))));
  }
  let topics: (Set<string> | null)[] = [];
  if (o["topics"] != null) {
    if (!Array.isArray(o["topics"]) || o["topics"].length > 4) throw new RpcError(RpcErrorCodes.InvalidParams, "invalid argument 'topics': expected an array of at most 4 positions");
    topics = o["topics"].map((t: unknown, i) => {
      if (t === null) return null;
      const list = Array.isArray(t) ? t : [t];
      return new Set(list.map((x) => data(parseHash(x, `topics[${i}]`))));
    });
  }
  if (o["blockHash"] != null) {
    if (o["fromBlock"] != null || o["toBlock"] != null) throw new RpcError(RpcErrorCodes.InvalidParams, "invalid argument: set either blockHash or fromBlock/toBlock, not both");
    return { ...(addresses === undefined ? {} : { addresses }), topics, fromBlock: undefined, toBlock: undefined, blockHash: parseHash(o["blockHash"], "blockHash") };
  }
  // Checked now, resolved per query ("latest" moves).
  parseTag(o["fromBlock"], "fromBlock");
  parseTag(o["toBlock"], "toBlock");
  return { ...(addresses === undefined ? {} : { addresses }), topics, fromBlock: o["fromBlock"], toBlock: o["toBlock"] };
}

/** A block bound of the criteria as a number; "latest" and friends are `latest`. */
export function blockBound(ctx: MethodContext, value: unknown, name: string, latest: bigint): bigint {
  const tag = parseTag(value, name);
  if (tag.kind === "number") return tag.number;
  if (tag.kind === "latest") return latest;
  const block = ctx.chain.blockByHash(ctx.tx, tag.hash);
  if (block === undefined) throw new RpcError(RpcErrorCodes.ServerError, "unknown block");
  return BigInt(block.number);
}

/** The blocks `criteria` covers now, up to `head`; empty when from > to. */
export function resolveRange(ctx: MethodContext, criteria: LogCriteria, head: bigint): { from: bigint; to: bigint } {
  if (criteria.blockHash !== undefined) {
    const block = ctx.chain.blockByHash(ctx.tx, criteria.blockHash);
    if (block === undefined) throw new RpcError(RpcErrorCodes.ServerError, "unknown block");
    return { from: BigInt(block.number), to: BigInt(block.number) };
  }
  const from = blockBound(ctx, criteria.fromBlock, "fromBlock", head);
  let to = blockBound(ctx, criteria.toBlock, "toBlock", head);
  if (to > head) to = head;
  if (from > to) return { from, to: from - 1n };
  if (to - from + 1n > LOGS_BLOCK_RANGE_MAX) {
    throw new RpcError(RpcErrorCodes.LimitExceeded, `query exceeds max block range ${LOGS_BLOCK_RANGE_MAX}: narrow fromBlock/toBlock`);
  }
  return { from, to };
}

export function matches(log: StoredLog, criteria: LogCriteria): boolean {
  if (criteria.addresses !== undefined && !criteria.addresses.has(log.address)) return false;
  for (let i = 0; i < criteria.topics.length; i++) {
    const wanted = criteria.topics[i];
    if (wanted === null || wanted === undefined) continue;
    const topic = log.topics[i];
    if (topic === undefined || !wanted.has(topic)) return false;
  }
  return true;
}

/** The matching logs of one block, as JSON-RPC answers them. */
export function blockLogs(ctx: MethodContext, number: bigint, criteria: LogCriteria): unknown[] | undefined {
  const block = ctx.chain.block(ctx.tx, number);
  return block === undefined ? undefined : logsOfBlock(ctx.chain, ctx.tx, block, criteria, ctx.visibility);
}

/** The matching logs of a block read from `tx` (polling filters, eth_getLogs, log subscriptions). */
export function logsOfBlock(chain: EvmChain, tx: Transaction, block: StoredBlock, criteria: LogCriteria, visibility?: Visibility): unknown[] {
  const out: unknown[] = [];
  for (const hash of block.transactions) {
    const receipt = chain.receipt(tx, parseHash(hash, "hash"));
    if (receipt === undefined) continue;
    for (const [index, log] of receipt.logs.entries()) {
      if (!matches(log, criteria) || visibility?.seesLog(hash, index) === false) continue;
      out.push({ ...log, blockNumber: receipt.blockNumber, blockHash: receipt.blockHash, transactionHash: receipt.transactionHash, transactionIndex: receipt.transactionIndex, removed: false });
    }
  }
  return out;
}

/** Every matching log in `criteria`'s range, at most LOGS_RESULTS_MAX. */
export function queryLogs(ctx: MethodContext, criteria: LogCriteria): unknown[] {
  const { from, to } = resolveRange(ctx, criteria, BigInt(ctx.chain.head(ctx.tx).number));
  const out: unknown[] = [];
  for (let n = from; n <= to; n++) {
    const logs = blockLogs(ctx, n, criteria);
    if (logs === undefined) break;
    if (out.length + logs.length > LOGS_RESULTS_MAX) {
      throw new RpcError(RpcErrorCodes.LimitExceeded, `query returned more than ${LOGS_RESULTS_MAX} results: narrow the filter`);
    }
    for (const log of logs) out.push(log);
  }
  return out;
}

export function getLogs(ctx: MethodContext, params: Params): unknown {
  arity(params, 1);
  return queryLogs(ctx, parseLogCriteria(param(params, 0, "filter")));
}
