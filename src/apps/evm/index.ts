// The EVM app: an Ethereum JSON-RPC endpoint (`POST /app/evm`) whose state, transactions and
// receipts live in private Coco maps, so they are replicated, encrypted in the ledger and
// provable by receipts like any Coco transaction. See docs/evm.md.
import type { AuthPolicyName, EndpointRegistry } from "../../rpc/index.js";
import type { Transaction } from "../../kv/index.js";
import type { EvmChainOptions } from "./chain.js";
import { FilterRegistry, handleJsonRpc, type RpcContext } from "./rpc.js";
import { RECEIPTS } from "./maps.js";
import { GovernedChain } from "./genesis.js";
import { CallPool } from "./call-pool.js";
import { RateLimiter, RATE_LIMIT_DEFAULT, type RateLimitOptions } from "./rate-limit.js";
import { authenticateEvmCaller, corsHeaders, preflight, type AccessOptions } from "./access.js";
import { installApiKeyEndpoints } from "./api-keys.js";
import { installAddressEndpoints, type AddressPolicy } from "./addresses.js";
import { userVisibility } from "./visibility.js";
import { RerunRequest, type HandlerResult, type RpcRequest, type RpcResponse, type UpgradeHandler } from "../../rpc/index.js";
import { SubscriptionHub } from "./subscriptions.js";
import { EvmWebSockets } from "./websocket.js";
import { RpcErrorCodes } from "./errors.js";

export { EvmChain, type EvmChainOptions, type GenesisAllocation } from "./chain.js";
export { KvStateManager } from "./state-manager.js";
export { RpcError, RpcErrorCodes } from "./errors.js";
export { secp256k1Backend } from "./crypto.js";
export { handleJsonRpc, METHODS, FilterRegistry, FILTERS_MAX, FILTER_IDLE_MS } from "./rpc.js";
export * as evmMaps from "./maps.js";
export { CallPool, CALL_WORKERS_DEFAULT, CALL_WORKERS_MAX, CALLS_PER_USER_MAX, CALLS_QUEUED_MAX } from "./call-pool.js";
export { CALL_GAS_CAP_DEFAULT, CALL_TIMEOUT_MS_DEFAULT } from "./call-execution.js";
export { RateLimiter, RATE_LIMIT_DEFAULT, type RateLimitOptions } from "./rate-limit.js";
export { AccessErrorCodes } from "./access.js";
export {
  ADDRESS_OWNERS, USER_ADDRESSES, ADDRESSES_PATH, ADDRESSES_PER_USER_MAX, bindingMessage, personalSign, addressesOf, ownerOf, type AddressPolicy,
} from "./addresses.js";
export {
  TX_READERS, PUBLIC_CONTRACTS, READERS_PER_TRANSACTION_MAX, TRANSFER_TOPIC, COCO_READERS_TOPIC, COCO_PUBLIC_TOPIC, decodeAddressArray, readersOf,
  type TransactionReaders, type Visibility,
} from "./visibility.js";
export { SubscriptionHub, SUBSCRIPTIONS_PER_CONNECTION_MAX, BLOCKS_PER_DELIVERY_MAX, type Subscriber } from "./subscriptions.js";
export {
  EvmWebSockets, WEBSOCKETS_PER_USER_MAX, WEBSOCKET_SEND_BUFFER_BYTES_MAX, WEBSOCKET_MESSAGE_BYTES_MAX,
  WEBSOCKET_REQUESTS_IN_FLIGHT_MAX, WEBSOCKET_PING_INTERVAL_MS, WebSocketCloseCodes,
} from "./websocket.js";
export { API_KEYS, API_KEYS_PATH, API_KEY_COSE_MSG_TYPE, API_KEYS_PER_USER_MAX, type ApiKeyRecord } from "./api-keys.js";
export {
  EVM_CONFIG_MAP, EVM_CONFIG_KEY, CHAIN_NOT_CONFIGURED_MESSAGE, GovernedChain, evmConfigBytes, parseEvmConfig,
  type EvmConfigValue, type EvmGenesisConfig,
} from "./genesis.js";

export const EVM_PATH = "/app/evm";
/**
 * Runs of one request whose call read state that changed meanwhile, before it is answered with
 * an error; below the frontend's own limit of re-executions (30), so the answer is JSON-RPC.
 */
export const STALE_CALL_RERUNS_MAX = 10;
const CLIENT_VERSION = "Coco/v0.1.0/evm/ethereumjs-vm-10";

/**
 * The chain id and genesis allocation are not options: the consortium sets them with the
 * `set_evm_genesis` governance action (table `public:ccf.gov.evm.config`); until then every
 * JSON-RPC method but web3_clientVersion answers an error.
 */
export interface EvmAppOptions extends Omit<EvmChainOptions, "chainId" | "genesis"> {
  /**
   * How callers without an API key are authenticated. Default: Coco users (`user_cert`). API
   * keys (docs/evm.md) are accepted whatever this says.
   */
  readonly authPolicies?: readonly AuthPolicyName[];
  /**
   * Worker threads that run eth_call and eth_estimateGas off the main thread (default
   * CALL_WORKERS_DEFAULT); 0 runs them on the main thread, without a wall-clock limit (in-process use).
   */
  readonly callWorkers?: number;
  /** Wall-clock limit of one eth_call or eth_estimateGas on a worker, in ms (default 5,000, geth's). */
  readonly callTimeoutMs?: number;
  /** Browser origins allowed to call /app/evm (CORS): exact origins or "*". Default none. */
  readonly corsAllowedOrigins?: readonly string[];
  /** Per-user request rate limit (default RATE_LIMIT_DEFAULT; requestsPerSecond 0 disables it). */
  readonly rateLimit?: RateLimitOptions;
  /**
   * The node's committed seqno. When given, eth_getTransactionReceipt answers a receipt only
   * once the Coco transaction that wrote it is committed (`receiptFinality: "committed"`, the
   * default then); without it receipts answer as soon as the transaction executed.
   */
  readonly committedSeqno?: () => number;
  readonly receiptFinality?: "committed" | "executed";
  /**
   * The view of a seqno (the node's `viewAt`). With it `coco_getTransactionId` answers full
   * transaction ids (`view.seqno`) for `GET /app/receipt`; without it, only the seqno.
   */
  readonly viewForSeqno?: (seqno: number) => number | null;
  /**
   * "bound": a user sends transactions and runs calls only from addresses bound to it (POST
   * /app/evm/addresses), and eth_getStorageAt is refused. Default "open" (docs/evm.md, "Users and addresses").
   */
  readonly addressPolicy?: AddressPolicy;
  /** WebSockets and subscriptions (docs/evm.md, "Subscriptions"); they need `committedSeqno` too. */
  readonly node?: EvmNodeHooks;
  /** Open WebSocket connections per user on this node (default WEBSOCKETS_PER_USER_MAX). */
  readonly webSocketsPerUserMax?: number;
  /** Subscriptions per WebSocket connection (default SUBSCRIPTIONS_PER_CONNECTION_MAX). */
  readonly subscriptionsPerConnectionMax?: number;
}

/**
 * What the node offers the app for JSON-RPC over WebSocket (eth_subscribe): the node's AppContext
 * has this shape. Without it /app/evm serves HTTP only.
 */
export interface EvmNodeHooks {
  handleUpgrades(prefix: string, handler: UpgradeHandler): void;
  dispatch(request: RpcRequest): Promise<RpcResponse>;
  beginReadTransaction(): Transaction;
  onCommit(listener: (seqno: number) => void): void;
}

/** A refusal answers with the request's id when the body is a single call (clients match answers by id). */
function withRequestId(refusal: unknown, body: Buffer): unknown {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as unknown;
    const id = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as { id?: unknown }).id : undefined;
    if (typeof id === "string" || typeof id === "number") return { ...(refusal as object), id };
  } catch {
    // Not JSON: the refusal keeps id null.
  }
  return refusal;
}

/** Installs `POST /app/evm`. Returns the governed chain (the chain a transaction sees). */
export function installEvmApp(registry: EndpointRegistry, options: EvmAppOptions): GovernedChain {
  const chains = new GovernedChain(options);
  const filters = new FilterRegistry();
  const finality = options.receiptFinality ?? (options.committedSeqno === undefined ? "executed" : "committed");
  if (finality === "committed" && options.committedSeqno === undefined) {
    throw new Error("receiptFinality 'committed' needs options.committedSeqno (the node's commit seqno)");
  }
  const committed = options.committedSeqno;
  const isReceiptFinal = finality === "executed" || committed === undefined
    ? () => true
    : (tx: Transaction, hash: Buffer) => {
      // The seqno that wrote the receipt; undefined while it is this transaction's own write.
      const version = tx.getVersionOfPreviousWrite(RECEIPTS, hash);
      return version !== undefined && version <= committed();
    };
  const cocoTransactionOf = (tx: Transaction, hash: Buffer) => {
    const seqno = tx.getVersionOfPreviousWrite(RECEIPTS, hash);
    if (seqno === undefined || !isReceiptFinal(tx, hash)) return undefined;
    return { seqno, view: options.viewForSeqno?.(seqno) ?? null };
  };
  const calls = options.callWorkers === 0 ? undefined : new CallPool({
    ...(options.callWorkers === undefined ? {} : { workers: options.callWorkers }),
    ...(options.callTimeoutMs === undefined ? {} : { timeoutMs: options.callTimeoutMs }),
  });
  const access: AccessOptions = {
    authPolicies: options.authPolicies ?? ["user_cert"],
    corsAllowedOrigins: options.corsAllowedOrigins ?? [],
    rateLimiter: new RateLimiter(options.rateLimit ?? RATE_LIMIT_DEFAULT),
  };
  /** Requests already charged to their user's rate limit: a request run again (a conflict) is not charged twice. */
  const charged = new WeakMap<RpcRequest, string>();
  /** Runs of a request dropped because a call's reads went stale (see call-pool.ts). */
  const staleReruns = new WeakMap<RpcRequest, number>();
  const serve = async (request: RpcRequest, tx: Transaction, pathKey: string | undefined): Promise<HandlerResult> => {
    const cors = corsHeaders(access, request) ?? {};
    let user = charged.get(request);
    if (user === undefined) {
      const verdict = authenticateEvmCaller(access, request, tx, pathKey);
      if ("refusal" in verdict) return { ...verdict.refusal, body: withRequestId(verdict.refusal.body, request.body), headers: { ...verdict.refusal.headers, ...cors } };
      user = verdict.user;
      charged.set(request, user);
    }
    const rpc: RpcContext = {
      tx, chain: chains.forTransaction(tx), isReceiptFinal, cocoTransactionOf, clientVersion: CLIENT_VERSION, filters, callerId: user,
      addressPolicy: options.addressPolicy ?? "open",
      ...(options.addressPolicy === "bound" ? { visibility: userVisibility(tx, user) } : {}),
      ...(calls === undefined ? {} : { calls }),
      ...(finality === "committed" && committed !== undefined ? { committedSeqno: committed } : {}),
    };
    let body: unknown;
    try {
      body = await handleJsonRpc(rpc, request.body);
    } catch (error) {
      if (!(error instanceof RerunRequest)) throw error;
      // A call's reads kept changing while it ran (a hot contract under constant writes):
      // answer rather than let the frontend give up with a body that is not JSON-RPC.
      const reruns = (staleReruns.get(request) ?? 0) + 1;
      staleReruns.set(request, reruns);
      if (reruns < STALE_CALL_RERUNS_MAX) throw error;
      return {
        headers: cors,
        body: { jsonrpc: "2.0", id: null, error: { code: RpcErrorCodes.ServerError, message: `the state this call read changed while it ran, ${reruns} times in a row: retry the request` } },
      };
    }
    // Coco has no block production of its own: a block exists only for a transaction. A client
    // that finds no receipt and then watches the block number (ethers' tx.wait()) could see the
    // block commit in between and wait forever. So, as Hardhat's automine answers once a
    // transaction is mined, a request that executed transactions answers once they are committed
    // (when receipts wait for commit): its receipts are then there at the first ask.
    const waits = finality === "committed" && tx.hasWrites ? { consistency: "committed" as const } : {};
    return body === undefined ? { status: 204, headers: cors, ...waits } : { body, headers: cors, ...waits };
  };
  // Authentication is the handler's (access.ts), so that every refusal is a JSON-RPC error.
  registry.install({
    method: "POST", path: EVM_PATH, mode: "readwrite", authPolicies: ["no_auth"],
    summary: "Ethereum JSON-RPC 2.0 (single calls and batches) as a user (client certificate or Authorization: Bearer <API key>); see docs/evm.md",
    handler: (ctx) => serve(ctx.request, ctx.tx, undefined),
  });
  registry.install({
    method: "POST", path: `${EVM_PATH}/{key}`, mode: "readwrite", authPolicies: ["no_auth"],
    summary: "Ethereum JSON-RPC 2.0 as the user of the API key in the path (for wallets that take only a URL)",
    handler: (ctx) => serve(ctx.request, ctx.tx, ctx.params["key"]),
  });
  for (const path of [EVM_PATH, `${EVM_PATH}/{key}`]) {
    registry.install({
      method: "OPTIONS", path, mode: "readonly", authPolicies: ["no_auth"], forwarding: "never",
      summary: "CORS preflight for browser dapps (allowed origins: coco.evm.cors_allowed_origins)",
      handler: (ctx) => preflight(access, ctx.request),
    });
  }
  installApiKeyEndpoints(registry);
  installAddressEndpoints(registry, chains);
  if (options.node !== undefined) {
    if (committed === undefined) throw new Error("WebSocket subscriptions need options.committedSeqno: notifications follow the commit point");
    const node = options.node;
    const hub = new SubscriptionHub({
      beginReadTransaction: () => node.beginReadTransaction(),
      chainOf: (tx) => chains.forTransaction(tx),
      committedSeqno: committed,
      ...(options.subscriptionsPerConnectionMax === undefined ? {} : { subscriptionsPerConnectionMax: options.subscriptionsPerConnectionMax }),
    });
    node.onCommit(hub.committed);
    const sockets = new EvmWebSockets(EVM_PATH, {
      access, hub, beginReadTransaction: () => node.beginReadTransaction(), dispatch: (request) => node.dispatch(request),
      ...(options.addressPolicy === "bound" ? { visibility: userVisibility } : {}),
      ...(options.webSocketsPerUserMax === undefined ? {} : { perUserMax: options.webSocketsPerUserMax }),
    });
    node.handleUpgrades(EVM_PATH, sockets.handleUpgrade);
  }
  return chains;
}
export { DEV_MNEMONIC, devAccounts, addressOfPrivateKey, type DevAccount } from "./dev-accounts.js";
