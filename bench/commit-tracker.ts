// Watches the node's commit point by polling `GET /node/commit` on its own keep-alive
// connection. Polls are pipelined: one is sent every interval without waiting for the last
// answer, so a busy node that answers late still yields an observation every interval. Only
// advances are recorded (time first seen, seqno); a write with seqno s is Committed at the
// first observation whose seqno >= s. Commit times are therefore upper bounds, late by up to
// one interval plus the time the answer spent leaving the node.
import type * as tls from "node:tls";
import { performance } from "node:perf_hooks";
import { connectTls } from "./keep-alive-client.js";
import { HttpResponseParser, type ParsedResponse } from "./http-response-parser.js";
import type { TlsTarget } from "./pipelined-client.js";

/** Bound on polls awaiting an answer; past it the poller waits rather than piling up. */
const POLLS_IN_FLIGHT_MAX = 64;

export interface CommitObservations {
  /** performance.now() ms at which each advance was first seen, increasing. */
  readonly timesMs: number[];
  readonly seqnos: number[];
  readonly views: number[];
  readonly polls: number;
  readonly pollErrors: number;
  readonly pollIntervalMs: number;
  /** Send → answer of each poll: how long a busy node takes to answer a read. */
  readonly pollRoundTripsMs: readonly number[];
  /** Set when polling stopped early because the node kept failing. */
  readonly fatalError: string | null;
}

export class CommitTracker {
  private readonly timesMs: number[] = [];
  private readonly seqnos: number[] = [];
  private readonly views: number[] = [];
  private readonly pollRoundTripsMs: number[] = [];
  private readonly pollSentMs: number[] = [];
  private pollSentHead = 0;
  private polls = 0;
  private pollErrors = 0;
  private fatalError: string | null = null;
  private readonly parser = new HttpResponseParser();
  private timer: NodeJS.Timeout | null = null;
  private readonly request: string;

  private constructor(private readonly socket: tls.TLSSocket, target: TlsTarget, private readonly pollIntervalMs: number) {
    this.request = `GET /node/commit HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n\r\n`;
    socket.on("data", (data: Buffer) => {
      try {
        this.parser.push(data, (r) => this.onAnswer(r));
      } catch (error) {
        this.stopPolling(`unparseable answer to GET /node/commit: ${(error as Error).message}`);
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => this.stopPolling("the /node/commit connection was closed by the node"));
  }

  static async start(target: TlsTarget, pollIntervalMs: number): Promise<CommitTracker> {
    const tracker = new CommitTracker(await connectTls(target), target, pollIntervalMs);
    // A node that has just started may not have committed anything yet: poll until it has.
    const deadline = performance.now() + 5_000;
    while (tracker.seqnos.length === 0 && tracker.fatalError === null && performance.now() < deadline) {
      if (tracker.pollSentMs.length === tracker.pollSentHead) tracker.poll();
      await new Promise((r) => setTimeout(r, 5));
    }
    if (tracker.seqnos.length === 0) {
      await tracker.stop();
      throw new Error(`GET /node/commit gave no commit within 5 s${tracker.fatalError ? `: ${tracker.fatalError}` : ""}`);
    }
    tracker.timer = setInterval(() => tracker.poll(), pollIntervalMs);
    return tracker;
  }

  /** Latest commit seqno seen (0 before any). */
  get committedSeqno(): number {
    return this.seqnos.length === 0 ? 0 : this.seqnos[this.seqnos.length - 1]!;
  }

  /** Resolves once the commit reaches `seqno`, or after `timeoutMs`; true when reached. */
  async waitFor(seqno: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.committedSeqno < seqno && performance.now() < deadline && this.fatalError === null) {
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.committedSeqno >= seqno;
  }

  async stop(): Promise<CommitObservations> {
    this.stopPolling(null);
    this.socket.destroy();
    return {
      timesMs: this.timesMs,
      seqnos: this.seqnos,
      views: this.views,
      polls: this.polls,
      pollErrors: this.pollErrors,
      pollIntervalMs: this.pollIntervalMs,
      pollRoundTripsMs: this.pollRoundTripsMs,
      fatalError: this.fatalError,
    };
  }

  private poll(): void {
    if (this.pollSentMs.length - this.pollSentHead >= POLLS_IN_FLIGHT_MAX || this.socket.destroyed) return;
    this.polls++;
    this.pollSentMs.push(performance.now());
    this.socket.write(this.request);
  }

  private onAnswer(response: ParsedResponse): void {
    const seenMs = performance.now();
    const sentMs = this.pollSentMs[this.pollSentHead++]!;
    this.pollRoundTripsMs.push(seenMs - sentMs);
    const txId = response.status === 200 ? parseTransactionId(response.body) : null;
    if (txId === null) {
      this.pollErrors++;
      if (this.pollErrors >= 10 && this.seqnos.length === 0) {
        this.stopPolling(`GET /node/commit answered ${response.status}: ${response.body.toString("utf8").slice(0, 200)}`);
      }
      return;
    }
    if (txId.seqno > this.committedSeqno) {
      this.timesMs.push(seenMs);
      this.seqnos.push(txId.seqno);
      this.views.push(txId.view);
    }
  }

  private stopPolling(reason: string | null): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (reason !== null) this.fatalError ??= reason;
  }
}

function parseTransactionId(body: Buffer): { view: number; seqno: number } | null {
  try {
    const txId = (JSON.parse(body.toString("utf8")) as { transaction_id?: unknown }).transaction_id;
    const match = typeof txId === "string" ? /^(\d+)\.(\d+)$/.exec(txId) : null;
    return match ? { view: Number(match[1]), seqno: Number(match[2]) } : null;
  } catch {
    return null;
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
