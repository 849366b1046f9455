// "Where the time goes": summarises a V8 .cpuprofile written by `node --cpu-prof` into self
// time per function, per file and per Coco layer (src/<layer>/), top N of each. Idle time is
// reported separately and left out of the percentages, which are of busy time.
import { readFileSync } from "node:fs";

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface SelfTimeRow {
  readonly name: string;
  readonly selfMs: number;
  readonly percentOfBusy: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly byFunction: readonly SelfTimeRow[];
  readonly byFile: readonly SelfTimeRow[];
  readonly byLayer: readonly SelfTimeRow[];
}

/** Short, stable name for a script URL: repo-relative for our code, package name for deps. */
export function shortFile(url: string): string {
  if (url === "") return "(native/V8)";
  if (url.startsWith("node:")) return url;
  const modules = url.lastIndexOf("/node_modules/");
  if (modules >= 0) {
    const rest = url.slice(modules + "/node_modules/".length).split("/");
    return `npm:${rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const src = url.lastIndexOf("/src/");
  if (src >= 0) return url.slice(src + 1);
  return url.replace(/^file:\/\//, "");
}

function layerOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native/V8)";
  if (url.startsWith("node:")) return "node: built-ins";
  if (url.includes("/node_modules/")) return "npm dependencies";
  const match = /\/src\/([^/]+)\//.exec(url);
  return match ? `src/${match[1]}` : "other";
}

export function summariseCpuProfile(path: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  const layer = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  const add = (m: Map<string, number>, k: string, v: number): void => void m.set(k, (m.get(k) ?? 0) + v);
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = byId.get(profile.samples[i]!);
    const deltaUs = profile.timeDeltas[i] ?? 0;
    if (frame === undefined || deltaUs < 0) continue;
    totalUs += deltaUs;
    if (frame.functionName === "(idle)") {
      idleUs += deltaUs;
      continue;
    }
    const where = frame.url === "" && frame.functionName.startsWith("(") ? frame.functionName : shortFile(frame.url);
    const name = frame.functionName || "(anonymous)";
    add(fn, where === name ? name : `${name} ${where}${frame.url ? `:${frame.lineNumber + 1}` : ""}`, deltaUs);
    add(file, where, deltaUs);
    add(layer, layerOf(frame.url, frame.functionName), deltaUs);
  }
  const busyUs = totalUs - idleUs;
  const rows = (m: Map<string, number>): SelfTimeRow[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: Math.round(us / 100) / 10, percentOfBusy: busyUs > 0 ? Math.round((1000 * us) / busyUs) / 10 : 0 }));
  return {
    file: path,
    totalMs: Math.round(totalUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    byFunction: rows(fn),
    byFile: rows(file),
    byLayer: rows(layer),
  };
}
