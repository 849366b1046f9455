// Resource use of a server process tree from /proc (Linux): CPU time (user+system clock
// ticks from /proc/<pid>/stat) and peak resident memory (VmHWM from /proc/<pid>/status).
// Descendants are included so a server that forks workers is measured whole.
import { readFileSync, readdirSync } from "node:fs";
import { execFileSync } from "node:child_process";

let clockTicksPerSecond: number | null = null;

function ticksPerSecond(): number {
  if (clockTicksPerSecond === null) {
    try {
      clockTicksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicksPerSecond = 100;
    }
  }
  return clockTicksPerSecond;
}

export interface ProcessSample {
  /** user+system CPU seconds of the process and its live descendants. */
  readonly cpuSeconds: number;
  /** Sum of peak RSS (VmHWM) over the tree, MiB. */
  readonly peakRssMiB: number;
  /** Sum of current RSS (VmRSS), MiB. */
  readonly rssMiB: number;
  readonly pids: readonly number[];
  /** user+system CPU seconds of each process in the tree (a multi-node sandbox: one per node). */
  readonly cpuSecondsByPid: ReadonlyMap<number, number>;
  /** Current RSS (VmRSS) of each process of the tree, MiB. */
  readonly rssMiBByPid: ReadonlyMap<number, number>;
}

function parseStat(pid: number): { ppid: number; cpuTicks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may contain spaces and parentheses: split after the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

function statusKiB(pid: number, key: string): number {
  try {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = parseStat(Number(name));
    if (stat === null) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(Number(name));
    children.set(stat.ppid, list);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

export function sampleProcessTree(rootPid: number): ProcessSample {
  const pids = descendants(rootPid);
  let ticks = 0;
  let hwmKiB = 0;
  let rssKiB = 0;
  const cpuSecondsByPid = new Map<number, number>();
  const rssMiBByPid = new Map<number, number>();
  for (const pid of pids) {
    const pidTicks = parseStat(pid)?.cpuTicks ?? 0;
    ticks += pidTicks;
    cpuSecondsByPid.set(pid, pidTicks / ticksPerSecond());
    hwmKiB += statusKiB(pid, "VmHWM");
    const pidRssKiB = statusKiB(pid, "VmRSS");
    rssKiB += pidRssKiB;
    rssMiBByPid.set(pid, pidRssKiB / 1024);
  }
  return { cpuSeconds: ticks / ticksPerSecond(), peakRssMiB: hwmKiB / 1024, rssMiB: rssKiB / 1024, pids, cpuSecondsByPid, rssMiBByPid };
}
