// The measurements: each phase drives one server with one client for a warm-up plus a
// measured window and turns the raw per-request records into the figures in the report.
import { performance } from "node:perf_hooks";
import { runLoad, type LoadResult, type TlsTarget } from "./pipelined-client.js";
import { CommitTracker, commitTimeMs, type CommitObservations } from "./commit-tracker.js";
import { KeepAliveClient } from "./keep-alive-client.js";
import { runAutocannon, type AutocannonFigures } from "./autocannon-run.js";
import { sampleProcessTree, type ProcessSample } from "./proc-stats.js";
import { round, summariseLatencyMs, type LatencySummaryMs } from "./stats.js";
import type { RunningServer } from "./servers.js";
import type { WriteSamples } from "./latency-breakdown.js";

export const WRITE_PATH = "/app/log/private";
const COMMIT_WAIT_MS_MAX = 5_000;
const DRAIN_MS_MAX = 5_000;
const HEALTH_TIMEOUT_MS = 5_000;
const CROSS_CHECK_SAMPLE = 20;

export interface LoadShape {
  readonly connections: number;
  readonly depth: number;
  readonly warmupSeconds: number;
  readonly durationSeconds: number;
}

export interface ResourceUse {
  readonly cpuSeconds: number;
  /** CPU seconds ÷ window seconds × 100: 100 % = one core busy. */
  readonly cpuPercent: number;
  readonly peakRssMiB: number;
  readonly pids: readonly number[];
  /** CPU % of each process of the tree (pid order as in `pids`: the sandbox, i.e. node 0, first). */
  readonly cpuPercentByPid: readonly number[];
}

function resourceUse(before: ProcessSample, after: ProcessSample, windowSeconds: number): ResourceUse {
  const cpuSeconds = after.cpuSeconds - before.cpuSeconds;
  return {
    cpuSeconds: round(cpuSeconds, 3),
    cpuPercent: round((100 * cpuSeconds) / windowSeconds, 1),
    peakRssMiB: round(after.peakRssMiB, 1),
    pids: after.pids,
    cpuPercentByPid: after.pids.map((pid) =>
      round((100 * ((after.cpuSecondsByPid.get(pid) ?? 0) - (before.cpuSecondsByPid.get(pid) ?? 0))) / windowSeconds, 1)),
  };
}

function clientFigures(load: LoadResult, windowSeconds: number) {
  return {
    sent: load.sent,
    answered: load.answered,
    /** Requests never answered (lost with a connection, or still in flight when the drain gave up). */
    unanswered: load.sent - load.answered,
    statusCounts: load.statusCounts,
    connectionErrors: load.connectionErrors,
    firstErrorBody: load.firstErrorBody,
    cpuSeconds: round(load.clientCpuSeconds, 3),
    cpuPercent: round((100 * load.clientCpuSeconds) / windowSeconds, 1),
    /** Bench-process CPU per response in the window: what the client costs the machine. */
    cpuMicrosecondsPerResponse: perUnitMicroseconds(load.clientCpuSeconds, answeredInWindow(load)),
  };
}

function answeredInWindow(load: LoadResult): number {
  let n = 0;
  for (let i = 0; i < load.records.responseMs.length; i++) {
    const r = load.records.responseMs.get(i);
    if (r >= load.windowStartMs && r < load.windowEndMs) n++;
  }
  return n;
}

/** Responses per second and send→response latency over requests in the measured window. */
function responseFigures(load: LoadResult) {
  const windowSeconds = (load.windowEndMs - load.windowStartMs) / 1000;
  const { sendMs, responseMs, status } = load.records;
  let answeredInWindow = 0;
  let okInWindow = 0;
  const latencies: number[] = [];
  for (let i = 0; i < sendMs.length; i++) {
    const r = responseMs.get(i);
    if (r >= load.windowStartMs && r < load.windowEndMs) {
      answeredInWindow++;
      if (status.get(i) >= 200 && status.get(i) < 300) okInWindow++;
    }
    const s = sendMs.get(i);
    if (s >= load.windowStartMs && s < load.windowEndMs && !Number.isNaN(r)) latencies.push(r - s);
  }
  return {
    windowSeconds,
    responsesPerSecond: round(answeredInWindow / windowSeconds, 1),
    okResponsesPerSecond: round(okInWindow / windowSeconds, 1),
    responseLatencyMs: summariseLatencyMs(latencies),
  };
}

/** The echo server under the same load as the node; `rateTarget` (requests/s): rate-limited as the node's half-load phase. */
export async function measureEcho(server: RunningServer, shape: LoadShape, rateTarget?: number) {
  let before: ProcessSample | null = null;
  let after: ProcessSample | null = null;
  const load = await runLoad({
    target: server.target,
    path: WRITE_PATH,
    connections: shape.connections,
    depth: shape.depth,
    ...(rateTarget === undefined ? {} : { rateTarget }),
    warmupMs: shape.warmupSeconds * 1000,
    durationMs: shape.durationSeconds * 1000,
    onWindowStart: () => (before = sampleProcessTree(server.child.pid)),
    onWindowEnd: () => (after = sampleProcessTree(server.child.pid)),
  });
  const responses = responseFigures(load);
  const server_ = resourceUse(before!, after!, responses.windowSeconds);
  return {
    ...responses,
    server: { ...server_, cpuMicrosecondsPerRequest: perUnitMicroseconds(server_.cpuSeconds, responses.okResponsesPerSecond * responses.windowSeconds) },
    client: clientFigures(load, responses.windowSeconds),
  };
}

function perUnitMicroseconds(cpuSeconds: number, units: number): number | null {
  return units > 0 ? round((cpuSeconds * 1e6) / units, 1) : null;
}

/**
 * Drives the node's private writes, tracks /node/commit, and measures send → Committed. With
 * several nodes, every node's /node/commit is polled: a write's commit latency is until it was
 * seen committed on every node (and, separately, on node 0, the primary that took the load).
 */
export async function measureNodeWrites(server: RunningServer, shape: LoadShape, pollIntervalMs: number, rateTarget?: number, keySpace?: number,
  onSamples?: (samples: WriteSamples) => void) {
  const tracker = await CommitTracker.start(server.target, pollIntervalMs);
  const otherTrackers: CommitTracker[] = [];
  try {
    for (const target of server.nodeTargets?.slice(1) ?? []) otherTrackers.push(await CommitTracker.start(target, pollIntervalMs));
  } catch (error) {
    await tracker.stop();
    for (const other of otherTrackers) await other.stop();
    throw error;
  }
  let before: ProcessSample | null = null;
  let after: ProcessSample | null = null;
  let commitAtWindowStart = 0;
  let commitAtWindowEnd = 0;
  let load: LoadResult;
  let observations: CommitObservations;
  const otherObservations: CommitObservations[] = [];
  try {
    load = await runLoad({
      target: server.target,
      path: WRITE_PATH,
      connections: shape.connections,
      depth: shape.depth,
      warmupMs: shape.warmupSeconds * 1000,
      durationMs: shape.durationSeconds * 1000,
      ...(rateTarget === undefined ? {} : { rateTarget }),
      drainMsMax: DRAIN_MS_MAX,
      firstId: Math.floor(Math.random() * 1e9),
      ...(keySpace === undefined ? {} : { keySpace }),
      onWindowStart: () => {
        before = sampleProcessTree(server.child.pid);
        commitAtWindowStart = tracker.committedSeqno;
      },
      onWindowEnd: () => {
        after = sampleProcessTree(server.child.pid);
        commitAtWindowEnd = tracker.committedSeqno;
      },
    });
    let maxSeqno = 0;
    for (let i = 0; i < load.records.seqno.length; i++) {
      const s = load.records.seqno.get(i);
      if (s > maxSeqno) maxSeqno = s;
    }
    await tracker.waitFor(maxSeqno, COMMIT_WAIT_MS_MAX);
    for (const other of otherTrackers) await other.waitFor(maxSeqno, COMMIT_WAIT_MS_MAX);
  } finally {
    observations = await tracker.stop();
    for (const other of otherTrackers) otherObservations.push(await other.stop());
  }
  const responses = responseFigures(load);
  const windowSeconds = responses.windowSeconds;
  const { sendMs, seqno, view } = load.records;
  let committedInWindow = 0;
  let writesWithTxId = 0;
  let neverCommitted = 0;
  const views = new Set<number>();
  const commitLatencies: number[] = [];
  const everyNodeLatencies: number[] = [];
  let notSeenOnEveryNode = 0;
  const committedSample: string[] = [];
  const origin = performance.timeOrigin;
  const samples: WriteSamples = {
    windowStartEpochMs: origin + load.windowStartMs,
    windowEndEpochMs: origin + load.windowEndMs,
    seqno: new Float64Array(sendMs.length).fill(NaN),
    sendEpochMs: new Float64Array(sendMs.length).fill(NaN),
    responseEpochMs: new Float64Array(sendMs.length).fill(NaN),
    observedEpochMsByNode: [observations, ...otherObservations].map(() => new Float64Array(sendMs.length).fill(NaN)),
  };
  for (let i = 0; i < sendMs.length; i++) {
    const s = seqno.get(i);
    if (Number.isNaN(s)) continue;
    writesWithTxId++;
    views.add(view.get(i));
    const c = commitTimeMs(observations, s);
    let every = c;
    samples.seqno[i] = s;
    samples.sendEpochMs[i] = origin + sendMs.get(i);
    samples.responseEpochMs[i] = origin + load.records.responseMs.get(i);
    samples.observedEpochMsByNode[0]![i] = origin + c;
    otherObservations.forEach((other, n) => {
      const seen = commitTimeMs(other, s);
      samples.observedEpochMsByNode[n + 1]![i] = origin + seen;
      every = Math.max(every, seen);
    });
    if (Number.isNaN(c)) {
      neverCommitted++;
      continue;
    }
    if (c >= load.windowStartMs && c < load.windowEndMs) committedInWindow++;
    const sent = sendMs.get(i);
    if (sent >= load.windowStartMs && sent < load.windowEndMs) {
      commitLatencies.push(c - sent);
      if (!Number.isNaN(every)) everyNodeLatencies.push(every - sent);
      else notSeenOnEveryNode++;
      if (committedSample.length < CROSS_CHECK_SAMPLE && i % 97 === 0) committedSample.push(`${view.get(i)}.${s}`);
    }
  }
  onSamples?.(samples);
  const node = resourceUse(before!, after!, windowSeconds);
  return {
    ...(rateTarget === undefined ? {} : { rateTargetPerSecond: round(rateTarget, 1) }),
    ...responses,
    committedPerSecond: round(committedInWindow / windowSeconds, 1),
    committedInWindow,
    /** Send → Committed: on every node when there are several (the goal's measure), else on the one. */
    commitLatencyMs: summariseLatencyMs(otherObservations.length > 0 ? everyNodeLatencies : commitLatencies),
    /** Send → Committed on node 0 (the primary that takes the load). */
    commitLatencyNode0Ms: summariseLatencyMs(commitLatencies),
    /** Nodes whose /node/commit was polled: a write counts as Committed once all of them said so. */
    commitObservedOnNodes: 1 + otherObservations.length,
    /** Writes of the window seen committed on node 0 but not on some other node before polling stopped. */
    writesNotSeenCommittedOnEveryNode: notSeenOnEveryNode,
    /** Every transaction, signatures included, by the advance of /node/commit over the window. */
    commitSeqnoAdvancePerSecond: round((commitAtWindowEnd - commitAtWindowStart) / windowSeconds, 1),
    writesWithTransactionId: writesWithTxId,
    writesNeverSeenCommitted: neverCommitted,
    viewsSeen: [...views],
    commitObservation: {
      method: "GET /node/commit pipelined every pollIntervalMs on its own keep-alive connection",
      pollIntervalMs: observations.pollIntervalMs,
      polls: observations.polls,
      pollErrors: observations.pollErrors + otherObservations.reduce((n, o) => n + o.pollErrors, 0),
      pollRoundTripMs: summariseLatencyMs(observations.pollRoundTripsMs),
      pollingStoppedEarly: observations.fatalError,
      resolutionNote:
        "commit times are when an advance was first observed: upper bounds: late by up to one poll interval plus the time an answer takes to leave the node; pollRoundTripMs shows how long a poll waited in a busy node",
    },
    crossCheck: await crossCheckCommitted(server.target, committedSample),
    node: { ...node, cpuMicrosecondsPerCommittedTx: perUnitMicroseconds(node.cpuSeconds, committedInWindow) },
    client: clientFigures(load, windowSeconds),
  };
}

/** Asks `GET /node/tx` about a sample of writes the poller saw committed. */
async function crossCheckCommitted(target: TlsTarget, txIds: readonly string[]) {
  const mismatches: string[] = [];
  let checked = 0;
  try {
    const client = await KeepAliveClient.connect(target);
    try {
      for (const txId of txIds) {
        const r = await client.get(`/node/tx?transaction_id=${txId}`);
        checked++;
        const status = (r.json as { status?: unknown } | null)?.status;
        if (status !== "Committed") mismatches.push(`${txId}: ${r.status} ${r.text.slice(0, 120)}`);
      }
    } finally {
      client.close();
    }
  } catch (error) {
    mismatches.push(`cross-check failed: ${(error as Error).message}`);
  }
  return { endpoint: "GET /node/tx?transaction_id=", checked, committed: checked - mismatches.length, mismatches };
}

export interface AutocannonPhase extends AutocannonFigures {
  readonly server: ResourceUse & { readonly cpuMicrosecondsPerRequest: number | null };
  /** Bench-process CPU while autocannon ran (autocannon runs inside the bench process). */
  readonly client: { readonly cpuSeconds: number; readonly cpuPercent: number; readonly cpuMicrosecondsPerRequest: number | null };
  /** Node only: advance of /node/commit across the run (signature transactions included). */
  readonly commitSeqnoAdvance?: number;
  readonly commitSeqnoAdvancePerSecond?: number;
}

export async function measureAutocannon(server: RunningServer, shape: LoadShape, isNode: boolean): Promise<AutocannonPhase> {
  const commitSeqno = async (): Promise<number> => {
    const client = await KeepAliveClient.connect(server.target);
    try {
      const txId = ((await client.get("/node/commit")).json as { transaction_id?: string } | null)?.transaction_id ?? "0.0";
      return Number(txId.split(".")[1]);
    } finally {
      client.close();
    }
  };
  const commitBefore = isNode ? await commitSeqno() : 0;
  const before = sampleProcessTree(server.child.pid);
  const startMs = performance.now();
  const clientCpuBefore = process.cpuUsage();
  const figures = await runAutocannon({
    target: server.target,
    path: WRITE_PATH,
    connections: shape.connections,
    pipelining: shape.depth,
    durationSeconds: shape.durationSeconds,
  });
  const after = sampleProcessTree(server.child.pid);
  const clientCpu = process.cpuUsage(clientCpuBefore);
  const elapsedSeconds = (performance.now() - startMs) / 1000;
  const use = resourceUse(before, after, elapsedSeconds);
  const clientCpuSeconds = (clientCpu.user + clientCpu.system) / 1e6;
  const phase = {
    ...figures,
    server: { ...use, cpuMicrosecondsPerRequest: perUnitMicroseconds(use.cpuSeconds, figures.requestsTotal) },
    client: {
      cpuSeconds: round(clientCpuSeconds, 3),
      cpuPercent: round((100 * clientCpuSeconds) / elapsedSeconds, 1),
      cpuMicrosecondsPerRequest: perUnitMicroseconds(clientCpuSeconds, figures.requestsTotal),
    },
  };
  if (!isNode) return phase;
  await new Promise((r) => setTimeout(r, 1_000)); // let the last signature commit
  const advance = (await commitSeqno()) - commitBefore;
  return { ...phase, commitSeqnoAdvance: advance, commitSeqnoAdvancePerSecond: round(advance / figures.durationSeconds, 1) };
}

/**
 * Throws when the server does not answer `GET path` within a few seconds: a wedged server
 * must end its phases rather than silently skew the next ones (it may still burn CPU).
 */
export async function checkResponsive(server: RunningServer, path: string): Promise<void> {
  let client: KeepAliveClient | null = null;
  try {
    client = await KeepAliveClient.connect(server.target, HEALTH_TIMEOUT_MS);
    const r = await client.get(path, HEALTH_TIMEOUT_MS);
    if (r.status !== 200) throw new Error(`answered ${r.status}: ${r.text.slice(0, 200)}`);
  } catch (error) {
    throw new Error(`The server stopped answering (GET ${path}: ${(error as Error).message}); later phases on it are skipped.`);
  } finally {
    client?.close();
  }
}
