// eth_call and eth_estimateGas off the node's main thread. A bounded pool of worker threads
// (call-worker.ts) runs them; each call has a wall-clock limit (its worker is terminated and
// replaced when it runs out), each user a bound on calls in progress, and a user runs at most
// one call at a time, so one user's long calls cannot take every worker from the others.
//
// Consistency: the worker reads state through the main thread, from the request's KV
// transaction, which records every read. The transaction sees the latest committed state, and
// other requests commit while a call runs, so when the call ends its reads are checked: if any
// key it read changed meanwhile, its answer might mix two states, and the request runs again
// from the start in a fresh transaction (RerunRequest, bounded by the frontend's retries).
import { availableParallelism } from "node:os";
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import type { Transaction } from "../../kv/index.js";
import { RerunRequest } from "../../rpc/index.js";
import type { CallRequest, EvmChain } from "./chain.js";
import { callGasLimit, CALL_TIMEOUT_MS_DEFAULT } from "./call-execution.js";
import type { CallJobMessage, CallOutcome, CallWorkerData, ReadMessage, ReadReply, StartedMessage } from "./call-worker.js";
import { RpcError, RpcErrorCodes } from "./errors.js";
import { ACCOUNTS, BLOCKS, CODE, STORAGE } from "./maps.js";

/** Worker threads by default: two, so one user's call at its time limit leaves one for the others. */
export const CALL_WORKERS_DEFAULT = Math.max(2, Math.min(4, availableParallelism() - 1));
export const CALL_WORKERS_MAX = 64;
/** Calls one user may have in progress (running or queued); more answer -32005. */
export const CALLS_PER_USER_MAX = 16;
/** Calls queued for a worker, all users together; more answer -32005. */
export const CALLS_QUEUED_MAX = 1_024;
/**
 * How long a worker may take to start a job (load ethereumjs, build its VM) before the call's own
 * limit starts: generous, since a new worker on a loaded machine takes seconds; bounded, so a
 * worker that never starts still frees its slot.
 */
export const WORKER_START_TIMEOUT_MS = 60_000;
/** The maps a call may read: the Ethereum state and block hashes, nothing else of the KV. */
const READABLE_MAPS: ReadonlySet<string> = new Set([ACCOUNTS, CODE, STORAGE, BLOCKS]);

export interface CallPoolOptions {
  /** Worker threads (default CALL_WORKERS_DEFAULT). */
  readonly workers?: number;
  /** Wall-clock limit of one eth_call or eth_estimateGas, in ms (geth's RPCEVMTimeout; default 5,000). */
  readonly timeoutMs?: number;
}

interface Job {
  readonly id: number;
  readonly user: string;
  readonly tx: Transaction;
  readonly message: CallJobMessage;
  readonly resolve: (value: Uint8Array | bigint) => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  worker: Worker | undefined;
  replyPort: MessagePort | undefined;
  flag: Int32Array;
  job: Job | undefined;
  timer: NodeJS.Timeout | undefined;
}

export class CallPool {
  readonly workers: number;
  readonly timeoutMs: number;
  private readonly slots: Slot[];
  private readonly queue: Job[] = [];
  /** Calls in progress (running or queued) per user. */
  private readonly perUser = new Map<string, number>();
  private readonly running = new Set<string>();
  private nextJob = 1;
  private closing = false;

  constructor(options: CallPoolOptions = {}) {
    this.workers = options.workers ?? CALL_WORKERS_DEFAULT;
    this.timeoutMs = options.timeoutMs ?? CALL_TIMEOUT_MS_DEFAULT;
    if (!Number.isInteger(this.workers) || this.workers < 1 || this.workers > CALL_WORKERS_MAX) {
      throw new Error(`call workers must be an integer from 1 to ${CALL_WORKERS_MAX}, got ${this.workers}`);
    }
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs < 1) throw new Error(`call timeout must be a positive integer (ms), got ${this.timeoutMs}`);
    this.slots = Array.from({ length: this.workers }, () => ({
      worker: undefined, replyPort: undefined, flag: new Int32Array(new SharedArrayBuffer(4)), job: undefined, timer: undefined,
    }));
  }

  /** eth_call on a worker, as `user`. */
  async call(tx: Transaction, user: string, chain: EvmChain, request: CallRequest): Promise<Uint8Array> {
    const gasLimit = callGasLimit(request.gas, chain.blockGasLimit, chain.callGasCap);
    const value = await this.run(tx, user, { kind: "call", chain, request, gasLimit, intrinsic: 0n, minimum: 0n });
    return value as Uint8Array;
  }

  /** eth_estimateGas on a worker, as `user`. */
  async estimateGas(tx: Transaction, user: string, chain: EvmChain, request: CallRequest): Promise<bigint> {
    const gasLimit = callGasLimit(request.gas, chain.blockGasLimit, chain.callGasCap);
    const { intrinsic, minimum } = chain.intrinsicGas(request);
    const value = await this.run(tx, user, { kind: "estimate", chain, request, gasLimit, intrinsic, minimum });
    return value as bigint;
  }

  /** Terminates every worker; calls in progress fail. */
  async close(): Promise<void> {
    this.closing = true;
    for (const job of this.queue.splice(0)) job.reject(new RpcError(RpcErrorCodes.ServerError, "the node is stopping"));
    await Promise.all(this.slots.map((slot) => this.retire(slot, new RpcError(RpcErrorCodes.ServerError, "the node is stopping"))));
  }

  private run(tx: Transaction, user: string, spec: { kind: "call" | "estimate"; chain: EvmChain; request: CallRequest; gasLimit: bigint; intrinsic: bigint; minimum: bigint }): Promise<Uint8Array | bigint> {
    const inProgress = this.perUser.get(user) ?? 0;
    if (inProgress >= CALLS_PER_USER_MAX) {
      throw new RpcError(RpcErrorCodes.LimitExceeded, `too many calls in progress: a user may have at most ${CALLS_PER_USER_MAX} eth_call/eth_estimateGas running or queued; wait for some to finish`);
    }
    if (this.queue.length >= CALLS_QUEUED_MAX) {
      throw new RpcError(RpcErrorCodes.LimitExceeded, `the node has ${CALLS_QUEUED_MAX} calls queued: retry later`);
    }
    const id = this.nextJob++;
    const message: CallJobMessage = {
      type: "job", job: id, kind: spec.kind, chainId: Number(spec.chain.chainId), request: spec.request,
      block: spec.chain.callBlock(tx), gasLimit: spec.gasLimit, intrinsic: spec.intrinsic, minimum: spec.minimum,
    };
    this.perUser.set(user, inProgress + 1);
    const done = new Promise<Uint8Array | bigint>((resolve, reject) => this.queue.push({ id, user, tx, message, resolve, reject }));
    this.pump();
    return done.finally(() => {
      const left = (this.perUser.get(user) ?? 1) - 1;
      if (left === 0) this.perUser.delete(user);
      else this.perUser.set(user, left);
    }).then((value) => {
      // Reads taken at different moments of the call: were they one snapshot?
      if (tx.hasStaleReads()) throw new RerunRequest("state read by eth_call/eth_estimateGas changed while it ran");
      return value;
    });
  }

  /** Starts queued jobs on idle workers, skipping users who already have one running. */
  private pump(): void {
    for (const slot of this.slots) {
      if (slot.job !== undefined) continue;
      const index = this.queue.findIndex((job) => !this.running.has(job.user));
      if (index < 0) return;
      const [job] = this.queue.splice(index, 1);
      this.start(slot, job!);
    }
  }

  private start(slot: Slot, job: Job): void {
    const worker = this.ensureWorker(slot);
    slot.job = job;
    this.running.add(job.user);
    worker.ref();
    slot.timer = setTimeout(() => {
      void this.retire(slot, new RpcError(RpcErrorCodes.InternalError, `internal error: the call worker did not start within ${WORKER_START_TIMEOUT_MS} ms`));
    }, WORKER_START_TIMEOUT_MS);
    worker.postMessage(job.message);
  }

  /** The worker has its VM and runs the job: the call's wall-clock limit starts now. */
  private started(slot: Slot, message: StartedMessage): void {
    if (slot.job?.id !== message.job) return;
    clearTimeout(slot.timer);
    slot.timer = setTimeout(() => {
      // The worker may be deep in a loop of opcodes: only terminating it stops it.
      void this.retire(slot, new RpcError(RpcErrorCodes.ServerError, `execution aborted (timeout = ${this.timeoutMs}ms)`));
    }, this.timeoutMs);
  }

  private ensureWorker(slot: Slot): Worker {
    if (slot.worker !== undefined) return slot.worker;
    const { port1, port2 } = new MessageChannel();
    const data: CallWorkerData = { replyPort: port2, flag: slot.flag.buffer as SharedArrayBuffer };
    const worker = new Worker(new URL("./call-worker.js", import.meta.url), { workerData: data, transferList: [port2] });
    worker.unref();
    port1.unref();
    worker.on("message", (message: ReadMessage | StartedMessage | CallOutcome) => {
      if (slot.worker !== worker) return;
      if (message.type === "read") this.answerRead(slot, message);
      else if (message.type === "started") this.started(slot, message);
      else this.finish(slot, message);
    });
    const lost = (reason: string) => {
      if (slot.worker === worker) void this.retire(slot, new RpcError(RpcErrorCodes.InternalError, `internal error: the call worker ${reason}`));
    };
    worker.on("error", (error) => lost(`failed: ${error.message}`));
    worker.on("exit", (code) => lost(`exited (code ${code})`));
    slot.worker = worker;
    slot.replyPort = port1;
    return worker;
  }

  /** A worker's read of the request's state: answered from the request's transaction, recorded there. */
  private answerRead(slot: Slot, message: ReadMessage): void {
    let value: Uint8Array | null = null;
    const job = slot.job;
    if (job !== undefined && job.id === message.job && READABLE_MAPS.has(message.map)) {
      try {
        const found = job.tx.get(message.map, message.key);
        // A copy: cloning a view would copy the whole pooled buffer behind it.
        if (found !== undefined) value = new Uint8Array(found);
      } catch {
        value = null; // the request is gone (its transaction closed); the job ends with its worker
      }
    }
    const reply: ReadReply = { value };
    slot.replyPort!.postMessage(reply);
    Atomics.store(slot.flag, 0, 1);
    Atomics.notify(slot.flag, 0);
  }

  private finish(slot: Slot, outcome: CallOutcome): void {
    const job = slot.job;
    if (job === undefined || job.id !== outcome.job) return;
    this.release(slot);
    if (outcome.ok) job.resolve(outcome.value);
    else job.reject(new RpcError(outcome.code, outcome.message, outcome.data));
    this.pump();
  }

  private release(slot: Slot): void {
    clearTimeout(slot.timer);
    slot.timer = undefined;
    if (slot.job !== undefined) this.running.delete(slot.job.user);
    slot.job = undefined;
    slot.worker?.unref();
  }

  /** Terminates a slot's worker (a new one starts with its next job) and fails its job. */
  private async retire(slot: Slot, error: RpcError): Promise<void> {
    const job = slot.job;
    const worker = slot.worker;
    this.release(slot);
    slot.worker = undefined;
    slot.replyPort?.close();
    slot.replyPort = undefined;
    job?.reject(error);
    this.pump();
    if (worker !== undefined) await worker.terminate();
    // Start the replacement now (unless closing), so the next call does not wait for ethereumjs to load.
    if (!this.closing && slot.worker === undefined) this.ensureWorker(slot);
  }
}
