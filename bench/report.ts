// The printed summary: one short table a person can read at a glance, with the headline
// ratio and the two goals checked. Everything printed is also in the JSON file.
import type { LatencySummaryMs } from "./stats.js";

export interface Row {
  readonly label: string;
  readonly value: string;
}

const fmt = (n: number | null | undefined, unit = "", digits = 1): string =>
  n === null || n === undefined || Number.isNaN(n) ? "—" : `${n.toLocaleString("en-US", { maximumFractionDigits: digits })}${unit}`;

export const latency = (l: LatencySummaryMs | null | undefined): string =>
  l ? `p50 ${fmt(l.p50, " ms", 2)}  p99 ${fmt(l.p99, " ms", 2)}  max ${fmt(l.max, " ms", 1)}` : "—";

export { fmt };

export function printSection(title: string, rows: readonly Row[]): void {
  const width = Math.max(...rows.map((r) => r.label.length));
  process.stdout.write(`\n${title}\n${"-".repeat(title.length)}\n`);
  for (const r of rows) process.stdout.write(`  ${r.label.padEnd(width)}  ${r.value}\n`);
}

export function progress(message: string): void {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
