// The EVM app: an Ethereum JSON-RPC endpoint (`POST /app/evm`) whose state, transactions and
// receipts live in private Coco maps, so they are replicated, encrypted in the ledger and
// provable by receipts like any Coco transaction. See docs/evm.md.
import type { AuthPolicyName, EndpointRegistry } from "../../rpc/index.js";
import type { Transaction } from "../../kv/index.js";
import type { EvmChainOptions } from "./chain.js";
import { FilterRegistry, handleJsonRpc, type RpcContext } from "./rpc.js";
import { RECEIPTS } from "./maps.js";
import { GovernedChain } from "./genesis.js";

export { EvmChain, type EvmChainOptions, type GenesisAllocation } from "./chain.js";
export { KvStateManager } from "./state-manager.js";
export { RpcError, RpcErrorCodes } from "./errors.js";
export { secp256k1Backend } from "./crypto.js";
export { handleJsonRpc, METHODS, FilterRegistry, FILTERS_MAX, FILTER_IDLE_MS } from "./rpc.js";
export * as evmMaps from "./maps.js";
export {
  EVM_CONFIG_MAP, EVM_CONFIG_KEY, CHAIN_NOT_CONFIGURED_MESSAGE, GovernedChain, evmConfigBytes, parseEvmConfig,
  type EvmConfigValue, type EvmGenesisConfig,
} from "./genesis.js";

export const EVM_PATH = "/app/evm";
const CLIENT_VERSION = "Coco/v0.1.0/evm/ethereumjs-vm-10";

/**
 * The chain id and genesis allocation are not options: the consortium sets them with the
 * `set_evm_genesis` governance action (table `public:ccf.gov.evm.config`); until then every
 * JSON-RPC method but web3_clientVersion answers an error.
 */
export interface EvmAppOptions extends Omit<EvmChainOptions, "chainId" | "genesis"> {
  /** Who may call the JSON-RPC endpoint. Default: Coco users (`user_cert`). */
  readonly authPolicies?: readonly AuthPolicyName[];
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
  registry.install({
    method: "POST", path: EVM_PATH, mode: "readwrite", authPolicies: options.authPolicies ?? ["user_cert"],
    summary: "Ethereum JSON-RPC 2.0 (single calls and batches); see docs/evm.md",
    handler: async (ctx) => {
      const rpc: RpcContext = {
        tx: ctx.tx, chain: chains.forTransaction(ctx.tx), isReceiptFinal, cocoTransactionOf, clientVersion: CLIENT_VERSION, filters,
        ...(finality === "committed" && committed !== undefined ? { committedSeqno: committed } : {}),
      };
      const body = await handleJsonRpc(rpc, ctx.request.body);
      return body === undefined ? { status: 204 } : { body };
    },
  });
  return chains;
}
export { DEV_MNEMONIC, devAccounts, addressOfPrivateKey, type DevAccount } from "./dev-accounts.js";
