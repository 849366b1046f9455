#!/usr/bin/env node
// Runs the shell simulator (the real engine, replication shell and ledger front end on simulated
// time, network and disks) over many seeds, after `npm run build`.
//   npm run sim -- --seeds 1000             seeds 1..1000, 3 nodes
//   npm run sim -- --seed 1234 --verbose    replay one seed, printing its whole trace
//   npm run sim -- --core ...               the pure consensus simulator instead (scripts/sim.mjs)
// Exits non-zero on the first violation, printing its seed, the trace tail and a replay command.
import { makeSimIdentities, runShellSeed } from "../dist/src/node/sim/index.js";

const usage = "usage: npm run sim -- [--seeds N] [--start S] [--seed S] [--nodes 3|5] [--chaos-ms MS] [--verbose] [--keep-going] [--jobs N] [--json FILE]\n" +
  "       npm run sim -- --core [...]   the pure Raft simulator (see scripts/sim.mjs --help)";
const argv = process.argv.slice(2);
if (argv.includes("--core")) {
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync(process.execPath, [new URL("./sim.mjs", import.meta.url).pathname, ...argv.filter((a) => a !== "--core")], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}
if (argv.includes("--help") || argv.includes("-h")) { console.log(usage); process.exit(0); }
const args = { seeds: 200, start: 1, nodes: 3, chaosMs: 3_000, verbose: false, json: undefined, keepGoing: false, jobs: 1 };
for (let i = 0; i < argv.length; i++) {
  const flag = argv[i];
  const value = () => {
    const v = Number(argv[++i]);
    if (!Number.isInteger(v) || v < 0) { console.error(`${flag} needs a non-negative integer\n${usage}`); process.exit(2); }
    return v;
  };
  if (flag === "--seeds") args.seeds = value();
  else if (flag === "--start") args.start = value();
  else if (flag === "--seed") { args.start = value(); args.seeds = 1; }
  else if (flag === "--nodes") args.nodes = value();
  else if (flag === "--chaos-ms") args.chaosMs = value();
  else if (flag === "--verbose") args.verbose = true;
  else if (flag === "--keep-going") args.keepGoing = true;
  else if (flag === "--jobs") args.jobs = Math.max(1, value());
  else if (flag === "--json") args.json = argv[++i];
  else { console.error(`unknown argument ${flag}\n${usage}`); process.exit(2); }
}
if (args.nodes < 1 || args.nodes > 7) { console.error(`--nodes must be 1..7\n${usage}`); process.exit(2); }

if (args.jobs > 1 && args.seeds > 1) {
  // Split the seeds into contiguous ranges, one child process each; same seeds, same results.
  const { spawn } = await import("node:child_process");
  const per = Math.ceil(args.seeds / args.jobs);
  const began = performance.now();
  const runs = [];
  for (let j = 0; j < args.jobs; j++) {
    const start = args.start + j * per;
    const count = Math.min(per, args.start + args.seeds - start);
    if (count <= 0) continue;
    const child = spawn(process.execPath, [process.argv[1], "--seeds", String(count), "--start", String(start), "--nodes", String(args.nodes), "--chaos-ms", String(args.chaosMs), ...(args.keepGoing ? ["--keep-going"] : [])], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => { out += d; for (const line of String(d).split("\n")) if (line.includes("progress")) console.log(`job ${j}: ${line}`); });
    runs.push(new Promise((resolve) => child.on("exit", (code) => resolve({ code, out }))));
  }
  const results = await Promise.all(runs);
  const totals = {};
  const failedSeeds = [];
  for (const r of results) {
    const line = r.out.trim().split("\n").reverse().find((l) => l.startsWith("{") && l.includes("\"seeds\""));
    if (!line) continue;
    const s = JSON.parse(line);
    failedSeeds.push(...s.failedSeeds);
    for (const [k, v] of Object.entries(s)) if (typeof v === "number" && !["start", "nodes", "chaosMs", "seconds", "seedsPerSecond"].includes(k)) totals[k] = (totals[k] ?? 0) + v;
  }
  const seconds = (performance.now() - began) / 1000;
  const failed = results.some((r) => r.code !== 0);
  const summary = { ...totals, seeds: args.seeds, start: args.start, nodes: args.nodes, chaosMs: args.chaosMs, jobs: args.jobs, failedSeeds, seconds: Number(seconds.toFixed(1)), seedsPerSecond: Number((args.seeds / seconds).toFixed(2)) };
  console.log(`shell simulator: ${args.seeds} seeds in ${args.jobs} jobs (${args.nodes} nodes, ${args.chaosMs} ms of faults each), ${failed ? "VIOLATIONS (see above)" : "0 violations"}, ${seconds.toFixed(1)} s`);
  console.log(JSON.stringify(summary));
  if (args.json) (await import("node:fs")).writeFileSync(args.json, JSON.stringify(summary, null, 2));
  process.exit(failed ? 1 : 0);
}

const identities = await makeSimIdentities(args.nodes);
let seedsDone = 0;
// Ctrl-C: say how far the run got (every seed before it passed, or the run would have stopped).
process.on("SIGINT", () => {
  console.log(`shell simulator: interrupted after ${seedsDone} of ${args.seeds} seeds (from ${args.start}), ${failures.length} violations`);
  console.log(JSON.stringify({ interrupted: true, seedsDone, start: args.start, nodes: args.nodes, chaosMs: args.chaosMs, violations: failures.length, ...totals }));
  process.exit(130);
});
const began = performance.now();
let lastReport = began;
const failures = [];
const totals = { events: 0, committed: 0, elections: 0, crashes: 0, pauses: 0, damaged: 0, diskFull: 0, writes: 0, reconfigurations: 0, simulatedMs: 0 };
for (let i = 0; i < args.seeds; i++) {
  const seed = args.start + i;
  const result = await runShellSeed({
    seed, nodes: args.nodes, chaosMs: args.chaosMs, identities,
    ...(args.verbose ? { echo: (line) => console.log(line) } : {}),
  });
  for (const k of Object.keys(totals)) totals[k] += result.stats[k];
  seedsDone = i + 1;
  if (!result.ok && args.keepGoing) {
    failures.push({ seed, message: result.message });
    console.error(`seed ${seed} FAILED: ${result.message.split("\n")[0]}`);
  } else if (!result.ok) {
    console.error(`\nseed ${seed} FAILED: ${result.message}`);
    console.error(`--- last ${result.trace.length} trace lines ---`);
    console.error(result.trace.join("\n"));
    console.error(`\nreplay: npm run sim -- --seed ${seed} --nodes ${args.nodes} --chaos-ms ${args.chaosMs} --verbose`);
    process.exit(1);
  }
  const now = performance.now();
  if (now - lastReport > 10_000) {
    lastReport = now;
    console.log(JSON.stringify({ progress: `${i + 1}/${args.seeds}`, seconds: Math.round((now - began) / 1000) }));
  }
}
const seconds = (performance.now() - began) / 1000;
const summary = { seeds: args.seeds, start: args.start, nodes: args.nodes, chaosMs: args.chaosMs, violations: failures.length, failedSeeds: failures.map((f) => f.seed), seconds: Number(seconds.toFixed(1)), seedsPerSecond: Number((args.seeds / seconds).toFixed(2)), ...totals };
console.log(`shell simulator: ${args.seeds} seeds (${args.nodes} nodes, ${args.chaosMs} ms of faults each), ${failures.length} violations, ${seconds.toFixed(1)} s`);
console.log(JSON.stringify(summary));
if (args.json) (await import("node:fs")).writeFileSync(args.json, JSON.stringify(summary, null, 2));
if (failures.length > 0) process.exit(1);
