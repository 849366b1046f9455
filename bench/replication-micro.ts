// Micro-benchmark of a backup's hot path, in one process and without HTTP: a primary engine
// produces logging-app-like private writes (a signature every `sigEvery` transactions, as at
// ~12k tx/s with a 25 ms signature delay); a backup engine + Replicator then receives them as
// encoded AppendEntries of `batch` entries (decode, decrypt, KV apply, Merkle leaf, signature
// check, ledger append with group commit, held acknowledgements). Prints CPU µs per entry.
// Run: node dist/bench/replication-micro.js [entries] [batch] [sigEvery] [durability]
// Profile: node --cpu-prof dist/bench/replication-micro.js …
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TransactionEngine } from "../src/node/engine.js";
import { FRAME_RAFT, Replicator } from "../src/node/replication.js";
import { encodeRaftMessage } from "../src/node/raft-codec.js";
import { ThreadedLedger, type Durability } from "../src/ledger/index.js";
import { createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey, randomBytes } from "../src/crypto/index.js";
import type { Entry, Message } from "../src/consensus/index.js";

const totalEntries = Number(process.argv[2] ?? 60_000);
const batchEntries = Number(process.argv[3] ?? 200);
const signatureEvery = Number(process.argv[4] ?? 300);
const durability = (process.argv[5] ?? "fsync") as Durability;
const quiet = { info() {}, warn() {}, error() {} };

async function nodeIdentity(serviceKeys: ReturnType<typeof generateEcP384KeyPair>, serviceCertPem: string) {
  const nodeKeys = generateEcP384KeyPair();
  const nodeCertPem = await createNodeCertificate({ nodePublicKeyPem: nodeKeys.publicKeyPem, serviceKeys, serviceCertPem, ipAddresses: ["127.0.0.1"] });
  return { nodeKeys, nodeCertPem, nodeId: nodeIdFromPublicKey(nodeKeys.publicKeyPem) };
}

async function openNode(dir: string, id: Awaited<ReturnType<typeof nodeIdentity>>, serviceCertPem: string, secret: Buffer, voters: string[]) {
  const { ledger, entries } = await ThreadedLedger.open(join(dir, id.nodeId.slice(0, 8)), { durability });
  const engine = new TransactionEngine(ledger, {
    nodeId: id.nodeId, serviceCertPem, nodePrivateKeyPem: id.nodeKeys.privateKeyPem, nodeCertPem: id.nodeCertPem,
    ledgerSecrets: [{ fromSeqno: 1, raw: secret }], signatureTxCount: signatureEvery, signatureDelayMs: 1_000_000,
    pendingTransactionsMax: 10_000_000, logger: quiet,
  });
  const replicator = new Replicator(engine, engine.replay(entries), {
    nodeId: id.nodeId, workspace: dir, bootstrapVoters: voters, tickMs: 10, electionTicks: 100, heartbeatTicks: 10,
    maxEntriesPerAppend: 4000, maxInflightAppends: 8, maxUncommittedEntries: 100_000_000, logger: quiet,
  });
  return { engine, ledger, replicator };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "coco-replication-micro-"));
  try {
    const serviceKeys = generateEcP384KeyPair();
    const serviceCertPem = await createServiceCertificate(serviceKeys, {});
    const secret = randomBytes(32);
    const primaryId = await nodeIdentity(serviceKeys, serviceCertPem);
    const backupId = await nodeIdentity(serviceKeys, serviceCertPem);
    const primary = await openNode(dir, primaryId, serviceCertPem, secret, [primaryId.nodeId]);
    primary.replicator.start();
    for (let i = 0; i < totalEntries; i++) {
      const tx = primary.engine.store.begin();
      tx.set("records", Buffer.from(String(i)), Buffer.from(JSON.stringify(`message number ${i} written by the micro-benchmark`)));
      primary.engine.commit(tx);
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    }
    primary.engine.drain();
    primary.replicator.process();
    const last = primary.replicator.raft.lastIndex;
    const entries: Entry<Buffer>[] = [];
    for (let i = 1; i <= last; i++) entries.push(primary.replicator.raft.entryAt(i)!);
    const term = primary.replicator.term;
    const frames: Buffer[] = [];
    for (let first = 0; first < entries.length; first += batchEntries) {
      const batch = entries.slice(first, first + batchEntries);
      const prevIndex = first;
      const message: Message<Buffer> = {
        type: "AppendEntries", from: primaryId.nodeId, to: backupId.nodeId, term, prevIndex,
        prevTerm: prevIndex === 0 ? 0 : entries[prevIndex - 1]!.term, leaderCommit: 0, entries: batch,
      };
      frames.push(Buffer.from(encodeRaftMessage(message)));
    }
    await primary.engine.close();
    primary.replicator.stop();
    await primary.ledger.close();

    const backup = await openNode(dir, backupId, serviceCertPem, secret, []);
    let acked = 0;
    let done: () => void = () => {};
    const allAcked = new Promise<void>((resolve) => (done = resolve));
    backup.replicator.setTransport({
      send(_to: string, type: number, payload: Buffer): boolean {
        if (type === FRAME_RAFT && payload[0] === 1) {
          // AppendEntriesResponse: matchIndex follows the success byte (see raft-codec.ts).
          const matchIndex = payload.readDoubleBE(payload.length - 24);
          acked = Math.max(acked, matchIndex);
          if (acked >= last) done();
        }
        return true;
      },
    });
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < frames.length; i++) {
      backup.replicator.receive(primaryId.nodeId, frames[i]!);
      // Let the ledger worker's replies in, as a channel's data events would.
      if (i % 4 === 3) await new Promise((r) => setImmediate(r));
    }
    await allAcked;
    const elapsedMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    const cpuUs = cpu.user + cpu.system;
    process.stdout.write(`${last} entries in AppendEntries of ${batchEntries}, a signature every ${signatureEvery}, durability ${durability}\n`);
    process.stdout.write(`backup: ${(cpuUs / last).toFixed(2)} µs CPU per entry (main + ledger worker thread), ${(elapsedMs * 1000 / last).toFixed(2)} µs wall per entry\n`);
    backup.replicator.stop();
    await backup.engine.close();
    await backup.ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
