// Ethereum JSON-RPC 2.0 over one Coco request: parses single calls and batches, runs each
// method against the request's KV transaction, and shapes results and errors as geth does.
import type { Transaction } from "../../kv/index.js";
import { EvmChain, type CallRequest, type StoredBlock, type StoredLog } from "./chain.js";
import { RpcError, RpcErrorCodes } from "./errors.js";
import { data, parseAddress, parseBoolean, parseData, parseHash, parseQuantity, quantity } from "./hex.js";

export const BATCH_REQUESTS_MAX = 100;
export const LOGS_BLOCK_RANGE_MAX = 10_000n;
export const LOGS_RESULTS_MAX = 10_000;
export const FEE_HISTORY_BLOCKS_MAX = 1024n;

export interface RpcContext {
  readonly tx: Transaction;
  readonly chain: EvmChain;
  /** Whether the Coco transaction that wrote this receipt is committed (see receipt finality in docs/evm.md). */
  readonly isReceiptFinal: (tx: Transaction, hash: Buffer) => boolean;
  /** The node's commit seqno when receipts wait for commit (eth_blockNumber then reports committed blocks). */
  readonly committedSeqno?: () => number;
  /** The Coco transaction that executed this Ethereum transaction, once its receipt is final. */
  readonly cocoTransactionOf: (tx: Transaction, hash: Buffer) => CocoTransactionRef | undefined;
  readonly clientVersion: string;
}

/** `view` is null when the node did not give the app `viewForSeqno`; then `transactionId` is null too. */
export interface CocoTransactionRef { seqno: number; view: number | null }

type Params = readonly unknown[];
type Method = (ctx: RpcContext, params: Params) => unknown;

interface JsonRpcResponse {
  jsonrpc: "2.0";
  id: string | number | null;
  result?: unknown;
  error?: { code: number; message: string; data?: string };
}

function param(params: Params, index: number, name: string): unknown {
  const value = params[index];
  if (value === undefined) throw new RpcError(RpcErrorCodes.InvalidParams, `missing value for required argument ${index} ('${name}')`);
  return value;
}

function arity(params: Params, max: number): void {
  if (params.length > max) throw new RpcError(RpcErrorCodes.InvalidParams, `too many arguments, want at most ${max}`);
}

type Tag = { kind: "latest" } | { kind: "number"; number: bigint } | { kind: "hash"; hash: Buffer };

function parseTag(value: unknown, name: string): Tag {
  if (value === undefined || value === null) return { kind: "latest" };
  if (value === "latest" || value === "pending" || value === "safe" || value === "finalized") return { kind: "latest" };
  if (value === "earliest") return { kind: "number", number: 0n };
  if (typeof value === "object" && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    if (o["blockHash"] !== undefined) return { kind: "hash", hash: parseHash(o["blockHash"], `${name}.blockHash`) };
    if (o["blockNumber"] !== undefined) return parseTag(o["blockNumber"], `${name}.blockNumber`);
  }
  if (typeof value === "string" && value.startsWith("0x")) return { kind: "number", number: parseQuantity(value, name) };
  throw new RpcError(RpcErrorCodes.InvalidParams, `invalid argument '${name}': expected a block number, hash or tag (latest, pending, safe, finalized, earliest), got ${JSON.stringify(value)}`);
}

function resolveBlock(ctx: RpcContext, tag: Tag): StoredBlock | undefined {
  if (tag.kind === "latest") return ctx.chain.head(ctx.tx);
  if (tag.kind === "hash") return ctx.chain.blockByHash(ctx.tx, tag.hash);
  return ctx.chain.block(ctx.tx, tag.number);
}

/** Coco keeps only the latest EVM state (no state roots), as a non-archive node that prunes at once. */
function requireLatestState(ctx: RpcContext, value: unknown, name: string): void {
  const tag = parseTag(value, name);
  if (tag.kind === "latest") return;
  const block = resolveBlock(ctx, tag);
  if (block === undefined) throw new RpcError(RpcErrorCodes.ServerError, "header not found");
  if (block.number !== ctx.chain.head(ctx.tx).number) {
    throw new RpcError(RpcErrorCodes.ServerError, `historical state not available: Coco's EVM keeps only the state at the latest block (block ${block.number} requested)`);
  }
}

function parseCall(value: unknown): CallRequest {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RpcError(RpcErrorCodes.InvalidParams, "invalid argument 0: expected a call object {from?, to?, gas?, gasPrice?, value?, data?}");
  }
  const o = value as Record<string, unknown>;
  const call: CallRequest = {};
  if (o["from"] != null) call.from = parseAddress(o["from"], "from");
  if (o["to"] != null) call.to = parseAddress(o["to"], "to");
  if (o["gas"] != null) call.gas = parseQuantity(o["gas"], "gas");
  const price = o["gasPrice"] ?? o["maxFeePerGas"];
  if (price != null) call.gasPrice = parseQuantity(price, "gasPrice");
  if (o["value"] != null) call.value = parseQuantity(o["value"], "value");
  const input = o["input"] ?? o["data"];
  if (input != null) call.data = parseData(input, "input");
  if (o["input"] != null && o["data"] != null && o["input"] !== o["data"]) {
    throw new RpcError(RpcErrorCodes.InvalidParams, "both 'data' and 'input' are set and not equal: set only 'input'");
  }
  return call;
}

function fullBlock(ctx: RpcContext, block: StoredBlock | undefined, full: boolean): unknown {
  if (block === undefined) return null;
  const transactions = full ? block.transactions.map((h) => ctx.chain.transaction(ctx.tx, parseHash(h, "hash"))) : block.transactions;
  return {
    ...block, transactions, nonce: "0x0000000000000000", difficulty: "0x0", totalDifficulty: "0x0", extraData: "0x",
    size: "0x0", uncles: [], sha3Uncles: "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
    mixHash: `0x${"00".repeat(32)}`, stateRoot: `0x${"00".repeat(32)}`,
    transactionsRoot: `0x${"00".repeat(32)}`, receiptsRoot: `0x${"00".repeat(32)}`,
  };
}

interface LogFilter { from: bigint; to: bigint; addresses?: Set<string>; topics: (Set<string> | null)[] }

function parseFilter(ctx: RpcContext, value: unknown): LogFilter | StoredBlock | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RpcError(RpcErrorCodes.InvalidParams, "invalid argument 0: expected a filter object {fromBlock?, toBlock?, blockHash?, address?, topics?}");
  }
  const o = value as Record<string, unknown>;
  const filter: LogFilter = { from: 0n, to: 0n, topics: [] };
  if (o["address"] != null) {
    const list = Array.isArray(o["address"]) ? o["address"] : [o["address"]];
    filter.addresses = new Set(list.map((a, i) => data(parseAddress(a, `address[${i}]`))));
  }
  if (o["topics"] != null) {
    if (!Array.isArray(o["topics"]) || o["topics"].length > 4) throw new RpcError(RpcErrorCodes.InvalidParams, "invalid argument 'topics': expected an array of at most 4 positions");
    filter.topics = o["topics"].map((t: unknown, i) => {
      if (t === null) return null;
      const list = Array.isArray(t) ? t : [t];
      return new Set(list.map((x) => data(parseHash(x, `topics[${i}]`))));
    });
  }
  if (o["blockHash"] != null) {
    if (o["fromBlock"] != null || o["toBlock"] != null) throw new RpcError(RpcErrorCodes.InvalidParams, "invalid argument: set either blockHash or fromBlock/toBlock, not both");
    const block = ctx.chain.blockByHash(ctx.tx, parseHash(o["blockHash"], "blockHash"));
    if (block === undefined) throw new RpcError(RpcErrorCodes.ServerError, "unknown block");
    return { ...filter, from: BigInt(block.number), to: BigInt(block.number) };
  }
  const head = BigInt(ctx.chain.head(ctx.tx).number);
  const bound = (v: unknown, name: string): bigint => {
    const tag = parseTag(v, name);
    if (tag.kind === "number") return tag.number;
    if (tag.kind === "latest") return head;
    const block = ctx.chain.blockByHash(ctx.tx, tag.hash);
    if (block === undefined) throw new RpcError(RpcErrorCodes.ServerError, "unknown block");
    return BigInt(block.number);
  };
  filter.from = bound(o["fromBlock"], "fromBlock");
  filter.to = bound(o["toBlock"], "toBlock");
  if (filter.to > head) filter.to = head;
  if (filter.from > filter.to) return { ...filter, to: filter.from - 1n };
  if (filter.to - filter.from + 1n > LOGS_BLOCK_RANGE_MAX) {
    throw new RpcError(RpcErrorCodes.LimitExceeded, `query exceeds max block range ${LOGS_BLOCK_RANGE_MAX}: narrow fromBlock/toBlock`);
  }
  return filter;
}

function matches(log: StoredLog, filter: LogFilter): boolean {
  if (filter.addresses !== undefined && !filter.addresses.has(log.address)) return false;
  for (let i = 0; i < filter.topics.length; i++) {
    const wanted = filter.topics[i];
    if (wanted === null || wanted === undefined) continue;
    const topic = log.topics[i];
    if (topic === undefined || !wanted.has(topic)) return false;
  }
  return true;
}

function getLogs(ctx: RpcContext, params: Params): unknown {
  arity(params, 1);
  const filter = parseFilter(ctx, param(params, 0, "filter")) as LogFilter;
  const out: unknown[] = [];
  for (let n = filter.from; n <= filter.to; n++) {
    const block = ctx.chain.block(ctx.tx, n);
    if (block === undefined) break;
    for (const hash of block.transactions) {
      const receipt = ctx.chain.receipt(ctx.tx, parseHash(hash, "hash"));
      if (receipt === undefined) continue;
      for (const log of receipt.logs) {
        if (!matches(log, filter)) continue;
        if (out.length >= LOGS_RESULTS_MAX) throw new RpcError(RpcErrorCodes.LimitExceeded, `query returned more than ${LOGS_RESULTS_MAX} results: narrow the filter`);
        out.push({ ...log, blockNumber: receipt.blockNumber, blockHash: receipt.blockHash, transactionHash: receipt.transactionHash, transactionIndex: receipt.transactionIndex, removed: false });
      }
    }
  }
  return out;
}

function receiptFor(ctx: RpcContext, hashValue: unknown): unknown {
  const hash = parseHash(hashValue, "hash");
  const receipt = ctx.chain.receipt(ctx.tx, hash);
  if (receipt === undefined || !ctx.isReceiptFinal(ctx.tx, hash)) return null;
  return {
    ...receipt,
    logs: receipt.logs.map((log) => ({ ...log, blockNumber: receipt.blockNumber, blockHash: receipt.blockHash, transactionHash: receipt.transactionHash, transactionIndex: receipt.transactionIndex, removed: false })),
  };
}

function feeHistory(ctx: RpcContext, params: Params): unknown {
  arity(params, 3);
  const count = parseQuantity(param(params, 0, "blockCount"), "blockCount");
  const newestTag = parseTag(param(params, 1, "newestBlock"), "newestBlock");
  const percentiles = params[2] ?? [];
  if (!Array.isArray(percentiles) || percentiles.some((p) => typeof p !== "number" || p < 0 || p > 100)) {
    throw new RpcError(RpcErrorCodes.InvalidParams, "invalid argument 2: expected increasing percentiles between 0 and 100");
  }
  const newest = resolveBlock(ctx, newestTag);
  if (newest === undefined) throw new RpcError(RpcErrorCodes.ServerError, "header not found");
  const blocks = count > FEE_HISTORY_BLOCKS_MAX ? FEE_HISTORY_BLOCKS_MAX : count;
  const newestNumber = BigInt(newest.number);
  const oldest = newestNumber - blocks + 1n < 0n ? 0n : newestNumber - blocks + 1n;
  const baseFeePerGas: string[] = [];
  const gasUsedRatio: number[] = [];
  const reward: string[][] = [];
  for (let n = oldest; n <= newestNumber && blocks > 0n; n++) {
    const block = ctx.chain.block(ctx.tx, n)!;
    baseFeePerGas.push(block.baseFeePerGas);
    gasUsedRatio.push(Number(BigInt(block.gasUsed)) / Number(BigInt(block.gasLimit)));
    const hash = block.transactions[0];
    const receipt = hash === undefined ? undefined : ctx.chain.receipt(ctx.tx, parseHash(hash, "hash"));
    const tip = receipt === undefined ? 0n : BigInt(receipt.effectiveGasPrice) - BigInt(block.baseFeePerGas);
    reward.push(percentiles.map(() => quantity(tip)));
  }
  baseFeePerGas.push(quantity(ctx.chain.baseFee));
  return { oldestBlock: quantity(oldest), baseFeePerGas, gasUsedRatio, ...(params[2] === undefined ? {} : { reward }) };
}

export const METHODS: Readonly<Record<string, Method>> = {
  web3_clientVersion: (ctx, p) => (arity(p, 0), ctx.clientVersion),
  net_version: (ctx, p) => (arity(p, 0), ctx.chain.chainId.toString()),
  net_listening: (_ctx, p) => (arity(p, 0), true),
  eth_chainId: (ctx, p) => (arity(p, 0), quantity(ctx.chain.chainId)),
  eth_syncing: (_ctx, p) => (arity(p, 0), false),
  eth_accounts: (_ctx, p) => (arity(p, 0), []),
  eth_blockNumber: (ctx, p) => (arity(p, 0), ctx.committedSeqno === undefined
    ? ctx.chain.head(ctx.tx).number
    : quantity(ctx.chain.committedHeadNumber(ctx.tx, ctx.committedSeqno()))),
  eth_gasPrice: (ctx, p) => (arity(p, 0), quantity(ctx.chain.baseFee)),
  eth_maxPriorityFeePerGas: (_ctx, p) => (arity(p, 0), "0x0"),
  eth_feeHistory: feeHistory,
  eth_getBalance: (ctx, p) => {
    arity(p, 2);
    const address = parseAddress(param(p, 0, "address"), "address");
    requireLatestState(ctx, p[1], "block");
    return quantity(ctx.chain.account(ctx.tx, address).balance);
  },
  eth_getTransactionCount: (ctx, p) => {
    arity(p, 2);
    const address = parseAddress(param(p, 0, "address"), "address");
    requireLatestState(ctx, p[1], "block");
    return quantity(ctx.chain.account(ctx.tx, address).nonce);
  },
  eth_getCode: (ctx, p) => {
    arity(p, 2);
    const address = parseAddress(param(p, 0, "address"), "address");
    requireLatestState(ctx, p[1], "block");
    return data(ctx.chain.code(ctx.tx, address));
  },
  eth_getStorageAt: (ctx, p) => {
    arity(p, 3);
    const address = parseAddress(param(p, 0, "address"), "address");
    const slotValue = param(p, 1, "slot");
    const slot = Buffer.alloc(32);
    const raw = typeof slotValue === "string" && slotValue.length === 66 ? parseHash(slotValue, "slot") : null;
    if (raw !== null) raw.copy(slot);
    else {
      const n = parseQuantity(slotValue, "slot");
      slot.set(Buffer.from(n.toString(16).padStart(64, "0"), "hex"));
    }
    requireLatestState(ctx, p[2], "block");
    const value = ctx.chain.storageAt(ctx.tx, address, slot);
    const padded = Buffer.alloc(32);
    padded.set(value, 32 - value.length);
    return data(padded);
  },
  eth_call: async (ctx, p) => {
    arity(p, 3);
    const call = parseCall(param(p, 0, "call"));
    requireLatestState(ctx, p[1], "block");
    return data(await ctx.chain.call(ctx.tx, call));
  },
  eth_estimateGas: async (ctx, p) => {
    arity(p, 3);
    const call = parseCall(param(p, 0, "call"));
    requireLatestState(ctx, p[1], "block");
    return quantity(await ctx.chain.estimateGas(ctx.tx, call));
  },
  eth_sendRawTransaction: async (ctx, p) => {
    arity(p, 1);
    return ctx.chain.sendRawTransaction(ctx.tx, parseData(param(p, 0, "rawTransaction"), "rawTransaction"));
  },
  eth_getTransactionByHash: (ctx, p) => {
    arity(p, 1);
    return ctx.chain.transaction(ctx.tx, parseHash(param(p, 0, "hash"), "hash")) ?? null;
  },
  eth_getTransactionReceipt: (ctx, p) => (arity(p, 1), receiptFor(ctx, param(p, 0, "hash"))),
  eth_getBlockByNumber: (ctx, p) => {
    arity(p, 2);
    const tag = parseTag(param(p, 0, "block"), "block");
    return fullBlock(ctx, resolveBlock(ctx, tag), p[1] === undefined ? false : parseBoolean(p[1], "fullTransactions"));
  },
  eth_getBlockByHash: (ctx, p) => {
    arity(p, 2);
    const hash = parseHash(param(p, 0, "hash"), "hash");
    return fullBlock(ctx, ctx.chain.blockByHash(ctx.tx, hash), p[1] === undefined ? false : parseBoolean(p[1], "fullTransactions"));
  },
  eth_getLogs: getLogs,
  // Coco extension: which Coco transaction (view.seqno) executed an Ethereum transaction, so a
  // client can fetch its Coco receipt (Merkle proof + signature) from GET /app/receipt.
  coco_getTransactionId: (ctx, p) => {
    arity(p, 1);
    const ref = ctx.cocoTransactionOf(ctx.tx, parseHash(param(p, 0, "hash"), "hash"));
    if (ref === undefined) return null;
    return { seqno: ref.seqno, view: ref.view, transactionId: ref.view === null ? null : `${ref.view}.${ref.seqno}` };
  },
};

function errorResponse(id: JsonRpcResponse["id"], error: RpcError): JsonRpcResponse {
  return { jsonrpc: "2.0", id, error: error.data === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, data: error.data } };
}

async function handleOne(ctx: RpcContext, request: unknown): Promise<JsonRpcResponse | undefined> {
  if (typeof request !== "object" || request === null || Array.isArray(request)) {
    return errorResponse(null, new RpcError(RpcErrorCodes.InvalidRequest, "invalid request: expected a JSON-RPC 2.0 object {jsonrpc, method, params, id}"));
  }
  const r = request as Record<string, unknown>;
  const rawId = r["id"];
  const id = typeof rawId === "string" || typeof rawId === "number" || rawId === null ? rawId : null;
  const isNotification = !("id" in r);
  if (r["jsonrpc"] !== "2.0" || typeof r["method"] !== "string" || (rawId !== undefined && id === null && rawId !== null)) {
    return errorResponse(id, new RpcError(RpcErrorCodes.InvalidRequest, "invalid request: 'jsonrpc' must be \"2.0\", 'method' a string, 'id' a string, number or null"));
  }
  const params = r["params"] ?? [];
  if (!Array.isArray(params)) return errorResponse(id, new RpcError(RpcErrorCodes.InvalidParams, "'params' must be an array"));
  const method = Object.hasOwn(METHODS, r["method"]) ? METHODS[r["method"]] : undefined;
  if (method === undefined) {
    return isNotification ? undefined : errorResponse(id, new RpcError(RpcErrorCodes.MethodNotFound, `the method ${r["method"]} does not exist/is not available`));
  }
  try {
    const result = await method(ctx, params);
    return isNotification ? undefined : { jsonrpc: "2.0", id, result };
  } catch (error) {
    if (isNotification) return undefined;
    if (error instanceof RpcError) return errorResponse(id, error);
    return errorResponse(id, new RpcError(RpcErrorCodes.InternalError, `internal error: ${(error as Error).message}`));
  }
}

/** Answers a JSON-RPC body: a response, an array for a batch, or undefined when nothing is owed (notifications only). */
export async function handleJsonRpc(ctx: RpcContext, body: Buffer): Promise<unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return errorResponse(null, new RpcError(RpcErrorCodes.ParseError, "parse error: the body is not valid JSON"));
  }
  if (!Array.isArray(parsed)) return handleOne(ctx, parsed);
  if (parsed.length === 0) return errorResponse(null, new RpcError(RpcErrorCodes.InvalidRequest, "empty batch"));
  if (parsed.length > BATCH_REQUESTS_MAX) {
    return errorResponse(null, new RpcError(RpcErrorCodes.InvalidRequest, `batch too large: at most ${BATCH_REQUESTS_MAX} requests`));
  }
  const out: JsonRpcResponse[] = [];
  for (const request of parsed) {
    const response = await handleOne(ctx, request);
    if (response !== undefined) out.push(response);
  }
  return out.length === 0 ? undefined : out;
}
