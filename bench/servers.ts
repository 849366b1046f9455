// Starting the two servers the benchmark compares: the echo server and a Coco node
// (`coco sandbox`). Each start returns once the server answers, with what a client needs.
import { existsSync, readFileSync } from "node:fs";
import { freeTcpPort } from "../src/util/index.js";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startChild, type ManagedChild } from "./child-processes.js";
import { KeepAliveClient } from "./keep-alive-client.js";
import type { TlsTarget } from "./pipelined-client.js";
import type { CertificatePair } from "./certs.js";
import { LATENCY_TRACE_ENV } from "../src/node/latency-trace.js";

export interface RunningServer {
  readonly child: ManagedChild;
  readonly target: TlsTarget;
  /** A multi-node sandbox: every node's address, node 0 (= target) first. */
  readonly nodeTargets?: readonly TlsTarget[];
}

const READY_TIMEOUT_MS = 60_000;

/** Path of a compiled sibling script: works from dist/bench/ and from any other outDir. */
function compiledPath(relative: string): string {
  return fileURLToPath(new URL(relative, import.meta.url));
}

export const NODE_MAIN = compiledPath("../src/cli/main.js");
const PROFILE_PRELOAD = new URL("./cpu-profile-preload.js", import.meta.url).href;

export const freePort = (): Promise<number> => freeTcpPort();

export async function startEchoServer(serverCert: CertificatePair, clientCert: CertificatePair): Promise<RunningServer> {
  const child = startChild("echo server", [compiledPath("./echo-server.js"), "--port", "0", "--cert", serverCert.certPath, "--key", serverCert.keyPath]);
  const port = await new Promise<number>((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`echo server did not start: ${child.outputTail()}`)), READY_TIMEOUT_MS);
    child.process.stdout!.on("data", (data: Buffer) => {
      text += data.toString("utf8");
      const match = /\{"port":(\d+)\}/.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    void child.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`echo server exited (${code}) before listening: ${child.outputTail()}`));
    });
  });
  return { child, target: { host: "127.0.0.1", port, ca: serverCert.cert, cert: clientCert.cert, key: clientCert.key } };
}

export interface NodeStartOptions {
  readonly workspace: string;
  readonly durability: string;
  /** When set, the node runs with `--cpu-prof` writing into this directory. */
  readonly profileDir?: string;
  /** Nodes in the network (the sandbox's --nodes); the load goes to node 0. */
  readonly nodes?: number;
  /** More arguments for `coco sandbox` (the long-run benchmark's restart: --restart-from-disk). */
  readonly extraArgs?: readonly string[];
  /** Return as soon as the child is spawned (the caller times readiness itself). */
  readonly noWait?: boolean;
  /** False: the sandbox's --no-access-log. */
  readonly accessLog?: boolean;
  /** The sandbox's --snapshot-tx-count (default: the node's). */
  readonly snapshotTxCount?: number;
  /** The sandbox's --signature-interval-ms (default: the sandbox's). */
  readonly signatureIntervalMs?: number;
  /** Run the built-in EVM app (the ERC-20 benchmark); otherwise the sandbox runs with --no-evm, as a node of the measured app would. */
  readonly evm?: boolean;
  /** Every node writes its latency trace (src/node/latency-trace.ts) into this directory when it stops. */
  readonly latencyTraceDir?: string;
}

export async function startNode(options: NodeStartOptions): Promise<RunningServer> {
  if (!existsSync(NODE_MAIN)) {
    throw new Error(`The node's CLI is not built: ${NODE_MAIN} is missing. Run 'npm run build' first (npm run bench does).`);
  }
  const port = await freePort();
  // One node: --cpu-prof (every thread). Several: through the environment (NODE_OPTIONS refuses
  // --cpu-prof) so the sandbox's other nodes, its child processes, are profiled too (main threads).
  const multiNode = options.nodes !== undefined && options.nodes > 1;
  const profileArgs = options.profileDir === undefined || multiNode ? [] : ["--cpu-prof", "--cpu-prof-dir", options.profileDir];
  const baseEnv = options.latencyTraceDir === undefined ? process.env : { ...process.env, [LATENCY_TRACE_ENV]: options.latencyTraceDir };
  const env = options.profileDir === undefined || !multiNode ? baseEnv : {
    ...baseEnv,
    NODE_OPTIONS: `${process.env["NODE_OPTIONS"] ?? ""} --import ${PROFILE_PRELOAD}`.trim(),
    COCO_BENCH_CPU_PROFILE_DIR: options.profileDir,
  };
  const child = startChild("node", [
    ...profileArgs,
    NODE_MAIN,
    "sandbox",
    "--workspace", options.workspace,
    "--port", String(port),
    "--durability", options.durability,
    ...(options.nodes !== undefined && options.nodes > 1 ? ["--nodes", String(options.nodes)] : []),
    ...(options.extraArgs ?? []),
    ...(options.accessLog === false ? ["--no-access-log"] : []),
    ...(options.evm === true ? [] : ["--no-evm"]),
    ...(options.snapshotTxCount !== undefined ? ["--snapshot-tx-count", String(options.snapshotTxCount)] : []),
    ...(options.signatureIntervalMs !== undefined ? ["--signature-interval-ms", String(options.signatureIntervalMs)] : []),
  ], { env });
  if (options.noWait === true) return { child, target: { host: "127.0.0.1", port, ca: Buffer.alloc(0), cert: Buffer.alloc(0), key: Buffer.alloc(0) } };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastProblem = "no answer yet";
  let exitCode: string | null = null;
  void child.exited.then((code) => (exitCode = code));
  for (;;) {
    if (exitCode !== null) throw new Error(`The node exited (${exitCode}) before it was ready. Its output:\n${child.outputTail()}`);
    if (Date.now() > deadline) {
      throw new Error(`The node was not ready (PartOfNetwork) within ${READY_TIMEOUT_MS / 1000} s (${lastProblem}). Its output:\n${child.outputTail()}`);
    }
    const target = readTarget(options.workspace, port);
    if (target !== null) {
      try {
        const client = await KeepAliveClient.connect(target, 2_000);
        try {
          const state = await client.get("/node/state");
          const nodeState = (state.json as { state?: unknown } | null)?.state;
          const consensus = await client.get("/node/consensus");
          const voters = ((consensus.json as { details?: { configuration?: unknown[] } } | null)?.details?.configuration ?? []).length;
          if (state.status === 200 && nodeState === "PartOfNetwork" && voters >= (options.nodes ?? 1)) {
            if (!multiNode) return { child, target };
            // The sandbox's node i serves on port + i. A joiner is a voter before it has learnt it
            // was trusted and opened its RPC port: wait until every node answers for itself.
            const nodeTargets = Array.from({ length: options.nodes! }, (_, i) => ({ ...target, port: port + i }));
            const notServing = await firstNotServing(nodeTargets.slice(1));
            if (notServing === null) return { child, target, nodeTargets };
            lastProblem = notServing;
            await new Promise((r) => setTimeout(r, 200));
            continue;
          }
          if (voters < (options.nodes ?? 1)) lastProblem = `${voters} of ${options.nodes} nodes in the configuration`;
          lastProblem = `GET /node/state answered ${state.status} ${state.text.slice(0, 200)}`;
        } finally {
          client.close();
        }
      } catch (error) {
        lastProblem = (error as Error).message;
      }
    } else {
      lastProblem = "workspace certificates not written yet";
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Null when every target answers GET /node/state with PartOfNetwork, else what the first one that does not says. */
async function firstNotServing(targets: readonly TlsTarget[]): Promise<string | null> {
  for (const target of targets) {
    try {
      const client = await KeepAliveClient.connect(target, 2_000);
      try {
        const state = await client.get("/node/state");
        const nodeState = (state.json as { state?: unknown } | null)?.state;
        if (state.status !== 200 || nodeState !== "PartOfNetwork") return `node on port ${target.port}: GET /node/state answered ${state.status} ${state.text.slice(0, 200)}`;
      } finally {
        client.close();
      }
    } catch (error) {
      return `node on port ${target.port}: ${(error as Error).message}`;
    }
  }
  return null;
}

export function readTarget(workspace: string, port: number): TlsTarget | null {
  const files = ["service_cert.pem", "user0_cert.pem", "user0_privk.pem"].map((f) => join(workspace, f));
  if (!files.every((f) => existsSync(f))) return null;
  const [ca, cert, key] = files.map((f) => readFileSync(f));
  if (ca!.length === 0 || cert!.length === 0 || key!.length === 0) return null;
  return { host: "127.0.0.1", port, ca: ca!, cert: cert!, key: key! };
}
