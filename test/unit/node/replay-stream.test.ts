// A restarting engine streams its ledger back (never whole) and keeps only bounded windows of
// it: consensus the newest entries, the Merkle tree its frontier and retained levels, the KV
// store no undo records below the recorded commit point. Receipts of the oldest transactions
// still verify, their paths rebuilt from the ledger, their signatures found in it; a rebuilt path
// that does not lead to the signed root (a ledger file changed on disk) is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { TransactionEngine } from "../../../src/node/engine.js";
import { Replicator } from "../../../src/node/replication.js";
import { Ledger } from "../../../src/ledger/index.js";
import { randomBytes } from "../../../src/crypto/index.js";
import { verifyReceipt } from "../../../src/client/index.js";
import { testNodeIdentity } from "../../helpers/node-identity.js";

const quiet = { info() {}, warn() {}, error() {} };

const identity = testNodeIdentity;

function engineOver(ledger: Ledger, id: Awaited<ReturnType<typeof identity>>, secret: Buffer, signatureIndexEntries?: number): TransactionEngine {
  return new TransactionEngine(ledger, {
    ...(signatureIndexEntries === undefined ? {} : { signatureIndexEntries }),
    nodeId: id.nodeId, serviceCertPem: id.serviceCertPem, nodePrivateKeyPem: id.nodeKeys.privateKeyPem, nodeCertPem: id.nodeCertPem,
    ledgerSecrets: [{ fromSeqno: 1, raw: secret }], signatureTxCount: 100, signatureDelayMs: 1_000_000, pendingTransactionsMax: 10_000,
    logger: quiet, merkleWindowLeaves: 64, historicalCacheBytes: 64 * 1024,
  });
}

const replicatorOptions = (id: { nodeId: string }, dir: string) => ({
  nodeId: id.nodeId, workspace: dir, bootstrapVoters: [id.nodeId], tickMs: 10, electionTicks: 10, heartbeatTicks: 2,
  maxEntriesPerAppend: 100, maxInflightAppends: 4, maxUncommittedEntries: 10_000, logger: quiet, logWindow: { entriesMax: 50, bytesMax: 1 << 20 },
});

async function waitCommit(engine: TransactionEngine, seqno: number) {
  while (engine.commitTxId.seqno < seqno) await new Promise((r) => setTimeout(r, 2));
}

/** A one-node ledger of `count` transactions (a signature every 100), closed. */
async function writeLedger(dir: string, id: Awaited<ReturnType<typeof identity>>, secret: Buffer, count: number): Promise<void> {
  const { ledger } = await Ledger.open(join(dir, "ledger"), { durability: "none", chunkSizeBytes: 64 * 1024 });
  const engine = engineOver(ledger, id, secret);
  const replicator = new Replicator(engine, engine.replay([]), replicatorOptions(id, dir));
  replicator.start();
  for (let i = 0; i < count; i++) {
    const tx = engine.store.begin();
    tx.set("records", Buffer.from(`key ${i % 100}`), Buffer.from(`value ${i}`));
    engine.commit(tx);
    if (i % 500 === 499) await waitCommit(engine, engine.lastSeqnoLocal - 1);
  }
  engine.emitSignature();
  await waitCommit(engine, engine.lastSeqnoLocal);
  replicator.stop();
  await engine.close();
  await ledger.close();
}

test("a restart streams the ledger and keeps bounded windows of it; the oldest receipts still verify", { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-replay-stream-"));
  try {
    const id = await identity();
    const secret = randomBytes(32);
    const count = 3000;
    await writeLedger(dir, id, secret, count);
    const { ledger, entries } = await Ledger.open(join(dir, "ledger"), { durability: "none", returnEntries: false });
    assert.equal(entries.length, 0, "nothing is read into memory at open");
    const engine = engineOver(ledger, id, secret);
    const replayed = await engine.replayLedger(50, ledger.committedSeqno);
    assert.equal(replayed.count, ledger.lastSeqno);
    assert.ok(replayed.count > count);
    assert.ok(replayed.entries.length <= 100, `consensus keeps ${replayed.entries.length} payloads of ${replayed.count}`);
    assert.ok(engine.store.undoLogLength <= replayed.count - ledger.committedSeqno + 1, `undo records: ${engine.store.undoLogLength}`);
    assert.ok(engine.tree.storedHashCount < 1000, `the tree stores ${engine.tree.storedHashCount} hashes for ${engine.tree.size} leaves`);
    assert.equal(engine.store.get("records", Buffer.from("key 99"))?.toString(), `value ${count - 1}`);
    const replicator = new Replicator(engine, replayed, replicatorOptions(id, dir));
    replicator.start();
    try {
      await waitCommit(engine, replayed.count + 1);
      for (const seqno of [1, 2, 150, 1500]) {
        const view = engine.viewAt(seqno)!;
        const receipt = await engine.receipt(view, seqno);
        assert.equal(verifyReceipt(receipt, id.serviceCertPem).txId.seqno, seqno);
      }
    } finally {
      replicator.stop();
      await engine.close();
      await ledger.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("old receipts find their signature in the ledger once its seqno left memory; a tampered rebuilt path is refused", { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-old-receipts-"));
  try {
    const id = await identity();
    const secret = randomBytes(32);
    await writeLedger(dir, id, secret, 3000);
    const { ledger } = await Ledger.open(join(dir, "ledger"), { durability: "none", returnEntries: false });
    const engine = engineOver(ledger, id, secret, 4);
    const replayed = await engine.replayLedger(50, ledger.committedSeqno);
    const replicator = new Replicator(engine, replayed, replicatorOptions(id, dir));
    replicator.start();
    try {
      await waitCommit(engine, replayed.count + 1);
      assert.ok(engine.signatureSeqnosResident < 8, `${engine.signatureSeqnosResident} signature seqnos in memory`);
      assert.ok(engine.signatureSeqnosExactFrom > 2000, `signature seqnos dropped up to ${engine.signatureSeqnosExactFrom}`);
      for (const seqno of [1, 99, 100, 101, 150, 1500]) {
        const receipt = await engine.receipt(engine.viewAt(seqno)!, seqno);
        assert.equal(verifyReceipt(receipt, id.serviceCertPem).txId.seqno, seqno);
      }
      // The host changes an entry of the block on disk: the leaves the worker hashes differ.
      const describe = ledger.describeRange.bind(ledger);
      ledger.describeRange = async (first, last, bytesMax, marker) => {
        const described = await describe(first, last, bytesMax, marker);
        if (first <= 7 && 7 < first + described.flags.length) new Uint8Array(described.leaves)[32 * (7 - first)]! ^= 1;
        return described;
      };
      // The trees asked for above are cached; seqno 250's (up to its signature) is rebuilt.
      await assert.rejects(engine.receipt(engine.viewAt(250)!, 250), (e: Error & { code?: string }) => e.code === "LedgerCorrupted" && /signed/.test(e.message));
      ledger.describeRange = describe;
      const receipt = await engine.receipt(engine.viewAt(250)!, 250);
      assert.equal(verifyReceipt(receipt, id.serviceCertPem).txId.seqno, 250, "the refused tree was not cached");
    } finally {
      replicator.stop();
      await engine.close();
      await ledger.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
