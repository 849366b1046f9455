// Test helper: a multi-node Coco network of real `coco node start` processes on loopback.
// Node 0 starts the service; the others join through governance (member0 trusts them).
import { copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { freeTcpPort } from "../../src/util/index.js";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { createIdentityCertificate, generateEcP384KeyPair, generateRsaEncryptionKeyPair } from "../../src/crypto/index.js";
import { GovernanceClient, openServiceAsMember } from "../../src/client/index.js";
import { CLI, NodeProcess } from "./node-process.js";
import { FaultProxy } from "./fault-proxy.js";

export const freePort = (): Promise<number> => freeTcpPort();

export interface NetworkNode {
  index: number;
  dir: string;
  configFile: string;
  rpcPort: number;
  n2nPort: number;
  /** Where the node-to-node interface binds (a node-specific loopback address when proxied). */
  n2nHost: string;
  process: NodeProcess | undefined;
  nodeId?: string;
  proxy?: FaultProxy;
}

export interface NetworkOptions {
  /** Extra `coco` config for every node (merged into the `coco` section). */
  coco?: Record<string, unknown>;
  signatureDelay?: string;
  /** Put a fault-injecting proxy in front of every node's node-to-node port (see fault-proxy.ts). */
  proxied?: boolean;
  /**
   * Members 0..n-1, each with an RSA encryption key (member<i>_enc_privk.pem / _enc_pubk.pem):
   * recovery members, all Active before the service opens, so each holds a recovery share.
   */
  recoveryMembers?: number;
  recoveryThreshold?: number;
  /** Extra settings of every node's RPC interface (e.g. max_open_sessions_hard). */
  rpcInterface?: Record<string, unknown>;
  /** The `snapshots` section of every node's config (tx_count, keep_max, directory). */
  snapshots?: Record<string, unknown>;
  /** Extra `ledger` config for every node (merged into the `ledger` section, e.g. chunk_size). */
  ledger?: Record<string, unknown>;
}

const CONSENSUS = { tick: "10ms", heartbeat: "50ms", election_timeout: "500ms" };

export class Network {
  readonly nodes: NetworkNode[] = [];
  private constructor(readonly dir: string, private readonly options: NetworkOptions) {}

  static async start(dir: string, count: number, options: NetworkOptions = {}): Promise<Network> {
    const network = new Network(dir, options);
    try {
      return await network.bringUp(count, options);
    } catch (error) {
      // Nodes started before the failure would keep the test process alive (its after-hook has no network to stop).
      await network.stop().catch(() => undefined);
      throw error;
    }
  }

  private async bringUp(count: number, options: NetworkOptions): Promise<Network> {
    const dir = this.dir;
    for (const name of ["member0", "user0"]) {
      const keys = generateEcP384KeyPair();
      writeFileSync(join(dir, `${name}_privk.pem`), keys.privateKeyPem);
      writeFileSync(join(dir, `${name}_cert.pem`), await createIdentityCertificate(keys, name));
    }
    for (let i = 0; i < (options.recoveryMembers ?? 0); i++) {
      if (i > 0) {
        const keys = generateEcP384KeyPair();
        writeFileSync(join(dir, `member${i}_privk.pem`), keys.privateKeyPem);
        writeFileSync(join(dir, `member${i}_cert.pem`), await createIdentityCertificate(keys, `member${i}`));
      }
      const encryption = generateRsaEncryptionKeyPair();
      writeFileSync(join(dir, `member${i}_enc_privk.pem`), encryption.privateKeyPem);
      writeFileSync(join(dir, `member${i}_enc_pubk.pem`), encryption.publicKeyPem);
    }
    const first = await this.addNodeFiles("Start");
    first.process = await NodeProcess.nodeStart(first.dir, first.configFile);
    copyFileSync(join(first.dir, "service_cert.pem"), join(dir, "service_cert.pem"));
    first.nodeId = (await first.process.request("GET", "/node/state", { identity: "none" })).json().node_id;
    for (let i = 1; i < (options.recoveryMembers ?? 0); i++) {
      const client = new GovernanceClient(this.member(first, i));
      try { await client.ack(); } finally { await client.close(); }
    }
    const coVoters = Array.from({ length: Math.max(0, (options.recoveryMembers ?? 0) - 1) }, (_, i) => this.member(first, i + 1));
    await openServiceAsMember({ ...this.member(first), userCertPems: [readFileSync(join(dir, "user0_cert.pem"), "utf8")], coVoters });
    for (let i = 1; i < count; i++) await this.join();
    return this;
  }

  member(via: NetworkNode, index = 0): { url: string; serviceCertPem: string; memberCertPem: string; memberKeyPem: string } {
    return {
      url: `https://127.0.0.1:${via.rpcPort}`,
      serviceCertPem: readFileSync(join(this.dir, "service_cert.pem"), "utf8"),
      memberCertPem: readFileSync(join(this.dir, `member${index}_cert.pem`), "utf8"),
      memberKeyPem: readFileSync(join(this.dir, `member${index}_privk.pem`), "utf8"),
    };
  }

  /** Writes a node's directory and config (identities copied so NodeProcess can talk as them). */
  async addNodeFiles(type: "Start" | "Join" | "Recover", extra: { targetPort?: number; coco?: Record<string, unknown>; serviceCertFile?: string } = {}): Promise<NetworkNode> {
    const index = this.nodes.length;
    const dir = join(this.dir, `node${index}`);
    mkdirSync(dir, { recursive: true });
    for (const f of ["member0_cert.pem", "member0_privk.pem", "user0_cert.pem", "user0_privk.pem"]) copyFileSync(join(this.dir, f), join(dir, f));
    if (type === "Join") copyFileSync(extra.serviceCertFile ?? join(this.dir, "service_cert.pem"), join(dir, "service_cert.pem"));
    const rpcPort = await freePort();
    const n2nPort = await freePort();
    const n2nHost = this.options.proxied ? `127.0.0.${11 + index}` : "127.0.0.1";
    let proxy: FaultProxy | undefined;
    if (this.options.proxied) {
      proxy = new FaultProxy({ host: n2nHost, port: n2nPort });
      await proxy.listen();
    }
    const config = {
      network: {
        rpc_interfaces: { primary_rpc_interface: { bind_address: `127.0.0.1:${rpcPort}`, ...this.options.rpcInterface } },
        node_to_node_interface: { bind_address: `${n2nHost}:${n2nPort}`, ...(proxy ? { published_address: `127.0.0.1:${proxy.port}` } : {}) },
      },
      command: type === "Start"
        ? { type, service_certificate_file: "service_cert.pem", start: this.startMembers() }
        : type === "Recover"
        ? { type, service_certificate_file: "service_cert.pem", recover: { previous_service_identity_file: "previous_service_cert.pem" } }
        : { type, service_certificate_file: "service_cert.pem", join: { target_rpc_address: `127.0.0.1:${extra.targetPort ?? this.nodes[0]!.rpcPort}`, retry_timeout: "100ms" } },
      ledger: { directory: "ledger", ...this.options.ledger },
      ...(this.options.snapshots !== undefined ? { snapshots: this.options.snapshots } : {}),
      ledger_signatures: { tx_count: 5000, delay: this.options.signatureDelay ?? "25ms" },
      logging: { level: "info" },
      coco: { workspace: ".", durability: "fsync", consensus: CONSENSUS, ...this.options.coco, ...extra.coco },
    };
    const configFile = join(dir, "config.json");
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    const node: NetworkNode = { index, dir, configFile, rpcPort, n2nPort, n2nHost, process: undefined, ...(proxy ? { proxy } : {}) };
    this.nodes.push(node);
    return node;
  }

  /** The start configuration's members (and recovery threshold). */
  private startMembers(): Record<string, unknown> {
    const count = this.options.recoveryMembers ?? 0;
    if (count === 0) return { members: [{ certificate_file: "member0_cert.pem" }] };
    const members = Array.from({ length: count }, (_, i) => ({
      certificate_file: join(this.dir, `member${i}_cert.pem`), encryption_public_key_file: join(this.dir, `member${i}_enc_pubk.pem`),
    }));
    return { members, service_configuration: { recovery_threshold: this.options.recoveryThreshold ?? 1 } };
  }

  /** Starts a joining node and trusts it through governance once it is Pending. */
  async join(extra: { coco?: Record<string, unknown> } = {}): Promise<NetworkNode> {
    const node = await this.addNodeFiles("Join", { targetPort: this.anyLive().rpcPort, ...extra });
    const starting = NodeProcess.nodeStart(node.dir, node.configFile);
    starting.catch(() => undefined);
    const nodeId = await this.waitForPending(`${node.n2nHost}:${node.n2nPort}`);
    node.nodeId = nodeId;
    await this.propose([{ name: "transition_node_to_trusted", args: { node_id: nodeId, valid_from: new Date(Date.now() - 60_000).toISOString() } }]);
    node.process = await starting;
    return node;
  }

  anyLive(): NetworkNode {
    const live = this.nodes.find((n) => n.process !== undefined && n.process.child.exitCode === null);
    if (!live) throw new Error("no live node");
    return live;
  }

  async propose(actions: { name: string; args: unknown }[]): Promise<void> {
    const primary = await this.primary();
    const client = new GovernanceClient(this.member(primary));
    try {
      let proposal = await client.propose({ actions });
      if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
      for (let i = 1; i < (this.options.recoveryMembers ?? 0) && proposal.proposalState === "Open"; i++) {
        const other = new GovernanceClient(this.member(primary, i));
        try { proposal = await other.accept(proposal.proposalId); } finally { await other.close(); }
      }
      if (proposal.proposalState !== "Accepted") throw new Error(`proposal ${proposal.proposalState}: ${JSON.stringify(proposal.failure ?? proposal)}`);
      if (proposal.transactionId) await client.waitForCommit(proposal.transactionId, { timeoutMs: 30_000 });
    } finally {
      await client.close();
    }
  }

  async waitForPending(n2nAddress: string, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const r = await this.anyLive().process!.request("GET", "/node/network/nodes", { identity: "none" });
        const pending = (r.json().nodes as any[]).find((n) => n.status === "Pending" && n.node_to_node_interface?.bind_address === n2nAddress);
        if (pending) return pending.node_id;
      } catch { /* retry */ }
      if (Date.now() > deadline) throw new Error("the joining node never became Pending");
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The live node that says it is primary (waits for one). */
  async primary(timeoutMs = 15_000): Promise<NetworkNode> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const node of this.nodes) {
        if (!node.process || node.process.child.exitCode !== null) continue;
        try {
          const r = await node.process.request("GET", "/node/consensus", { identity: "none" });
          if (r.status === 200 && r.json().details.role === "Primary") return node;
        } catch { /* down */ }
      }
      if (Date.now() > deadline) throw new Error("no primary elected");
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until every live node reports a configuration of `count` voters and the same commit. */
  async waitForConfiguration(count: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let ok = true;
      for (const node of this.nodes) {
        if (!node.process || node.process.child.exitCode !== null) continue;
        try {
          const r = await node.process.request("GET", "/node/consensus", { identity: "none" });
          if (r.json().details.configuration.length !== count) ok = false;
        } catch { ok = false; }
      }
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`configuration never reached ${count} nodes`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Disaster recovery: a new node, in a fresh workspace holding a copy of `from`'s ledger, started
   * with command Recover (previous identity: the network's service_cert.pem). The network's
   * service_cert.pem becomes the recovered service's; the previous one is returned.
   */
  async recover(from: NetworkNode, options: { withSnapshots?: boolean } = {}): Promise<{ node: NetworkNode; previousServiceCertPem: string }> {
    const previousServiceCertPem = readFileSync(join(this.dir, "service_cert.pem"), "utf8");
    const node = await this.addNodeFiles("Recover");
    writeFileSync(join(node.dir, "previous_service_cert.pem"), previousServiceCertPem);
    cpSync(join(from.dir, "ledger"), join(node.dir, "ledger"), { recursive: true });
    // The previous node's snapshots too: recovery then starts from the newest that verifies.
    if (options.withSnapshots) cpSync(join(from.dir, "snapshots"), join(node.dir, "snapshots"), { recursive: true });
    node.process = await NodeProcess.nodeStart(node.dir, node.configFile);
    copyFileSync(join(node.dir, "service_cert.pem"), join(this.dir, "service_cert.pem"));
    node.nodeId = (await node.process.request("GET", "/node/state", { identity: "none" })).json().node_id;
    return { node, previousServiceCertPem };
  }

  async restart(node: NetworkNode): Promise<void> {
    node.process = await NodeProcess.nodeStart(node.dir, node.configFile);
  }

  kill(node: NetworkNode): Promise<void> {
    const p = node.process!;
    node.process = undefined;
    p.closeAgents();
    if (p.child.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => { p.child.once("exit", () => resolve()); p.child.kill("SIGKILL"); });
  }

  /** Cuts `node` off from every other node (both directions) until heal(). */
  isolate(node: NetworkNode): void {
    node.proxy!.block();
    for (const other of this.nodes) if (other !== node) other.proxy?.block(node.n2nHost);
  }

  heal(): void {
    for (const node of this.nodes) node.proxy?.heal();
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => { if (n.process) await n.process.stop(); n.process = undefined; }));
    await Promise.all(this.nodes.map((n) => n.proxy?.close()));
    // Nodes that never started serving (e.g. still waiting to be trusted).
    for (const child of NodeProcess.children) {
      if (child.spawnargs.some((a) => a.startsWith(this.dir)) && child.exitCode === null) child.kill("SIGKILL");
    }
  }
}

export { spawn, CLI };
