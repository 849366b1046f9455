// One fault round per injected fault, on one network: load runs, the fault hits, the load goes on,
// then checks.ts verifies safety and recovery. runNetwork drives every round of one network size
// and returns its figures; nodes that died are restarted between rounds so one bug does not cascade.
import { join } from "node:path";
import { FaultCluster, delay } from "./cluster.js";
import { Load } from "./load.js";
import { WriteBook, seededRandom, summary, type FaultRecord } from "./book.js";
import { checkRound, finalCheck, type CheckOptions } from "./checks.js";
import { damagedFileRound, diskFullRound, wipedNodeRound } from "./file-faults.js";

export interface SuiteOptions {
  nodes: number;
  primaryKills: number;
  primaryPauses: number;
  backupPauses: number;
  networkKills: number;
  diskFull: boolean;
  damagedFile: boolean;
  wipedNode: boolean;
  pauseMs: number;
  diskFullMs: number;
  loadBeforeFaultMs: number;
  loadAfterFaultMs: number;
  electionTimeoutMs: number;
  writersMax: number;
  seed: number;
  /** The whole run stops scheduling rounds past this instant (epoch ms). */
  deadlineAtMs: number;
  check: CheckOptions;
  finalReadsPerNodeMax: number;
  log: (event: Record<string, unknown>) => void;
}

export interface Injected { node?: number; detail?: string; expectedDown?: number[] }

export interface RoundContext {
  cluster: FaultCluster;
  book: WriteBook;
  load: Load;
  random: () => number;
  options: SuiteOptions;
  dir: string;
  round: string;
  skipped: string[];
  /** Run after the round's checks (e.g. move a ledger back off tmpfs), then emptied. */
  undo: (() => Promise<void>)[];
  /** Run when the network is torn down, whatever happened (e.g. unmount). */
  cleanup: (() => void)[];
  /** Nodes the last round's checks found wedged. */
  wedged: number[];
}

export interface NetworkReport {
  nodes: number;
  seed: number;
  rounds: number;
  roundsPlanned: number;
  incomplete?: string;
  skipped: string[];
  counts: Record<string, number>;
  gaps: Record<string, ReturnType<typeof summary> & { open: number }>;
  faults: FaultRecord[];
  violations: WriteBook["violations"];
}

async function primaryKill(ctx: RoundContext): Promise<Injected> {
  const { cluster, book, options } = ctx;
  const p = await cluster.findPrimary(options.electionTimeoutMs);
  if (p === undefined) throw new Error("no primary before the fault");
  const fault = book.faultInjected("primary-kill", ctx.round, p);
  await cluster.kill(p);
  const q = await cluster.findPrimary(options.electionTimeoutMs, p);
  const electedMs = Date.now() - fault.atMs;
  await delay(options.loadAfterFaultMs / 2);
  await cluster.restart(p);
  return { node: p, detail: q === undefined ? `no new primary within ${options.electionTimeoutMs} ms` : `node ${q} primary after ${electedMs} ms; node ${p} restarted` };
}

async function pauseRound(ctx: RoundContext, which: "primary" | "backup"): Promise<Injected> {
  const { cluster, book, options, random } = ctx;
  const p = await cluster.findPrimary(options.electionTimeoutMs);
  if (p === undefined) throw new Error("no primary before the fault");
  const backups = [...Array(cluster.size).keys()].filter((i) => i !== p && cluster.answering(i));
  const target = which === "primary" ? p : backups[Math.floor(random() * backups.length)]!;
  book.faultInjected(`${which}-pause`, ctx.round, target);
  cluster.pause(target);
  await delay(options.pauseMs);
  cluster.resume(target);
  const after = await cluster.findPrimary(options.electionTimeoutMs);
  return { node: target, detail: `paused ${options.pauseMs} ms; primary now node ${after ?? "none"}` };
}

async function networkKill(ctx: RoundContext): Promise<Injected> {
  const { cluster, book, options } = ctx;
  book.faultInjected("network-kill", ctx.round, "all");
  await cluster.killAll();
  const results = await Promise.allSettled(cluster.net.nodes.map((_, i) => cluster.restart(i)));
  const failed = results.flatMap((r, i) => (r.status === "rejected" ? [i] : []));
  const p = await cluster.findPrimary(options.electionTimeoutMs * 2);
  return { detail: `all restarted${failed.length ? ` except ${failed.join(",")}` : ""}; primary node ${p ?? "none"}` };
}

async function runRound(ctx: RoundContext, kind: string, index: number, inject: (ctx: RoundContext) => Promise<Injected>): Promise<void> {
  const { cluster, book, load, options } = ctx;
  ctx.round = `${kind}-${index}`;
  load.round = ctx.round;
  const startedMs = Date.now();
  const before = book.counts();
  load.start();
  await delay(options.loadBeforeFaultMs);
  let injected: Injected = {};
  try {
    injected = await inject(ctx);
  } catch (e) {
    book.violation({ kind: "setup", round: ctx.round, detail: `the fault could not be injected or undone: ${(e as Error).message.split("\n")[0]}` });
  }
  await delay(options.loadAfterFaultMs);
  await load.stop();
  const check = await checkRound(cluster, load, book, ctx.round, options.check, ctx.random, injected.expectedDown);
  ctx.wedged = check.wedged;
  const after = book.counts();
  const fault = book.faults.filter((f) => f.round === ctx.round)[0];
  options.log({
    event: "round", nodes: cluster.size, round: ctx.round, node: injected.node, detail: injected.detail,
    gapMs: fault?.gapMs ?? null, availableAfterMs: check.availableAfterMs ?? null, commitSeqno: check.commitSeqno ?? null,
    attempted: after.attempted! - before.attempted!, committed: after.committed! - before.committed!, timedOut: after.timedOut! - before.timedOut!, reads: check.reads,
    newViolations: after.violations! - before.violations!, wedged: check.wedged, elapsedMs: Date.now() - startedMs,
  });
  for (const undo of ctx.undo.splice(0)) await undo();
  await repair(ctx);
}

/** Restarts nodes that died or were found wedged (already reported), so the next round starts from a whole network. */
async function repair(ctx: RoundContext): Promise<void> {
  for (let i = 0; i < ctx.cluster.size; i++) {
    if (ctx.cluster.paused.has(i)) ctx.cluster.resume(i);
    const dead = !ctx.cluster.running(i);
    if (!dead && !ctx.wedged.includes(i)) continue;
    await ctx.cluster.kill(i);
    await ctx.cluster.restart(i); // throws: runNetwork stops this network's rounds
    ctx.options.log({ event: "repair", nodes: ctx.cluster.size, round: ctx.round, node: i, detail: dead ? "restarted a node whose process had died" : "restarted a wedged node" });
  }
  ctx.wedged = [];
}

export async function runNetwork(dir: string, options: SuiteOptions): Promise<NetworkReport> {
  const random = seededRandom(options.seed * 31 + options.nodes);
  const book = new WriteBook(`s${options.seed}n${options.nodes}`, random);
  const plan: [string, number, (ctx: RoundContext) => Promise<Injected>][] = [
    ["primary-kill", options.primaryKills, primaryKill],
    ["primary-pause", options.primaryPauses, (c) => pauseRound(c, "primary")],
    ["backup-pause", options.backupPauses, (c) => pauseRound(c, "backup")],
    ["disk-full", options.diskFull ? 1 : 0, diskFullRound],
    ["damaged-file", options.damagedFile ? 2 : 0, damagedFileRound],
    ["wiped-node", options.wipedNode ? 1 : 0, wipedNodeRound],
    ["network-kill", options.networkKills, networkKill],
  ];
  const roundsPlanned = plan.reduce((n, [, count]) => n + count, 0);
  const report: NetworkReport = { nodes: options.nodes, seed: options.seed, rounds: 0, roundsPlanned, skipped: [], counts: {}, gaps: {}, faults: book.faults, violations: book.violations };
  options.log({ event: "network-starting", nodes: options.nodes, dir });
  const cluster = await FaultCluster.start(join(dir), options.nodes);
  const load = new Load(cluster, book, { writersMax: options.writersMax, writeIntervalMs: 20, writeTimeoutMs: 5_000, pollBatchMax: 200 }, random);
  const ctx: RoundContext = { cluster, book, load, random, options, dir, round: "setup", skipped: report.skipped, undo: [], cleanup: [], wedged: [] };
  try {
    outer: for (const [kind, count, inject] of plan) {
      for (let k = 1; k <= count; k++) {
        if (Date.now() > options.deadlineAtMs) { report.incomplete = `deadline reached before ${kind}-${k}`; break outer; }
        try {
          await runRound(ctx, kind, k, inject);
        } catch (e) {
          report.incomplete = `stopped in ${ctx.round}: ${(e as Error).message.split("\n")[0]}`;
          book.violation({ kind: "wedged", round: ctx.round, detail: `${report.incomplete}\n${(e as Error).message.slice(0, 2000)}` });
          break outer;
        }
        report.rounds++;
      }
    }
    // Last: every write ever Committed, on every node that caught up (bounded sample per node).
    const reads = await finalCheck(cluster, book, options.check, random, options.finalReadsPerNodeMax);
    options.log({ event: "final-check", nodes: cluster.size, reads, violations: book.violations.filter((v) => v.round === "final").length });
  } finally {
    await load.stop();
    await cluster.close();
    options.log({ event: "network-stopped", nodes: options.nodes, dir, detail: "each node's output is in <dir>/node<i>/process-output.log" });
    for (const cleanup of ctx.cleanup) cleanup();
  }
  report.counts = book.counts();
  const kinds = [...new Set(book.faults.map((f) => f.kind))];
  for (const kind of kinds) {
    const faults = book.faults.filter((f) => f.kind === kind);
    report.gaps[kind] = { ...summary(faults.flatMap((f) => (f.gapMs === undefined ? [] : [f.gapMs]))), open: faults.filter((f) => f.gapMs === undefined).length };
  }
  return report;
}
