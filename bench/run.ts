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
import { measureAutocannon, measureEcho, measureNodeWrites, WRITE_PATH, type LoadShape } from "./phases.js";
import { fmt, latency, printSection, progress, type Row } from "./report.js";
import { startEchoServer, startNode, type RunningServer } from "./servers.js";
import { round } from "./stats.js";

const RATIO_GOAL = 0.75;
const P99_GOAL_MS = 50;

type Phase = Record<string, unknown>;

async function runEchoPhases(options: BenchOptions, shape: LoadShape, tempDir: string) {
  const serverCert = makeP384Certificate(tempDir, "echo_server");
  const clientCert = makeP384Certificate(tempDir, "echo_client");
  progress("starting the HTTPS echo server");
  const echo = await startEchoServer(serverCert, clientCert);
  try {
    progress(`echo, pipelined client: ${shape.connections} connections × ${shape.depth} in flight, ${shape.warmupSeconds} s warm-up + ${shape.durationSeconds} s`);
    const pipelined = await measureEcho(echo, shape);
    progress(`  ${fmt(pipelined.responsesPerSecond)} responses/s`);
    let autocannon: Phase | null = null;
    if (options.autocannon) {
      progress(`echo, autocannon: ${shape.durationSeconds} s`);
      autocannon = { ...(await measureAutocannon(echo, shape, false)) };
      progress(`  ${fmt(autocannon["requestsPerSecond"] as number)} requests/s`);
    }
    return { pipelined, autocannon };
  } finally {
    await stopChild(echo.child);
  }
}

async function runNodePhases(options: BenchOptions, shape: LoadShape, workspace: string, profileDir: string | undefined) {
  progress(`starting a Coco node (sandbox, durability ${options.durability}${profileDir ? ", --cpu-prof" : ""})`);
  const node: RunningServer = await startNode({ workspace, durability: options.durability, ...(profileDir ? { profileDir } : {}) });
  const out: { fullLoad?: Phase; halfLoad?: Phase; autocannon?: Phase; error?: string; exit?: string } = {};
  try {
    progress(`node, pipelined client at full load: ${shape.connections} × ${shape.depth}, ${shape.warmupSeconds} s + ${shape.durationSeconds} s`);
    const full = await measureNodeWrites(node, shape, options.pollIntervalMs);
    out.fullLoad = full;
    progress(`  ${fmt(full.committedPerSecond)} committed tx/s; commit latency ${latency(full.commitLatencyMs)}`);
    const halfRate = full.committedPerSecond / 2;
    if (halfRate > 0) {
      progress(`node, rate-limited at half load: ${fmt(halfRate)} writes/s`);
      const half = await measureNodeWrites(node, shape, options.pollIntervalMs, halfRate);
      out.halfLoad = half;
      progress(`  ${fmt(half.committedPerSecond)} committed tx/s; commit latency ${latency(half.commitLatencyMs)}`);
    } else {
      progress("  no write committed at full load: skipping the half-load phase");
    }
    if (options.autocannon) {
      progress(`node, autocannon: ${shape.durationSeconds} s`);
      const ac = await measureAutocannon(node, shape, true);
      out.autocannon = { ...ac };
      progress(`  ${fmt(ac.requestsPerSecond)} requests/s, commit advanced ${fmt(ac.commitSeqnoAdvancePerSecond)}/s`);
    }
  } catch (error) {
    out.error = (error as Error).stack ?? String(error);
    progress(`node phase failed: ${(error as Error).message}`);
  } finally {
    progress("stopping the node (SIGINT)");
    out.exit = await stopChild(node.child);
  }
  return out;
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
  const outPath = resolve(options.out);
  const profileDir = options.profile ? outPath.replace(/\.json$/, "") + "-cpuprofile" : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const tempDir = mkdtempSync(join(os.tmpdir(), "coco-bench-"));
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  progress(`${machine.cores} cores (${machine.cpuModel}), node ${machine.nodeVersion}; results → ${outPath}`);

  let echo: Awaited<ReturnType<typeof runEchoPhases>> | { error: string };
  try {
    echo = await runEchoPhases(options, shape, tempDir);
  } catch (error) {
    echo = { error: (error as Error).stack ?? String(error) };
    progress(`echo phase failed: ${(error as Error).message}`);
  }
  const workspace = join(tempDir, "node-workspace");
  mkdirSync(workspace);
  let nodeResult: Awaited<ReturnType<typeof runNodePhases>>;
  try {
    nodeResult = await runNodePhases(options, shape, workspace, profileDir);
  } catch (error) {
    nodeResult = { error: (error as Error).message };
    progress(`node phases not run: ${(error as Error).message}`);
  }

  let profiles: ProfileSummary[] = [];
  if (profileDir) {
    profiles = findProfiles(profileDir).map((f) => summariseCpuProfile(f, 25));
    if (profiles.length === 0) progress(`no .cpuprofile was written in ${profileDir} (did the node exit cleanly on SIGINT?)`);
  }

  const echoPipelined = "pipelined" in echo ? echo.pipelined : null;
  const echoAutocannon = "autocannon" in echo ? echo.autocannon : null;
  const full = nodeResult.fullLoad as Awaited<ReturnType<typeof measureNodeWrites>> | undefined;
  const half = nodeResult.halfLoad as Awaited<ReturnType<typeof measureNodeWrites>> | undefined;
  const nodeAc = nodeResult.autocannon as Awaited<ReturnType<typeof measureAutocannon>> | undefined;
  const ratio = full && echoPipelined && echoPipelined.responsesPerSecond > 0 ? round(full.committedPerSecond / echoPipelined.responsesPerSecond, 3) : null;
  const acRatio =
    nodeAc?.commitSeqnoAdvancePerSecond !== undefined && echoAutocannon && (echoAutocannon["requestsPerSecond"] as number) > 0
      ? round(nodeAc.requestsPerSecond / (echoAutocannon["requestsPerSecond"] as number), 3)
      : null;
  const halfP99 = half?.commitLatencyMs?.p99 ?? null;

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
      tls: "TLS 1.3, ECDSA P-384 server certificates, client certificate (mutual TLS)",
    },
    headline: {
      durability: options.durability,
      committedTxPerSecond: full?.committedPerSecond ?? null,
      echoRequestsPerSecond: echoPipelined?.responsesPerSecond ?? null,
      ratioCommittedToEcho: ratio,
      ratioGoal: RATIO_GOAL,
      ratioGoalMet: ratio === null ? null : ratio >= RATIO_GOAL,
      commitLatencyFullLoadMs: full?.commitLatencyMs ?? null,
      commitLatencyHalfLoadMs: half?.commitLatencyMs ?? null,
      halfLoadP99GoalMs: P99_GOAL_MS,
      halfLoadP99GoalMet: halfP99 === null ? null : halfP99 < P99_GOAL_MS,
      nodeCpuPercent: full?.node.cpuPercent ?? null,
      nodeCpuMicrosecondsPerCommittedTx: full?.node.cpuMicrosecondsPerCommittedTx ?? null,
      // VmHWM is the peak over the node's life so far: the last phase's sample is the peak of the run.
      nodePeakRssMiB: full ? Math.max(full.node.peakRssMiB, half?.node.peakRssMiB ?? 0, nodeAc?.server.peakRssMiB ?? 0) : null,
      autocannonNodeRequestsPerSecond: nodeAc?.requestsPerSecond ?? null,
      autocannonEchoRequestsPerSecond: (echoAutocannon?.["requestsPerSecond"] as number | undefined) ?? null,
      autocannonRatioNodeToEcho: acRatio,
      cores: machine.cores,
    },
    echo,
    node: nodeResult,
    cpuProfiles: profiles,
  };

  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`);
  printReport(result.headline, echoPipelined, full, half, nodeAc, profiles, options);
  process.stdout.write(`\nJSON written to ${outPath}\n`);
  rmSync(tempDir, { recursive: true, force: true });
  return nodeResult.error !== undefined || "error" in echo ? 1 : 0;
}

function printReport(
  h: Record<string, unknown> & { ratioCommittedToEcho: number | null; halfLoadP99GoalMet: boolean | null; ratioGoalMet: boolean | null },
  echo: Awaited<ReturnType<typeof measureEcho>> | null,
  full: Awaited<ReturnType<typeof measureNodeWrites>> | undefined,
  half: Awaited<ReturnType<typeof measureNodeWrites>> | undefined,
  nodeAc: Awaited<ReturnType<typeof measureAutocannon>> | undefined,
  profiles: readonly ProfileSummary[],
  options: BenchOptions,
): void {
  const goal = (met: boolean | null): string => (met === null ? "" : met ? "  (goal met)" : "  (goal NOT met)");
  const rows: Row[] = [
    { label: "durability", value: options.durability },
    { label: "cores", value: String(h["cores"]) },
    { label: "load", value: `${options.connections} connections × ${options.depth} pipelined, ${options.durationSeconds} s window` },
    { label: "echo responses/s (our client)", value: fmt(echo?.responsesPerSecond) },
    { label: "echo server CPU µs/request", value: fmt(echo?.server.cpuMicrosecondsPerRequest) },
    { label: "node committed tx/s (our client)", value: fmt(full?.committedPerSecond) },
    { label: "ratio committed/s ÷ echo/s", value: `${fmt(h.ratioCommittedToEcho, "", 3)}${goal(h.ratioGoalMet)} [goal >= ${RATIO_GOAL}]` },
    { label: "commit latency, full load", value: latency(full?.commitLatencyMs) },
    { label: "response latency, full load", value: latency(full?.responseLatencyMs) },
    { label: "half load rate (writes/s)", value: fmt(half?.rateTargetPerSecond) },
    { label: "commit latency, half load", value: `${latency(half?.commitLatencyMs)}${goal(h.halfLoadP99GoalMet)} [goal p99 < ${P99_GOAL_MS} ms]` },
    { label: "node CPU (full load)", value: full ? `${fmt(full.node.cpuPercent, " %")} of one core, ${fmt(full.node.cpuMicrosecondsPerCommittedTx, " µs")} per committed tx` : "—" },
    { label: "node peak RSS", value: fmt(h["nodePeakRssMiB"] as number | null, " MiB") },
    { label: "client CPU (full load)", value: full ? fmt(full.client.cpuPercent, " % of one core") : "—" },
    { label: "tx/node/tx cross-check", value: full ? `${full.crossCheck.committed}/${full.crossCheck.checked} Committed` : "—" },
    { label: "autocannon echo req/s", value: fmt(h["autocannonEchoRequestsPerSecond"] as number | null) },
    { label: "autocannon node req/s", value: nodeAc ? `${fmt(nodeAc.requestsPerSecond)} (commit advanced ${fmt(nodeAc.commitSeqnoAdvancePerSecond)}/s, non-2xx ${nodeAc.non2xx})` : "—" },
    { label: "autocannon ratio node ÷ echo", value: fmt(h["autocannonRatioNodeToEcho"] as number | null, "", 3) },
  ];
  printSection("Coco benchmark: one node, logging app, private writes", rows);
  for (const p of profiles) {
    printSection(`Where the node's time goes (self time, % of ${fmt(p.busyMs)} ms busy; idle ${fmt(p.idleMs)} ms) — by layer`, p.byLayer.map((r) => ({ label: r.name, value: `${fmt(r.percentOfBusy, " %")}  ${fmt(r.selfMs, " ms")}` })));
    printSection("By file (top 25)", p.byFile.map((r) => ({ label: r.name, value: `${fmt(r.percentOfBusy, " %")}  ${fmt(r.selfMs, " ms")}` })));
    printSection("By function (top 25)", p.byFunction.map((r) => ({ label: r.name, value: `${fmt(r.percentOfBusy, " %")}  ${fmt(r.selfMs, " ms")}` })));
    process.stdout.write(`\n  profile: ${p.file} (open in Chrome DevTools → Performance)\n`);
  }
}

main()
  .then((code) => {
    process.exitCode = code;
  })
  .catch(async (error: unknown) => {
    process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
    await stopAll();
    process.exitCode = 1;
  });
