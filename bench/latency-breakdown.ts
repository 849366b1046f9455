// `--trace-latency`: where the commit latency of the measured writes went, stage by stage. Every
// node wrote a latency trace when it stopped (src/node/latency-trace.ts: the time each
// transaction executed on the primary and the times its watermarks passed each seqno); the
// bench knows when it sent each write, when the answer came and when it saw it committed on
// each node. All times are epoch milliseconds of the same machine's clock.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { LatencyTraceFile, PauseRecord, TraceStage } from "../src/node/latency-trace.js";
import { round, summariseLatencyMs, type LatencySummaryMs } from "./stats.js";

/** What the bench recorded for each write sent in a measured window (epoch ms; NaN = never). */
export interface WriteSamples {
  readonly windowStartEpochMs: number;
  readonly windowEndEpochMs: number;
  readonly seqno: Float64Array;
  readonly sendEpochMs: Float64Array;
  readonly responseEpochMs: Float64Array;
  /** Per node (node 0 first): when the bench first saw the write committed there. */
  readonly observedEpochMsByNode: readonly Float64Array[];
}

class Watermarks {
  constructor(private readonly seqnos: readonly number[], private readonly timesMs: readonly number[]) {}
  /** When this watermark first reached `seqno`, NaN if never. */
  at(seqno: number): number {
    const i = this.firstAtOrAbove(seqno);
    return i < this.seqnos.length ? this.timesMs[i]! : NaN;
  }
  /** The first seqno at or above `seqno` this watermark stopped at (the covering signature, for signature marks). */
  seqnoAt(seqno: number): number {
    const i = this.firstAtOrAbove(seqno);
    return i < this.seqnos.length ? this.seqnos[i]! : NaN;
  }
  /** Index of the first recorded seqno at or above `seqno` (binary search; seqnos ascend). */
  private firstAtOrAbove(seqno: number): number {
    let lo = 0;
    let hi = this.seqnos.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seqnos[mid]! >= seqno) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

interface NodeTrace {
  readonly nodeId: string;
  readonly stage: Record<TraceStage, Watermarks>;
  readonly executedFirst: number;
  readonly executed: Float64Array;
  readonly pauses: readonly PauseRecord[];
}

export function readLatencyTraces(dir: string): NodeTrace[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.startsWith("latency-trace-") && f.endsWith(".json"));
  } catch {
    return [];
  }
  return files.map((f) => {
    const file = JSON.parse(readFileSync(join(dir, f), "utf8")) as LatencyTraceFile;
    const bytes = Buffer.from(file.executed.timesMsBase64, "base64");
    const executed = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const stage = Object.fromEntries(Object.entries(file.stages).map(([name, m]) => [name, new Watermarks(m.seqnos, m.timesMs)])) as Record<TraceStage, Watermarks>;
    return { nodeId: file.nodeId, stage, executedFirst: file.executed.firstSeqno, executed, pauses: file.pauses ?? [] };
  });
}

export interface LatencyBreakdown {
  readonly writes: number;
  readonly note: string;
  /** Send → the write passed each point (cumulative), node 0 unless named. */
  readonly cumulativeMs: Record<string, LatencySummaryMs | null>;
  /** Duration of each stage on its own (the difference of two successive points). */
  readonly stageMs: Record<string, LatencySummaryMs | null>;
  /** Transactions per signature in the window, and time between signatures (primary). */
  readonly signatures: { readonly count: number; readonly txPerSignature: number | null; readonly intervalMs: LatencySummaryMs | null };
  /**
   * Main-thread pauses inside the window, per node (node 0, the primary, first) and kind: GCs
   * (every one V8 reports) and stalled turns (a 5 ms timer ran ≥ 10 ms late; a GC inside a turn
   * counts in both). Total is milliseconds paused; share is total ÷ window.
   */
  readonly pauses: readonly { readonly node: string; readonly kinds: Record<string, { count: number; totalMs: number; share: number; durationMs: LatencySummaryMs | null }> }[];
}

function summarisePauses(pauses: readonly PauseRecord[], startMs: number, endMs: number): Record<string, { count: number; totalMs: number; share: number; durationMs: LatencySummaryMs | null }> {
  const byKind = new Map<string, number[]>();
  for (const p of pauses) {
    if (p.atMs < startMs || p.atMs >= endMs) continue;
    let list = byKind.get(p.kind);
    if (list === undefined) byKind.set(p.kind, (list = []));
    list.push(p.durationMs);
  }
  const out: Record<string, { count: number; totalMs: number; share: number; durationMs: LatencySummaryMs | null }> = {};
  for (const [kind, list] of [...byKind].sort(([a], [b]) => a.localeCompare(b))) {
    const total = list.reduce((a, b) => a + b, 0);
    out[kind] = { count: list.length, totalMs: round(total, 1), share: round(total / (endMs - startMs), 3), durationMs: summariseLatencyMs(list) };
  }
  return out;
}

/**
 * Stages of a write w (seqno s) with covering signature S (the first reserved above s):
 * send → executed (request in, node 0) → S reserved (waiting for a signature) → S signed and
 * proposed (encoder backlog, signing) → S flush posted (waiting for the previous group commit)
 * → S durable (write + fdatasync) → consensus commit (a majority: the backups' round trip) →
 * commit point recorded (its write + fdatasync) → observed by the bench's poll. With backups:
 * S received, durable, commit learnt from the primary, recorded, observed, on each.
 */
export function latencyBreakdown(samples: WriteSamples, traces: readonly NodeTrace[], primaryId: string | undefined): LatencyBreakdown | null {
  const primary = traces.find((t) => primaryId !== undefined && primaryId.startsWith(t.nodeId.slice(0, 16))) ?? traces.find((t) => t.executed.length > 0);
  if (primary === undefined) return null;
  const backups = traces.filter((t) => t !== primary);
  const cumulativeSeries = new Map<string, number[]>();
  const stageSeries = new Map<string, number[]>();
  const into = (series: Map<string, number[]>) => (name: string, value: number): void => {
    if (Number.isNaN(value)) return;
    let list = series.get(name);
    if (list === undefined) series.set(name, (list = []));
    list.push(value);
  };
  const push = into(stageSeries);
  const pushCumulative = into(cumulativeSeries);
  let writes = 0;
  for (let i = 0; i < samples.seqno.length; i++) {
    const s = samples.seqno[i]!;
    const send = samples.sendEpochMs[i]!;
    if (Number.isNaN(s) || send < samples.windowStartEpochMs || send >= samples.windowEndEpochMs) continue;
    writes++;
    const executed = primary.executed[s - primary.executedFirst] ?? NaN;
    const S = primary.stage.signatureReserved.seqnoAt(s + 1);
    const p = primary.stage;
    const points: [string, number][] = [
      ["executed", executed],
      ["answered (client)", samples.responseEpochMs[i]!],
      ["signature reserved", p.signatureReserved.at(S)],
      ["signature proposed", p.signatureProposed.at(S)],
      ["signature flush posted", p.flushPosted.at(S)],
      ["signature durable", p.durable.at(S)],
      ["consensus commit", p.consensusCommit.at(S)],
      ["commit point recorded", p.commitRecorded.at(S)],
      ["observed committed", samples.observedEpochMsByNode[0]?.[i] ?? NaN],
    ];
    for (const [name, t] of points) pushCumulative(`send → ${name}`, t - send);
    // Successive stages on the primary (the client's answer is off the commit path).
    const chain = points.filter(([name]) => name !== "answered (client)");
    let previous: [string, number] = ["send", send];
    for (const point of chain) {
      push(`${previous[0]} → ${point[0]}`, point[1] - previous[1]);
      previous = point;
    }
    backups.forEach((b, n) => {
      const name = `node ${n + 1}`;
      const received = b.stage.appended.at(S);
      const durable = b.stage.durable.at(S);
      const learnt = b.stage.consensusCommit.at(S);
      const recorded = b.stage.commitRecorded.at(S);
      const observed = samples.observedEpochMsByNode[n + 1]?.[i] ?? NaN;
      push(`${name}: signature proposed → received`, received - p.signatureProposed.at(S));
      push(`${name}: received → durable`, durable - received);
      push(`${name}: primary's consensus commit → commit learnt`, learnt - p.consensusCommit.at(S));
      push(`${name}: commit learnt → commit point recorded`, recorded - learnt);
      push(`${name}: commit point recorded → observed committed`, observed - recorded);
      pushCumulative(`send → ${name} observed committed`, observed - send);
    });
    if (backups.length > 0) {
      let every = -Infinity;
      for (const observed of samples.observedEpochMsByNode) every = Math.max(every, observed[i] ?? NaN);
      pushCumulative("send → observed committed on every node", every - send);
    }
  }
  const sigs = primary.stage.signatureReserved;
  const sigSeqnos: number[] = [];
  const sigTimes: number[] = [];
  for (let s = 1; ; ) {
    const S = sigs.seqnoAt(s);
    if (Number.isNaN(S)) break;
    const t = sigs.at(S);
    if (t >= samples.windowStartEpochMs && t < samples.windowEndEpochMs) {
      sigSeqnos.push(S);
      sigTimes.push(t);
    }
    s = S + 1;
  }
  const intervals = sigTimes.slice(1).map((t, i) => t - sigTimes[i]!);
  const cumulative: Record<string, LatencySummaryMs | null> = {};
  const stages: Record<string, LatencySummaryMs | null> = {};
  for (const [name, values] of cumulativeSeries) cumulative[name] = summariseLatencyMs(values);
  for (const [name, values] of stageSeries) stages[name] = summariseLatencyMs(values);
  return {
    writes,
    note: "epoch-ms timestamps: the bench's send/answer/observation, the primary's execution and watermarks, the backups' watermarks; a write's signature is the first reserved above its seqno",
    cumulativeMs: cumulative,
    stageMs: stages,
    signatures: {
      count: sigSeqnos.length,
      txPerSignature: sigSeqnos.length > 1 ? round((sigSeqnos[sigSeqnos.length - 1]! - sigSeqnos[0]!) / (sigSeqnos.length - 1), 1) : null,
      intervalMs: summariseLatencyMs(intervals),
    },
    pauses: [primary, ...backups].map((t, n) => ({ node: `node ${n}`, kinds: summarisePauses(t.pauses, samples.windowStartEpochMs, samples.windowEndEpochMs) })),
  };
}
