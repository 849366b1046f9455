// Command-line options of `npm run bench`. Unknown or unsupported values stop the run with
// a message that says what is supported, before any process is started.
import { parseArgs } from "node:util";

export interface BenchOptions {
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  readonly depth: number;
  readonly durability: "fsync" | "none";
  readonly profile: boolean;
  readonly nodes: number;
  readonly app: string;
  readonly out: string;
  readonly pollIntervalMs: number;
  readonly autocannon: boolean;
  /** The node writes its access log (the sandbox's default); --no-access-log measures without it. */
  readonly accessLog: boolean;
  /** `snapshots.tx_count` for the nodes (--snapshot-tx-count, or huge with --no-snapshots); default the node's. */
  readonly snapshotTxCount: number | undefined;
  /** `ledger_signatures.delay` in ms (--signature-interval-ms); default the sandbox's. */
  readonly signatureIntervalMs: number | undefined;
  /** Every node traces its write path and the report breaks commit latency down by stage. */
  readonly traceLatency: boolean;
}

/** --no-snapshots: a snapshot interval no run reaches. */
export const NO_SNAPSHOTS_TX_COUNT = 1_000_000_000_000;

export const HELP = `Usage: npm run bench -- [options]

Starts a Coco node (sandbox) and an HTTPS echo server, drives both with the same pipelined
keep-alive client and with autocannon, and prints and writes (JSON) committed tx/s, latency
from send to Committed, the node's CPU and memory, and committed-writes/s ÷ echo-requests/s.

Options:
  --duration <s>        measured window per phase, seconds (default 10)
  --warmup <s>          warm-up before each measured window, seconds (default 2)
  --connections <n>     TLS connections (default 50)
  --depth <n>           requests in flight per connection, HTTP/1.1 pipelining (default 16)
  --durability <mode>   fsync | none: the node's durability mode (default fsync)
  --profile             run the node under --cpu-prof and print where its time goes
  --nodes <n>           nodes in the network (default 1; the logging app): node 0 takes the load,
                        the others join through governance; CPU is summed over every node
  --app <name>          logging (default) | evm: ERC-20 transfers via JSON-RPC against ganache
                        (bench/evm.ts) | js-logging: the JS logging app (bench/js-logging,
                        deployed with set_js_app) against the built-in one on the same node
  --out <file>          JSON output (default bench/results/<timestamp>.json)
  --poll-interval <ms>  interval of pipelined GET /node/commit polls (default 2)
  --no-autocannon       skip the autocannon phases
  --no-access-log       run the node without its access log (to measure what the log costs)
  --snapshot-tx-count <n>  snapshots.tx_count of the nodes (default: the node's)
  --no-snapshots        no snapshot during the run (snapshots.tx_count = 10^12)
  --signature-interval-ms <ms>  ledger_signatures.delay of the nodes (default: the sandbox's)
  --trace-latency       every node traces its write path; the report breaks commit latency
                        down by stage (send, execute, signature, flush, fsync, replication,
                        commit point, observation)
  --help                this text
See docs/benchmarks.md for what each figure means.`;

export class UsageError extends Error {}

function positiveNumber(name: string, text: string | undefined, fallback: number, integer: boolean): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name} must be a positive ${integer ? "integer" : "number"}, got '${text}'.`);
  }
  return value;
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: "string" },
        warmup: { type: "string" },
        connections: { type: "string" },
        depth: { type: "string" },
        durability: { type: "string" },
        profile: { type: "boolean" },
        nodes: { type: "string" },
        app: { type: "string" },
        out: { type: "string" },
        "poll-interval": { type: "string" },
        "no-autocannon": { type: "boolean" },
        "no-access-log": { type: "boolean" },
        "snapshot-tx-count": { type: "string" },
        "no-snapshots": { type: "boolean" },
        "signature-interval-ms": { type: "string" },
        "trace-latency": { type: "boolean" },
        help: { type: "boolean" },
      },
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\nRun with --help for the options.`);
  }
  const v = parsed.values;
  if (v.help) return "help";
  const durability = v.durability ?? "fsync";
  if (durability !== "fsync" && durability !== "none") {
    throw new UsageError(`--durability must be 'fsync' or 'none', got '${durability}'.`);
  }
  const nodes = positiveNumber("nodes", v.nodes, 1, true);
  const app = v.app ?? "logging";
  if (nodes !== 1 && app !== "logging") throw new UsageError(`--nodes ${nodes}: multi-node runs measure the built-in logging app only (drop --app or use --nodes 1).`);
  if (app !== "logging" && app !== "js-logging" && app !== "evm") throw new UsageError(`--app ${app}: supported apps are 'logging', 'js-logging' and 'evm'.`);
  const warmupSeconds = v.warmup === undefined ? 2 : Number(v.warmup);
  if (!Number.isFinite(warmupSeconds) || warmupSeconds < 0) throw new UsageError(`--warmup must be a number >= 0, got '${v.warmup}'.`);
  return {
    durationSeconds: positiveNumber("duration", v.duration, 10, false),
    warmupSeconds,
    connections: positiveNumber("connections", v.connections, 50, true),
    depth: positiveNumber("depth", v.depth, 16, true),
    durability,
    profile: v.profile ?? false,
    nodes,
    app,
    out: v.out ?? `bench/results/${new Date().toISOString().replace(/[:.]/g, "-")}.json`,
    pollIntervalMs: positiveNumber("poll-interval", v["poll-interval"], 2, false),
    autocannon: !(v["no-autocannon"] ?? false),
    accessLog: !(v["no-access-log"] ?? false),
    snapshotTxCount: v["no-snapshots"] === true ? NO_SNAPSHOTS_TX_COUNT
      : v["snapshot-tx-count"] === undefined ? undefined : positiveNumber("snapshot-tx-count", v["snapshot-tx-count"], 1, true),
    signatureIntervalMs: v["signature-interval-ms"] === undefined ? undefined : positiveNumber("signature-interval-ms", v["signature-interval-ms"], 1, true),
    traceLatency: v["trace-latency"] ?? false,
  };
}
