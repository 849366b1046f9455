// The ledger as the node uses it: the same operations as `Ledger`, with the files owned by a
// worker thread. Appends are buffered here; a flush ships the whole buffered batch to the
// worker in one message (one transferred buffer), which writes and fsyncs it. The main
// thread never waits on the disk, and the disk never waits on the main thread.
import { Worker } from "node:worker_threads";
import { CocoError } from "../util/errors.js";
import type { Durability, LedgerLogger } from "./recovery.js";
import { packEntries, unpackEntries, type SuccessReply, type WorkerReply, type WorkerRequest } from "./worker-protocol.js";

/** What the transaction engine needs from a ledger (implemented by Ledger and ThreadedLedger). */
export interface LedgerStore {
  readonly lastSeqno: number;
  readonly durableSeqno: number;
  append(entry: Buffer, seqno: number, isSignature: boolean): void;
  flush(): Promise<number>;
  commit(seqno: number): Promise<void>;
  truncate(seqno: number): Promise<void>;
  read(seqno: number): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * What ThreadedLedger needs of its worker: node's Worker in production; the deterministic
 * simulator (src/node/sim) passes an in-memory disk that answers the same protocol.
 */
export interface LedgerWorkerPort {
  postMessage(request: WorkerRequest, transfer?: ArrayBuffer[]): void;
  on(event: "message", listener: (reply: WorkerReply) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "exit", listener: (code: number) => void): unknown;
  terminate(): Promise<number>;
}

type Pending = { resolve: (reply: SuccessReply) => void; reject: (error: Error) => void };
type RequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, "id"> : never) : never;

export class ThreadedLedger implements LedgerStore {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffered: Buffer[] = [];
  private bufferedFirst: number;
  private signatures: number[] = [];
  private last: number;
  private durable: number;
  private chain: Promise<number> = Promise.resolve(0);
  private failure: Error | undefined;
  /** Bumped by every truncation: a flush shipped before one cannot vouch for what follows it. */
  private truncations = 0;

  private constructor(private readonly worker: LedgerWorkerPort, lastSeqno: number, durableSeqno: number, private readonly logger: LedgerLogger) {
    this.last = lastSeqno;
    this.durable = durableSeqno;
    this.bufferedFirst = lastSeqno + 1;
  }

  static async open(dir: string, options: { chunkSizeBytes?: number; durability?: Durability; logger?: LedgerLogger } = {}): Promise<{ ledger: ThreadedLedger; entries: Buffer[] }> {
    const logger = options.logger ?? { info() {}, warn() {} };
    const worker = new Worker(new URL("./worker.js", import.meta.url));
    const ledger = new ThreadedLedger(worker as LedgerWorkerPort, 0, 0, logger);
    worker.on("message", (reply: WorkerReply) => ledger.onReply(reply));
    worker.on("error", (error) => ledger.fail(error));
    worker.on("exit", (code) => ledger.fail(new Error(`ledger worker exited with code ${code}`)));
    let reply: SuccessReply;
    try {
      reply = await ledger.request({ op: "open", dir, chunkSizeBytes: options.chunkSizeBytes, durability: options.durability });
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    ledger.last = reply.lastSeqno;
    ledger.durable = reply.durableSeqno;
    ledger.bufferedFirst = reply.lastSeqno + 1;
    return { ledger, entries: unpackEntries(reply.bytes!, reply.lengths!) };
  }

  /** A ledger over an already opened worker-protocol port (the simulator's disk). */
  static overPort(port: LedgerWorkerPort, lastSeqno: number, durableSeqno: number, logger: LedgerLogger): ThreadedLedger {
    const ledger = new ThreadedLedger(port, lastSeqno, durableSeqno, logger);
    port.on("message", (reply: WorkerReply) => ledger.onReply(reply));
    port.on("error", (error: Error) => ledger.fail(error));
    port.on("exit", (code: number) => ledger.fail(new Error(`ledger worker exited with code ${code}`)));
    return ledger;
  }

  get lastSeqno(): number { return this.last; }
  get durableSeqno(): number { return this.durable; }

  append(entry: Buffer, seqno: number, isSignature: boolean): void {
    if (seqno !== this.last + 1) throw new Error(`assertion failed: appended seqno ${seqno} follows last seqno ${this.last}`);
    this.buffered.push(entry);
    if (isSignature) this.signatures.push(seqno);
    this.last = seqno;
  }

  /**
   * Ships everything buffered to the worker and resolves once it is durable. The batch is taken
   * now, not when the queue reaches it: a flush queued behind another must not pick up entries
   * appended after a later truncate(), or they would reach the worker before that truncation.
   */
  flush(): Promise<number> {
    const batch = this.takeBuffered();
    const generation = this.truncations;
    this.chain = this.chain.then(() => this.ship(batch, generation), () => this.ship(batch, generation));
    return this.chain;
  }

  private takeBuffered(): { firstSeqno: number; entries: Buffer[]; signatures: number[] } | undefined {
    if (this.buffered.length === 0) return undefined;
    const batch = { firstSeqno: this.bufferedFirst, entries: this.buffered, signatures: this.signatures };
    this.buffered = [];
    this.signatures = [];
    this.bufferedFirst = batch.firstSeqno + batch.entries.length;
    return batch;
  }

  private async ship(batch: { firstSeqno: number; entries: Buffer[]; signatures: number[] } | undefined, generation: number): Promise<number> {
    if (this.failure) throw this.failure;
    // Nothing new, but a truncation left entries the worker wrote uncounted: ask it where its
    // durable point is (an empty append), or the caller's flush loop would spin on this.
    if (batch === undefined && (this.durable >= this.last || generation !== this.truncations)) return this.durable;
    const { bytes, lengths } = packEntries(batch?.entries ?? []);
    const reply = await this.request({
      op: "append", firstSeqno: batch?.firstSeqno ?? this.last + 1, bytes, lengths, signatures: batch?.signatures ?? [], flush: true,
    }, [bytes]);
    // A truncation requested since this flush was asked for already lowered `durable`; entries
    // appended after it are only durable once a later flush says so.
    if (generation === this.truncations) this.durable = Math.max(this.durable, Math.min(reply.durableSeqno, this.last));
    return this.durable;
  }

  /**
   * Ordered with flushes and truncations, like every mutation: a commit sent ahead of a
   * truncation still waiting for an earlier flush would mark the old view's entries committed
   * and make the worker refuse the truncation (a ledger fork on disk).
   */
  async commit(seqno: number): Promise<void> {
    const committed = this.chain.then(
      async () => { await this.request({ op: "commit", seqno }); return this.durable; },
      async () => { await this.request({ op: "commit", seqno }); return this.durable; });
    this.chain = committed;
    await committed;
  }

  async truncate(seqno: number): Promise<void> {
    if (seqno >= this.last) return;
    if (seqno >= this.bufferedFirst - 1) {
      this.buffered.length = seqno - this.bufferedFirst + 1;
    } else {
      this.buffered = [];
      this.bufferedFirst = seqno + 1;
    }
    this.signatures = this.signatures.filter((s) => s <= seqno);
    this.last = seqno;
    this.durable = Math.min(this.durable, seqno);
    this.truncations++;
    // Ordered with the flushes: after those already shipped, before any later one.
    const truncated = this.chain.then(
      async () => { await this.request({ op: "truncate", seqno }); return this.durable; },
      async () => { await this.request({ op: "truncate", seqno }); return this.durable; });
    this.chain = truncated;
    await truncated;
  }

  async read(seqno: number): Promise<Buffer> {
    if (seqno >= this.bufferedFirst && seqno <= this.last) return this.buffered[seqno - this.bufferedFirst]!;
    const reply = await this.request({ op: "read", seqno });
    return unpackEntries(reply.bytes!, reply.lengths!)[0]!;
  }

  async close(): Promise<void> {
    if (!this.failure) {
      await this.flush();
      await this.request({ op: "close" });
    }
    this.failure ??= new CocoError("LedgerClosed", "The ledger is closed.", 503);
    await this.worker.terminate();
  }

  private request(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<SuccessReply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...body, id } as WorkerRequest, transfer);
    });
  }

  private onReply(reply: WorkerReply): void {
    if ("log" in reply) {
      this.logger[reply.log](reply.obj, reply.msg);
      return;
    }
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    if (reply.ok) pending.resolve(reply);
    else pending.reject(reply.isCocoError ? new CocoError(reply.code, reply.message, reply.status) : new Error(reply.message));
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}
