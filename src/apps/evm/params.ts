// What every JSON-RPC method shares: the request context, parameter checks and block tags.
import type { Transaction } from "../../kv/index.js";
import type { EvmChain } from "./chain.js";
import type { FilterRegistry } from "./filters.js";
import type { RecoveredSender } from "./sender-recovery.js";
import type { CallPool } from "./call-pool.js";
import type { AddressPolicy } from "./addresses.js";
import type { Visibility } from "./visibility.js";
import { RpcError, RpcErrorCodes } from "./errors.js";
import { parseHash, parseQuantity } from "./hex.js";

export interface RpcContext {
  readonly tx: Transaction;
  /** Undefined until governance configures the chain (set_evm_genesis): then only CHAINLESS_METHODS answer. */
  readonly chain: EvmChain | undefined;
  /** Whether the Coco transaction that wrote this receipt is committed (see receipt finality in docs/evm.md). */
  readonly isReceiptFinal: (tx: Transaction, hash: Buffer) => boolean;
  /** The node's commit seqno when receipts wait for commit (eth_blockNumber then reports committed blocks). */
  readonly committedSeqno?: () => number;
  /** The Coco transaction that executed this Ethereum transaction, once its receipt is final. */
  readonly cocoTransactionOf: (tx: Transaction, hash: Buffer) => CocoTransactionRef | undefined;
  readonly clientVersion: string;
  /** This node's polling filters (eth_newFilter & co.). */
  readonly filters: FilterRegistry;
  /** The caller's user id: whose limits eth_call and eth_estimateGas count against. */
  readonly callerId?: string;
  /**
   * What the caller may see of transactions, logs, blocks and accounts (the "bound" policy:
   * visibility.ts). Absent: everything is visible.
   */
  readonly visibility?: Visibility;
  /** "bound": transactions and calls only from the caller's bound addresses (addresses.ts). Default "open". */
  readonly addressPolicy?: AddressPolicy;
  /** Where eth_call and eth_estimateGas run: the worker pool, or (absent) this thread. */
  readonly calls?: CallPool;
  /** This request's signed transactions, by their hex parameter: decoded bytes and the sender recovered on the worker. */
  readonly preparedTransactions?: ReadonlyMap<string, PreparedTransaction>;
}

export interface PreparedTransaction { readonly raw: Buffer; readonly sender: RecoveredSender | null }

/** `view` is null when the node did not give the app `viewForSeqno`; then `transactionId` is null too. */
export interface CocoTransactionRef { seqno: number; view: number | null }

/** What a method sees: the chain exists (handleOne refuses the others first). */
export interface MethodContext extends RpcContext {
  readonly chain: EvmChain;
}

export type Params = readonly unknown[];
export type Method = (ctx: MethodContext, params: Params) => unknown;

export function param(params: Params, index: number, name: string): unknown {
  const value = params[index];
  if (value === undefined) throw new RpcError(RpcErrorCodes.InvalidParams, `missing value for required argument ${index} ('${name}')`);
  return value;
}

export function arity(params: Params, max: number): void {
  if (params.length > max) throw new RpcError(RpcErrorCodes.InvalidParams, `too many arguments, want at most ${max}`);
}

export type Tag = { kind: "latest" } | { kind: "number"; number: bigint } | { kind: "hash"; hash: Buffer };

export function parseTag(value: unknown, name: string): Tag {
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

/**
 * The newest block a client should see: the committed head when receipts wait for commit (so a
 * client that sees a block or a log can fetch its receipt at once), else the executed head.
 */
export function visibleHeadNumber(ctx: MethodContext): bigint {
  return ctx.committedSeqno === undefined ? BigInt(ctx.chain.head(ctx.tx).number) : ctx.chain.committedHeadNumber(ctx.tx, ctx.committedSeqno());
}
