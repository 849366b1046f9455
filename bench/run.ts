// `npm run bench`: one Coco node running the logging app against an HTTPS echo server on the
// same machine, same TLS settings, same clients. Prints a table and writes all figures as
// JSON. See docs/benchmarks.md for how to read them.
import * as os from "node:os";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { HELP, parseBenchArgs, UsageError, type BenchOptions } from "./args.js";
import { makeP384Certificate } from "./certs.js";
import { stopAll, stopChild } from "./child-processes.js";
import { summariseCpuProfile, type ProfileSummary } from "./cpu-profile-summary.js";
import { checkResponsive, measureAutocannon, measureEcho, measureNodeWrites, WRITE_PATH, type LoadShape } from "./phases.js";
import { fmt, latency, printSection, progress, type Row } from "./report.js";
import { startEchoServer, startNode, type RunningServer } from "./servers.js";
import { runJsLoggingBench } from "./js-logging.js";
import { runEvmBench } from "./evm.js";
import { round } from "./stats.js";
import { latencyBreakdown, readLatencyTraces, type LatencyBreakdown, type WriteSamples } from "./latency-breakdown.js";

/** One node: the core issue's goal; several nodes: the replication issue's (half the echo ceiling). */
const ratioGoal = (nodes: number): number => (nodes > 1 ? 0.5 : 0.75);
/** Issue 15: half-load commit latency, committed on every node: p99 < 50 ms with 3 nodes, < 20 ms with one. */
const p99GoalMs = (nodes: number): number => (nodes > 1 ? 50 : 20);

type EchoFigures = Awaited<ReturnType<typeof measureEcho>>;
type NodeFigures = Awaited<ReturnType<typeof measureNodeWrites>>;
type AutocannonFigures = Awaited<ReturnType<typeof measureAutocannon>>;

interface PhaseResults {
  echo: { pipelinedBefore?: EchoFigures; pipelinedAfter?: EchoFigures; halfLoad?: EchoFigures; autocannon?: AutocannonFigures; error?: string };
  node: { fullLoad?: NodeFigures; halfLoad?: NodeFigures; autocannon?: AutocannonFigures; error?: string; exit?: string };
  /** Per-write records of the node phases, for --trace-latency (not written to the JSON). */
  samples: { fullLoad?: WriteSamples; halfLoad?: WriteSamples };
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

/**
 * Both servers run side by side (an idle server costs nothing) so that the echo runs can
 * bracket the node's full-load run in time: on a noisy machine the ratio then compares
 * like with like. Order: echo, node full load, echo, node half load, echo at the node's half-load
 * rate (what per-request costs become without pipelining, for comparison), autocannon on both.
 */
async function runPhases(options: BenchOptions, shape: LoadShape, tempDir: string, profileDir: string | undefined): Promise<PhaseResults> {
  const results: PhaseResults = { echo: {}, node: {}, samples: {} };
  let echo: RunningServer | null = null;
  let node: RunningServer | null = null;
  try {
    try {
      progress("starting the HTTPS echo server");
      echo = await startEchoServer(makeP384Certificate(tempDir, "echo_server"), makeP384Certificate(tempDir, "echo_client"));
    } catch (error) {
      results.echo.error = describe(error);
      progress(`echo server failed: ${(error as Error).message}`);
    }
    try {
      progress(`starting a Coco node (sandbox, durability ${options.durability}${profileDir ? ", --cpu-prof" : ""})`);
      const workspace = join(tempDir, "node-workspace");
      mkdirSync(workspace);
      node = await startNode({
        workspace, durability: options.durability, nodes: options.nodes, accessLog: options.accessLog, ...(profileDir ? { profileDir } : {}),
        ...(options.snapshotTxCount !== undefined ? { snapshotTxCount: options.snapshotTxCount } : {}),
        ...(options.signatureIntervalMs !== undefined ? { signatureIntervalMs: options.signatureIntervalMs } : {}),
        ...(options.traceLatency ? { latencyTraceDir: join(tempDir, "latency-trace") } : {}),
      });
    } catch (error) {
      results.node.error = describe(error);
      progress(`node failed to start: ${(error as Error).message}`);
    }
    const load = `${shape.connections} connections × ${shape.depth} in flight, ${shape.warmupSeconds} s warm-up + ${shape.durationSeconds} s`;
    const echoPhase = async (name: string, run: (server: RunningServer) => Promise<void>): Promise<void> => {
      if (echo === null || results.echo.error !== undefined) return;
      progress(name);
      try {
        await run(echo);
      } catch (error) {
        results.echo.error = describe(error);
        progress(`echo phase failed: ${(error as Error).message}`);
      }
    };
    const nodePhase = async (name: string, run: (server: RunningServer) => Promise<void>): Promise<void> => {
      if (node === null || results.node.error !== undefined) return;
      progress(name);
      try {
        await run(node);
        await checkResponsive(node, "/node/state");
      } catch (error) {
        results.node.error = describe(error);
        progress(`node phase failed: ${(error as Error).message}`);
        // Stop it now: a wedged node may keep a core busy and skew the echo phases.
        progress("stopping the node (SIGINT)");
        results.node.exit = await stopChild(node.child, 5_000);
      }
    };

    await echoPhase(`echo, pipelined client: ${load}`, async (server) => {
      const r = (results.echo.pipelinedBefore = await measureEcho(server, shape));
      progress(`  ${fmt(r.responsesPerSecond)} responses/s`);
    });
    await nodePhase(`node, pipelined client at full load: ${load}`, async (server) => {
      const r = (results.node.fullLoad = await measureNodeWrites(server, shape, options.pollIntervalMs, undefined, undefined, (s) => (results.samples.fullLoad = s)));
      progress(`  ${fmt(r.committedPerSecond)} committed tx/s; commit latency ${latency(r.commitLatencyMs)}`);
    });
    await echoPhase("echo again, pipelined client (brackets the node's run in time)", async (server) => {
      const r = (results.echo.pipelinedAfter = await measureEcho(server, shape));
      progress(`  ${fmt(r.responsesPerSecond)} responses/s`);
    });
    const halfRate = (results.node.fullLoad?.committedPerSecond ?? 0) / 2;
    if (halfRate > 0) {
      await nodePhase(`node, rate-limited at half load: ${fmt(halfRate)} writes/s`, async (server) => {
        const r = (results.node.halfLoad = await measureNodeWrites(server, shape, options.pollIntervalMs, halfRate, undefined, (s) => (results.samples.halfLoad = s)));
        progress(`  ${fmt(r.committedPerSecond)} committed tx/s; commit latency ${latency(r.commitLatencyMs)}`);
      });
      await echoPhase(`echo, rate-limited at the node's half-load rate: ${fmt(halfRate)} requests/s`, async (server) => {
        const r = (results.echo.halfLoad = await measureEcho(server, shape, halfRate));
        progress(`  ${fmt(r.responsesPerSecond)} responses/s, ${fmt(r.server.cpuMicrosecondsPerRequest)} µs of server CPU per request`);
      });
    } else if (node !== null && results.node.error === undefined) {
      progress("no write committed at full load: skipping the half-load phase");
    }
    if (options.autocannon) {
      await echoPhase(`echo, autocannon: ${shape.durationSeconds} s`, async (server) => {
        const r = (results.echo.autocannon = await measureAutocannon(server, shape, false));
        progress(`  ${fmt(r.requestsPerSecond)} requests/s`);
      });
      await nodePhase(`node, autocannon: ${shape.durationSeconds} s`, async (server) => {
        const r = (results.node.autocannon = await measureAutocannon(server, shape, true));
        progress(`  ${fmt(r.requestsPerSecond)} requests/s, commit advanced ${fmt(r.commitSeqnoAdvancePerSecond)}/s`);
      });
    }
  } finally {
    if (node !== null && results.node.exit === undefined) {
      progress("stopping the node (SIGINT)");
      results.node.exit = await stopChild(node.child);
    }
    if (echo !== null) await stopChild(echo.child);
  }
  return results;
}

function findProfiles(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith(".cpuprofile"))
      .map((f) => join(dir, f))
      .sort((a, b) => statSync(b).size - statSync(a).size);
  } catch {
    return [];
  }
}

function machineInfo() {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model ?? "unknown",
    totalMemoryMiB: Math.round(os.totalmem() / 2 ** 20),
    nodeVersion: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((l) => round(l, 2)),
  };
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    const parsed = parseBenchArgs(process.argv.slice(2));
    if (parsed === "help") {
      process.stdout.write(`${HELP}\n`);
      return 0;
    }
    options = parsed;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`bench: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const shape: LoadShape = {
    connections: options.connections,
    depth: options.depth,
    warmupSeconds: options.warmupSeconds,
    durationSeconds: options.durationSeconds,
  };
  if (options.app === "js-logging") return runJsLoggingBench(options, shape);
  if (options.app === "evm") return runEvmBench(options);
  const outPath = resolve(options.out);
  const profileDir = options.profile ? outPath.replace(/\.json$/, "") + "-cpuprofile" : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const tempDir = mkdtempSync(join(os.tmpdir(), "coco-bench-"));
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  progress(`${machine.cores} cores (${machine.cpuModel}), node ${machine.nodeVersion}; results → ${outPath}`);

  const phases = await runPhases(options, shape, tempDir, profileDir);

  let profiles: ProfileSummary[] = [];
  if (profileDir) {
    profiles = findProfiles(profileDir).map((f) => summariseCpuProfile(f, 25));
    if (profiles.length === 0) progress(`no .cpuprofile was written in ${profileDir} (did the node exit cleanly on SIGINT?)`);
  }

  const echoRuns = [phases.echo.pipelinedBefore, phases.echo.pipelinedAfter].filter((r): r is EchoFigures => r !== undefined);
  const echoPerSecond = echoRuns.length > 0 ? round(echoRuns.reduce((n, r) => n + r.responsesPerSecond, 0) / echoRuns.length, 1) : null;
  const echoAutocannon = phases.echo.autocannon;
  const full = phases.node.fullLoad;
  const half = phases.node.halfLoad;
  const nodeAc = phases.node.autocannon;
  const ratio = full && echoPerSecond ? round(full.committedPerSecond / echoPerSecond, 3) : null;
  const acRatio = nodeAc && echoAutocannon && echoAutocannon.requestsPerSecond > 0 ? round(nodeAc.requestsPerSecond / echoAutocannon.requestsPerSecond, 3) : null;
  // CPU per request of the echo server ÷ CPU per committed tx of the node: what the ratio would
  // be if each server had a core to itself; robust to other work stealing the machine.
  const echoCpuPerRequest = echoRuns.map((r) => r.server.cpuMicrosecondsPerRequest).filter((v): v is number => v !== null);
  const echoCpuMicroseconds = echoCpuPerRequest.length > 0 ? echoCpuPerRequest.reduce((a, b) => a + b, 0) / echoCpuPerRequest.length : null;
  const nodeCpuMicroseconds = full?.node.cpuMicrosecondsPerCommittedTx ?? null;
  const cpuRatio = echoCpuMicroseconds !== null && nodeCpuMicroseconds ? round(echoCpuMicroseconds / nodeCpuMicroseconds, 3) : null;
  const halfP99 = half?.commitLatencyMs?.p99 ?? null;
  // The nodes have stopped: each wrote its latency trace.
  let breakdown: { fullLoad: LatencyBreakdown | null; halfLoad: LatencyBreakdown | null } | null = null;
  if (options.traceLatency) {
    const traces = readLatencyTraces(join(tempDir, "latency-trace"));
    if (traces.length === 0) progress("--trace-latency: no node wrote a latency trace (did the nodes stop cleanly?)");
    breakdown = {
      fullLoad: phases.samples.fullLoad ? latencyBreakdown(phases.samples.fullLoad, traces, undefined) : null,
      halfLoad: phases.samples.halfLoad ? latencyBreakdown(phases.samples.halfLoad, traces, undefined) : null,
    };
  }

  const result = {
    benchmark: "coco single-node logging private writes",
    startedAt,
    finishedAt: new Date().toISOString(),
    machine,
    parameters: {
      nodes: options.nodes,
      app: options.app,
      endpoint: `POST ${WRITE_PATH}`,
      durability: options.durability,
      connections: options.connections,
      pipeliningDepth: options.depth,
      warmupSeconds: options.warmupSeconds,
      durationSeconds: options.durationSeconds,
      commitPollIntervalMs: options.pollIntervalMs,
      profile: options.profile,
      snapshotTxCount: options.snapshotTxCount ?? "node default",
      signatureIntervalMs: options.signatureIntervalMs ?? "sandbox default",
      tls: "TLS 1.3, ECDSA P-384 server certificates, client certificate (mutual TLS)",
    },
    headline: {
      durability: options.durability,
      committedTxPerSecond: full?.committedPerSecond ?? null,
      echoRequestsPerSecond: echoPerSecond,
      echoRequestsPerSecondRuns: echoRuns.map((r) => r.responsesPerSecond),
      ratioCommittedToEcho: ratio,
      ratioGoal: ratioGoal(options.nodes),
      ratioGoalMet: ratio === null ? null : ratio >= ratioGoal(options.nodes),
      commitLatencyFullLoadMs: full?.commitLatencyMs ?? null,
      commitLatencyHalfLoadMs: half?.commitLatencyMs ?? null,
      commitLatencyHalfLoadNode0Ms: half?.commitLatencyNode0Ms ?? null,
      commitObservedOnNodes: half?.commitObservedOnNodes ?? full?.commitObservedOnNodes ?? null,
      halfLoadP99GoalMs: p99GoalMs(options.nodes),
      halfLoadP99GoalMet: halfP99 === null ? null : halfP99 < p99GoalMs(options.nodes),
      nodeCpuPercent: full?.node.cpuPercent ?? null,
      nodeCpuMicrosecondsPerCommittedTx: nodeCpuMicroseconds,
      // At the half-load rate the client sends about one request per connection at a time, so
      // neither server can batch: what a request costs each of them there.
      nodeCpuMicrosecondsPerCommittedTxHalfLoad: half?.node.cpuMicrosecondsPerCommittedTx ?? null,
      echoCpuMicrosecondsPerRequestHalfLoad: phases.echo.halfLoad?.server.cpuMicrosecondsPerRequest ?? null,
      echoCpuMicrosecondsPerRequest: echoCpuMicroseconds === null ? null : round(echoCpuMicroseconds, 1),
      cpuRatioEchoPerRequestToNodePerCommittedTx: cpuRatio,
      // VmHWM is the peak over the node's life so far: the last phase's sample is the peak of the run.
      nodePeakRssMiB: full ? Math.max(full.node.peakRssMiB, half?.node.peakRssMiB ?? 0, nodeAc?.server.peakRssMiB ?? 0) : null,
      autocannonNodeRequestsPerSecond: nodeAc?.requestsPerSecond ?? null,
      autocannonEchoRequestsPerSecond: echoAutocannon?.requestsPerSecond ?? null,
      autocannonRatioNodeToEcho: acRatio,
      cores: machine.cores,
    },
    echo: phases.echo,
    node: phases.node,
    cpuProfiles: profiles,
    latencyBreakdown: breakdown,
  };

  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`);
  printReport(result.headline, echoRuns, full, half, nodeAc, profiles, options);
  if (breakdown?.halfLoad) printBreakdown("half load", breakdown.halfLoad);
  if (breakdown?.fullLoad) printBreakdown("full load", breakdown.fullLoad);
  process.stdout.write(`\nJSON written to ${outPath}\n`);
  rmSync(tempDir, { recursive: true, force: true });
  return phases.node.error !== undefined || phases.echo.error !== undefined ? 1 : 0;
}

function printReport(
  h: Record<string, unknown> & { ratioCommittedToEcho: number | null; halfLoadP99GoalMet: boolean | null; ratioGoalMet: boolean | null },
  echoRuns: readonly EchoFigures[],
  full: NodeFigures | undefined,
  half: NodeFigures | undefined,
  nodeAc: AutocannonFigures | undefined,
  profiles: readonly ProfileSummary[],
  options: BenchOptions,
): void {
  const goal = (met: boolean | null): string => (met === null ? "" : met ? "  (goal met)" : "  (goal NOT met)");
  const rows: Row[] = [
    { label: "durability", value: options.durability },
    { label: "cores", value: String(h["cores"]) },
    { label: "load", value: `${options.connections} connections × ${options.depth} pipelined, ${options.durationSeconds} s window` },
    { label: "echo responses/s (our client)", value: `${fmt(h["echoRequestsPerSecond"] as number | null)} (runs: ${echoRuns.map((r) => fmt(r.responsesPerSecond)).join(", ") || "—"})` },
    { label: "echo server CPU µs/request", value: fmt(h["echoCpuMicrosecondsPerRequest"] as number | null) },
    { label: "node committed tx/s (our client)", value: fmt(full?.committedPerSecond) },
    { label: "ratio committed/s ÷ echo/s", value: `${fmt(h.ratioCommittedToEcho, "", 3)}${goal(h.ratioGoalMet)} [goal >= ${ratioGoal(options.nodes)}]` },
    { label: "commit latency, full load", value: latency(full?.commitLatencyMs) },
    { label: "response latency, full load", value: latency(full?.responseLatencyMs) },
    { label: "half load rate (writes/s)", value: fmt(half?.rateTargetPerSecond) },
    { label: `commit latency, half load${options.nodes > 1 ? " (every node)" : ""}`, value: `${latency(half?.commitLatencyMs)}${goal(h.halfLoadP99GoalMet)} [goal p99 < ${p99GoalMs(options.nodes)} ms]` },
    ...(options.nodes > 1 ? [{ label: "commit latency, half load (node 0)", value: latency(half?.commitLatencyNode0Ms) }] : []),
    { label: "node CPU (full load)", value: full ? `${fmt(full.node.cpuPercent, " %")} of one core, ${fmt(full.node.cpuMicrosecondsPerCommittedTx, " µs")} per committed tx` : "—" },
    ...(full && full.node.cpuPercentByPid.length > 1
      ? [{ label: "  per node process (node 0 first)", value: full.node.cpuPercentByPid.map((p) => fmt(p, " %")).join(", ") }]
      : []),
    {
      label: "CPU per tx at the half-load rate",
      value: half ? `node ${fmt(half.node.cpuPercent, " %")} of one core, ${fmt(half.node.cpuMicrosecondsPerCommittedTx, " µs")} per committed tx; echo ${fmt(h["echoCpuMicrosecondsPerRequestHalfLoad"] as number | null, " µs")} per request` : "—",
    },
    { label: "CPU ratio echo µs/req ÷ node µs/tx", value: fmt(h["cpuRatioEchoPerRequestToNodePerCommittedTx"] as number | null, "", 3) },
    { label: "node peak RSS", value: fmt(h["nodePeakRssMiB"] as number | null, " MiB") },
    { label: "client CPU (full load)", value: full ? fmt(full.client.cpuPercent, " % of one core") : "—" },
    { label: "/node/tx cross-check", value: full ? `${full.crossCheck.committed}/${full.crossCheck.checked} Committed; unanswered writes: full ${full.client.unanswered}, half ${half?.client.unanswered ?? "—"}` : "—" },
    { label: "autocannon echo req/s", value: fmt(h["autocannonEchoRequestsPerSecond"] as number | null) },
    { label: "autocannon node req/s", value: nodeAc ? `${fmt(nodeAc.requestsPerSecond)} (commit advanced ${fmt(nodeAc.commitSeqnoAdvancePerSecond)}/s, non-2xx ${nodeAc.non2xx})` : "—" },
    { label: "autocannon ratio node ÷ echo", value: fmt(h["autocannonRatioNodeToEcho"] as number | null, "", 3) },
  ];
  printSection(`Coco benchmark: ${options.nodes === 1 ? "one node" : `${options.nodes} nodes (load on node 0; CPU of all nodes)`}, logging app, private writes`, rows);
  for (const p of profiles) {
    printSection(`Where the node's time goes (self time, % of ${fmt(p.busyMs)} ms busy; idle ${fmt(p.idleMs)} ms) — by layer`, p.byLayer.map((r) => ({ label: r.name, value: `${fmt(r.percentOfBusy, " %")}  ${fmt(r.selfMs, " ms")}` })));
    printSection("By file (top 25)", p.byFile.map((r) => ({ label: r.name, value: `${fmt(r.percentOfBusy, " %")}  ${fmt(r.selfMs, " ms")}` })));
    printSection("By function (top 25)", p.byFunction.map((r) => ({ label: r.name, value: `${fmt(r.percentOfBusy, " %")}  ${fmt(r.selfMs, " ms")}` })));
    process.stdout.write(`\n  profile: ${p.file} (open in Chrome DevTools → Performance)\n`);
  }
}

(process.argv.includes("--long") ? import("./long-run.js").then((m) => m.runLongBench(process.argv.slice(2))) : main())
  .then((code) => {
    process.exitCode = code;
  })
  .catch(async (error: unknown) => {
    process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
    await stopAll();
    process.exitCode = 1;
  });

function printBreakdown(phase: string, b: LatencyBreakdown): void {
  const line = (s: { p50: number; p99: number; max: number } | null): string => (s === null ? "—" : `p50 ${fmt(s.p50, "", 2)}  p99 ${fmt(s.p99, "", 2)}  max ${fmt(s.max, "", 1)} ms`);
  printSection(`Where commit latency goes, ${phase} (${fmt(b.writes)} writes; ${b.signatures.count} signatures, ${fmt(b.signatures.txPerSignature)} tx each, every ${line(b.signatures.intervalMs)})`, [
    ...Object.entries(b.cumulativeMs).map(([name, s]) => ({ label: name, value: line(s) })),
    { label: "— each stage on its own —", value: "" },
    ...Object.entries(b.stageMs).map(([name, s]) => ({ label: name, value: line(s) })),
    { label: "— main-thread pauses in the window —", value: "" },
    ...b.pauses.flatMap(({ node, kinds }) => Object.entries(kinds).map(([kind, k]) => ({
      label: `${node}: ${kind}`,
      value: `${fmt(k.count)} × (${line(k.durationMs)}), ${fmt(k.totalMs, "", 1)} ms = ${fmt(k.share * 100, "", 1)} % of the window`,
    }))),
  ]);
}
