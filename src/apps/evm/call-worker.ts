// Worker thread of the call pool (call-pool.ts): runs eth_call and eth_estimateGas with its own
// VM, so a long call never blocks the node's main thread. It keeps no state of its own: every
// account, code, storage slot and block hash it reads is asked of the main thread, which answers
// from the request's KV transaction (so the reads are recorded there and checked for staleness
// when the call ends). The VM's state interface is asynchronous, but KvStateManager reads
// synchronously, so a read blocks this thread on a shared flag until the answer is posted.
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from "node:worker_threads";
import { createBlock } from "@ethereumjs/block";
import type { Common } from "@ethereumjs/common";
import type { VM } from "@ethereumjs/vm";
import { createAddressFromString } from "@ethereumjs/util";
import type { Transaction } from "../../kv/index.js";
import type { CallBlock, CallRequest } from "./chain.js";
import { createChainVm, KvBlockHashes, resetVm } from "./chain.js";
import { newChainCommon, sharedChainCommon } from "./common.js";
import { KvStateManager } from "./state-manager.js";
import { callResult, estimateGas, runCallOptions, type SimulationResult } from "./call-execution.js";
import { RpcError, RpcErrorCodes } from "./errors.js";

export interface CallJobMessage {
  type: "job";
  job: number;
  kind: "call" | "estimate";
  chainId: number;
  request: CallRequest;
  block: CallBlock;
  /** The call's gas limit, already capped by the gas cap. */
  gasLimit: bigint;
  /** eth_estimateGas only: intrinsic gas and the minimum gas limit (computed on the main thread). */
  intrinsic: bigint;
  minimum: bigint;
}

export interface ReadMessage { type: "read"; job: number; map: string; key: Uint8Array }
export interface ReadReply { value: Uint8Array | null }
export interface StartedMessage { type: "started"; job: number }
export type CallOutcome =
  | { type: "done"; job: number; ok: true; value: Uint8Array | bigint }
  | { type: "done"; job: number; ok: false; code: number; message: string; data?: string };

export interface CallWorkerData { replyPort: MessagePort; flag: SharedArrayBuffer }

/** How long one wait for the main thread lasts before waiting again (it always answers or terminates us). */
const READ_WAIT_SLICE_MS = 1_000;

const { replyPort, flag: flagBuffer } = workerData as CallWorkerData;
const flag = new Int32Array(flagBuffer);

/** The request's KV transaction as the VM reads it: every get is a round trip to the main thread. */
class RemoteReads {
  constructor(private readonly job: number) {}

  get(map: string, key: Uint8Array): Buffer | undefined {
    Atomics.store(flag, 0, 0);
    // A copy: cloning a view would copy the whole buffer behind it.
    const message: ReadMessage = { type: "read", job: this.job, map, key: new Uint8Array(key) };
    parentPort!.postMessage(message);
    while (Atomics.wait(flag, 0, 0, READ_WAIT_SLICE_MS) === "timed-out") { /* the main thread is busy: keep waiting */ }
    const reply = receiveMessageOnPort(replyPort);
    if (reply === undefined) throw new Error("assertion failed: the main thread signalled a read reply but posted none");
    const { value } = reply.message as ReadReply;
    return value === null ? undefined : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }

  has(map: string, key: Uint8Array): boolean {
    return this.get(map, key) !== undefined;
  }

  forEach(): void {
    throw new Error("a call worker cannot iterate over a map");
  }
}

interface ChainVm { vm: VM; state: KvStateManager; blocks: KvBlockHashes; shared: Common }
const vms = new Map<number, Promise<ChainVm>>();

function vmFor(chainId: number): Promise<ChainVm> {
  let entry = vms.get(chainId);
  if (entry === undefined) {
    entry = (async () => {
      const none = new RemoteReads(0) as unknown as Transaction;
      const state = new KvStateManager(none);
      const blocks = new KvBlockHashes(none);
      return { vm: await createChainVm(newChainCommon(chainId), state, blocks), state, blocks, shared: sharedChainCommon(chainId) };
    })();
    vms.set(chainId, entry);
  }
  return entry;
}

async function run(message: CallJobMessage): Promise<Uint8Array | bigint> {
  const { vm, state, blocks, shared } = await vmFor(message.chainId);
  // The wall-clock limit counts from here: loading ethereumjs and building the VM is the pool's cost, not the call's.
  const started: StartedMessage = { type: "started", job: message.job };
  parentPort!.postMessage(started);
  const reads = new RemoteReads(message.job) as unknown as Transaction;
  const { block: b, request } = message;
  const block = createBlock({
    header: {
      number: b.number, timestamp: b.timestamp, gasLimit: b.gasLimit, baseFeePerGas: b.baseFee,
      coinbase: createAddressFromString(b.coinbase), parentHash: Buffer.from(b.parentHash.slice(2), "hex"),
    },
  }, { common: shared, skipConsensusFormatValidation: true });
  const simulate = (gasLimit: bigint): Promise<SimulationResult> => {
    // Each simulation starts from the KV state, as on the main thread (EvmChain.exclusive).
    state.begin(reads);
    blocks.tx = reads;
    resetVm(vm);
    return vm.evm.runCall(runCallOptions(request, block, gasLimit));
  };
  if (message.kind === "call") return callResult(simulate, message.gasLimit);
  return estimateGas(simulate, message.gasLimit, message.intrinsic, message.minimum);
}

parentPort?.on("message", (message: CallJobMessage) => {
  run(message).then((value) => {
    const outcome: CallOutcome = { type: "done", job: message.job, ok: true, value: value instanceof Uint8Array ? new Uint8Array(value) : value };
    parentPort!.postMessage(outcome);
  }, (error: unknown) => {
    const outcome: CallOutcome = error instanceof RpcError
      ? { type: "done", job: message.job, ok: false, code: error.code, message: error.message, ...(error.data === undefined ? {} : { data: error.data }) }
      : { type: "done", job: message.job, ok: false, code: RpcErrorCodes.InternalError, message: `internal error: ${(error as Error).message}` };
    parentPort!.postMessage(outcome);
  });
});
