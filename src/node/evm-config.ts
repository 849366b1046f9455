// The `coco.evm` section of a node configuration: whether the EVM app is installed and the
// node-local limits of its JSON-RPC endpoint (docs/configuration.md). The chain id and genesis
// allocation are not here: governance sets them (set_evm_genesis).
import { CocoError } from "../util/index.js";

/** As written in the configuration file. */
export interface EvmConfigFile {
  /** Most gas an eth_call or eth_estimateGas may use (geth's RPCGasCap). */
  call_gas_cap?: number;
  /** Wall-clock limit of one eth_call or eth_estimateGas, ms (geth's RPCEVMTimeout). */
  call_timeout_ms?: number;
  /** Worker threads that run eth_call and eth_estimateGas. */
  call_workers?: number;
  /** Browser origins allowed to call /app/evm (CORS): exact `scheme://host[:port]`, or "*". */
  cors_allowed_origins?: string[];
  /** Per-user request rate limit of /app/evm. */
  rate_limit?: { requests_per_second?: number; burst?: number };
  /**
   * "bound" (default): users send and call only from Ethereum addresses bound to them, and see
   * only their own and the contracts' declared readers' data; "open": any user, anything.
   */
  address_policy?: "open" | "bound";
}

/**
 * A node's address policy when its configuration does not say. The app's own default (embedded
 * in-process, without users) stays "open"; a node serves users, so it confines them.
 */
export const NODE_ADDRESS_POLICY_DEFAULT = "bound";

/** Resolved: only what the file set (the app's defaults apply to the rest). */
export interface EvmSettings {
  callGasCap?: bigint;
  callTimeoutMs?: number;
  callWorkers?: number;
  corsAllowedOrigins?: string[];
  rateLimit?: { requestsPerSecond: number; burst: number };
  addressPolicy?: "open" | "bound";
}

/** Largest settable gas cap: 2^53 - 1 (a JSON number), far above any block. */
const GAS_CAP_MAX = Number.MAX_SAFE_INTEGER;
const CALL_TIMEOUT_MS_MAX = 600_000;
const CALL_WORKERS_MAX = 64;
const CORS_ORIGINS_MAX = 100;

function invalid(field: string, message: string): CocoError {
  return new CocoError("InvalidConfiguration", `Invalid configuration: coco.evm.${field}: ${message}`, 400);
}

function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) throw invalid(field, `expected an integer from ${min} to ${max}`);
  return value;
}

export function resolveEvm(evm: unknown): EvmSettings | undefined {
  if (evm === undefined) return undefined;
  if (typeof evm !== "object" || evm === null || Array.isArray(evm)) throw new CocoError("InvalidConfiguration", "Invalid configuration: coco.evm: expected an object ({} installs the EVM app)", 400);
  const settings: EvmSettings = {};
  for (const [field, value] of Object.entries(evm as Record<string, unknown>)) {
    switch (field) {
      case "chain_id":
      case "genesis":
        throw invalid(field, "the chain id and genesis allocation are set by governance now: remove them here and have "
          + "the consortium accept a set_evm_genesis proposal (docs/evm.md)");
      case "call_gas_cap":
        settings.callGasCap = BigInt(integer(value, field, 21_000, GAS_CAP_MAX));
        break;
      case "call_timeout_ms":
        settings.callTimeoutMs = integer(value, field, 1, CALL_TIMEOUT_MS_MAX);
        break;
      case "call_workers":
        settings.callWorkers = integer(value, field, 1, CALL_WORKERS_MAX);
        break;
      case "cors_allowed_origins":
        if (!Array.isArray(value) || value.length > CORS_ORIGINS_MAX || !value.every((o) => typeof o === "string" && (o === "*" || /^https?:\/\/[^/\s]+$/.test(o)))) {
          throw invalid(field, `expected at most ${CORS_ORIGINS_MAX} origins, each "*" or scheme://host[:port] without a path (e.g. "http://localhost:3000")`);
        }
        settings.corsAllowedOrigins = value as string[];
        break;
      case "rate_limit": {
        if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid(field, "expected {requests_per_second, burst}");
        const { requests_per_second: rate, burst, ...rest } = value as Record<string, unknown>;
        if (Object.keys(rest).length > 0) throw invalid(`${field}.${Object.keys(rest)[0]}`, "unknown setting (requests_per_second, burst)");
        const requestsPerSecond = rate === undefined ? 1_000 : integer(rate, `${field}.requests_per_second`, 0, 1_000_000);
        settings.rateLimit = { requestsPerSecond, burst: burst === undefined ? Math.max(1, 2 * requestsPerSecond) : integer(burst, `${field}.burst`, 1, 2_000_000) };
        break;
      }
      case "address_policy":
        if (value !== "open" && value !== "bound") throw invalid(field, `expected "open" or "bound"`);
        settings.addressPolicy = value;
        break;
      default:
        throw invalid(field, "unknown setting (call_gas_cap, call_timeout_ms, call_workers, cors_allowed_origins, rate_limit, address_policy)");
    }
  }
  return settings;
}
