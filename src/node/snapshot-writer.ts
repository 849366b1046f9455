// The main thread's side of the snapshot worker (snapshot-worker.ts): hands it a captured state
// (its buffers transferred, not copied) and gets back the snapshot's digest once the body is in
// a temporary file. The worker starts at a snapshot and stops once it has been idle for
// SNAPSHOT_WORKER_IDLE_MS: its heap grew with the state it encoded (~50 MB of RSS for a
// 100k-key state), which the node gives back between snapshots. If it dies (a
// crash, out of memory) every request in flight fails, its temporary files are removed, and the
// next request starts a new one. The node keeps running either way.
import { unlink } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import type { PackedState } from "../kv/index.js";
import { CocoError, WORKER_RESOURCE_LIMITS, assert } from "../util/index.js";

export interface SnapshotWorkerRequest {
  readonly id: number;
  readonly packed: PackedState;
  readonly view: number;
  readonly views: readonly { view: number; seqno: number }[];
  readonly tree: readonly Uint8Array[];
  readonly ledgerSecret: Uint8Array;
  /** Where the body goes; the caller renames it once the evidence transaction names the file. */
  readonly temporaryPath: string;
  readonly durable: boolean;
  readonly randomness?: { keyNonce: Uint8Array; iv: Uint8Array };
}

export type SnapshotWorkerReply =
  | { id: number; ok: true; digest: Uint8Array; bytes: number; timings: { encodeMs: number; sealMs: number; writeMs: number } }
  | { id: number; ok: false; error: { message: string; code: string } };

export type SnapshotWritten = Extract<SnapshotWorkerReply, { ok: true }>;

/** Requests in flight at once: the snapshotter sends one at a time; more is a bug. */
const REQUESTS_IN_FLIGHT_MAX = 4;
/**
 * An idle worker stops after this long. Since the worker loads only the modules it runs, a cold
 * one takes ~310 ms of CPU for a 100k-key snapshot against ~140 ms warm (it was ~750 against
 * ~200 ms when it loaded the X.509 and consensus code too): ~1.7 µs per transaction at the
 * default `tx_count`, for ~40-50 MB less RSS between snapshots on a busy node (measured:
 * docs/architecture.md, "Memory"). One second lets a snapshot that was due while another was
 * in flight reuse the worker.
 */
export const SNAPSHOT_WORKER_IDLE_MS = 1_000;

interface InFlight {
  readonly temporaryPath: string;
  resolve(reply: SnapshotWritten): void;
  reject(error: Error): void;
}

export class SnapshotWriter {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly inFlight = new Map<number, InFlight>();
  private closed = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly idleMs = SNAPSHOT_WORKER_IDLE_MS) {}
  /** Workers started, for tests: a new one after each idle stop. */
  startedCount = 0;

  /** Encodes, seals and writes a captured state to `temporaryPath`; resolves with its digest. */
  write(job: Omit<SnapshotWorkerRequest, "id">): Promise<SnapshotWritten> {
    if (this.closed) return Promise.reject(new CocoError("SnapshotWriterClosed", "The node is stopping: no snapshot is written.", 503));
    assert(this.inFlight.size < REQUESTS_IN_FLIGHT_MAX, `at most ${REQUESTS_IN_FLIGHT_MAX} snapshot requests in flight`);
    clearTimeout(this.idleTimer);
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    const request: SnapshotWorkerRequest = { ...job, id };
    return new Promise<SnapshotWritten>((resolve, reject) => {
      this.inFlight.set(id, { temporaryPath: job.temporaryPath, resolve, reject });
      worker.ref();
      // The packed buffers move to the worker: the main thread no longer holds the copy.
      worker.postMessage(request, [...job.packed.chunks, job.packed.overrides]);
    });
  }

  /** Stops the worker; requests in flight fail and their temporary files are removed. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    const worker = this.worker;
    if (worker === undefined) return;
    await worker.terminate();
    await this.failAll(new CocoError("SnapshotWriterClosed", "The node stopped while a snapshot was being written.", 503), worker);
  }

  /** @internal Tests: stops the worker as a crash would, mid-request. */
  async crashWorkerForTest(): Promise<void> {
    await this.worker?.terminate();
  }

  /** Stops the idle worker; its events no longer concern this writer (a new one may start at once). */
  private stopIdle(): void {
    const worker = this.worker;
    if (worker === undefined || this.inFlight.size > 0) return;
    this.worker = undefined;
    worker.removeAllListeners();
    worker.on("error", () => undefined);
    void worker.terminate();
  }

  private start(): Worker {
    const worker = new Worker(new URL("./snapshot-worker.js", import.meta.url), { resourceLimits: WORKER_RESOURCE_LIMITS });
    this.startedCount++;
    this.worker = worker;
    worker.on("message", (reply: SnapshotWorkerReply) => {
      const waiting = this.inFlight.get(reply.id);
      assert(waiting !== undefined, `snapshot worker answered request ${reply.id}, which is not in flight`);
      this.inFlight.delete(reply.id);
      if (this.inFlight.size === 0) {
        worker.unref();
        clearTimeout(this.idleTimer);
        this.idleTimer = setTimeout(() => this.stopIdle(), this.idleMs).unref();
      }
      if (reply.ok) waiting.resolve(reply);
      else waiting.reject(new CocoError(reply.error.code === "ENOSPC" ? "SnapshotDiskFull" : "SnapshotWriteFailed", `Snapshot not written: ${reply.error.message}`, 500));
    });
    worker.on("error", (error) => void this.failAll(new CocoError("SnapshotWorkerFailed", `The snapshot worker failed: ${error.message}`, 500), worker));
    worker.on("exit", (code) => void this.failAll(new CocoError("SnapshotWorkerFailed", `The snapshot worker exited (code ${code}).`, 500), worker));
    worker.unref();
    return worker;
  }

  private async failAll(error: Error, worker: Worker): Promise<void> {
    if (this.worker === worker) this.worker = undefined;
    const failed = Array.from(this.inFlight.values());
    this.inFlight.clear();
    // The worker may have died mid-write: its temporary files are not snapshots; remove them.
    for (const request of failed) await unlink(request.temporaryPath).catch(() => undefined);
    for (const request of failed) request.reject(error);
  }
}
