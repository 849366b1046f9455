// The processes under test: a Coco network of real nodes on 127.0.0.1 (test/helpers/network.ts)
// plus the faults the suite injects into them: SIGKILL, SIGSTOP/SIGCONT, whole-network kill and
// restart. Every probe has a deadline, so a paused or wedged node never hangs the suite.
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { Network, type NetworkNode } from "../helpers/network.js";
import { NodeClient } from "./client.js";

export const PROBE_TIMEOUT_MS = 1_000;
const LOG_KEPT_CHARS_MAX = 200_000;

export class FaultCluster {
  readonly clients: NodeClient[];
  /** Bumped at every (re)start of a node's process: per-node status monotonicity holds within one. */
  readonly incarnations: number[];
  readonly paused = new Set<number>();
  /** Output of each node's earlier processes (a killed process's log is kept for reports). */
  private readonly pastOutput: string[];
  /** How much of each node's current process output has been scanned for fatal lines. */
  private readonly scannedChars: number[];
  private fatal: { node: number; line: string }[] = [];

  private constructor(readonly net: Network, readonly dir: string) {
    this.clients = net.nodes.map((n) => new NodeClient(n.rpcPort, n.dir));
    this.incarnations = net.nodes.map(() => 1);
    this.pastOutput = net.nodes.map(() => "");
    this.scannedChars = net.nodes.map(() => 0);
  }

  static async start(dir: string, count: number): Promise<FaultCluster> {
    const net = await Network.start(dir, count);
    await net.waitForConfiguration(count, 60_000);
    return new FaultCluster(net, dir);
  }

  get size(): number {
    return this.net.nodes.length;
  }

  node(i: number): NetworkNode {
    return this.net.nodes[i]!;
  }

  /** The process is running (it may still be paused). */
  running(i: number): boolean {
    const p = this.node(i).process;
    return p !== undefined && p.child.exitCode === null && p.child.signalCode === null;
  }

  /** Running, not paused: may answer requests. */
  answering(i: number): boolean {
    return this.running(i) && !this.paused.has(i);
  }

  async role(i: number): Promise<string | undefined> {
    if (!this.answering(i)) return undefined;
    const body = await this.clients[i]!.readJson("/node/consensus", PROBE_TIMEOUT_MS);
    return body?.details?.role;
  }

  /** Index of a node that says it is Primary (other than `exclude`), or undefined at the deadline. */
  async findPrimary(timeoutMs: number, exclude?: number): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = 0; i < this.size; i++) {
        if (i !== exclude && (await this.role(i)) === "Primary") return i;
      }
      if (Date.now() > deadline) return undefined;
      await delay(50);
    }
  }

  async commitSeqno(i: number): Promise<number | undefined> {
    if (!this.answering(i)) return undefined;
    const body = await this.clients[i]!.readJson("/node/commit", PROBE_TIMEOUT_MS);
    const txid: unknown = body?.transaction_id;
    return typeof txid === "string" ? Number(txid.split(".")[1]) : undefined;
  }

  async kill(i: number): Promise<void> {
    const node = this.node(i);
    if (!node.process) return;
    this.keepOutput(i);
    if (this.paused.has(i)) this.resume(i); // a stopped process still dies on SIGKILL, but keep the state honest
    await this.net.kill(node);
    this.clients[i]!.reset();
  }

  /** Clean stop (SIGINT), e.g. before damaging the node's files; SIGKILL if it has not exited after stopTimeoutMs. */
  async stop(i: number, stopTimeoutMs = 10_000): Promise<void> {
    const node = this.node(i);
    if (!node.process) return;
    if (this.paused.has(i)) this.resume(i);
    const stopping = node.process.stop();
    const timer = setTimeout(() => node.process?.child.kill("SIGKILL"), stopTimeoutMs);
    await stopping;
    clearTimeout(timer);
    this.keepOutput(i);
    node.process = undefined;
    this.clients[i]!.reset();
  }

  /** Restarts a node from its workspace; throws (with the node's output) if it does not start serving. */
  async restart(i: number): Promise<void> {
    this.incarnations[i]!++;
    try {
      await this.net.restart(this.node(i));
    } catch (e) {
      this.pastOutput[i] = trimmed(this.pastOutput[i] + `\n--- restart failed: ${(e as Error).message}\n`);
      throw e;
    } finally {
      this.clients[i]!.reset();
    }
  }

  async killAll(): Promise<void> {
    await Promise.all(this.net.nodes.map((_, i) => this.kill(i)));
  }

  async restartAll(): Promise<void> {
    await Promise.all(this.net.nodes.map((_, i) => this.restart(i)));
  }

  pause(i: number): void {
    this.node(i).process!.child.kill("SIGSTOP");
    this.paused.add(i);
  }

  resume(i: number): void {
    this.node(i).process?.child.kill("SIGCONT");
    this.paused.delete(i);
    this.clients[i]!.reset();
  }

  /** The last `lines` lines a node printed, across its processes. */
  logTail(i: number, lines = 25): string {
    const current = this.node(i).process?.output() ?? "";
    const all = (this.pastOutput[i] + current).split("\n").filter((l) => l.trim() !== "");
    return all.slice(-lines).map((l) => `    ${l.length > 300 ? l.slice(0, 300) + "…" : l}`).join("\n");
  }

  /** Lines of every process of a node matching a pattern (e.g. errors), newest last. */
  logGrep(i: number, pattern: RegExp, linesMax = 10): string[] {
    const current = this.node(i).process?.output() ?? "";
    return (this.pastOutput[i] + current).split("\n").filter((l) => pattern.test(l)).slice(-linesMax);
  }

  /**
   * Lines of a fatal kind printed since the last call, on every node: pino level 60, or an error
   * the node itself calls a consensus bug. A node printing one is wedged, even if it still answers.
   */
  takeFatalLines(): { node: number; line: string }[] {
    for (let i = 0; i < this.size; i++) this.scan(i);
    return this.fatal.splice(0);
  }

  private scan(i: number): void {
    const out = this.node(i).process?.output() ?? "";
    const fresh = out.slice(this.scannedChars[i]!);
    const end = fresh.lastIndexOf("\n") + 1; // only whole lines
    for (const line of fresh.slice(0, end).split("\n")) {
      if (/"level":60|consensus bug/.test(line)) this.fatal.push({ node: i, line: line.length > 700 ? line.slice(0, 700) + "…" : line });
    }
    this.scannedChars[i]! += end;
  }

  /** Keeps a process's output in memory (for reports) and in `<node dir>/process-output.log` (for people). */
  private keepOutput(i: number): void {
    const p = this.node(i).process;
    if (!p) return;
    this.scan(i);
    this.scannedChars[i] = 0;
    const text = p.output() + `\n--- process ${this.incarnations[i]} ended ${new Date().toISOString()}\n`;
    this.pastOutput[i] = trimmed(this.pastOutput[i] + text);
    appendFileSync(join(this.node(i).dir, "process-output.log"), text);
  }

  async close(): Promise<void> {
    for (const i of [...this.paused]) this.resume(i);
    // SIGKILL rather than a clean stop: a wedged node may never exit on SIGINT.
    await this.killAll();
    await this.net.stop();
  }
}

function trimmed(s: string): string {
  return s.length > LOG_KEPT_CHARS_MAX ? s.slice(-LOG_KEPT_CHARS_MAX) : s;
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
