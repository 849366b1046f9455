// Where a write's commit latency goes, seen from inside the node: the time each transaction was
// executed and the times the pipeline's watermarks (signature reserved and signed, flushed,
// durable, committed by consensus, commit point recorded) passed each seqno. A benchmark
// diagnostic, off unless COCO_LATENCY_TRACE_DIR names a directory: the node then writes
// `latency-trace-<nodeId>.json` there when it stops, and `npm run bench -- --trace-latency`
// turns the files of every node into a per-stage breakdown (bench/latency-breakdown.ts).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { constants as perfConstants, performance, PerformanceObserver } from "node:perf_hooks";
import { assert } from "../util/index.js";

/** The environment variable that turns tracing on: the directory the trace files go to. */
export const LATENCY_TRACE_ENV = "COCO_LATENCY_TRACE_DIR";

/**
 * The watermarks, in the order a write meets them. Each records (seqno, time) whenever it moves
 * up; the time a given seqno passed a stage is that of the first record at or above it.
 */
export const TRACE_STAGES = [
  /** Primary: a signature transaction's seqno is reserved (it will cover everything before it). */
  "signatureReserved",
  /** Primary: the signature is signed and handed to consensus. */
  "signatureProposed",
  /** Any node: entries handed to the ledger (on a backup: received from the primary and applied). */
  "appended",
  /** Any node: a flush (write and fdatasync) posted to the ledger worker covers entries up to here. */
  "flushPosted",
  /** Any node: the ledger holds entries durably up to here. */
  "durable",
  /** Any node: consensus's commit point (a primary: a majority holds it; a backup: the primary said so). */
  "consensusCommit",
  /** Any node: the commit point is recorded on disk; the node now reports it Committed. */
  "commitRecorded",
] as const;
export type TraceStage = (typeof TRACE_STAGES)[number];

/** Transactions whose execution time is kept; later ones are not traced (~8 bytes each). */
const EXECUTED_MAX = 4_000_000;
/** Watermark moves kept per stage. */
const MARKS_MAX = 2_000_000;

/** Milliseconds since the epoch, sub-millisecond: comparable across the processes of one machine. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

interface Marks { seqnos: number[]; timesMs: number[] }

/** A pause of the main thread: a garbage collection, or a turn that kept timers waiting. */
export interface PauseRecord {
  /** Epoch ms at which it started. */
  readonly atMs: number;
  readonly durationMs: number;
  /** "gc-minor", "gc-major", "gc-incremental", "gc-weakcb", or "turn" (a timer ran this late). */
  readonly kind: string;
}

/** Pauses kept (each a few dozen bytes). */
const PAUSES_MAX = 200_000;
/** The stall probe's period, and how late it must run to count as a stalled turn. */
const STALL_PROBE_MS = 5;
const STALL_MIN_MS = 10;

function gcKind(kind: number | undefined): string {
  switch (kind) {
    case perfConstants.NODE_PERFORMANCE_GC_MINOR: return "gc-minor";
    case perfConstants.NODE_PERFORMANCE_GC_MAJOR: return "gc-major";
    case perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL: return "gc-incremental";
    case perfConstants.NODE_PERFORMANCE_GC_WEAKCB: return "gc-weakcb";
    default: return "gc";
  }
}

export interface LatencyTraceFile {
  readonly nodeId: string;
  readonly stages: Record<TraceStage, Marks>;
  /** Execution time (epoch ms) of seqno `firstSeqno + i`, as a base64 Float64Array; NaN where none. */
  readonly executed: { readonly firstSeqno: number; readonly timesMsBase64: string };
  /** Main-thread pauses: every GC, and every turn that made a 5 ms timer run 10 ms or more late. */
  readonly pauses?: readonly PauseRecord[];
}

export class LatencyTrace {
  private readonly marks = new Map<TraceStage, Marks>(TRACE_STAGES.map((s) => [s, { seqnos: [], timesMs: [] }]));
  private executedFirst = 0;
  private executedTimes = new Float64Array(1 << 16).fill(NaN);
  private executedCount = 0;
  private readonly pauses: PauseRecord[] = [];

  constructor(private readonly nodeId: string) {}

  /** Record GC pauses and stalled turns of this thread until the process exits. */
  watchPauses(): void {
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const detail = (entry as { detail?: { kind?: number } }).detail;
        this.pause({ atMs: performance.timeOrigin + entry.startTime, durationMs: entry.duration, kind: gcKind(detail?.kind) });
      }
    });
    observer.observe({ entryTypes: ["gc"] });
    let expected = performance.now() + STALL_PROBE_MS;
    const probe = setInterval(() => {
      const now = performance.now();
      const late = now - expected;
      if (late >= STALL_MIN_MS) this.pause({ atMs: performance.timeOrigin + expected, durationMs: late, kind: "turn" });
      expected = now + STALL_PROBE_MS;
    }, STALL_PROBE_MS);
    probe.unref();
  }

  private pause(record: PauseRecord): void {
    if (this.pauses.length < PAUSES_MAX) this.pauses.push(record);
  }

  /** From the environment: a trace that writes itself when the process exits, or undefined. */
  static fromEnvironment(nodeId: string): LatencyTrace | undefined {
    const dir = process.env[LATENCY_TRACE_ENV];
    if (dir === undefined || dir === "") return undefined;
    const trace = new LatencyTrace(nodeId);
    trace.watchPauses();
    process.once("exit", () => {
      try {
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, `latency-trace-${nodeId.slice(0, 16)}.json`), JSON.stringify(trace.toFile()));
      } catch {
        // A diagnostic: a node must exit whatever happens to its trace.
      }
    });
    return trace;
  }

  /** The primary executed transaction `seqno` (its answer leaves in this turn). */
  executed(seqno: number): void {
    if (this.executedCount === 0) this.executedFirst = seqno;
    const index = seqno - this.executedFirst;
    if (index < 0 || index >= EXECUTED_MAX) return;
    if (index >= this.executedTimes.length) {
      const bigger = new Float64Array(Math.min(EXECUTED_MAX, this.executedTimes.length * 2)).fill(NaN);
      bigger.set(this.executedTimes);
      this.executedTimes = bigger;
    }
    this.executedTimes[index] = epochMs();
    this.executedCount = Math.max(this.executedCount, index + 1);
  }

  /** `stage` has reached `seqno` now (ignored unless it moved up). */
  mark(stage: TraceStage, seqno: number): void {
    const marks = this.marks.get(stage)!;
    const last = marks.seqnos.length === 0 ? 0 : marks.seqnos[marks.seqnos.length - 1]!;
    if (seqno <= last || marks.seqnos.length >= MARKS_MAX) return;
    marks.seqnos.push(seqno);
    marks.timesMs.push(epochMs());
  }

  toFile(): LatencyTraceFile {
    const stages = Object.fromEntries([...this.marks]) as Record<TraceStage, Marks>;
    const executed = this.executedTimes.subarray(0, this.executedCount);
    assert(executed.length === this.executedCount, "the executed times cover every traced seqno");
    return {
      nodeId: this.nodeId,
      stages,
      executed: { firstSeqno: this.executedFirst, timesMsBase64: Buffer.from(executed.buffer, executed.byteOffset, executed.byteLength).toString("base64") },
      pauses: this.pauses,
    };
  }
}
