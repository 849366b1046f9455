// `npm run bench -- --app js-logging`: the JS logging app (bench/js-logging/, deployed through
// governance with `set_js_app`) against the built-in logging app, on one sandbox node, with the
// same private-write load. Order: built-in, JS, built-in again after remove_js_app, so that the
// JS run is bracketed in time on a noisy machine. The sandbox's cost per request is the node's
// CPU per committed transaction with the JS app minus that with the built-in app.
import * as os from "node:os";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { GovernanceClient } from "../src/client/index.js";
import { buildBundle, deployBundle } from "../src/cli/app.js";
import type { BenchOptions } from "./args.js";
import { stopChild } from "./child-processes.js";
import { summariseCpuProfile } from "./cpu-profile-summary.js";
import { KeepAliveClient } from "./keep-alive-client.js";
import { checkResponsive, measureNodeWrites, WRITE_PATH, type LoadShape } from "./phases.js";
import { fmt, latency, printSection, progress } from "./report.js";
import { startNode, type RunningServer } from "./servers.js";
import { round } from "./stats.js";

/** The goal: JS committed writes/s at least two thirds of the built-in app's. */
export const JS_RATIO_GOAL = 0.67;
const APP_DIR = fileURLToPath(new URL("../../bench/js-logging/", import.meta.url));

type NodeFigures = Awaited<ReturnType<typeof measureNodeWrites>>;

function governance(workspace: string, server: RunningServer): GovernanceClient {
  return new GovernanceClient({
    url: `https://127.0.0.1:${server.target.port}`,
    serviceCertPem: readFileSync(join(workspace, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(workspace, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(workspace, "member0_privk.pem"), "utf8"),
  });
}

async function passProposal(gov: GovernanceClient, name: string, args?: unknown): Promise<void> {
  let info = await gov.propose({ actions: [args === undefined ? { name } : { name, args }] });
  if (info.proposalState === "Open") info = await gov.accept(info.proposalId);
  if (info.proposalState !== "Accepted") throw new Error(`${name} was not accepted: ${JSON.stringify(info)}`);
  if (info.transactionId !== undefined) await gov.waitForCommit(info.transactionId);
}

/** The JS app must be the one answering the write path, or the comparison means nothing. */
async function assertJsServesWrites(server: RunningServer): Promise<void> {
  const client = await KeepAliveClient.connect(server.target);
  try {
    const api = (await client.get("/app/api")).json as { paths?: Record<string, Record<string, Record<string, unknown>>> } | null;
    const post = api?.paths?.[WRITE_PATH.slice("/app".length)]?.["post"];
    if (post?.["x-ccf-js-function"] !== "recordPrivate") throw new Error(`after set_js_app, POST ${WRITE_PATH} is not the JS app's: ${JSON.stringify(post)}`);
  } finally {
    client.close();
  }
}

function summary(r: NodeFigures | undefined) {
  if (r === undefined) return null;
  return {
    committedPerSecond: r.committedPerSecond,
    nodeCpuPercent: r.node.cpuPercent,
    nodeCpuMicrosecondsPerCommittedTx: r.node.cpuMicrosecondsPerCommittedTx,
    commitLatencyMs: r.commitLatencyMs,
    responseLatencyMs: r.responseLatencyMs,
    statusCounts: r.client.statusCounts,
  };
}

const mean = (values: readonly (number | null | undefined)[]): number | null => {
  const present = values.filter((v): v is number => typeof v === "number");
  return present.length === 0 ? null : present.reduce((a, b) => a + b, 0) / present.length;
};

export async function runJsLoggingBench(options: BenchOptions, shape: LoadShape): Promise<number> {
  const outPath = resolve(options.out);
  const tempDir = mkdtempSync(join(os.tmpdir(), "coco-bench-js-"));
  const workspace = join(tempDir, "node-workspace");
  mkdirSync(workspace);
  const loadAverageAtStart = os.loadavg().map((l) => round(l, 2));
  progress(`${os.cpus().length} cores, load average ${loadAverageAtStart.join(" ")}; results → ${outPath}`);
  // --profile: one CPU profile of the node over all three runs; the JS-only frames stand out.
  const profileDir = options.profile ? outPath.replace(/\.json$/, "") + "-cpuprofile" : undefined;
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
  const runs: { builtIn?: NodeFigures; js?: NodeFigures; builtInAgain?: NodeFigures } = {};
  let error: string | undefined;
  let node: RunningServer | null = null;
  let bundleBytes = 0;
  const load = `${shape.connections} connections × ${shape.depth} in flight, ${shape.warmupSeconds} s warm-up + ${shape.durationSeconds} s`;
  try {
    progress(`starting a Coco node (sandbox, durability ${options.durability})`);
    node = await startNode({ workspace, durability: options.durability, ...(profileDir === undefined ? {} : { profileDir }) });
    const gov = governance(workspace, node);
    try {
      progress(`built-in logging app, POST ${WRITE_PATH}: ${load}`);
      runs.builtIn = await measureNodeWrites(node, shape, options.pollIntervalMs);
      progress(`  ${fmt(runs.builtIn.committedPerSecond)} committed tx/s`);

      progress(`building ${APP_DIR} with coco app build and deploying it (set_js_app)`);
      const bundle = await buildBundle(APP_DIR);
      bundleBytes = bundle.modules.reduce((n, m) => n + m.module.length, 0);
      await deployBundle(gov, bundle, true);
      await checkResponsive(node, "/node/state");
      await assertJsServesWrites(node);
      progress(`JS logging app, POST ${WRITE_PATH}: ${load}`);
      runs.js = await measureNodeWrites(node, shape, options.pollIntervalMs);
      progress(`  ${fmt(runs.js.committedPerSecond)} committed tx/s`);

      progress("removing the JS app (remove_js_app): the built-in app serves the path again");
      await passProposal(gov, "remove_js_app");
      progress(`built-in logging app again: ${load}`);
      runs.builtInAgain = await measureNodeWrites(node, shape, options.pollIntervalMs);
      progress(`  ${fmt(runs.builtInAgain.committedPerSecond)} committed tx/s`);
    } finally {
      await gov.close();
    }
  } catch (e) {
    error = e instanceof Error ? (e.stack ?? e.message) : String(e);
    progress(`failed: ${(e as Error).message}`);
  } finally {
    if (node !== null) await stopChild(node.child);
  }

  const builtInPerSecond = mean([runs.builtIn?.committedPerSecond, runs.builtInAgain?.committedPerSecond]);
  const builtInCpu = mean([runs.builtIn?.node.cpuMicrosecondsPerCommittedTx, runs.builtInAgain?.node.cpuMicrosecondsPerCommittedTx]);
  const jsPerSecond = runs.js?.committedPerSecond ?? null;
  const jsCpu = runs.js?.node.cpuMicrosecondsPerCommittedTx ?? null;
  const ratio = builtInPerSecond && jsPerSecond !== null ? round(jsPerSecond / builtInPerSecond, 3) : null;
  const overhead = builtInCpu !== null && jsCpu !== null ? round(jsCpu - builtInCpu, 1) : null;
  const headline = {
    durability: options.durability,
    cores: os.cpus().length,
    loadAverageAtStart,
    loadAverageAtEnd: os.loadavg().map((l) => round(l, 2)),
    builtInCommittedPerSecond: builtInPerSecond === null ? null : round(builtInPerSecond, 1),
    builtInCommittedPerSecondRuns: [runs.builtIn?.committedPerSecond ?? null, runs.builtInAgain?.committedPerSecond ?? null],
    jsCommittedPerSecond: jsPerSecond,
    ratioJsToBuiltIn: ratio,
    ratioGoal: JS_RATIO_GOAL,
    ratioGoalMet: ratio === null ? null : ratio >= JS_RATIO_GOAL,
    builtInNodeCpuMicrosecondsPerCommittedTx: builtInCpu === null ? null : round(builtInCpu, 1),
    jsNodeCpuMicrosecondsPerCommittedTx: jsCpu,
    sandboxOverheadMicrosecondsPerRequest: overhead,
    jsBundleBytes: bundleBytes,
  };
  const result = {
    benchmark: "coco single-node logging private writes: JS app (set_js_app) vs built-in app",
    parameters: { ...options, endpoint: `POST ${WRITE_PATH}` },
    headline,
    runs: { builtIn: summary(runs.builtIn), js: summary(runs.js), builtInAgain: summary(runs.builtInAgain) },
    raw: runs,
    ...(error === undefined ? {} : { error }),
  };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`);

  const cpu = (r: NodeFigures | undefined) => (r ? `${fmt(r.node.cpuPercent, " %")} of one core, ${fmt(r.node.cpuMicrosecondsPerCommittedTx, " µs")} per committed tx` : "—");
  printSection("Coco benchmark: one node, JS logging app vs built-in logging app, private writes", [
    { label: "durability / cores", value: `${options.durability} / ${headline.cores}` },
    { label: "load average start → end", value: `${loadAverageAtStart.join(" ")} → ${headline.loadAverageAtEnd.join(" ")}` },
    { label: "load", value: `${options.connections} connections × ${options.depth} pipelined, ${options.durationSeconds} s window` },
    { label: "built-in committed tx/s", value: `${fmt(builtInPerSecond)} (runs before/after JS: ${fmt(runs.builtIn?.committedPerSecond)}, ${fmt(runs.builtInAgain?.committedPerSecond)})` },
    { label: "JS committed tx/s", value: fmt(jsPerSecond) },
    { label: "ratio JS ÷ built-in", value: `${fmt(ratio, "", 3)}${ratio === null ? "" : ratio >= JS_RATIO_GOAL ? "  (goal met)" : "  (goal NOT met)"} [goal >= ${JS_RATIO_GOAL}]` },
    { label: "node CPU, built-in (first run)", value: cpu(runs.builtIn) },
    { label: "node CPU, JS", value: cpu(runs.js) },
    { label: "node CPU, built-in (again)", value: cpu(runs.builtInAgain) },
    { label: "sandbox overhead per request", value: `${fmt(overhead, " µs")} of node CPU per committed tx (JS − mean built-in)` },
    { label: "commit latency, built-in", value: latency(runs.builtIn?.commitLatencyMs) },
    { label: "commit latency, JS", value: latency(runs.js?.commitLatencyMs) },
    { label: "JS statuses", value: runs.js ? JSON.stringify(runs.js.client.statusCounts) : "—" },
  ]);
  if (profileDir !== undefined) {
    for (const file of readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile"))) {
      const p = summariseCpuProfile(join(profileDir, file), 20);
      printSection(`Where the node's time goes, all three runs (self time, % of ${fmt(p.busyMs)} ms busy) — by function`,
        p.byFunction.map((r) => ({ label: r.name, value: `${fmt(r.percentOfBusy, " %")}  ${fmt(r.selfMs, " ms")}` })));
    }
  }
  process.stdout.write(`\nJSON written to ${outPath}\n`);
  rmSync(tempDir, { recursive: true, force: true });
  return error === undefined ? 0 : 1;
}
