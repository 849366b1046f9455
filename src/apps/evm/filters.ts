// Polling filters, as geth keeps them: eth_newFilter (logs), eth_newBlockFilter and
// eth_newPendingTransactionFilter install a filter in this node's memory; eth_getFilterChanges
// answers what is new since the last poll; eth_getFilterLogs runs the filter's query; idle
// filters expire. Filters are node-local state, not KV state: polling must not write the ledger,
// and (as with geth behind a load balancer) a filter is known only to the node that made it.
import { RpcError, RpcErrorCodes } from "./errors.js";
import { data, parseData } from "./hex.js";
import { blockBound, blockLogs, LOGS_BLOCK_RANGE_MAX, LOGS_RESULTS_MAX, parseLogCriteria, queryLogs, type LogCriteria } from "./logs.js";
import { arity, param, visibleHeadNumber, type MethodContext, type Params } from "./params.js";

/** Filters installed at once on a node; a new one beyond this is refused (-32005). */
export const FILTERS_MAX = 1024;
/** geth's default: a filter not polled for 5 minutes is removed. */
export const FILTER_IDLE_MS = 5 * 60_000;

type FilterKind = "logs" | "blocks" | "transactions";

interface Filter {
  readonly kind: FilterKind;
  readonly criteria?: LogCriteria;
  /** The first block the next eth_getFilterChanges reports. */
  next: bigint;
  lastPolledMs: number;
}

export class FilterRegistry {
  private readonly filters = new Map<string, Filter>();

  constructor(private readonly nowMs: () => number = Date.now) {}

  get size(): number {
    return this.filters.size;
  }

  install(kind: FilterKind, next: bigint, criteria?: LogCriteria): string {
    this.expire();
    if (this.filters.size >= FILTERS_MAX) {
      throw new RpcError(RpcErrorCodes.LimitExceeded, `too many filters installed on this node (${FILTERS_MAX}): uninstall unused ones (eth_uninstallFilter) or let them expire (${FILTER_IDLE_MS / 60_000} minutes idle)`);
    }
    // Random ids, as geth's: another client cannot guess a filter to poll or remove it.
    const id = data(crypto.getRandomValues(new Uint8Array(16)));
    this.filters.set(id, { kind, next, lastPolledMs: this.nowMs(), ...(criteria === undefined ? {} : { criteria }) });
    return id;
  }

  /** The filter, its idle timer restarted; throws geth's "filter not found" for unknown or expired ids. */
  poll(id: string): Filter {
    this.expire();
    const filter = this.filters.get(id);
    if (filter === undefined) throw new RpcError(RpcErrorCodes.ServerError, "filter not found");
    filter.lastPolledMs = this.nowMs();
    return filter;
  }

  uninstall(id: string): boolean {
    return this.filters.delete(id);
  }

  private expire(): void {
    const oldest = this.nowMs() - FILTER_IDLE_MS;
    for (const [id, filter] of this.filters) if (filter.lastPolledMs < oldest) this.filters.delete(id);
  }
}

/** A filter id: 0x-hex (geth's are 16 bytes; any hex is looked up, unknown ones are "not found"). */
function filterId(params: Params): string {
  arity(params, 1);
  return data(parseData(param(params, 0, "id"), "id"));
}

function newFilter(ctx: MethodContext, params: Params): string {
  arity(params, 1);
  const criteria = parseLogCriteria(param(params, 0, "filter"));
  if (criteria.blockHash !== undefined) {
    throw new RpcError(RpcErrorCodes.InvalidParams, "eth_newFilter does not take blockHash: query one block with eth_getLogs");
  }
  return ctx.filters.install("logs", visibleHeadNumber(ctx) + 1n, criteria);
}

/** Logs of the blocks since the last poll (within fromBlock/toBlock when numbers), bounded per poll. */
function logChanges(ctx: MethodContext, filter: Filter, head: bigint): unknown[] {
  const criteria = filter.criteria!;
  const from = blockBound(ctx, criteria.fromBlock, "fromBlock", 0n);
  let to = blockBound(ctx, criteria.toBlock, "toBlock", head);
  if (to > head) to = head;
  let n = filter.next > from ? filter.next : from;
  if (to - n + 1n > LOGS_BLOCK_RANGE_MAX) to = n + LOGS_BLOCK_RANGE_MAX - 1n;
  const out: unknown[] = [];
  // Whole blocks only: a poll that stops early resumes at the next block, nothing is skipped.
  for (; n <= to && out.length < LOGS_RESULTS_MAX; n++) {
    for (const log of blockLogs(ctx, n, criteria) ?? []) out.push(log);
  }
  if (n > filter.next) filter.next = n;
  return out;
}

/** Block hashes (or their transactions' hashes) since the last poll, bounded per poll. */
function blockChanges(ctx: MethodContext, filter: Filter, head: bigint): string[] {
  const out: string[] = [];
  let n = filter.next;
  for (; n <= head && n < filter.next + LOGS_BLOCK_RANGE_MAX; n++) {
    const block = ctx.chain.block(ctx.tx, n);
    if (block === undefined) break;
    // Every block's hash (a block's existence is public: its number says as much); only the
    // transactions the caller may see.
    if (filter.kind === "blocks") out.push(block.hash);
    else for (const hash of block.transactions) if (ctx.visibility?.seesTransaction(hash) !== false) out.push(hash);
  }
  filter.next = n;
  return out;
}

export const FILTER_METHODS = {
  eth_newFilter: newFilter,
  eth_newBlockFilter: (ctx: MethodContext, params: Params): string => (arity(params, 0), ctx.filters.install("blocks", visibleHeadNumber(ctx) + 1n)),
  // Coco has no mempool: a transaction is pending only inside its Coco transaction, so this
  // filter reports the transactions of new blocks, once each.
  eth_newPendingTransactionFilter: (ctx: MethodContext, params: Params): string => (arity(params, 1), ctx.filters.install("transactions", visibleHeadNumber(ctx) + 1n)),
  eth_getFilterChanges: (ctx: MethodContext, params: Params): unknown[] => {
    const filter = ctx.filters.poll(filterId(params));
    const head = visibleHeadNumber(ctx);
    return filter.kind === "logs" ? logChanges(ctx, filter, head) : blockChanges(ctx, filter, head);
  },
  eth_getFilterLogs: (ctx: MethodContext, params: Params): unknown[] => {
    const filter = ctx.filters.poll(filterId(params));
    if (filter.kind !== "logs") throw new RpcError(RpcErrorCodes.ServerError, "filter not found: eth_getFilterLogs takes a log filter (eth_newFilter)");
    return queryLogs(ctx, filter.criteria!);
  },
  eth_uninstallFilter: (ctx: MethodContext, params: Params): boolean => ctx.filters.uninstall(filterId(params)),
} as const;
