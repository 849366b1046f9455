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

  private constructor(private readonly worker: Worker, lastSeqno: number, durableSeqno: number, private readonly logger: LedgerLogger) {
    this.last = lastSeqno;
    this.durable = durableSeqno;
    this.bufferedFirst = lastSeqno + 1;
  }

  static async open(dir: string, options: { chunkSizeBytes?: number; durability?: Durability; logger?: LedgerLogger } = {}): Promise<{ ledger: ThreadedLedger; entries: Buffer[] }> {
    const logger = options.logger ?? { info() {}, warn() {} };
    const worker = new Worker(new URL("./worker.js", import.meta.url));
    const ledger = new ThreadedLedger(worker, 0, 0, logger);
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

  get lastSeqno(): number { return this.last; }
  get durableSeqno(): number { return this.durable; }

  append(entry: Buffer, seqno: number, isSignature: boolean): void {
    if (seqno !== this.last + 1) throw new Error(`assertion failed: appended seqno ${seqno} follows last seqno ${this.last}`);
    this.buffered.push(entry);
    if (isSignature) this.signatures.push(seqno);
    this.last = seqno;
  }

  /** Ships everything buffered to the worker and resolves once it is durable. */
  flush(): Promise<number> {
    this.chain = this.chain.then(() => this.flushOnce(), () => this.flushOnce());
    return this.chain;
  }

  private async flushOnce(): Promise<number> {
    if (this.failure) throw this.failure;
    if (this.buffered.length === 0) return this.durable;
    const batch = this.buffered;
    const firstSeqno = this.bufferedFirst;
    const signatures = this.signatures;
    this.buffered = [];
    this.signatures = [];
    this.bufferedFirst = firstSeqno + batch.length;
    const { bytes, lengths } = packEntries(batch);
    const generation = this.truncations;
    const reply = await this.request({ op: "append", firstSeqno, bytes, lengths, signatures, flush: true }, [bytes]);
    // A truncation requested meanwhile already lowered `durable`; entries appended after it
    // are only durable once a later flush says so.
    if (generation === this.truncations) this.durable = Math.max(this.durable, Math.min(reply.durableSeqno, this.last));
    return this.durable;
  }

  async commit(seqno: number): Promise<void> {
    await this.request({ op: "commit", seqno });
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
