// `coco sandbox`: a local service for development, in the shape of CCF's sandbox.sh. It makes
// a workspace with member0/user0 identities (CCF's file names), a CCF-style node config, starts
// the node, and prints commands that work as printed. Running it again on the same workspace
// brings the stopped service back through disaster recovery with all its data (member0 holds
// the recovery share; sandbox-recovery.ts). As on a real service, governance sets the
// EVM chain: member0 proposes set_evm_genesis (chain id, funded development accounts) and votes.
// With --no-evm the node runs without the EVM app and the EVM libraries are never loaded.
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, isIP } from "node:net";
import { spawn, type ChildProcess } from "node:child_process";
import { request as httpsRequest } from "node:https";
import { freeTcpPort } from "../util/index.js";
import { fileURLToPath } from "node:url";
import { join, relative, resolve } from "node:path";
import { cocoCommand } from "./context.js";
import { CocoError } from "../util/index.js";
import { lockWorkspace, workspaceHolder } from "../node/workspace-lock.js";
import { createNodeLogger } from "../node/logger.js";
import { createIdentityCertificate, generateEcP384KeyPair } from "../crypto/index.js";
import { isWildcardHost, resolveConfig, type Durability, type NodeConfigFile } from "../node/config.js";
import { CocoNode } from "../node/node.js";
import { appOptions } from "./apps.js";
import type { DevAccount } from "../apps/evm/index.js";
import { GovernanceClient, openServiceAsMember } from "../client/index.js";
import {
  MEMBER0_ENC_PUBLIC_KEY, canRecover, completeRecoveryAsMember0, ensureMember0EncryptionKey, finishRecovery, prepareRecovery,
} from "./sandbox-recovery.js";
import { NODE_ADDRESS_POLICY_DEFAULT } from "../node/evm-config.js";

/** 10,000 ether, as Hardhat and Anvil fund their development accounts. */
const DEV_BALANCE_WEI = (10_000n * 10n ** 18n).toString();

export interface SandboxOptions {
  evmChainId: number;
  workspace: string;
  port: number;
  host: string;
  durability: Durability;
  signatureDelayMs?: number;
  /** Transactions between snapshots (`snapshots.tx_count`); default the node's. Benchmarks set it huge to leave snapshots out. */
  snapshotTxCount?: number;
  quiet: boolean;
  /**
   * Restart node 0 from its own keys and ledger instead of recovering a stopped service (a single
   * node's restart; tests of restart-from-disk use it).
   */
  restartFromDisk?: boolean;
  /** Nodes in the network (default 1). Node i listens on port + i; the others join through governance. */
  nodes?: number;
  /** Write the access log (`<workspace>/access.log`, and `node<i>/access.log`); default true. */
  accessLog?: boolean;
  /** Port of the plain-HTTP EVM gateway acting as user0 (default 8545, or 0 with port 0); false: none. */
  evmGatewayPort?: number | false;
  /** Run the built-in EVM app (default true). False: no EVM app, chain, bindings or gateway. */
  evm?: boolean;
}

async function ensureIdentity(workspace: string, name: string): Promise<void> {
  const certFile = join(workspace, `${name}_cert.pem`);
  const keyFile = join(workspace, `${name}_privk.pem`);
  if (existsSync(certFile) && existsSync(keyFile)) return;
  const keys = generateEcP384KeyPair();
  writeFileSync(keyFile, keys.privateKeyPem, { mode: 0o600 });
  writeFileSync(certFile, await createIdentityCertificate(keys, name));
}

/** Where the sandbox and its nodes dial a node listening on `host`: loopback for a wildcard. */
function dialHost(host: string): string {
  return isWildcardHost(host) ? "127.0.0.1" : host;
}

/** Loopback's names, and the address --host names when it is another IP address clients dial. */
function sandboxSubjectAltNames(host: string): string[] {
  const names = ["iPAddress:127.0.0.1", "dNSName:localhost"];
  if (isIP(host) !== 0 && !isWildcardHost(host) && host !== "127.0.0.1") names.push(`iPAddress:${host}`);
  return names;
}

/** The node-to-node interface; on a wildcard host (--host 0.0.0.0) the nodes, all on this machine, dial loopback. */
function sandboxNodeToNode(host: string, port: number): { bind_address: string; published_address?: string } {
  return { bind_address: `${host}:${port}`, ...(isWildcardHost(host) ? { published_address: `127.0.0.1:${port}` } : {}) };
}

export function sandboxConfig(options: SandboxOptions, nodeToNodePort?: number): NodeConfigFile {
  return {
    enclave: { platform: "Virtual" },
    network: {
      rpc_interfaces: { primary_rpc_interface: { bind_address: `${options.host}:${options.port}` } },
      ...(nodeToNodePort !== undefined ? { node_to_node_interface: sandboxNodeToNode(options.host, nodeToNodePort) } : {}),
    },
    node_certificate: { subject_alt_names: sandboxSubjectAltNames(options.host) },
    command: {
      type: "Start",
      service_certificate_file: "service_cert.pem",
      start: {
        // member0 holds a recovery share (threshold 1): a stopped sandbox comes back through recovery.
        members: [{ certificate_file: "member0_cert.pem", encryption_public_key_file: MEMBER0_ENC_PUBLIC_KEY }],
      },
    },
    ledger: { directory: "ledger" },
    snapshots: { directory: "snapshots", ...(options.snapshotTxCount !== undefined ? { tx_count: options.snapshotTxCount } : {}) },
    // `coco gov/app/receipt --workspace` read the node's address here (the port may be the OS's choice).
    output_files: { rpc_addresses_file: "rpc_addresses.json" },
    ledger_signatures: { tx_count: 5000, delay: `${options.signatureDelayMs ?? 25}ms` },
    logging: { level: "info", file: "node.log", access_log: { enabled: options.accessLog !== false, file: "access.log" } },
    coco: {
      workspace: ".",
      durability: options.durability,
      ...(options.evm !== false ? { evm: {} } : {}),
    },
  };
}

interface MemberFiles { url: string; serviceCertPem: string; memberCertPem: string; memberKeyPem: string }

/**
 * The set_evm_genesis proposal the sandbox makes: its chain id, and 10,000 ether for each
 * development account (as Hardhat and Anvil fund them). Accepted at once by member0's ballot.
 */
async function configureEvmChain(member: MemberFiles, chainId: number, accounts: readonly DevAccount[]): Promise<void> {
  const client = new GovernanceClient(member);
  try {
    const alloc = Object.fromEntries(accounts.map((a) => [a.address, DEV_BALANCE_WEI]));
    let proposal = await client.propose({ actions: [{ name: "set_evm_genesis", args: { chain_id: chainId, alloc } }] });
    if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
    if (proposal.proposalState !== "Accepted") {
      throw new Error(`the set_evm_genesis proposal is ${proposal.proposalState}, not Accepted: ${proposal.failure?.reason ?? JSON.stringify(proposal)}`);
    }
    if (proposal.transactionId) await client.waitForCommit(proposal.transactionId, { timeoutMs: 30_000 });
  } finally {
    await client.close();
  }
}

/**
 * Binds the development accounts to user0 (the node's address policy is "bound" by default: a
 * user sends from, and sees the transactions of, its bound addresses only). A restarted
 * workspace finds them bound already. Returns the banner's line.
 */
async function bindDevAccounts(workspace: string, url: string, chainId: number, accounts: readonly DevAccount[], policy: "open" | "bound"): Promise<string> {
  const { bindAddresses } = await import("./evm-bind.js");
  const outcomes = await bindAddresses({
    nodeUrl: url, chainId, privateKeys: accounts.map((a) => a.privateKey),
    caPem: readFileSync(join(workspace, "service_cert.pem")),
    userCertPem: readFileSync(join(workspace, "user0_cert.pem")),
    userKeyPem: readFileSync(join(workspace, "user0_privk.pem")),
  });
  const refused = outcomes.filter((o) => o.error !== undefined);
  const bound = `the ${outcomes.length - refused.length} development accounts are bound to user0 (coco.evm.address_policy "${policy}"${policy === "bound" ? ": user0 sends from them and sees their transactions" : ": every user may send from any address"})`;
  return refused.length === 0 ? bound : `${bound}; not bound: ${refused.map((o) => `${o.address} (${o.error})`).join(", ")}`;
}

interface SandboxEvm { chainId: number; accounts: DevAccount[]; mnemonic: string; configured: boolean; bindings: string }

/**
 * The EVM chain of a sandbox: set_evm_genesis on a new chain (a restarted workspace keeps the
 * chain it was given: its chain id wins over --evm-chain-id), and the development accounts bound
 * to user0. The EVM libraries are loaded here, not by a sandbox started with --no-evm.
 */
async function setUpEvm(workspace: string, url: string, node: CocoNode, member: MemberFiles, options: SandboxOptions, policy: "open" | "bound"): Promise<SandboxEvm> {
  const { DEV_MNEMONIC, devAccounts, EVM_CONFIG_KEY, EVM_CONFIG_MAP, parseEvmConfig } = await import("../apps/evm/index.js");
  const accounts = devAccounts(10); // HD derivation: ~0.3 s, done once
  const existing = node.engine.store.get(EVM_CONFIG_MAP, EVM_CONFIG_KEY);
  if (existing === undefined) await configureEvmChain(member, options.evmChainId, accounts);
  const chainId = existing === undefined ? options.evmChainId : Number(parseEvmConfig(existing).chainId);
  const bindings = await bindDevAccounts(workspace, url, chainId, accounts, policy);
  return { chainId, accounts, mnemonic: DEV_MNEMONIC, configured: existing === undefined, bindings };
}

export async function runSandbox(options: SandboxOptions): Promise<void> {
  const workspace = resolve(options.workspace);
  const nodeCount = options.nodes ?? 1;
  const say = (line: string) => { if (!options.quiet) console.log(line); };
  // Before anything is created: a workspace in use, or a port taken, stops the sandbox here.
  const holder = workspaceHolder(workspace);
  if (holder !== undefined && holder !== process.pid) {
    throw new CocoError("WorkspaceLocked", `The workspace ${workspace} is in use by process ${holder} (another sandbox or node). Stop it first (kill ${holder}), or use another --workspace.`, 409);
  }
  await checkPortsFree(sandboxPorts(workspace, options, nodeCount), options.host);
  mkdirSync(workspace, { recursive: true });
  lockWorkspace(workspace, `coco sandbox --nodes ${nodeCount}`);
  const restarting = existsSync(join(workspace, "ledger"));
  // A stopped service comes back only through recovery, as in CCF (member0 does its steps).
  const recovering = restarting && options.restartFromDisk !== true && canRecover(workspace);
  await ensureIdentity(workspace, "member0");
  await ensureIdentity(workspace, "user0");
  if (!restarting) ensureMember0EncryptionKey(workspace);
  const configFile = join(workspace, "config.json");
  // Node-to-node ports: rpc port + 100 + i (or free ports when the rpc port is chosen by the OS).
  const n2nPort = async (i: number) => (options.port === 0 ? freeTcpPort(options.host) : options.port + 100 + i);
  const file = sandboxConfig(options, nodeCount > 1 ? await n2nPort(0) : undefined);
  const startCommand = file.command;
  if (recovering) {
    prepareRecovery(workspace, file, nodeCount);
    if (!options.quiet) console.log("The service in this workspace stopped: recovering it from its ledger (disaster recovery, member0 submits its recovery share)...");
  }
  writeFileSync(configFile, JSON.stringify(file, null, 2) + "\n");
  const config = resolveConfig(file, workspace);
  // The node's own logger: a full disk drops and counts lines, never crashes the sandbox.
  const logger = createNodeLogger(config);
  const node = await CocoNode.start(config, { ...(await appOptions(config)), logger });
  const url = `https://${dialHost(options.host)}:${node.address.port}`;
  if (recovering) {
    await completeRecoveryAsMember0(workspace, url, node);
    finishRecovery(workspace, file, startCommand);
  }
  // Open a new service the governed way, as CCF's sandbox does: member0 acknowledges the
  // service state, then proposes user0 and transition_service_to_open, accepted at once.
  const member: MemberFiles = {
    url,
    serviceCertPem: readFileSync(join(workspace, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(workspace, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(workspace, "member0_privk.pem"), "utf8"),
  };
  let opened = false;
  if (!node.engine.store.get("public:ccf.gov.service.info", Buffer.alloc(8))?.toString().includes('"Open"')) {
    await openServiceAsMember({ ...member, userCertPems: [readFileSync(join(workspace, "user0_cert.pem"), "utf8")] });
    opened = true;
  }
  const evm = options.evm === false ? undefined : await setUpEvm(workspace, url, node, member, options, config.evm?.addressPolicy ?? NODE_ADDRESS_POLICY_DEFAULT);
  const joiners = await startJoiningNodes(workspace, options, nodeCount, n2nPort, node, member, say);
  const nameOf = (nodeId: string | undefined): string => {
    if (nodeId === undefined) return "none (election under way)";
    if (nodeId === node.identity.nodeId) return `node 0 (${nodeId.slice(0, 12)}…)`;
    const index = joiners.findIndex((j) => j.nodeId === nodeId);
    return index === -1 ? `${nodeId.slice(0, 12)}…` : `node ${index + 1} (${nodeId.slice(0, 12)}…)`;
  };

  const evmGateway = evm === undefined || options.evmGatewayPort === false ? undefined
    : await (await import("./evm-gateway.js")).startSandboxEvmGateway({
      workspace, nodeUrl: url, port: options.evmGatewayPort ?? (options.port === 0 ? 0 : 8545), chainId: evm.chainId, accounts: evm.accounts,
    });
  const ws = relative(process.cwd(), workspace) || ".";
  const user = `--cacert ${ws}/service_cert.pem --cert ${ws}/user0_cert.pem --key ${ws}/user0_privk.pem`;
  if (!options.quiet) {
    const commit = node.engine.commitTxId;
    console.log(`
Coco sandbox is running at ${url} (${recovering ? `recovered from its ledger: disaster recovery ${recoveryCount(node)}, new service identity in service_cert.pem${joiners.length > 0 ? `, ${joiners.length} node(s) joined afresh` : ""}` : restarting ? `restarted from its ledger${commit.seqno > 0 ? `, committed up to ${commit.view}.${commit.seqno}` : ""}` : "new service"})${recovering ? "\n  recovery      member0 proposed transition_service_to_open, submitted its recovery share: private state restored, service Open" : ""}${opened ? "\n  governance    member0 acknowledged, proposed user0 + transition_service_to_open: accepted, service Open" : ""}${evm?.configured === true ? `\n  governance    member0 proposed set_evm_genesis (chain id ${evm.chainId}, 10 funded accounts): accepted` : ""}
  addresses     ${evm?.bindings ?? "none: the EVM app is off (--no-evm)"}
  node id       ${node.identity.nodeId}
  primary       ${nameOf(node.replicator.primaryId)}${joiners.length > 0 ? `\n  nodes         ${[`${url} (node 0)`, ...joiners.map((j, i) => `https://${dialHost(options.host)}:${j.port} (node ${i + 1}, ${j.dir}/)`)].join("\n                ")}` : ""}
  workspace     ${ws}/  (service_cert.pem, member0_*.pem, user0_*.pem, config.json, ledger/, node.log)
  durability    ${options.durability}
${evm === undefined ? "" : `
Ethereum JSON-RPC (chain id ${evm.chainId}) at ${url}/app/evm for user0 (mutual TLS); funded development
accounts of "${evm.mnemonic}" (10,000 ETH each):
${evm.accounts.map((a, i) => `  (${i}) ${a.address}  ${a.privateKey}`).join("\n")}${evmGateway?.banner ?? ""}
`}
Try it (from this directory):
  curl ${url}/node/network --cacert ${ws}/service_cert.pem
  curl -X POST ${url}/app/log/private ${user} -H "content-type: application/json" -d '{"id": 42, "msg": "hello, confidential world"}' -i
  curl "${url}/app/log/private?id=42" ${user}
  curl "${url}/node/tx?transaction_id=<view.seqno from x-ms-ccf-transaction-id>" --cacert ${ws}/service_cert.pem
  curl "${url}/app/receipt?transaction_id=<view.seqno>" ${user} > receipt.json
  ${cocoCommand()} receipt verify receipt.json --service-cert ${ws}/service_cert.pem
  ${cocoCommand()} gov members --workspace ${ws}

Press Ctrl-C to stop; run the same command again to recover the service from its ledger (docs/recovery.md).`);
  }
  let stopping = false;
  // From now on, what happens to the service is printed as it happens.
  let lastView = node.replicator.term;
  let lastPrimary = node.replicator.primaryId;
  node.replicator.onRoleChange((change) => {
    if (stopping || (change.term === lastView && change.primaryId === lastPrimary)) return;
    lastView = change.term;
    lastPrimary = change.primaryId;
    say(`[${new Date().toISOString()}] view ${change.term}: primary is ${nameOf(change.primaryId)}`);
  });
  joiners.forEach((joiner, i) => joiner.child.once("exit", (code, signal) => {
    if (stopping) return;
    console.error(`[${new Date().toISOString()}] node ${i + 1} (${joiner.dir}/) exited (${signal ?? `code ${code}`}); its log: ${join(joiner.dir, "node.log")}\n${logTail(join(workspace, `node${i + 1}`))}`);
  }));
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    if (!options.quiet) console.log(`\n${signal}: stopping the node${joiners.length > 0 ? "s" : ""} (committing pending transactions)...`);
    await Promise.all(joiners.map((j) => new Promise<void>((res) => {
      if (j.child.exitCode !== null) return res();
      j.child.once("exit", () => res());
      j.child.kill("SIGTERM");
    })));
    await node.stop();
    if (!options.quiet) console.log("Stopped.");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

interface Joiner { child: ChildProcess; port: number; dir: string; nodeId?: string }

function recoveryCount(node: CocoNode): number {
  const raw = node.engine.store.get("public:ccf.gov.service.info", Buffer.alloc(8));
  return raw === undefined ? 0 : (JSON.parse(raw.toString("utf8")) as { recovery_count?: number }).recovery_count ?? 0;
}

/**
 * Nodes 1..n-1 of a multi-node sandbox: each is a separate `coco node start` process with its own
 * workspace (node<i>/) that joins through node 0; member0 trusts each one with a
 * transition_node_to_trusted proposal, as members of a real service would.
 */
async function startJoiningNodes(workspace: string, options: SandboxOptions, count: number, n2nPort: (i: number) => Promise<number>, node: CocoNode, member: MemberFiles,
  say: (line: string) => void): Promise<Joiner[]> {
  const joiners: Joiner[] = [];
  const failed = (i: number, dir: string, what: string): Error =>
    new Error(`node ${i} of the sandbox ${what}; the sandbox stops (its other nodes with it).\n${logTail(dir)}`);
  const cli = fileURLToPath(new URL("./main.js", import.meta.url));
  for (let i = 1; i < count; i++) {
    const dir = join(workspace, `node${i}`);
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(workspace, "service_cert.pem"), join(dir, "service_cert.pem"));
    const configFile = join(dir, "config.json");
    let port: number;
    if (existsSync(configFile)) {
      // A restarted sandbox: the node rejoins with its identity, ledger and ports, and runs the
      // EVM app exactly when node 0 does (this run's --no-evm or not).
      const existing = JSON.parse(readFileSync(configFile, "utf8")) as NodeConfigFile;
      port = Number(existing.network.rpc_interfaces["primary_rpc_interface"]!.bind_address.split(":").pop());
      if (existing.coco !== undefined && (existing.coco.evm !== undefined) !== (options.evm !== false)) {
        if (options.evm === false) delete existing.coco.evm;
        else existing.coco.evm = {};
        writeFileSync(configFile, JSON.stringify(existing, null, 2) + "\n");
      }
    } else {
      port = options.port === 0 ? await freeTcpPort(options.host) : options.port + i;
      const config: NodeConfigFile = {
        enclave: { platform: "Virtual" },
        network: {
          rpc_interfaces: { primary_rpc_interface: { bind_address: `${options.host}:${port}` } },
          node_to_node_interface: sandboxNodeToNode(options.host, await n2nPort(i)),
        },
        node_certificate: { subject_alt_names: sandboxSubjectAltNames(options.host) },
        command: { type: "Join", service_certificate_file: "service_cert.pem", join: { target_rpc_address: `${dialHost(options.host)}:${node.address.port}`, retry_timeout: "200ms" } },
        ledger: { directory: "ledger" },
        ...(options.snapshotTxCount !== undefined ? { snapshots: { directory: "snapshots", tx_count: options.snapshotTxCount } } : {}),
        ledger_signatures: { tx_count: 5000, delay: `${options.signatureDelayMs ?? 25}ms` },
        logging: { level: "info", file: "node.log", access_log: { enabled: options.accessLog !== false, file: "access.log" } },
        coco: { workspace: ".", durability: options.durability, ...(options.evm !== false ? { evm: {} } : {}) },
      };
      writeFileSync(configFile, JSON.stringify(config, null, 2) + "\n");
    }
    const out = openSync(join(dir, "stdout.log"), "a");
    say(`node ${i}/${count - 1}: starting (https://${dialHost(options.host)}:${port}, ${relative(process.cwd(), dir) || dir}/)...`);
    // The IPC channel is the node's tie to the sandbox: when the sandbox dies, even by kill -9,
    // the channel closes and the node stops (main.ts, node start).
    const child = spawn(process.execPath, [cli, "node", "start", "--config", configFile], { stdio: ["ignore", out, out, "ipc"] });
    const joiner: Joiner = { child, port, dir: relative(process.cwd(), dir) || dir };
    joiners.push(joiner);
    // A new node shows up as Pending in nodes.info: trust it the governed way.
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw failed(i, dir, `exited (code ${child.exitCode}) before asking to join`);
      const found = nodeAt(node, JSON.parse(readFileSync(configFile, "utf8")) as NodeConfigFile);
      if (found !== undefined && !found.pending) {
        joiner.nodeId = found.nodeId;
        break;
      }
      if (found !== undefined) {
        const pending = found.nodeId;
        say(`node ${i}/${count - 1}: asked to join as ${pending.slice(0, 12)}…; member0 proposes transition_node_to_trusted...`);
        const client = new GovernanceClient(member);
        try {
          let proposal = await client.propose({ actions: [{ name: "transition_node_to_trusted", args: { node_id: pending, valid_from: new Date(Date.now() - 60_000).toISOString() } }] });
          if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
          if (proposal.proposalState !== "Accepted") throw new Error(`trusting node ${i}: proposal ${proposal.proposalState}`);
          if (proposal.transactionId) await client.waitForCommit(proposal.transactionId, { timeoutMs: 30_000 });
        } finally {
          await client.close();
        }
        joiner.nodeId = pending;
        break;
      }
      if (Date.now() > deadline) throw failed(i, dir, "did not ask to join within 60 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    // Wait until it is part of the configuration and serving before adding the next one.
    const until = Date.now() + 60_000;
    while ((joiner.nodeId !== undefined && !node.replicator.configuration.includes(joiner.nodeId)) || !(await answers(dialHost(options.host), port, member.serviceCertPem))) {
      if (child.exitCode !== null) throw failed(i, dir, `exited (code ${child.exitCode}) while joining`);
      if (Date.now() > until) throw failed(i, dir, "was trusted but is not serving or not in the configuration after 60 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    say(`node ${i}/${count - 1}: trusted, in the configuration, serving`);
  }
  return joiners;
}

/** The node with this config's node-to-node address in nodes.info, and whether it is still Pending. */
function nodeAt(node: CocoNode, config: NodeConfigFile): { nodeId: string; pending: boolean } | undefined {
  const address = config.network.node_to_node_interface?.bind_address;
  const tx = node.engine.store.begin();
  let found: { nodeId: string; pending: boolean } | undefined;
  tx.forEach("public:ccf.gov.nodes.info", (value, key) => {
    const info = JSON.parse(value.toString("utf8")) as { status: string; node_to_node_interface?: { bind_address: string } };
    if (info.node_to_node_interface?.bind_address !== address) return;
    // A retired node of an earlier run may share the address: a Pending or Trusted entry wins.
    if (found !== undefined && info.status !== "Pending" && info.status !== "Trusted") return;
    found = { nodeId: key.toString("utf8"), pending: info.status === "Pending" };
  });
  return found;
}

/** Whether a node answers GET /node/state over TLS checked against the service certificate. */
function answers(host: string, port: number, serviceCertPem: string): Promise<boolean> {
  return new Promise((resolveAnswer) => {
    const req = httpsRequest({ host, port, path: "/node/state", method: "GET", ca: serviceCertPem, timeout: 2_000 }, (res) => {
      res.resume();
      res.on("end", () => resolveAnswer(res.statusCode === 200));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolveAnswer(false));
    req.end();
  });
}

/** The last lines of a node's logs (stdout.log and node.log), for an error that names its failure. */
function logTail(dir: string, lines = 12): string {
  const out: string[] = [];
  for (const name of ["stdout.log", "node.log"]) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    const text = readFileSync(file, "utf8").trimEnd();
    if (text === "") continue;
    out.push(`--- last lines of ${file}:`, ...text.split("\n").slice(-lines));
  }
  return out.length > 0 ? out.join("\n") : `(no log in ${dir})`;
}

/**
 * The ports this sandbox's nodes will listen on (0 = chosen by the OS, never taken): node 0's and
 * each joiner's RPC and node-to-node ports (a restarted workspace's from its config files).
 */
function sandboxPorts(workspace: string, options: SandboxOptions, nodeCount: number): { port: number; what: string }[] {
  const ports: { port: number; what: string }[] = [];
  if (options.port !== 0) {
    ports.push({ port: options.port, what: "node 0 (--port)" });
    if (nodeCount > 1) ports.push({ port: options.port + 100, what: "node 0's node-to-node port (--port + 100)" });
  }
  for (let i = 1; i < nodeCount; i++) {
    const configFile = join(workspace, `node${i}`, "config.json");
    if (existsSync(configFile)) {
      const existing = JSON.parse(readFileSync(configFile, "utf8")) as NodeConfigFile;
      const rpc = Number(existing.network.rpc_interfaces["primary_rpc_interface"]?.bind_address.split(":").pop());
      const n2n = Number(existing.network.node_to_node_interface?.bind_address.split(":").pop());
      if (rpc > 0) ports.push({ port: rpc, what: `node ${i} (node${i}/config.json)` });
      if (n2n > 0) ports.push({ port: n2n, what: `node ${i}'s node-to-node port (node${i}/config.json)` });
    } else if (options.port !== 0) {
      ports.push({ port: options.port + i, what: `node ${i} (--port + ${i})` }, { port: options.port + 100 + i, what: `node ${i}'s node-to-node port (--port + ${100 + i})` });
    }
  }
  // Not the EVM gateway's: when its port is taken the sandbox says so and runs without it (docs/cli.md).
  return ports;
}

async function checkPortsFree(ports: readonly { port: number; what: string }[], host: string): Promise<void> {
  const taken: string[] = [];
  for (const { port, what } of ports) if (await portInUse(host, port)) taken.push(`${host}:${port} for ${what}`);
  if (taken.length > 0) {
    throw new CocoError("AddressInUse",
      `Port${taken.length > 1 ? "s" : ""} already in use: ${taken.join("; ")}. Stop what listens there (e.g. an earlier sandbox: see 'ss -ltnp'), or choose another --port. Nothing was created.`, 400);
  }
}

function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => resolvePort(error.code === "EADDRINUSE" || error.code === "EACCES"));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolvePort(false)));
  });
}

