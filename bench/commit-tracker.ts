// Watches the node's commit point by polling `GET /node/commit` on its own keep-alive
// connection. It records only advances (time first seen, seqno); a write with seqno s is
// Committed at the first observation whose seqno >= s, so commit times carry the polling
// interval (plus one round trip) as their resolution.
import { performance } from "node:perf_hooks";
import { KeepAliveClient } from "./keep-alive-client.js";
import type { TlsTarget } from "./pipelined-client.js";

export interface CommitObservations {
  /** performance.now() ms at which each advance was first seen, increasing. */
  readonly timesMs: number[];
  readonly seqnos: number[];
  readonly views: number[];
  readonly polls: number;
  readonly pollErrors: number;
  readonly pollIntervalMs: number;
  /** Set when polling stopped early because the node kept failing. */
  readonly fatalError: string | null;
}

export class CommitTracker {
  private readonly timesMs: number[] = [];
  private readonly seqnos: number[] = [];
  private readonly views: number[] = [];
  private polls = 0;
  private pollErrors = 0;
  private running = true;
  private fatalError: string | null = null;
  private loop: Promise<void> = Promise.resolve();

  private constructor(private readonly client: KeepAliveClient, private readonly pollIntervalMs: number) {}

  static async start(target: TlsTarget, pollIntervalMs: number): Promise<CommitTracker> {
    const tracker = new CommitTracker(await KeepAliveClient.connect(target), pollIntervalMs);
    await tracker.pollOnce();
    tracker.loop = tracker.run();
    return tracker;
  }

  /** Latest commit seqno seen (0 before any). */
  get committedSeqno(): number {
    return this.seqnos.length === 0 ? 0 : this.seqnos[this.seqnos.length - 1]!;
  }

  /** Resolves once the commit reaches `seqno`, or after `timeoutMs`; true when reached. */
  async waitFor(seqno: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.committedSeqno < seqno && performance.now() < deadline && this.running) {
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.committedSeqno >= seqno;
  }

  async stop(): Promise<CommitObservations> {
    this.running = false;
    await this.loop;
    this.client.close();
    return {
      timesMs: this.timesMs,
      seqnos: this.seqnos,
      views: this.views,
      polls: this.polls,
      pollErrors: this.pollErrors,
      pollIntervalMs: this.pollIntervalMs,
      fatalError: this.fatalError,
    };
  }

  private async run(): Promise<void> {
    let consecutiveErrors = 0;
    while (this.running) {
      const sentMs = performance.now();
      try {
        await this.pollOnce();
        consecutiveErrors = 0;
      } catch (error) {
        this.pollErrors++;
        if (++consecutiveErrors >= 10) {
          // Give up polling rather than crash the run; the report shows the errors.
          this.fatalError = `GET /node/commit keeps failing: ${(error as Error).message}`;
          return;
        }
      }
      const waitMs = sentMs + this.pollIntervalMs - performance.now();
      await new Promise((r) => setTimeout(r, Math.max(0, waitMs)));
    }
  }

  private async pollOnce(): Promise<void> {
    this.polls++;
    const response = await this.client.get("/node/commit");
    const seenMs = performance.now();
    const txId = (response.json as { transaction_id?: unknown } | null)?.transaction_id;
    if (response.status !== 200 || typeof txId !== "string") {
      throw new Error(`GET /node/commit answered ${response.status}: ${response.text.slice(0, 200)}`);
    }
    const dot = txId.indexOf(".");
    const view = Number(txId.slice(0, dot));
    const seqno = Number(txId.slice(dot + 1));
    if (seqno > this.committedSeqno) {
      this.timesMs.push(seenMs);
      this.seqnos.push(seqno);
      this.views.push(view);
    }
  }
}

/** Time the commit first covered `seqno` (binary search), or NaN if never seen. */
export function commitTimeMs(observations: CommitObservations, seqno: number): number {
  const { seqnos, timesMs } = observations;
  let lo = 0;
  let hi = seqnos.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (seqnos[mid]! >= seqno) hi = mid;
    else lo = mid + 1;
  }
  return lo < seqnos.length ? timesMs[lo]! : NaN;
}
