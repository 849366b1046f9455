// Sender recovery on a worker thread. Recovering an Ethereum sender (hashing the unsigned
// transaction, secp256k1 public-key recovery, ~0.15 ms) is the largest cost of admitting a
// transaction that does not need the chain's state, so the requests' transactions are sent to
// one worker, a whole JSON-RPC batch per message, while the main thread executes others. The
// worker answers the transaction hash and sender public key computed by the same ethereumjs code;
// the main thread seeds them into the decoded transaction's cache. Whatever goes wrong (no worker,
// a failed decode or signature) the main thread simply does the work itself, as before, with the
// same errors: the worker can only save time, never change an answer.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { RecoveredSender, RecoveryRequest, RecoveryResponse } from "./sender-worker.js";

export type { RecoveredSender } from "./sender-worker.js";

/** Transactions in flight to the worker at most; beyond it the main thread recovers senders itself. */
export const RECOVERY_IN_FLIGHT_MAX = 4096;

export class SenderRecovery {
  private worker: Worker | undefined;
  /**
   * On by default with two or more CPUs (the worker only helps when it has a core of its own);
   * COCO_EVM_SENDER_WORKER=0 or 1 forces it off or on.
   */
  private failed = process.env["COCO_EVM_SENDER_WORKER"] === "0"
    || (process.env["COCO_EVM_SENDER_WORKER"] !== "1" && availableParallelism() < 2);
  private nextId = 1;
  private inFlight = 0;
  private readonly pending = new Map<number, { resolve: (results: (RecoveredSender | null)[]) => void; count: number }>();

  /** Hashes and sender public keys of `raws`, null where the worker could not tell (the caller recovers). */
  async recover(chainId: number, raws: readonly Uint8Array[]): Promise<(RecoveredSender | null)[]> {
    const worker = this.start();
    if (worker === undefined || raws.length === 0 || this.inFlight + raws.length > RECOVERY_IN_FLIGHT_MAX) return raws.map(() => null);
    const id = this.nextId++;
    this.inFlight += raws.length;
    if (this.inFlight === raws.length) worker.ref();
    // One compact buffer, transferred: cloning each Buffer would copy the whole 8 KiB pool
    // slab it sits in (~80 µs per transaction).
    let total = 0;
    for (const raw of raws) total += raw.length;
    const bytes = new Uint8Array(total);
    const ends: number[] = [];
    let offset = 0;
    for (const raw of raws) {
      bytes.set(raw, offset);
      ends.push((offset += raw.length));
    }
    return new Promise((resolve) => {
      this.pending.set(id, { resolve, count: raws.length });
      const request: RecoveryRequest = { id, chainId, bytes, ends };
      worker.postMessage(request, [bytes.buffer]);
    });
  }

  private start(): Worker | undefined {
    if (this.worker !== undefined || this.failed) return this.worker;
    try {
      const worker = new Worker(new URL("./sender-worker.js", import.meta.url));
      worker.unref(); // referenced only while requests are in flight: never keeps a node alive
      worker.on("message", (response: RecoveryResponse) => this.settle(response.id, unpack(response)));
      worker.on("error", () => this.fail());
      worker.on("exit", () => this.fail());
      this.worker = worker;
    } catch {
      this.failed = true;
    }
    return this.worker;
  }

  private settle(id: number, results: (RecoveredSender | null)[] | undefined): void {
    const entry = this.pending.get(id);
    if (entry === undefined) return;
    this.pending.delete(id);
    this.inFlight -= entry.count;
    if (this.inFlight === 0) this.worker?.unref();
    entry.resolve(results ?? Array.from({ length: entry.count }, () => null));
  }

  /** The worker is gone: answer everything pending with "recover yourself", and stop using it. */
  private fail(): void {
    this.failed = true;
    this.worker = undefined;
    for (const id of [...this.pending.keys()]) this.settle(id, undefined);
  }

  /** Stops the worker (tests; a node exits without it as the worker is unreferenced when idle). */
  async close(): Promise<void> {
    const worker = this.worker;
    this.failed = true;
    this.worker = undefined;
    await worker?.terminate();
  }
}

function unpack(response: RecoveryResponse): (RecoveredSender | null)[] {
  return Array.from(response.ok, (ok, i) => ok === 1
    ? { hash: response.hashes.subarray(32 * i, 32 * i + 32), publicKey: response.publicKeys.subarray(64 * i, 64 * i + 64) }
    : null);
}

/** One per process: a worker's startup (~0.2 s, loading ethereumjs) is paid once. */
export const senderRecovery = new SenderRecovery();
