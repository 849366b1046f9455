// `npm run bench -- --long`: a node (or a sandbox network) under sustained writes until its
// ledger holds --long-tx transactions, sampling every interval its memory (RSS per node process,
// V8 heap and Coco's bounded windows from GET /node/memory), ledger bytes, snapshot files and
// commit latency; then the timings of a restart from that ledger.
// The write load cycles over --long-keys keys, so the application's KV state stays the same size
// and whatever grows is the node's own bookkeeping. Prints progress and writes JSON.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import * as os from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { stopChild } from "./child-processes.js";
import { KeepAliveClient } from "./keep-alive-client.js";
import { measureNodeWrites } from "./phases.js";
import { sampleProcessTree } from "./proc-stats.js";
import { fmt, progress } from "./report.js";
import { readTarget, startNode, type RunningServer } from "./servers.js";
import { round } from "./stats.js";
import type { TlsTarget } from "./pipelined-client.js";

export const LONG_HELP = `Usage: npm run bench -- --long [options]

Sustained writes until the ledger holds --long-tx transactions, sampling memory, ledger bytes,
snapshot files and commit latency every interval; then a restart timing on that ledger.
  --long-tx <n>         transactions to write (default 1000000)
  --nodes <n>           nodes in the network (default 1)
  --long-interval <s>   sampling interval, seconds (default 10)
  --long-keys <n>       distinct keys written, cycled (default 100000)
  --long-rate <n>       writes/s target (default: as fast as the node answers)
  --long-seconds-max <s> stop the write phase after this long whatever the count (default 1200)
  --connections <n>     TLS connections (default 20)   --depth <n>  pipelined per connection (default 16)
  --durability <mode>   none (default, as the issue asks) | fsync
  --snapshot-tx-count <n>  snapshots.tx_count of the nodes (default: the node's; 10^12: none)
  --long-timings        instead: build a ledger of --long-tx transactions and time a restart,
                        a join and a recovery from it (npm run bench -- --long --long-timings --help)
  --no-restart          skip the restart timing (always skipped with --nodes > 1: the sandbox
                        restarts only a single node from disk)
  --out <file>          JSON output (default bench/results/long-<timestamp>.json)`;

interface LongOptions {
  transactions: number; nodes: number; intervalSeconds: number; keys: number; rate: number | undefined; secondsMax: number;
  connections: number; depth: number; durability: "none" | "fsync"; restart: boolean; out: string;
  snapshotTxCount: number | undefined;
}

function parseLongArgs(argv: readonly string[]): LongOptions | "help" {
  const { values: v } = parseArgs({
    args: argv.filter((a) => a !== "--long"), strict: true, allowPositionals: false,
    options: {
      "long-tx": { type: "string" }, nodes: { type: "string" }, "long-interval": { type: "string" }, "long-keys": { type: "string" },
      "long-rate": { type: "string" }, "long-seconds-max": { type: "string" }, connections: { type: "string" }, depth: { type: "string" },
      durability: { type: "string" }, "no-restart": { type: "boolean" }, out: { type: "string" }, help: { type: "boolean" },
      "snapshot-tx-count": { type: "string" },
    },
  });
  if (v.help) return "help";
  const positive = (name: string, text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got '${text}'.`);
    return n;
  };
  const durability = v.durability ?? "none";
  if (durability !== "none" && durability !== "fsync") throw new Error(`--durability must be 'none' or 'fsync', got '${durability}'.`);
  return {
    transactions: positive("long-tx", v["long-tx"], 1_000_000),
    nodes: positive("nodes", v.nodes, 1),
    intervalSeconds: positive("long-interval", v["long-interval"], 10),
    keys: positive("long-keys", v["long-keys"], 100_000),
    rate: v["long-rate"] === undefined ? undefined : positive("long-rate", v["long-rate"], 0),
    secondsMax: positive("long-seconds-max", v["long-seconds-max"], 1200),
    connections: positive("connections", v.connections, 20),
    depth: positive("depth", v.depth, 16),
    durability,
    restart: !(v["no-restart"] ?? false),
    snapshotTxCount: v["snapshot-tx-count"] === undefined ? undefined : positive("snapshot-tx-count", v["snapshot-tx-count"], 0),
    out: v.out ?? `bench/results/long-${new Date().toISOString().replace(/[:.]/g, "-")}.json`,
  };
}

/** Workspaces of the sandbox's nodes: node 0 in the workspace, node i in workspace/node<i>. */
function nodeDirs(workspace: string): string[] {
  const dirs = [workspace];
  for (let i = 1; existsSync(join(workspace, `node${i}`)); i++) dirs.push(join(workspace, `node${i}`));
  return dirs;
}

function directoryBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

function fileCount(dir: string): number {
  return existsSync(dir) ? readdirSync(dir).filter((name) => name.startsWith("snapshot")).length : 0;
}

function rpcPort(dir: string): number | undefined {
  const file = join(dir, "config.json");
  if (!existsSync(file)) return undefined;
  const config = JSON.parse(readFileSync(file, "utf8")) as { network: { rpc_interfaces: Record<string, { bind_address: string }> } };
  return Number(Object.values(config.network.rpc_interfaces)[0]!.bind_address.split(":").pop());
}

export async function getJson(target: TlsTarget, path: string): Promise<Record<string, unknown> | null> {
  try {
    const client = await KeepAliveClient.connect(target, 2_000);
    try {
      const r = await client.get(path, 5_000);
      return r.status === 200 ? (r.json as Record<string, unknown>) : null;
    } finally {
      client.close();
    }
  } catch {
    return null;
  }
}

export function post(target: TlsTarget, path: string, body: string): Promise<{ status: number; txId: string | undefined }> {
  return new Promise((resolvePost, reject) => {
    const req = httpsRequest({ host: target.host, port: target.port, path, method: "POST", ca: target.ca, cert: target.cert, key: target.key,
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) }, timeout: 5_000 }, (res) => {
      res.resume();
      res.on("end", () => resolvePost({ status: res.statusCode ?? 0, txId: res.headers["x-ms-ccf-transaction-id"] as string | undefined }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end(body);
  });
}

export const commitSeqno = (json: Record<string, unknown> | null): number => Number(String(json?.["transaction_id"] ?? "0.0").split(".")[1]);

/** One sample of every node: RSS per process, /node/memory, ledger bytes, snapshot files. */
async function sampleNodes(node: RunningServer, workspace: string) {
  const proc = sampleProcessTree(node.child.pid);
  const dirs = nodeDirs(workspace);
  const nodes = [];
  for (const [i, dir] of dirs.entries()) {
    const port = i === 0 ? node.target.port : rpcPort(dir);
    const memory = port === undefined ? null : await getJson({ ...node.target, port }, "/node/memory");
    nodes.push({
      node: i,
      heapUsedMiB: memory ? round(Number(memory["current_allocated_heap_size"]) / 2 ** 20, 1) : null,
      heapTotalMiB: memory ? round(Number(memory["peak_allocated_heap_size"]) / 2 ** 20, 1) : null,
      rssMiB: memory ? round(Number(memory["rss"]) / 2 ** 20, 1) : null,
      arrayBuffersMiB: memory ? round(Number(memory["array_buffers"]) / 2 ** 20, 1) : null,
      consensusWindow: memory?.["consensus_window"] ?? null,
      merkle: memory?.["merkle"] ?? null,
      ledgerIndex: memory?.["ledger_index"] ?? null,
      ledgerBytes: directoryBytes(join(dir, "ledger")),
      snapshotFiles: fileCount(join(dir, "snapshots")),
    });
  }
  return { rssMiBByProcess: proc.pids.map((pid) => round(proc.rssMiBByPid.get(pid) ?? 0, 1)), cpuSeconds: proc.cpuSeconds, nodes };
}

export async function waitFor<T>(what: string, deadlineMs: number, check: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadlineMs) throw new Error(`${what} did not happen in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Times a (re)started node from `spawnedAt`: until it serves, and until a first write is committed. */
export async function timeToServeAndCommit(target: TlsTarget, spawnedAt: number, deadlineMs: number): Promise<{ servingMs: number; firstWriteCommittedMs: number }> {
  await waitFor("the node serving", deadlineMs, async () => ((await getJson(target, "/node/state"))?.["state"] === "PartOfNetwork" ? true : undefined));
  const servingMs = Date.now() - spawnedAt;
  const txId = await waitFor("a write accepted", deadlineMs, async () => {
    const r = await post(target, "/app/log/private", `{"id":1,"msg":"after restart"}`).catch(() => undefined);
    return r?.status === 200 ? r.txId : undefined;
  });
  await waitFor("the write committed", deadlineMs, async () => ((await getJson(target, `/node/tx?transaction_id=${txId}`))?.["status"] === "Committed" ? true : undefined));
  return { servingMs, firstWriteCommittedMs: Date.now() - spawnedAt };
}

/**
 * Restarts the network from its ledgers (the sandbox's --restart-from-disk): timings from the
 * spawn to node 0 serving and to a first write committed. (A new node joining the restarted
 * service is not timed here: the sandbox cannot add a node to a workspace that started with
 * fewer; test/e2e/memory.test.ts joins a node to a service far past its consensus window.)
 */
async function restartFromLedger(workspace: string, options: LongOptions) {
  const spawnedAt = Date.now();
  const deadline = spawnedAt + 600_000;
  const node = await startNode({ workspace, durability: options.durability, nodes: options.nodes, extraArgs: ["--restart-from-disk"], noWait: true });
  try {
    // The sandbox listens on the port startNode chose (config.json still names the last run's until it is rewritten).
    const port = node.target.port;
    const target = await waitFor("node 0's certificates", deadline, async () => readTarget(workspace, port) ?? undefined);
    const { servingMs, firstWriteCommittedMs } = await timeToServeAndCommit(target, spawnedAt, deadline);
    progress(`restart: serving after ${fmt(servingMs / 1000, " s", 2)}, first write committed after ${fmt(firstWriteCommittedMs / 1000, " s", 2)}`);
    const after = await sampleNodes({ ...node, target }, workspace);
    return { servingMs, firstWriteCommittedMs, after };
  } finally {
    await stopChild(node.child, 30_000);
  }
}

interface IntervalSample {
  elapsedSeconds: number;
  committedSeqno: number;
  committedPerSecond: number;
  commitLatencyMs: { p50: number; p99: number } | null;
  cpuMicrosecondsPerCommittedTx: number | null;
  non2xx: number;
  rssMiBByProcess: number[];
  nodes: Awaited<ReturnType<typeof sampleNodes>>["nodes"];
}

export async function runLongBench(argv: readonly string[]): Promise<number> {
  // The 1M-transaction restart, join and recovery timings (long-timings.ts).
  if (argv.includes("--long-timings")) return (await import("./long-timings.js")).runLongTimings(argv);
  const options = parseLongArgs(argv);
  if (options === "help") {
    process.stdout.write(`${LONG_HELP}\n`);
    return 0;
  }
  const tempDir = mkdtempSync(join(os.tmpdir(), "coco-bench-long-"));
  const workspace = join(tempDir, "node-workspace");
  mkdirSync(workspace);
  const intervals: IntervalSample[] = [];
  let restart: Awaited<ReturnType<typeof restartFromLedger>> | { error: string } | undefined;
  let committed = 0;
  const startedAt = Date.now();
  progress(`long run: ${options.transactions.toLocaleString("en-US")} transactions on ${options.nodes} node(s), durability ${options.durability}, ${options.keys.toLocaleString("en-US")} keys`);
  const node = await startNode({ workspace, durability: options.durability, nodes: options.nodes,
    ...(options.snapshotTxCount !== undefined ? { snapshotTxCount: options.snapshotTxCount } : {}) });
  try {
    let cpuBefore = sampleProcessTree(node.child.pid).cpuSeconds;
    let committedBefore = commitSeqno(await getJson(node.target, "/node/commit"));
    while (committed < options.transactions && (Date.now() - startedAt) / 1000 < options.secondsMax) {
      const shape = { connections: options.connections, depth: options.depth, warmupSeconds: 0, durationSeconds: options.intervalSeconds };
      const writes = await measureNodeWrites(node, shape, 5, options.rate, options.keys);
      committed = commitSeqno(await getJson(node.target, "/node/commit"));
      const sample = await sampleNodes(node, workspace);
      const cpuSeconds = sample.cpuSeconds - cpuBefore;
      const interval: IntervalSample = {
        elapsedSeconds: round((Date.now() - startedAt) / 1000, 1),
        committedSeqno: committed,
        committedPerSecond: writes.committedPerSecond,
        commitLatencyMs: writes.commitLatencyMs === null ? null : { p50: writes.commitLatencyMs.p50, p99: writes.commitLatencyMs.p99 },
        // Over every node process, per transaction the commit point advanced by (signatures included).
        cpuMicrosecondsPerCommittedTx: committed > committedBefore ? round((cpuSeconds * 1e6) / (committed - committedBefore), 1) : null,
        non2xx: Object.entries(writes.client.statusCounts).filter(([status]) => !status.startsWith("2")).reduce((n, [, c]) => n + c, 0),
        rssMiBByProcess: sample.rssMiBByProcess,
        nodes: sample.nodes,
      };
      intervals.push(interval);
      cpuBefore = sample.cpuSeconds;
      committedBefore = committed;
      progress(`${interval.elapsedSeconds} s: committed ${committed.toLocaleString("en-US")} (${fmt(writes.committedPerSecond)} tx/s), ` +
        `RSS ${interval.rssMiBByProcess.map((r) => fmt(r, " MiB")).join(" / ")}, heap ${sample.nodes.map((n) => fmt(n.heapUsedMiB, " MiB")).join(" / ")}, ` +
        `commit p50/p99 ${fmt(writes.commitLatencyMs?.p50, "", 1)}/${fmt(writes.commitLatencyMs?.p99, " ms", 1)}, ` +
        `ledger ${fmt(sample.nodes[0]!.ledgerBytes / 2 ** 20, " MiB")}, ${fmt(interval.cpuMicrosecondsPerCommittedTx, " µs")} CPU/tx`);
    }
  } finally {
    await stopChild(node.child, 30_000);
  }
  if (options.restart && options.nodes > 1) {
    // coco sandbox --restart-from-disk restarts node 0 alone, which then has no majority.
    restart = { error: "not timed: the sandbox restarts only a single node from disk (run --nodes 1 for the restart timing)" };
    progress(restart.error);
  } else if (options.restart) {
    progress("restarting the network from its ledger");
    try {
      restart = await restartFromLedger(workspace, options);
    } catch (error) {
      restart = { error: (error as Error).message };
      progress(`restart/join failed: ${(error as Error).message}`);
    }
  }
  const firstHalf = intervals.slice(0, Math.ceil(intervals.length / 2));
  const rssAt = (list: typeof intervals) => list.length === 0 ? null : list[list.length - 1]!.rssMiBByProcess;
  const result = {
    kind: "long-run",
    options,
    machine: { cores: os.cpus().length, totalMemoryMiB: Math.round(os.totalmem() / 2 ** 20), node: process.version },
    headline: {
      committed,
      rssMiBAtHalf: rssAt(firstHalf),
      rssMiBAtEnd: rssAt(intervals),
      rssMiBMaxByProcess: intervals.length === 0 ? null
        : intervals[0]!.rssMiBByProcess.map((_, i) => Math.max(...intervals.map((it) => it.rssMiBByProcess[i] ?? 0))),
      restart,
    },
    intervals,
  };
  const outPath = resolve(options.out);
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nJSON written to ${outPath}\n`);
  rmSync(tempDir, { recursive: true, force: true });
  return restart !== undefined && "error" in restart && options.nodes === 1 ? 1 : 0;
}
