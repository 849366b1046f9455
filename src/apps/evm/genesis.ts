// The EVM chain's identity as the consortium sets it: chain id and genesis allocation live in the
// public governance table `public:ccf.gov.evm.config`, written once by the `set_evm_genesis`
// action of the default constitution. The app reads it inside each request's transaction (a
// recorded read, so a request and the governance write that configures the chain serialise) and
// keeps one EvmChain per configuration value, so a request costs a lookup, not a parse.
import type { Transaction } from "../../kv/index.js";
import { EvmChain, type EvmChainOptions, type GenesisAllocation } from "./chain.js";
import { RpcError, RpcErrorCodes } from "./errors.js";

/** Written by governance only (`set_evm_genesis`); the app never writes it. */
export const EVM_CONFIG_MAP = "public:ccf.gov.evm.config";
/** Single-value governance tables keep their value at 8 zero bytes (as `service.info`). */
export const EVM_CONFIG_KEY = Buffer.alloc(8);

/** The table's value as stored: `{"chain_id": 31337, "alloc": {"0xabc…": "1000"}}` (wei as decimal). */
export interface EvmConfigValue {
  chain_id: number;
  alloc: Record<string, string>;
}

export interface EvmGenesisConfig {
  readonly chainId: bigint;
  readonly genesis: readonly GenesisAllocation[];
}

export const CHAIN_NOT_CONFIGURED_MESSAGE = "the EVM chain is not configured yet: the consortium sets its chain id and genesis allocation "
  + "with a set_evm_genesis proposal (see docs/evm.md)";

/** The configuration value for `chainId` and `alloc`, as `set_evm_genesis` writes it (for tests and embedders). */
export function evmConfigBytes(chainId: bigint | number, alloc: readonly GenesisAllocation[] = []): Buffer {
  const value: EvmConfigValue = { chain_id: Number(chainId), alloc: {} };
  for (const { address, balanceWei } of alloc) value.alloc[address.toLowerCase()] = BigInt(balanceWei).toString();
  return Buffer.from(JSON.stringify(value));
}

/**
 * Parses the table's value. The default constitution validates it before writing, but another
 * constitution could write anything: a malformed value is the consortium's error to fix, named here.
 */
export function parseEvmConfig(raw: Uint8Array): EvmGenesisConfig {
  const bad = (what: string): RpcError =>
    new RpcError(RpcErrorCodes.ServerError, `the EVM chain's configuration (${EVM_CONFIG_MAP}) is malformed: ${what}; the consortium must correct it`);
  let value: Partial<EvmConfigValue>;
  try {
    value = JSON.parse(Buffer.from(raw).toString("utf8")) as Partial<EvmConfigValue>;
  } catch {
    throw bad("not JSON");
  }
  if (typeof value !== "object" || value === null) throw bad("not an object");
  if (!Number.isSafeInteger(value.chain_id) || value.chain_id! <= 0) throw bad(`chain_id ${JSON.stringify(value.chain_id)} is not a positive integer`);
  const alloc = value.alloc ?? {};
  if (typeof alloc !== "object" || alloc === null || Array.isArray(alloc)) throw bad("alloc is not an object");
  const genesis: GenesisAllocation[] = [];
  for (const [address, balance] of Object.entries(alloc)) {
    if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw bad(`alloc key ${JSON.stringify(address)} is not an address`);
    if (typeof balance !== "string" || !/^(\d{1,78}|0x[0-9a-fA-F]{1,64})$/.test(balance)) throw bad(`alloc[${address}] is not wei`);
    genesis.push({ address, balanceWei: balance });
  }
  return { chainId: BigInt(value.chain_id!), genesis };
}

/**
 * The chain a request runs against: built from the configuration its transaction sees, and
 * reused while that value stays the same (it is set once; a new value, e.g. after a rollback
 * and a different proposal, builds a new chain).
 */
export class GovernedChain {
  private cached: { raw: Buffer; chain: EvmChain } | undefined;

  constructor(private readonly options: Omit<EvmChainOptions, "chainId" | "genesis">) {}

  /** The configured chain, or undefined while governance has not set it. */
  forTransaction(tx: Transaction): EvmChain | undefined {
    const raw = tx.get(EVM_CONFIG_MAP, EVM_CONFIG_KEY);
    if (raw === undefined) return undefined;
    if (this.cached !== undefined && this.cached.raw.equals(raw)) return this.cached.chain;
    const { chainId, genesis } = parseEvmConfig(raw);
    const chain = new EvmChain({ ...this.options, chainId, genesis });
    this.cached = { raw: Buffer.from(raw), chain };
    return chain;
  }
}
