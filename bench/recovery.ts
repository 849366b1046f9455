// Disaster recovery time: a one-node service (member0 a recovery member) writes N transactions
// (one private key each, through the real engine, entry encoder and ledger writer, without HTTP),
// stops; then a node started with command Recover on a copy of its ledger is timed from start
// to Open: public ledger read, member0's transition_service_to_open and share (over HTTPS), and
// the private ledger read. Prints the figures and writes JSON.
// Run: node dist/bench/recovery.js [transactions=100000] [--out FILE]
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir, cpus, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createIdentityCertificate, generateEcP384KeyPair, generateRsaEncryptionKeyPair } from "../src/crypto/index.js";
import { GovernanceClient, openServiceAsMember, submitMemberRecoveryShare } from "../src/client/index.js";
import { resolveConfig, type NodeConfigFile } from "../src/node/config.js";
import { CocoNode } from "../src/node/node.js";
import { freeTcpPort } from "../src/util/index.js";

const PRIVATE_MAP = "bench.records";
/** Transactions committed locally before waiting for consensus to commit them (under pendingTransactionsMax). */
const IN_FLIGHT_MAX = 50_000;
const VALUE_BYTES = 64;

function parseArgs(): { transactions: number; out: string } {
  const args = process.argv.slice(2);
  let transactions = 100_000;
  let out = `bench/results/recovery-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--out") out = args[++i]!;
    else transactions = Number(args[i]);
  }
  if (!Number.isSafeInteger(transactions) || transactions < 1) throw new Error(`transactions must be a positive integer, got ${args.join(" ")}`);
  return { transactions, out };
}

async function config(dir: string, command: NodeConfigFile["command"]): Promise<NodeConfigFile> {
  return {
    network: { rpc_interfaces: { primary_rpc_interface: { bind_address: `127.0.0.1:${await freeTcpPort()}` } } },
    command,
    ledger: { directory: "ledger" },
    logging: { level: "info", file: "node.log" },
    coco: { workspace: dir, durability: "none" },
  };
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function serviceStatus(node: CocoNode): string | undefined {
  const raw = node.engine.store.get("public:ccf.gov.service.info", Buffer.alloc(8));
  return raw === undefined ? undefined : (JSON.parse(raw.toString("utf8")) as { status: string }).status;
}

function directoryBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

async function main(): Promise<void> {
  const { transactions, out } = parseArgs();
  const root = mkdtempSync(join(tmpdir(), "coco-bench-recovery-"));
  try {
    const member = generateEcP384KeyPair();
    const memberCertPem = await createIdentityCertificate(member, "member0");
    const encryption = generateRsaEncryptionKeyPair();
    writeFileSync(join(root, "member0_cert.pem"), memberCertPem);
    writeFileSync(join(root, "member0_enc_pubk.pem"), encryption.publicKeyPem);

    // 1. The service to lose: N transactions, each writing one private key.
    const first = join(root, "service0");
    mkdirSync(first);
    const startFile = await config(first, {
      type: "Start", service_certificate_file: "service_cert.pem",
      start: { members: [{ certificate_file: join(root, "member0_cert.pem"), encryption_public_key_file: join(root, "member0_enc_pubk.pem") }] },
    });
    const node = await CocoNode.start(resolveConfig(startFile, first));
    const url = `https://127.0.0.1:${node.address.port}`;
    const previousCertPem = readFileSync(join(first, "service_cert.pem"), "utf8");
    await openServiceAsMember({ url, serviceCertPem: previousCertPem, memberCertPem, memberKeyPem: member.privateKeyPem, userCertPems: [] });
    const generateStarted = process.hrtime.bigint();
    const value = Buffer.alloc(VALUE_BYTES, 7);
    for (let i = 0; i < transactions; i++) {
      const tx = node.engine.store.begin();
      const key = Buffer.alloc(8);
      key.writeBigUInt64BE(BigInt(i));
      tx.set(PRIVATE_MAP, key, value);
      node.engine.commit(tx);
      if ((i + 1) % IN_FLIGHT_MAX === 0 || i + 1 === transactions) {
        const target = node.engine.lastSeqnoLocal;
        await waitUntil("commit", () => node.engine.commitTxId.seqno >= target - 1, 600_000);
        if ((i + 1) % 200_000 === 0) process.stdout.write(`  generated ${i + 1} transactions\n`);
      }
    }
    const generateSeconds = Number(process.hrtime.bigint() - generateStarted) / 1e9;
    const ledgerEntries = node.engine.lastSeqnoLocal;
    await node.stop();
    const ledgerBytes = directoryBytes(join(first, "ledger"));

    // 2. Recovery, timed from the start of the Recover node to Open.
    const second = join(root, "service1");
    mkdirSync(second);
    cpSync(join(first, "ledger"), join(second, "ledger"), { recursive: true });
    writeFileSync(join(second, "previous_service_cert.pem"), previousCertPem);
    const recoverFile = await config(second, {
      type: "Recover", service_certificate_file: "service_cert.pem", recover: { previous_service_identity_file: "previous_service_cert.pem" },
    });
    const started = process.hrtime.bigint();
    const since = () => Number(process.hrtime.bigint() - started) / 1e9;
    const recovered = await CocoNode.start(resolveConfig(recoverFile, second));
    const publicSeconds = since();
    const serviceCertPem = readFileSync(join(second, "service_cert.pem"), "utf8");
    const client = new GovernanceClient({ url: `https://127.0.0.1:${recovered.address.port}`, serviceCertPem, memberCertPem, memberKeyPem: member.privateKeyPem });
    try {
      let proposal = await client.propose({
        actions: [{ name: "transition_service_to_open", args: { previous_service_identity: previousCertPem, next_service_identity: serviceCertPem } }],
      });
      if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
      await waitUntil("WaitingForRecoveryShares", () => serviceStatus(recovered) === "WaitingForRecoveryShares", 60_000);
      await submitMemberRecoveryShare(client, encryption.privateKeyPem);
    } finally {
      await client.close();
    }
    const sharesSeconds = since();
    await waitUntil("Open", () => serviceStatus(recovered) === "Open", 1_800_000);
    const openSeconds = since();
    // Spot check: the last private write is back.
    const lastKey = Buffer.alloc(8);
    lastKey.writeBigUInt64BE(BigInt(transactions - 1));
    if (!recovered.engine.store.get(PRIVATE_MAP, lastKey)?.equals(value)) throw new Error("the last private write did not come back");
    await recovered.stop();

    const result = {
      benchmark: "recovery",
      date: new Date().toISOString(),
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30) },
      transactions,
      ledgerEntries,
      ledgerMiB: Math.round((ledgerBytes / 2 ** 20) * 10) / 10,
      durability: "none",
      generateSeconds: round(generateSeconds),
      recoverStartToOpenSeconds: round(openSeconds),
      phases: {
        publicLedgerReadAndStartSeconds: round(publicSeconds),
        member0ProposalAndShareSeconds: round(sharesSeconds - publicSeconds),
        privateLedgerReadAndOpenSeconds: round(openSeconds - sharesSeconds),
      },
      entriesPerSecond: Math.round(ledgerEntries / openSeconds),
    };
    const outPath = resolve(out);
    mkdirSync(dirname(outPath), { recursive: true });
    writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`recovery of ${transactions} transactions (${ledgerEntries} ledger entries, ${result.ledgerMiB} MiB):
  Recover start -> Open     ${result.recoverStartToOpenSeconds} s  (${result.entriesPerSecond} entries/s)
    public ledger + start   ${result.phases.publicLedgerReadAndStartSeconds} s
    member0 open + share    ${result.phases.member0ProposalAndShareSeconds} s
    private ledger + open   ${result.phases.privateLedgerReadAndOpenSeconds} s
  (generating the ledger took ${result.generateSeconds} s)
JSON written to ${outPath}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function round(seconds: number): number {
  return Math.round(seconds * 100) / 100;
}

await main();
process.exit(0);
