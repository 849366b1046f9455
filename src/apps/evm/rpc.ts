// Ethereum JSON-RPC 2.0 over one Coco request: parses single calls and batches, runs each
// method against the request's KV transaction, and shapes results and errors as geth does.
import { TRANSACTION_BYTES_MAX, type CallRequest, type StoredBlock } from "./chain.js";
import { RpcError, RpcErrorCodes } from "./errors.js";
import { RerunRequest } from "../../rpc/index.js";
import { CHAIN_NOT_CONFIGURED_MESSAGE } from "./genesis.js";
import { data, parseAddress, parseBoolean, parseData, parseHash, parseQuantity, quantity } from "./hex.js";
import { getLogs } from "./logs.js";
import { addressesOf, requireCallerAddress } from "./addresses.js";
import { FILTER_METHODS } from "./filters.js";
import { visibleBlock } from "./visibility.js";
import { arity, param, parseTag, visibleHeadNumber, type Method, type MethodContext, type Params, type PreparedTransaction, type RpcContext, type Tag } from "./params.js";

export type { RpcContext, CocoTransactionRef } from "./params.js";
export { LOGS_BLOCK_RANGE_MAX, LOGS_RESULTS_MAX } from "./logs.js";
export { FILTERS_MAX, FILTER_IDLE_MS, FilterRegistry } from "./filters.js";

export const BATCH_REQUESTS_MAX = 100;
export const FEE_HISTORY_BLOCKS_MAX = 1024n;

interface JsonRpcResponse {
  jsonrpc: "2.0";
  id: string | number | null;
  result?: unknown;
  error?: { code: number; message: string; data?: string };
}

function resolveBlock(ctx: MethodContext, tag: Tag): StoredBlock | undefined {
  if (tag.kind === "latest") return ctx.chain.head(ctx.tx);
  if (tag.kind === "hash") return ctx.chain.blockByHash(ctx.tx, tag.hash);
  return ctx.chain.block(ctx.tx, tag.number);
}

/** Coco keeps only the latest EVM state (no state roots), as a non-archive node that prunes at once. */
function requireLatestState(ctx: MethodContext, value: unknown, name: string): void {
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

/** A block's header as eth_subscribe("newHeads") delivers it (the fields geth sends; no transactions). */
export function blockHeader(block: StoredBlock): Record<string, unknown> {
  const { transactions: _transactions, ...fields } = block;
  return {
    ...fields, nonce: "0x0000000000000000", difficulty: "0x0", extraData: "0x",
    sha3Uncles: "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
    mixHash: `0x${"00".repeat(32)}`, stateRoot: `0x${"00".repeat(32)}`,
    transactionsRoot: `0x${"00".repeat(32)}`, receiptsRoot: `0x${"00".repeat(32)}`,
  };
}

function fullBlock(ctx: MethodContext, stored: StoredBlock | undefined, full: boolean): unknown {
  if (stored === undefined) return null;
  // What others did is left out: their transactions, gas and logs' bloom (visibility.ts).
  const block = visibleBlock(stored, ctx.visibility, (hash) => ctx.chain.receipt(ctx.tx, parseHash(hash, "hash"))?.logs ?? []);
  const transactions = full ? block.transactions.map((h) => ctx.chain.transaction(ctx.tx, parseHash(h, "hash"))).filter((t) => t !== undefined) : block.transactions;
  return { ...blockHeader(block), transactions, totalDifficulty: "0x0", size: "0x0", uncles: [] };
}

function receiptFor(ctx: MethodContext, hashValue: unknown): unknown {
  const hash = parseHash(hashValue, "hash");
  const receipt = ctx.chain.receipt(ctx.tx, hash);
  if (receipt === undefined || !ctx.isReceiptFinal(ctx.tx, hash)) return null;
  if (ctx.visibility !== undefined && !ctx.visibility.seesTransaction(receipt.transactionHash)) return null;
  return {
    ...receipt,
    logs: receipt.logs.map((log) => ({ ...log, blockNumber: receipt.blockNumber, blockHash: receipt.blockHash, transactionHash: receipt.transactionHash, transactionIndex: receipt.transactionIndex, removed: false })),
  };
}

function feeHistory(ctx: MethodContext, params: Params): unknown {
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
    // Others' blocks used no gas and paid no tip, as far as this caller is told.
    const block = visibleBlock(ctx.chain.block(ctx.tx, n)!, ctx.visibility, () => []);
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

/**
 * Under the "bound" policy a call runs as the caller: a `from` must be one of its addresses, and
 * an absent one is its first (none bound: the zero address, which holds nothing of anyone's).
 */
function callAsCaller(ctx: MethodContext, call: CallRequest): CallRequest {
  if (ctx.addressPolicy !== "bound") return call;
  if (call.from !== undefined) {
    requireCallerAddress(ctx.tx, ctx.callerId, call.from, "from");
    return call;
  }
  const first = ctx.callerId === undefined ? undefined : addressesOf(ctx.tx, ctx.callerId)[0];
  return first === undefined ? call : { ...call, from: Buffer.from(first.slice(2), "hex") };
}

function notificationsUnsupported(): never {
  throw new RpcError(RpcErrorCodes.MethodNotFound, "notifications not supported: eth_subscribe needs a WebSocket connection to the same URL (wss://…/app/evm, or ws:// through the gateway)");
}

export const METHODS: Readonly<Record<string, Method>> = {
  web3_clientVersion: (ctx, p) => (arity(p, 0), ctx.clientVersion),
  net_version: (ctx, p) => (arity(p, 0), ctx.chain.chainId.toString()),
  net_listening: (_ctx, p) => (arity(p, 0), true),
  eth_chainId: (ctx, p) => (arity(p, 0), quantity(ctx.chain.chainId)),
  eth_syncing: (_ctx, p) => (arity(p, 0), false),
  eth_accounts: (_ctx, p) => (arity(p, 0), []),
  eth_blockNumber: (ctx, p) => (arity(p, 0), quantity(visibleHeadNumber(ctx))),
  eth_gasPrice: (ctx, p) => (arity(p, 0), quantity(ctx.chain.baseFee)),
  eth_maxPriorityFeePerGas: (_ctx, p) => (arity(p, 0), "0x0"),
  eth_feeHistory: feeHistory,
  eth_getBalance: (ctx, p) => {
    arity(p, 2);
    const address = parseAddress(param(p, 0, "address"), "address");
    requireLatestState(ctx, p[1], "block");
    // Another user's address answers as an account that never existed (visibility.ts).
    if (ctx.visibility?.seesAccount(address) === false) return "0x0";
    return quantity(ctx.chain.account(ctx.tx, address).balance);
  },
  eth_getTransactionCount: (ctx, p) => {
    arity(p, 2);
    const address = parseAddress(param(p, 0, "address"), "address");
    requireLatestState(ctx, p[1], "block");
    if (ctx.visibility?.seesAccount(address) === false) return "0x0";
    return quantity(ctx.chain.account(ctx.tx, address).nonce);
  },
  eth_getCode: (ctx, p) => {
    arity(p, 2);
    const address = parseAddress(param(p, 0, "address"), "address");
    requireLatestState(ctx, p[1], "block");
    if (ctx.visibility?.seesAccount(address) === false) return "0x";
    return data(ctx.chain.code(ctx.tx, address));
  },
  eth_getStorageAt: (ctx, p) => {
    arity(p, 3);
    const address = parseAddress(param(p, 0, "address"), "address");
    if (ctx.addressPolicy === "bound" && ctx.visibility?.seesStorage(address) !== true) {
      throw new RpcError(RpcErrorCodes.ServerError, `eth_getStorageAt is not available for ${data(address)}: contract storage is private to the contract unless it declared itself public (event CocoPublic(), docs/evm.md); read it through the contract's functions (eth_call)`);
    }
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
    const call = callAsCaller(ctx, parseCall(param(p, 0, "call")));
    requireLatestState(ctx, p[1], "block");
    return data(ctx.calls === undefined ? await ctx.chain.call(ctx.tx, call) : await ctx.calls.call(ctx.tx, ctx.callerId ?? "anonymous", ctx.chain, call));
  },
  eth_estimateGas: async (ctx, p) => {
    arity(p, 3);
    const call = callAsCaller(ctx, parseCall(param(p, 0, "call")));
    requireLatestState(ctx, p[1], "block");
    return quantity(ctx.calls === undefined ? await ctx.chain.estimateGas(ctx.tx, call) : await ctx.calls.estimateGas(ctx.tx, ctx.callerId ?? "anonymous", ctx.chain, call));
  },
  eth_sendRawTransaction: async (ctx, p) => {
    arity(p, 1);
    const value = param(p, 0, "rawTransaction");
    const prepared = typeof value === "string" ? ctx.preparedTransactions?.get(value) : undefined;
    const authorize = ctx.addressPolicy === "bound" ? (sender: Uint8Array) => requireCallerAddress(ctx.tx, ctx.callerId, sender, "sender") : undefined;
    if (prepared !== undefined) return ctx.chain.sendRawTransaction(ctx.tx, prepared.raw, prepared.sender, authorize);
    return ctx.chain.sendRawTransaction(ctx.tx, parseData(value, "rawTransaction"), undefined, authorize);
  },
  eth_getTransactionByHash: (ctx, p) => {
    arity(p, 1);
    const transaction = ctx.chain.transaction(ctx.tx, parseHash(param(p, 0, "hash"), "hash"));
    if (transaction === undefined || ctx.visibility?.seesTransaction(transaction["hash"] as string) === false) return null;
    return transaction;
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
  ...FILTER_METHODS,
  // Served on WebSocket connections (websocket.ts); over HTTP there is no connection to notify.
  eth_subscribe: notificationsUnsupported,
  eth_unsubscribe: notificationsUnsupported,
  // Coco extension: which Coco transaction (view.seqno) executed an Ethereum transaction, so a
  // client can fetch its Coco receipt (Merkle proof + signature) from GET /app/receipt.
  coco_getTransactionId: (ctx, p) => {
    arity(p, 1);
    const hash = parseHash(param(p, 0, "hash"), "hash");
    const ref = ctx.cocoTransactionOf(ctx.tx, hash);
    if (ref === undefined) return null;
    if (ctx.visibility?.seesTransaction(data(hash)) === false) return null;
    return { seqno: ref.seqno, view: ref.view, transactionId: ref.view === null ? null : `${ref.view}.${ref.seqno}` };
  },
};

/** Methods that answer before the chain is configured: they say nothing about it. */
const CHAINLESS_METHODS: ReadonlySet<string> = new Set(["web3_clientVersion", "net_listening"]);

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
  if (ctx.chain === undefined && !CHAINLESS_METHODS.has(r["method"])) {
    return isNotification ? undefined : errorResponse(id, new RpcError(RpcErrorCodes.ServerError, CHAIN_NOT_CONFIGURED_MESSAGE));
  }
  try {
    const result = await method(ctx as MethodContext, params);
    return isNotification ? undefined : { jsonrpc: "2.0", id, result };
  } catch (error) {
    // The request must run again from the start (a call's reads went stale): not an answer.
    if (error instanceof RerunRequest) throw error;
    if (isNotification) return undefined;
    if (error instanceof RpcError) return errorResponse(id, error);
    return errorResponse(id, new RpcError(RpcErrorCodes.InternalError, `internal error: ${(error as Error).message}`));
  }
}

/** Answers a JSON-RPC body: a response, an array for a batch, or undefined when nothing is owed (notifications only). */
/**
 * Sends the signed transactions of a request to the sender-recovery worker, all at once, before
 * anything runs: the main thread serves other requests meanwhile. Malformed ones are left out;
 * their methods report them as always.
 */
async function recoverSenders(ctx: RpcContext, requests: readonly unknown[]): Promise<RpcContext> {
  if (ctx.chain === undefined) return ctx;
  const values: string[] = [];
  const raws: Buffer[] = [];
  for (const request of requests) {
    const r = request as { method?: unknown; params?: unknown } | null;
    if (r === null || typeof r !== "object" || r.method !== "eth_sendRawTransaction" || !Array.isArray(r.params)) continue;
    const value: unknown = r.params[0];
    if (typeof value !== "string" || value.length > 2 + 2 * TRANSACTION_BYTES_MAX || !/^0x([0-9a-fA-F]{2})+$/.test(value)) continue;
    values.push(value);
    raws.push(Buffer.from(value.slice(2), "hex"));
  }
  if (raws.length === 0) return ctx;
  const senders = await ctx.chain.recoverSenders(raws);
  const prepared = new Map<string, PreparedTransaction>();
  values.forEach((value, i) => prepared.set(value, { raw: raws[i]!, sender: senders[i] ?? null }));
  return { ...ctx, preparedTransactions: prepared };
}

/** Answers a JSON-RPC body: a response, an array for a batch, or undefined when nothing is owed (notifications only). */
export async function handleJsonRpc(ctx: RpcContext, body: Buffer): Promise<unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return errorResponse(null, new RpcError(RpcErrorCodes.ParseError, "parse error: the body is not valid JSON"));
  }
  if (!Array.isArray(parsed)) return handleOne(await recoverSenders(ctx, [parsed]), parsed);
  if (parsed.length === 0) return errorResponse(null, new RpcError(RpcErrorCodes.InvalidRequest, "empty batch"));
  if (parsed.length > BATCH_REQUESTS_MAX) {
    return errorResponse(null, new RpcError(RpcErrorCodes.InvalidRequest, `batch too large: at most ${BATCH_REQUESTS_MAX} requests`));
  }
  const withSenders = await recoverSenders(ctx, parsed);
  const out: JsonRpcResponse[] = [];
  for (const request of parsed) {
    const response = await handleOne(withSenders, request);
    if (response !== undefined) out.push(response);
  }
  return out.length === 0 ? undefined : out;
}
