// Test helper: runs a real Coco node process (`coco sandbox` or `coco node start`) on loopback
// and talks HTTPS to it with the workspace's identities.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import https from "node:https";
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";

export const CLI = resolve("dist/src/cli/main.js");

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body as received (binary bodies such as COSE receipts). */
  bytes: Buffer;
  json: () => any;
}

export type Identity = "user0" | "member0" | "none" | { cert: string; key: string };

/** How to run a node that stands for another host (test/e2e/multihost-netns.test.ts). */
export interface NodeStartOptions {
  /** The node runs under this command, e.g. ["ip", "netns", "exec", "<namespace>"]. */
  commandPrefix?: string[];
  /** The host its RPC interface binds, as the node logs it once serving (default 127.0.0.1). */
  boundHost?: string;
  /**
   * The address requests go to (default 127.0.0.1, checked as "localhost"). Any other address is
   * checked as itself against the node certificate's subject alternative names.
   */
  host?: string;
}

export class NodeProcess {
  /** Every child process spawned and not yet exited, so a test can kill those that never started serving. */
  static readonly children = new Set<ChildProcess>();

  private constructor(
    readonly child: ChildProcess,
    readonly workspace: string,
    readonly port: number,
    readonly output: () => string,
    readonly host = "127.0.0.1",
  ) {}

  static async sandbox(workspace: string, extraArgs: string[] = [], options: { detached?: boolean } = {}): Promise<NodeProcess> {
    return NodeProcess.spawn(workspace, [CLI, "sandbox", "--workspace", workspace, "--port", "0", ...extraArgs], options.detached === true);
  }

  static async nodeStart(workspace: string, configFile: string, options: NodeStartOptions = {}): Promise<NodeProcess> {
    return NodeProcess.spawn(workspace, [CLI, "node", "start", "--config", configFile], false, options);
  }

  private static spawn(workspace: string, args: string[], detached = false, options: NodeStartOptions = {}): Promise<NodeProcess> {
    // Detached: the process leads its own process group, which a test can SIGKILL whole.
    const [command, ...prefixArgs] = [...(options.commandPrefix ?? []), process.execPath];
    const child = spawn(command!, [...prefixArgs, ...args], { stdio: ["ignore", "pipe", "pipe"], detached });
    const boundHost = (options.boundHost ?? "127.0.0.1").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const serving = new RegExp(`"address":"${boundHost}:(\\d+)"`);
    NodeProcess.children.add(child);
    child.once("exit", () => NodeProcess.children.delete(child));
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`node did not start within 30 s:\n${out}`)), 30_000);
      const check = () => {
        const sandboxMatch = /running at https:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        const nodeMatch = serving.exec(out);
        const match = sandboxMatch ?? nodeMatch;
        if (match) {
          clearTimeout(timer);
          child.stdout!.off("data", check);
          resolvePromise(new NodeProcess(child, workspace, Number(match[1]), () => out, options.host));
        }
      };
      child.stdout!.on("data", check);
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`node exited with ${code} before serving:\n${out}`));
      });
    });
  }

  private agents = new Map<string, https.Agent>();

  private agent(identity: Identity): https.Agent {
    const key = typeof identity === "string" ? identity : identity.cert;
    let agent = this.agents.get(key);
    if (!agent) {
      const ca = readFileSync(join(this.workspace, "service_cert.pem"));
      const creds = identity === "none" ? {}
        : typeof identity === "string"
          ? { cert: readFileSync(join(this.workspace, `${identity}_cert.pem`)), key: readFileSync(join(this.workspace, `${identity}_privk.pem`)) }
          : { cert: identity.cert, key: identity.key };
      agent = new https.Agent({ keepAlive: true, ca, ...creds, maxSockets: 8 });
      this.agents.set(key, agent);
    }
    return agent;
  }

  request(method: string, path: string, options: { body?: string | Buffer; identity?: Identity; headers?: Record<string, string> } = {}): Promise<Response> {
    const identity = options.identity ?? "user0";
    return new Promise((resolvePromise, reject) => {
      const req = https.request({
        host: this.host, port: this.port, method, path, agent: this.agent(identity),
        ...(this.host === "127.0.0.1" ? { servername: "localhost" } : {}),
        headers: { ...(options.body !== undefined ? { "content-type": "application/json" } : {}), ...options.headers },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const bytes = Buffer.concat(chunks);
          const text = bytes.toString("utf8");
          resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, text, bytes, json: () => JSON.parse(text) });
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(options.body);
    });
  }

  /** Polls /node/tx until the transaction reaches `want` (or fails after timeoutMs). */
  async waitForStatus(txid: string, want = "Committed", timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.request("GET", `/node/tx?transaction_id=${txid}`, { identity: "none" });
      if (r.json().status === want) return;
      if (Date.now() > deadline) throw new Error(`transaction ${txid} did not become ${want}: last ${r.text}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  /** POSTs raw bytes as `application/cose` (a member-signed governance request), no client certificate. */
  postCose(path: string, body: Buffer, options: { identity?: Identity } = {}): Promise<Response> {
    return this.request("POST", path, { body, identity: options.identity ?? "none", headers: { "content-type": "application/cose" } });
  }

  closeAgents(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  /** Clean stop (SIGINT), as Ctrl-C in the sandbox. */
  async stop(signal: NodeJS.Signals = "SIGINT"): Promise<number | null> {
    this.closeAgents();
    if (this.child.exitCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((res) => this.child.once("exit", (code) => res(code)));
    this.child.kill(signal);
    return exited;
  }
}

export function tempWorkspace(prefix = "coco-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the `coco` command (`node dist/src/cli/main.js ...`) as an operator would; never throws on a non-zero exit. */
export function runCli(args: string[], options: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolvePromise) => {
    execFile(process.execPath, [CLI, ...args], { cwd: options.cwd, timeout: options.timeoutMs ?? 30_000, ...(options.env !== undefined ? { env: options.env } : {}) }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolvePromise({ code, stdout, stderr });
    });
  });
}
