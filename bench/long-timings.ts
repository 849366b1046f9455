// `npm run bench -- --long --long-timings`: the 1M-transaction timings. The bench builds
// the ledger itself: a one-node service (member0 a recovery member, snapshots on at their
// default tx_count, durability none) writes --long-tx transactions over --long-keys keys of a
// private map through its engine (no HTTP: the ledger, not the client, is what is timed), and
// stops once its newest snapshot is committed. Then, each node a separate process
// (`coco node start`):
//   1. restart: the node from its own ledger and snapshots, spawn -> first write committed;
//   2. join: a new node joins that service (it fetches the service's snapshot), spawn -> its
//      commit point reaches the service's (trusted by member0's proposal on the way);
//   3. recovery: a node with command Recover on a copy of the ledger and snapshots, spawn ->
//      service Open (member0's transition_service_to_open and recovery share on the way).
// Prints progress and writes JSON.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { GovernanceClient, openServiceAsMember, submitMemberRecoveryShare } from "../src/client/index.js";
import { createIdentityCertificate, generateEcP384KeyPair, generateRsaEncryptionKeyPair } from "../src/crypto/index.js";
import { resolveConfig, type NodeConfigFile } from "../src/node/config.js";
import { CocoNode } from "../src/node/node.js";
import { freeTcpPort } from "../src/util/index.js";
import { startChild, stopChild, type ManagedChild } from "./child-processes.js";
import { commitSeqno, getJson, post, timeToServeAndCommit, waitFor } from "./long-run.js";
import { NODE_MAIN } from "./servers.js";
import { fmt, progress } from "./report.js";
import type { TlsTarget } from "./pipelined-client.js";

export const LONG_TIMINGS_HELP = `Usage: npm run bench -- --long --long-timings [options]

Builds a ledger of --long-tx transactions (one node, snapshots on, durability none), then times
a restart (spawn -> first write committed), a join (spawn -> caught up with the service) and a
recovery (spawn with command Recover -> service Open), each node a separate process.
  --long-tx <n>     transactions in the ledger (default 1000000)
  --long-keys <n>   distinct keys written, cycled (default 100000): the size of the state
  --snapshot-tx-count <n>  snapshots.tx_count of the nodes (default the node's, 100000)
  --ledger-cache <dir>  keep the built service (ledger, snapshots, identities) in <dir> and, when
                    <dir> already holds one built with the same --long-tx, --long-keys and
                    --snapshot-tx-count, time a copy of it instead of building again
  --out <file>      JSON output (default bench/results/long-timings-<timestamp>.json)`;

const PRIVATE_MAP = "bench.records";
/** Transactions committed locally before waiting for consensus (under pendingTransactionsMax). */
const IN_FLIGHT_MAX = 20_000;
const VALUE_BYTES = 64;
/** Each phase must finish within this (the goals are seconds; this only stops a hung run). */
const PHASE_TIMEOUT_MS = 300_000;

interface TimingsOptions { transactions: number; keys: number; snapshotTxCount: number | undefined; ledgerCache: string | undefined; out: string }

function parseTimingsArgs(argv: readonly string[]): TimingsOptions | "help" {
  const { values: v } = parseArgs({
    args: argv.filter((a) => a !== "--long" && a !== "--long-timings"), strict: true, allowPositionals: false,
    options: { "long-tx": { type: "string" }, "long-keys": { type: "string" }, "snapshot-tx-count": { type: "string" }, "ledger-cache": { type: "string" }, out: { type: "string" }, help: { type: "boolean" } },
  });
  if (v.help) return "help";
  const positive = (name: string, text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got '${text}'.`);
    return n;
  };
  return {
    transactions: positive("long-tx", v["long-tx"], 1_000_000),
    keys: positive("long-keys", v["long-keys"], 100_000),
    snapshotTxCount: v["snapshot-tx-count"] === undefined ? undefined : positive("snapshot-tx-count", v["snapshot-tx-count"], 1),
    ledgerCache: v["ledger-cache"] === undefined ? undefined : resolve(v["ledger-cache"]),
    out: v.out ?? `bench/results/long-timings-${new Date().toISOString().replace(/[:.]/g, "-")}.json`,
  };
}

interface Identities {
  root: string;
  memberCertPem: string; memberKeyPem: string; memberEncPrivateKeyPem: string;
  userCertPem: string; userKeyPem: string;
}

async function identities(root: string): Promise<Identities> {
  const member = generateEcP384KeyPair();
  const user = generateEcP384KeyPair();
  const encryption = generateRsaEncryptionKeyPair();
  const memberCertPem = await createIdentityCertificate(member, "member0");
  const userCertPem = await createIdentityCertificate(user, "user0");
  writeFileSync(join(root, "member0_cert.pem"), memberCertPem);
  writeFileSync(join(root, "member0_enc_pubk.pem"), encryption.publicKeyPem);
  return { root, memberCertPem, memberKeyPem: member.privateKeyPem, memberEncPrivateKeyPem: encryption.privateKeyPem, userCertPem, userKeyPem: user.privateKeyPem };
}

async function nodeConfig(dir: string, command: NodeConfigFile["command"], snapshotTxCount: number | undefined): Promise<NodeConfigFile> {
  const file: NodeConfigFile = {
    enclave: { platform: "Virtual" },
    network: {
      rpc_interfaces: { primary_rpc_interface: { bind_address: `127.0.0.1:${await freeTcpPort()}` } },
      node_to_node_interface: { bind_address: `127.0.0.1:${await freeTcpPort()}` },
    },
    node_certificate: { subject_alt_names: ["iPAddress:127.0.0.1", "dNSName:localhost"] },
    command,
    ledger: { directory: "ledger" },
    snapshots: { directory: "snapshots", ...(snapshotTxCount !== undefined ? { tx_count: snapshotTxCount } : {}) },
    logging: { level: "info", file: "node.log" },
    coco: { workspace: ".", durability: "none" },
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(file, null, 2)}\n`);
  return file;
}

const rpcPortOf = (file: NodeConfigFile): number => Number(file.network.rpc_interfaces["primary_rpc_interface"]!.bind_address.split(":").pop());

function target(ids: Identities, serviceCertPem: string, port: number): TlsTarget {
  return { host: "127.0.0.1", port, ca: Buffer.from(serviceCertPem), cert: Buffer.from(ids.userCertPem), key: Buffer.from(ids.userKeyPem) };
}

function spawnNode(dir: string): ManagedChild {
  return startChild(`node in ${dir}`, [NODE_MAIN, "node", "start", "--config", join(dir, "config.json")], { cwd: dir });
}

const directoryMiB = (dir: string): number => readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0) / 2 ** 20;
const committedSnapshots = (dir: string): string[] => {
  try {
    return readdirSync(join(dir, "snapshots")).filter((name) => name.endsWith(".committed"));
  } catch {
    return [];
  }
};

/** The node log's line with this message, parsed (the node logs JSON lines). */
function logLine(dir: string, message: string): Record<string, unknown> | undefined {
  for (const line of readFileSync(join(dir, "node.log"), "utf8").split("\n").reverse()) {
    if (!line.includes(message)) continue;
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch { /* not JSON */ }
  }
  return undefined;
}

/**
 * When the node logged each step of its start, in ms after `spawnedAt` (the node logs JSON lines
 * with their epoch-ms time): only lines logged after the spawn count (a restarted node's log also
 * holds its earlier runs). Absent steps are left out.
 */
const START_STEPS: readonly [step: string, message: string][] = [
  ["first log line", ""],
  ["ledger opened", "ledger: opened"],
  ["snapshot fetched", "fetched and verified the service's snapshot"],
  ["state rebuilt", "state rebuilt from"],
  ["public ledger read", "recovery: public ledger read"],
  ["serving", "node is serving"],
  ["private state restored", "recovery: private state restored"],
  ["Merkle tree before the snapshot rebuilt", "Merkle tree before the snapshot rebuilt"],
];

function stepTimes(dir: string, spawnedAt: number): Record<string, number> {
  const out: Record<string, number> = {};
  let lines: string[];
  try {
    lines = readFileSync(join(dir, "node.log"), "utf8").split("\n");
  } catch {
    return out;
  }
  for (const line of lines) {
    let parsed: { time?: unknown; msg?: unknown };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      continue;
    }
    if (typeof parsed.time !== "number" || parsed.time < spawnedAt || typeof parsed.msg !== "string") continue;
    for (const [step, message] of START_STEPS) {
      if (out[step] === undefined && parsed.msg.includes(message)) out[step] = parsed.time - spawnedAt;
    }
  }
  return out;
}

const showSteps = (steps: Record<string, number>): string => Object.entries(steps).map(([step, ms]) => `${step} ${fmt(ms / 1000, " s", 2)}`).join(", ");

/** 1. The service: N transactions through the engine; returns once its newest snapshot is committed. */
async function buildLedger(ids: Identities, dir: string, options: TimingsOptions) {
  await nodeConfig(dir, {
    type: "Start", service_certificate_file: "service_cert.pem",
    start: { members: [{ certificate_file: join(ids.root, "member0_cert.pem"), encryption_public_key_file: join(ids.root, "member0_enc_pubk.pem") }] },
  }, options.snapshotTxCount);
  const config = resolveConfig(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as NodeConfigFile, dir);
  const node = await CocoNode.start(config);
  const serviceCertPem = readFileSync(join(dir, "service_cert.pem"), "utf8");
  await openServiceAsMember({
    url: `https://127.0.0.1:${node.address.port}`, serviceCertPem, memberCertPem: ids.memberCertPem, memberKeyPem: ids.memberKeyPem, userCertPems: [ids.userCertPem],
  });
  const started = Date.now();
  const value = Buffer.alloc(VALUE_BYTES, 7);
  const write = (i: number) => {
    const tx = node.engine.store.begin();
    const key = Buffer.alloc(8);
    key.writeBigUInt64BE(BigInt(i % options.keys));
    tx.set(PRIVATE_MAP, key, value);
    node.engine.commit(tx);
  };
  let written = 0;
  while (node.engine.lastSeqnoLocal < options.transactions) {
    const batch = Math.min(IN_FLIGHT_MAX, options.transactions - node.engine.lastSeqnoLocal);
    for (let i = 0; i < batch; i++) write(written++);
    const goal = node.engine.lastSeqnoLocal;
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    while (node.engine.commitTxId.seqno < goal - 1) {
      if (Date.now() > deadline) throw new Error("the service did not commit its writes in time");
      await new Promise((r) => setTimeout(r, 5));
    }
    if (Math.floor(goal / 100_000) !== Math.floor((goal - batch) / 100_000)) {
      progress(`  ledger at ${goal.toLocaleString("en-US")} transactions (${fmt((Date.now() - started) / 1000, " s", 1)}), ${committedSnapshots(dir).length} committed snapshot(s)`);
    }
  }
  const buildSeconds = (Date.now() - started) / 1000;
  // The newest snapshot commits once a signature after its evidence commits: a few more writes.
  const newestWanted = Math.max(1, options.transactions - config.snapshots.txCount);
  const deadline = Date.now() + PHASE_TIMEOUT_MS;
  while (!committedSnapshots(dir).some((name) => Number(name.split("_")[1]) >= newestWanted)) {
    if (Date.now() > deadline) throw new Error(`no committed snapshot at seqno >= ${newestWanted} in time`);
    write(written++);
    await new Promise((r) => setTimeout(r, 50));
  }
  const ledgerEntries = node.engine.lastSeqnoLocal;
  await node.stop();
  const snapshots = committedSnapshots(dir);
  const snapshotLog = logLine(dir, "snapshot written");
  progress(`built: ${ledgerEntries.toLocaleString("en-US")} entries, ledger ${fmt(directoryMiB(join(dir, "ledger")), " MiB")}, ` +
    `${snapshots.length} committed snapshot(s) (newest ${snapshots.sort().at(-1)}), ${fmt(buildSeconds, " s", 1)}`);
  return { serviceCertPem, ledgerEntries, ledgerMiB: directoryMiB(join(dir, "ledger")), snapshots, buildSeconds, lastSnapshotLog: snapshotLog };
}

/** 2. Restart from the ledger and snapshots: spawn -> serving -> first write committed. */
async function timeRestart(ids: Identities, dir: string, serviceCertPem: string) {
  const file = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as NodeConfigFile;
  const node = target(ids, serviceCertPem, rpcPortOf(file));
  const spawnedAt = Date.now();
  const child = spawnNode(dir);
  const deadline = spawnedAt + PHASE_TIMEOUT_MS;
  const { servingMs, firstWriteCommittedMs } = await timeToServeAndCommit(node, spawnedAt, deadline);
  const rebuilt = logLine(dir, "state rebuilt from a snapshot") ?? logLine(dir, "state rebuilt from the ledger");
  progress(`restart: serving after ${fmt(servingMs / 1000, " s", 2)}, first write committed after ${fmt(firstWriteCommittedMs / 1000, " s", 2)} (goal < 5 s)`);
  // The tree before the snapshot is built after the node serves: wait for it (the join comes next).
  const backgroundTree = String(rebuilt?.["msg"] ?? "").includes("once the node serves");
  await waitFor("the Merkle tree before the snapshot", deadline, async () =>
    (!backgroundTree || (logLine(dir, "Merkle tree before the snapshot")?.["time"] as number) >= spawnedAt ? true : undefined));
  const steps = stepTimes(dir, spawnedAt);
  progress(`  restart steps (node log, after spawn): ${showSteps(steps)}`);
  return { child, node, result: { servingMs, firstWriteCommittedMs, goalMs: 5_000, met: firstWriteCommittedMs < 5_000, steps, rebuiltLog: rebuilt ?? null } };
}

/** 3. A new node joins the running service: spawn -> its commit point reaches the service's. */
async function timeJoin(ids: Identities, root: string, service: TlsTarget, serviceDir: string, options: TimingsOptions) {
  const dir = join(root, "joiner");
  mkdirSync(dir, { recursive: true });
  cpSync(join(serviceDir, "service_cert.pem"), join(dir, "service_cert.pem"));
  const file = await nodeConfig(dir, {
    type: "Join", service_certificate_file: "service_cert.pem", join: { target_rpc_address: `127.0.0.1:${service.port}`, retry_timeout: "100ms" },
  }, options.snapshotTxCount);
  const joiner = { ...service, port: rpcPortOf(file) };
  const serviceCertPem = service.ca.toString();
  const spawnedAt = Date.now();
  const child = spawnNode(dir);
  const deadline = spawnedAt + PHASE_TIMEOUT_MS;
  try {
    const pending = await waitFor("the joiner asking to join", deadline, async () => {
      const nodes = (await getJson(service, "/node/network/nodes"))?.["nodes"] as { node_id: string; status: string }[] | undefined;
      return nodes?.find((n) => n.status === "Pending")?.node_id;
    });
    const askedMs = Date.now() - spawnedAt;
    const client = new GovernanceClient({ url: `https://127.0.0.1:${service.port}`, serviceCertPem, memberCertPem: ids.memberCertPem, memberKeyPem: ids.memberKeyPem });
    try {
      let proposal = await client.propose({ actions: [{ name: "transition_node_to_trusted", args: { node_id: pending, valid_from: new Date(Date.now() - 60_000).toISOString() } }] });
      if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
      if (proposal.proposalState !== "Accepted") throw new Error(`trusting the joiner: proposal ${proposal.proposalState}`);
    } finally {
      await client.close();
    }
    const trustedMs = Date.now() - spawnedAt;
    const serviceCommit = commitSeqno(await getJson(service, "/node/commit"));
    await waitFor("the joiner caught up", deadline, async () => (commitSeqno(await getJson(joiner, "/node/commit")) >= serviceCommit ? true : undefined));
    const caughtUpMs = Date.now() - spawnedAt;
    const fetched = logLine(dir, "fetched and verified the service's snapshot");
    progress(`join: asked after ${fmt(askedMs / 1000, " s", 2)}, trusted after ${fmt(trustedMs / 1000, " s", 2)}, caught up (commit ${serviceCommit.toLocaleString("en-US")}) after ${fmt(caughtUpMs / 1000, " s", 2)} (goal < 10 s)`);
    const steps = stepTimes(dir, spawnedAt);
    progress(`  join steps (node log, after spawn): ${showSteps(steps)}`);
    return { askedMs, trustedMs, caughtUpMs, steps, serviceCommitSeqno: serviceCommit, goalMs: 10_000, met: caughtUpMs < 10_000, snapshotFetchLog: fetched ?? null };
  } finally {
    await stopChild(child, 30_000);
  }
}

/** 4. Recovery from a copy of the ledger and snapshots: spawn (Recover) -> service Open. */
async function timeRecovery(ids: Identities, root: string, serviceDir: string, previousServiceCertPem: string, options: TimingsOptions) {
  const dir = join(root, "recovered");
  mkdirSync(dir, { recursive: true });
  cpSync(join(serviceDir, "ledger"), join(dir, "ledger"), { recursive: true });
  cpSync(join(serviceDir, "snapshots"), join(dir, "snapshots"), { recursive: true });
  writeFileSync(join(dir, "previous_service_cert.pem"), previousServiceCertPem);
  const file = await nodeConfig(dir, { type: "Recover", service_certificate_file: "service_cert.pem", recover: { previous_service_identity_file: "previous_service_cert.pem" } }, options.snapshotTxCount);
  const spawnedAt = Date.now();
  const child = spawnNode(dir);
  const deadline = spawnedAt + PHASE_TIMEOUT_MS;
  try {
    const serviceCertPem = await waitFor("the recovering node's new service certificate", deadline, async () => {
      try {
        return readFileSync(join(dir, "service_cert.pem"), "utf8");
      } catch {
        return undefined;
      }
    });
    const node = target(ids, serviceCertPem, rpcPortOf(file));
    await waitFor("the recovering node serving", deadline, async () => ((await getJson(node, "/node/state")) !== null ? true : undefined));
    const servingMs = Date.now() - spawnedAt;
    const client = new GovernanceClient({ url: `https://127.0.0.1:${node.port}`, serviceCertPem, memberCertPem: ids.memberCertPem, memberKeyPem: ids.memberKeyPem });
    try {
      let proposal = await client.propose({
        actions: [{ name: "transition_service_to_open", args: { previous_service_identity: previousServiceCertPem, next_service_identity: serviceCertPem } }],
      });
      if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
      await waitFor("WaitingForRecoveryShares", deadline, async () => ((await client.serviceInfo()).status === "WaitingForRecoveryShares" ? true : undefined));
      await submitMemberRecoveryShare(client, ids.memberEncPrivateKeyPem);
    } finally {
      await client.close();
    }
    const sharesMs = Date.now() - spawnedAt;
    await waitFor("the recovered service Open", deadline, async () => ((await getJson(node, "/node/network"))?.["service_status"] === "Open" ? true : undefined));
    const openMs = Date.now() - spawnedAt;
    progress(`recovery: serving (public ledger read) after ${fmt(servingMs / 1000, " s", 2)}, share submitted after ${fmt(sharesMs / 1000, " s", 2)}, Open after ${fmt(openMs / 1000, " s", 2)} (goal < 10 s)`);
    const steps = stepTimes(dir, spawnedAt);
    progress(`  recovery steps (node log, after spawn): ${showSteps(steps)}`);
    return { servingMs, sharesSubmittedMs: sharesMs, openMs, steps, goalMs: 10_000, met: openMs < 10_000, snapshotLog: logLine(dir, "snapshot") ?? null };
  } finally {
    await stopChild(child, 30_000);
  }
}

/** What a cached build must match to be reused. */
const cacheKey = (options: TimingsOptions) => ({ transactions: options.transactions, keys: options.keys, snapshotTxCount: options.snapshotTxCount ?? null });

/** Keeps the freshly built service (before any timed run touched it) for later runs. */
function toLedgerCache(cache: string, ids: Identities, serviceDir: string, built: Awaited<ReturnType<typeof buildLedger>>, options: TimingsOptions): void {
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  cpSync(serviceDir, join(cache, "service"), { recursive: true });
  for (const name of ["member0_cert.pem", "member0_enc_pubk.pem"]) cpSync(join(ids.root, name), join(cache, name));
  const { root: _root, ...keys } = ids;
  writeFileSync(join(cache, "built.json"), `${JSON.stringify({ key: cacheKey(options), ids: keys, built }, null, 2)}\n`);
  progress(`kept the built service in ${cache} (--ledger-cache)`);
}

/** A copy of the cached service in `serviceDir` (fresh ports), or undefined if the cache holds none that matches. */
async function fromLedgerCache(cache: string, root: string, serviceDir: string, options: TimingsOptions) {
  let saved: { key: unknown; ids: Omit<Identities, "root">; built: Awaited<ReturnType<typeof buildLedger>> };
  try {
    saved = JSON.parse(readFileSync(join(cache, "built.json"), "utf8")) as typeof saved;
  } catch {
    return undefined;
  }
  if (JSON.stringify(saved.key) !== JSON.stringify(cacheKey(options))) return undefined;
  const ids: Identities = { ...saved.ids, root };
  for (const name of ["member0_cert.pem", "member0_enc_pubk.pem"]) cpSync(join(cache, name), join(root, name));
  cpSync(join(cache, "service"), serviceDir, { recursive: true });
  // The same configuration as the build, ports included (the service's KV records the node's
  // addresses: a joiner dials those), with the members' files where this run keeps them.
  const file = JSON.parse(readFileSync(join(serviceDir, "config.json"), "utf8")) as NodeConfigFile;
  file.command = {
    type: "Start", service_certificate_file: "service_cert.pem",
    start: { members: [{ certificate_file: join(root, "member0_cert.pem"), encryption_public_key_file: join(root, "member0_enc_pubk.pem") }] },
  };
  writeFileSync(join(serviceDir, "config.json"), `${JSON.stringify(file, null, 2)}\n`);
  return { ids, built: saved.built };
}

export async function runLongTimings(argv: readonly string[]): Promise<number> {
  const options = parseTimingsArgs(argv);
  if (options === "help") {
    process.stdout.write(`${LONG_TIMINGS_HELP}\n`);
    return 0;
  }
  const root = mkdtempSync(join(os.tmpdir(), "coco-bench-timings-"));
  const result: Record<string, unknown> = {
    kind: "long-timings", options, machine: { cores: os.cpus().length, totalMemoryMiB: Math.round(os.totalmem() / 2 ** 20), node: process.version, loadAverage: os.loadavg() },
  };
  let failed = false;
  try {
    const serviceDir = join(root, "service");
    const cached = options.ledgerCache === undefined ? undefined : await fromLedgerCache(options.ledgerCache, root, serviceDir, options);
    const ids = cached?.ids ?? (await identities(root));
    let built: Awaited<ReturnType<typeof buildLedger>>;
    if (cached) {
      built = cached.built;
      progress(`reusing the ledger built in ${options.ledgerCache}: ${built.ledgerEntries.toLocaleString("en-US")} entries, ${fmt(built.ledgerMiB, " MiB")}`);
    } else {
      progress(`building a ledger of ${options.transactions.toLocaleString("en-US")} transactions over ${options.keys.toLocaleString("en-US")} keys (one node, snapshots on, durability none)`);
      built = await buildLedger(ids, serviceDir, options);
      if (options.ledgerCache !== undefined) toLedgerCache(options.ledgerCache, ids, serviceDir, built, options);
    }
    result["ledger"] = built;
    const restart = await timeRestart(ids, serviceDir, built.serviceCertPem);
    result["restart"] = restart.result;
    try {
      result["join"] = await timeJoin(ids, root, restart.node, serviceDir, options).catch((error: Error) => ({ error: error.message }));
    } finally {
      await stopChild(restart.child, 30_000);
    }
    result["recovery"] = await timeRecovery(ids, root, serviceDir, built.serviceCertPem, options).catch((error: Error) => ({ error: error.message }));
  } catch (error) {
    failed = true;
    result["error"] = (error as Error).message;
    progress(`failed: ${(error as Error).message}`);
  } finally {
    const outPath = resolve(options.out);
    mkdirSync(dirname(outPath), { recursive: true });
    writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`\nJSON written to ${outPath}\n`);
    rmSync(root, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}
