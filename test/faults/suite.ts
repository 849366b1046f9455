// The fault suite as a function: presets (quick for CI, full as the issue asks), one network per
// requested size, and the final verdict. run.ts is its command line; test/e2e/faults.test.ts runs
// the quick preset.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runNetwork, type NetworkReport, type SuiteOptions } from "./scenarios.js";

export type Counts = Pick<SuiteOptions, "primaryKills" | "primaryPauses" | "backupPauses" | "networkKills" | "diskFull" | "damagedFile" | "wipedNode">;
export type Timing = Pick<SuiteOptions, "pauseMs" | "diskFullMs" | "loadBeforeFaultMs" | "loadAfterFaultMs" | "electionTimeoutMs">;

export const PRESETS = {
  quick: {
    counts: { primaryKills: 3, primaryPauses: 1, backupPauses: 1, networkKills: 1, diskFull: true, damagedFile: true, wipedNode: true },
    timing: { pauseMs: 3_000, diskFullMs: 3_000, loadBeforeFaultMs: 1_000, loadAfterFaultMs: 1_000, electionTimeoutMs: 15_000 },
    recoverTimeoutMs: 20_000, nodes: [3], runMinutesMax: 10,
  },
  full: {
    counts: { primaryKills: 100, primaryPauses: 20, backupPauses: 10, networkKills: 10, diskFull: true, damagedFile: true, wipedNode: true },
    timing: { pauseMs: 10_000, diskFullMs: 10_000, loadBeforeFaultMs: 2_000, loadAfterFaultMs: 2_000, electionTimeoutMs: 20_000 },
    recoverTimeoutMs: 60_000, nodes: [3, 5], runMinutesMax: 240,
  },
} as const;

export interface FaultSuiteOptions {
  preset: keyof typeof PRESETS;
  nodes?: number[];
  counts?: Partial<Counts>;
  timing?: Partial<Timing>;
  seed?: number;
  writersMax?: number;
  runMinutesMax?: number;
  /** Keep the workspaces (ledgers, logs) even when everything passed. */
  keep?: boolean;
  log?: (event: Record<string, unknown>) => void;
}

export interface FaultSuiteReport {
  ok: boolean;
  seed: number;
  preset: string;
  elapsedMs: number;
  dir: string;
  networks: NetworkReport[];
  totals: Record<string, number>;
}

export async function runFaultSuite(options: FaultSuiteOptions): Promise<FaultSuiteReport> {
  const preset = PRESETS[options.preset];
  const seed = options.seed ?? Date.now() % 1_000_000;
  const log = options.log ?? ((e) => console.log(JSON.stringify({ t: new Date().toISOString(), ...e })));
  const startedMs = Date.now();
  const deadlineAtMs = startedMs + (options.runMinutesMax ?? preset.runMinutesMax) * 60_000;
  const dir = mkdtempSync(join(tmpdir(), "coco-faults-"));
  const networks: NetworkReport[] = [];
  log({ event: "suite-starting", preset: options.preset, seed, dir });
  for (const nodes of options.nodes ?? preset.nodes) {
    const networkDir = join(dir, `n${nodes}`);
    const suite: SuiteOptions = {
      nodes, seed, deadlineAtMs, log, writersMax: options.writersMax ?? 4,
      ...preset.counts, ...options.counts, ...preset.timing, ...options.timing,
      check: { recoverTimeoutMs: preset.recoverTimeoutMs, earlierReadSampleMax: 200, statusRecheckMax: 3_000, readTimeoutMs: 2_000 },
      finalReadsPerNodeMax: 20_000,
    };
    rmSync(networkDir, { recursive: true, force: true });
    mkdirSync(networkDir, { recursive: true });
    try {
      networks.push(await runNetwork(networkDir, suite));
    } catch (e) {
      // The network never came up: a report with one violation, so the run fails loudly.
      networks.push({ nodes, seed, rounds: 0, roundsPlanned: 0, incomplete: `network did not start: ${(e as Error).message.split("\n")[0]}`, skipped: [], counts: {}, gaps: {}, faults: [], violations: [{ kind: "setup", round: "setup", detail: (e as Error).message.slice(0, 3000) }] });
    }
  }
  const totals: Record<string, number> = {};
  for (const n of networks) for (const [k, v] of Object.entries(n.counts)) totals[k] = (totals[k] ?? 0) + v;
  totals.violations = networks.reduce((s, n) => s + n.violations.length, 0);
  const ok = totals.violations === 0 && networks.every((n) => n.incomplete === undefined);
  if (ok && !options.keep) rmSync(dir, { recursive: true, force: true });
  return { ok, seed, preset: options.preset, elapsedMs: Date.now() - startedMs, dir, networks, totals };
}

/** The human summary printed at the end of a run. */
export function formatReport(report: FaultSuiteReport): string {
  const lines: string[] = [];
  for (const n of report.networks) {
    lines.push(`== ${n.nodes} nodes: ${n.rounds}/${n.roundsPlanned} rounds${n.incomplete ? ` (INCOMPLETE: ${n.incomplete})` : ""}`);
    const c = n.counts;
    lines.push(`   writes attempted ${c.attempted ?? 0}, acknowledged ${c.acknowledged ?? 0}, committed ${c.committed ?? 0}, invalid ${c.invalid ?? 0}, unresolved ${c.unresolved ?? 0}, failed ${c.failed ?? 0} (${c.timedOut ?? 0} timed out after 5 s)`);
    lines.push(`   lost ${c.lost ?? 0}, status flips ${c.flips ?? 0}, wedged ${c.wedged ?? 0}, violations ${n.violations.length}`);
    for (const [kind, g] of Object.entries(n.gaps)) {
      lines.push(`   availability gap ${kind}: n=${g.count} min ${g.minMs ?? "-"} ms, median ${g.medianMs ?? "-"} ms, max ${g.maxMs ?? "-"} ms${g.open ? `, ${g.open} never closed` : ""}`);
    }
    for (const s of n.skipped) lines.push(`   ${s}`);
    for (const v of n.violations.slice(0, 30)) {
      lines.push(`   VIOLATION ${v.kind} [${v.round}]${v.node !== undefined ? ` node ${v.node}` : ""}${v.txid ? ` txid ${v.txid}` : ""}: ${v.detail}`);
    }
    if (n.violations.length > 30) lines.push(`   … ${n.violations.length - 30} more violations (see --json)`);
  }
  lines.push(`${report.ok ? "FAULTS PASS" : "FAULTS FAIL"} seed ${report.seed}, ${Math.round(report.elapsedMs / 1000)} s${report.ok ? "" : `; workspaces kept in ${report.dir}`}`);
  return lines.join("\n");
}

