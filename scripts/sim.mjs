#!/usr/bin/env node
// Runs the deterministic consensus simulator over many seeds (after `npm run build`).
//   npm run sim -- --seeds 100000            run seeds 1..100000 (3 nodes)
//   npm run sim -- --seed 1234 --verbose     replay one seed, printing its whole trace
// Exits non-zero on the first violation, printing its seed, trace tail and a replay command.
import { runSeed } from "../dist/src/consensus/sim/index.js";

const usage = "usage: node scripts/sim.mjs [--seeds N] [--start S] [--seed S] [--nodes 3|5] [--steps K] [--verbose]\n" +
  "       [--break commitWithoutQuorum|commitEarlierTermSignatures]  (run a deliberately broken node: must fail)";
const args = { seeds: 2000, start: 1, nodes: 3, steps: 300, verbose: false, broken: undefined };
const argv = process.argv.slice(2);
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
  else if (flag === "--steps") args.steps = value();
  else if (flag === "--verbose") args.verbose = true;
  else if (flag === "--break") args.broken = argv[++i];
  else { console.error(`unknown argument ${flag}\n${usage}`); process.exit(2); }
}
if (args.nodes < 1 || args.nodes > 9) { console.error(`--nodes must be 1..9\n${usage}`); process.exit(2); }

const began = performance.now();
let lastReport = began;
let committed = 0;
let elections = 0;
let crashes = 0;
let reconfigurations = 0;
for (let i = 0; i < args.seeds; i++) {
  const seed = args.start + i;
  const result = runSeed({
    seed, nodes: args.nodes, steps: args.steps,
    ...(args.verbose ? { echo: (line) => console.log(line) } : {}),
    ...(args.broken ? { unsafe: { [args.broken]: true } } : {}),
  });
  committed += result.stats.committed;
  elections += result.stats.elections;
  crashes += result.stats.crashes;
  reconfigurations += result.stats.reconfigurations;
  if (!result.ok) {
    console.error(`\nseed ${seed} FAILED: ${result.message}`);
    console.error(`--- last ${result.trace.length} trace lines ---`);
    console.error(result.trace.join("\n"));
    console.error(`--- replay: node scripts/sim.mjs --seed ${seed} --nodes ${args.nodes} --steps ${args.steps}${args.broken ? ` --break ${args.broken}` : ""} --verbose`);
    process.exit(1);
  }
  const now = performance.now();
  if (now - lastReport > 2000) {
    lastReport = now;
    const seconds = (now - began) / 1000;
    console.log(`${i + 1}/${args.seeds} seeds, ${((i + 1) / seconds).toFixed(0)} seeds/s`);
  }
}
const seconds = (performance.now() - began) / 1000;
console.log(
  `ok: ${args.seeds} seeds (${args.start}..${args.start + args.seeds - 1}), ${args.nodes} nodes, ${args.steps} steps each, ` +
  `${seconds.toFixed(1)} s (${(args.seeds / seconds).toFixed(0)} seeds/s); ` +
  `${committed} committed, ${elections} elections, ${crashes} crashes, ${reconfigurations} reconfigurations`,
);
