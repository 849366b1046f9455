// eth_call and eth_estimateGas over a `simulate(gasLimit)` function, shared by the main thread
// (EvmChain, for in-process use) and the call worker (call-worker.ts), so both answer the same:
// geth's gas cap, geth's error messages, and geth's binary search for the gas estimate.
import { Address } from "@ethereumjs/util";
import { revertError, RpcError, RpcErrorCodes } from "./errors.js";
import type { CallRequest } from "./chain.js";

/** geth's default RPCGasCap: the most gas an eth_call or eth_estimateGas may use. */
export const CALL_GAS_CAP_DEFAULT = 50_000_000n;
/** geth's default RPCEVMTimeout: how long one eth_call or eth_estimateGas may run. */
export const CALL_TIMEOUT_MS_DEFAULT = 5_000;

/** What a simulated message answers (the fields of ethereumjs's EVMResult that calls need). */
export interface SimulationResult {
  readonly execResult: {
    readonly exceptionError?: { readonly error: string } | undefined;
    readonly returnValue: Uint8Array;
    readonly executionGasUsed: bigint;
  };
}

export type Simulate = (gasLimit: bigint) => Promise<SimulationResult>;

/**
 * The gas a call may use: what it asks for (the block gas limit when it does not say), capped by
 * `gasCap` as geth caps it (quietly: a call that needs more runs out of gas).
 */
export function callGasLimit(requested: bigint | undefined, blockGasLimit: bigint, gasCap: bigint): bigint {
  const wanted = requested ?? blockGasLimit;
  return wanted > gasCap ? gasCap : wanted;
}

/** eth_call: the return data, or the revert (code 3) or exception (-32000) geth would answer. */
export async function callResult(simulate: Simulate, gasLimit: bigint): Promise<Uint8Array> {
  const result = await simulate(gasLimit);
  const error = result.execResult.exceptionError;
  if (error !== undefined) {
    if (error.error === "revert") throw revertError(result.execResult.returnValue);
    throw new RpcError(RpcErrorCodes.ServerError, error.error);
  }
  return result.execResult.returnValue;
}

/**
 * eth_estimateGas: the execution's gas plus intrinsic gas, raised by binary search if a call's
 * 63/64 rule needs more. `cap` is the call's (already capped) gas limit; `simulate` takes the
 * gas left for execution (after intrinsic gas).
 */
export async function estimateGas(simulate: Simulate, cap: bigint, intrinsic: bigint, minimum: bigint): Promise<bigint> {
  if (cap < minimum) throw new RpcError(RpcErrorCodes.ServerError, `intrinsic gas too low: gas ${cap}, want ${minimum}`);
  const first = await simulate(cap - intrinsic);
  const error = first.execResult.exceptionError;
  if (error !== undefined) {
    if (error.error === "revert") throw revertError(first.execResult.returnValue);
    throw new RpcError(RpcErrorCodes.ServerError, `gas required exceeds allowance (${cap}) or always failing transaction: ${error.error}`);
  }
  let low = intrinsic + first.execResult.executionGasUsed;
  if ((await simulate(low - intrinsic)).execResult.exceptionError === undefined) return low > minimum ? low : minimum;
  let high = cap;
  // At most log2(cap) ~ 26 steps for a 50M cap.
  while (high - low > 1n) {
    const mid = (low + high) / 2n;
    if ((await simulate(mid - intrinsic)).execResult.exceptionError === undefined) high = mid;
    else low = mid;
  }
  return high > minimum ? high : minimum;
}

/** The VM's runCall options for a call or estimate, the same on the main thread and the worker. */
export function runCallOptions<Block>(request: CallRequest, block: Block, gasLimit: bigint) {
  return {
    block,
    caller: new Address(request.from ?? new Uint8Array(20)),
    to: request.to === undefined ? undefined : new Address(request.to),
    value: request.value ?? 0n,
    data: request.data ?? new Uint8Array(0),
    gasLimit,
    gasPrice: request.gasPrice ?? 0n,
    skipBalance: true,
  };
}
