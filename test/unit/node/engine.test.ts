// The transaction engine on a real ledger directory: commit, signatures as commit points,
// transaction status, receipts that verify, and recovery that drops the uncommitted tail.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { TransactionEngine } from "../../../src/node/engine.js";
import { Replicator } from "../../../src/node/replication.js";
import { SIGNATURES_MAP, SINGLETON_KEY, decodeSignature } from "../../../src/node/signatures.js";
import { Ledger, LedgerSecrets, ThreadedLedger, decryptPrivate, readLedgerDirectory, type DecodedEntry } from "../../../src/ledger/index.js";
import { randomBytes } from "../../../src/crypto/index.js";
import { verifyReceipt } from "../../../src/client/index.js";
import { testNodeIdentity } from "../../helpers/node-identity.js";

const quiet = { info() {}, warn() {}, error() {} };

const identity = testNodeIdentity;

/** An engine driven by a single-voter replication shell (consensus state kept next to the ledger). */
function startEngine(engine: TransactionEngine, entries: Buffer[], dir: string, nodeId: string): Replicator {
  const replicator = new Replicator(engine, engine.replay(entries), {
    nodeId, workspace: dir, bootstrapVoters: [nodeId], tickMs: 10, electionTicks: 10, heartbeatTicks: 2,
    maxEntriesPerAppend: 100, maxInflightAppends: 4, maxUncommittedEntries: 10_000, logger: quiet,
  });
  replicator.start();
  assert.ok(engine.isPrimary, "a lone voter leads at once");
  return replicator;
}

/** Key nonces 1, 2, 3, ... (16 bytes each): two engines given one each draw the same nonces at the same points. */
function countingNonces(): (size: number) => Buffer {
  let drawn = 0;
  return (size) => {
    const nonce = Buffer.alloc(size);
    nonce.writeUInt32BE(++drawn, size - 4);
    return nonce;
  };
}

async function openEngine(dir: string, id: Awaited<ReturnType<typeof identity>>, secret: Buffer, threaded = false, entryWorker = false,
  randomBytes?: (size: number) => Buffer) {
  const { ledger, entries } = threaded ? await ThreadedLedger.open(join(dir, "ledger"), { durability: "none" }) : await Ledger.open(join(dir, "ledger"), { durability: "none" });
  const engine = new TransactionEngine(ledger, {
    nodeId: id.nodeId, serviceCertPem: id.serviceCertPem, nodePrivateKeyPem: id.nodeKeys.privateKeyPem, nodeCertPem: id.nodeCertPem, ledgerSecrets: [{ fromSeqno: 1, raw: secret }],
    signatureTxCount: 1_000_000, signatureDelayMs: 1_000_000, pendingTransactionsMax: 1000, entryWorker, logger: quiet,
    ...(randomBytes ? { randomBytes } : {}),
  });
  let replicator: Replicator;
  try {
    replicator = startEngine(engine, entries, dir, id.nodeId);
  } catch (error) {
    await ledger.close();
    throw error;
  }
  return { engine, ledger, replicator };
}

function write(engine: TransactionEngine, key: string, value: string) {
  const tx = engine.store.begin();
  tx.set("records", Buffer.from(key), Buffer.from(value));
  return engine.commit(tx);
}

async function waitCommit(engine: TransactionEngine, seqno: number) {
  while (engine.commitTxId.seqno < seqno) await new Promise((r) => setTimeout(r, 2));
}

test("a transaction is Pending until a durable signature covers it, then Committed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const { engine, ledger } = await openEngine(dir, id, randomBytes(32));
    const a = write(engine, "a", "1");
    assert.deepEqual(a, { view: 1, seqno: 1 });
    assert.equal(engine.status(1, 1), "Pending");
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(engine.status(1, 1), "Pending", "no signature yet, so not committed even though durable");
    engine.emitSignature();
    await waitCommit(engine, 2);
    assert.equal(engine.status(1, 1), "Committed");
    assert.equal(engine.status(2, 1), "Invalid");
    assert.equal(engine.status(1, 3), "Unknown");
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const [threaded, entryWorker] of [[false, false], [true, false], [true, true]] as const) {
const variant = `${threaded ? "ledger worker thread" : "in-thread ledger"}${entryWorker ? ", entry encoder worker" : ""}`;
test(`receipts verify against the service certificate for every committed transaction (${variant})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const { engine, ledger } = await openEngine(dir, id, randomBytes(32), threaded, entryWorker);
    const ids = [];
    for (let i = 0; i < 70; i++) {
      ids.push(write(engine, `k${i}`, `v${i}`));
      // Several turns of at least ENTRY_WORKER_MIN_BATCH, so that with the encoder worker some
      // batches are at the worker when the signature is emitted.
      if (i % 20 === 19) await new Promise((r) => setImmediate(r));
    }
    engine.emitSignature();
    for (let i = 0; i < 4; i++) ids.push(write(engine, `m${i}`, `w${i}`));
    engine.emitSignature();
    await waitCommit(engine, 76);
    for (const txid of ids) {
      const receipt = await engine.receipt(txid.view, txid.seqno);
      const verified = verifyReceipt(receipt, id.serviceCertPem);
      assert.deepEqual(verified.txId, txid);
    }
    await assert.rejects(engine.receipt(1, 76), /signature transaction/);
    await assert.rejects(engine.receipt(1, 200), /unknown/i);
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`recovery replays the ledger, drops the tail after the last signature and starts a new view (${variant})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const secret = randomBytes(32);
    const first = await openEngine(dir, id, secret, threaded, entryWorker);
    write(first.engine, "a", "1");
    first.engine.emitSignature();
    await waitCommit(first.engine, 2);
    write(first.engine, "b", "2"); // never signed: must not survive
    await new Promise((r) => setTimeout(r, 10));
    await first.ledger.flush();
    await first.ledger.close();

    const second = await openEngine(dir, id, secret, threaded, entryWorker);
    assert.equal(second.engine.currentView, 2);
    // The new primary rolled back the unsigned tail and signed at once (CCF's rule): seqno 3 is its signature.
    await waitCommit(second.engine, 3);
    assert.equal(second.engine.store.get("records", Buffer.from("a"))?.toString(), "1");
    assert.equal(second.engine.store.get("records", Buffer.from("b")), undefined);
    assert.equal(second.engine.status(1, 3), "Invalid");
    assert.equal(second.engine.status(1, 1), "Committed");
    const next = write(second.engine, "c", "3");
    assert.deepEqual(next, { view: 2, seqno: 4 });
    second.engine.emitSignature();
    await waitCommit(second.engine, 5);
    verifyReceipt(await second.engine.receipt(2, 4), id.serviceCertPem);
    verifyReceipt(await second.engine.receipt(1, 1), id.serviceCertPem);
    await second.engine.close();
    await second.ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

}

test("restarted over a restored copy of its files, an engine rewrites the same transaction ids under a new key nonce", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  const kept = mkdtempSync(join(tmpdir(), "coco-engine-kept-"));
  try {
    const id = await identity();
    const secret = randomBytes(32);
    /** Opens the engine on `dir`, writes `values` to key "k", commits them and returns the ledger's entries by tx id. */
    const run = async (values: string[]) => {
      const { engine, ledger } = await openEngine(dir, id, secret);
      for (const value of values) write(engine, "k", value);
      engine.emitSignature();
      await waitCommit(engine, engine.lastSeqnoLocal);
      await engine.close();
      await ledger.close();
      const entries = new Map<string, DecodedEntry>();
      for await (const { entry } of readLedgerDirectory(join(dir, "ledger"))) entries.set(`${entry.view}.${entry.seqno}`, entry);
      return entries;
    };
    await run(["first"]);
    cpSync(dir, kept, { recursive: true });
    const discarded = await run(["B".repeat(64), "B".repeat(64)]);
    rmSync(dir, { recursive: true, force: true });
    cpSync(kept, dir, { recursive: true }); // consensus_state.json included: the same view again
    const restored = await run(["C".repeat(64), "C".repeat(64)]);
    const secrets = new LedgerSecrets([{ fromSeqno: 1, raw: secret }]);
    let rewritten = 0;
    for (const [txId, b] of discarded) {
      const c = restored.get(txId);
      if (c === undefined || c.bytes.equals(b.bytes)) continue;
      rewritten++;
      if (b.privateCiphertext.length > 0) {
        const plainB = decryptPrivate(b, secrets.forSeqno(b.seqno));
        const plainC = decryptPrivate(c, secrets.forSeqno(c.seqno));
        const xorCipher = b.privateCiphertext.subarray(0, plainB.length).map((x, i) => x ^ c.privateCiphertext[i]!);
        const xorPlain = plainB.map((x, i) => x ^ plainC[i]!);
        assert.notDeepEqual(Buffer.from(xorCipher), Buffer.from(xorPlain), `${txId} reuses the discarded run's keystream`);
      }
      assert.notDeepEqual(c.keyNonce, b.keyNonce, `${txId} is encrypted under the discarded run's key nonce`);
    }
    assert.ok(rewritten >= 3, `the restored run rewrote ${rewritten} transaction ids of the discarded run (want its two writes and a signature)`);
    // Within a term, one nonce: every entry the restored run wrote carries the same one.
    const newer = [...restored.values()].filter((e) => !discarded.get(`${e.view}.${e.seqno}`)?.bytes.equals(e.bytes));
    assert.ok(newer.every((e) => e.keyNonce.equals(newer[0]!.keyNonce)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(kept, { recursive: true, force: true });
  }
});

test("a wrong ledger secret refuses to start rather than serve garbage", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const first = await openEngine(dir, id, randomBytes(32));
    write(first.engine, "a", "1");
    first.engine.emitSignature();
    await waitCommit(first.engine, 2);
    await first.engine.close();
    await first.ledger.close();
    await assert.rejects(openEngine(dir, id, randomBytes(32)), /LedgerDecryptionFailed|authentication|decrypt/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("too many uncommitted transactions are refused with 503 instead of growing without bound", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const { engine, ledger } = await openEngine(dir, id, randomBytes(32));
    for (let i = 0; i < 1000; i++) write(engine, `k${i}`, "v");
    assert.throws(() => write(engine, "overflow", "v"), (e: any) => e.code === "TooManyPendingTransactions" && e.status === 503);
    engine.emitSignature();
    await waitCommit(engine, 1001);
    write(engine, "after", "v");
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("after a rekey, later transactions use the new secret and recovery reads both", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const first = randomBytes(32);
    const second = randomBytes(32);
    const a = await openEngine(dir, id, first);
    write(a.engine, "a", "1");
    a.engine.rekey(1, second);
    write(a.engine, "b", "2");
    a.engine.emitSignature();
    await waitCommit(a.engine, 3);
    assert.deepEqual(a.engine.ledgerSecrets.map((v) => v.fromSeqno), [1, 2]);
    await a.engine.close();
    await a.ledger.close();
    // With only the first secret, the second transaction cannot be read.
    await assert.rejects(openEngine(dir, id, first), /LedgerDecryptionFailed|decrypt|authentication/i);
    const { ledger, entries } = await Ledger.open(join(dir, "ledger"), { durability: "none" });
    const engine = new TransactionEngine(ledger, {
      nodeId: id.nodeId, serviceCertPem: id.serviceCertPem, nodePrivateKeyPem: id.nodeKeys.privateKeyPem, nodeCertPem: id.nodeCertPem,
      ledgerSecrets: [{ fromSeqno: 1, raw: first }, { fromSeqno: 2, raw: second }],
      signatureTxCount: 1_000_000, signatureDelayMs: 1_000_000, pendingTransactionsMax: 1000, logger: quiet,
    });
    startEngine(engine, entries, dir, id.nodeId);
    await waitCommit(engine, 4); // the new primary's first signature commits the replayed entries
    assert.equal(engine.store.get("records", Buffer.from("b"))?.toString(), "2");
    verifyReceipt(await engine.receipt(1, 2), id.serviceCertPem);
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the entry encoder worker writes byte-for-byte the entries and leaves the main thread writes, across a rekey", async () => {
  const dirA = mkdtempSync(join(tmpdir(), "coco-engine-"));
  const dirB = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const secret = randomBytes(32);
    const rekeyed = randomBytes(32);
    const a = await openEngine(dirA, id, secret, false, false, countingNonces());
    const b = await openEngine(dirB, id, secret, false, true, countingNonces());
    const ordinary: number[] = [];
    for (let i = 0; i < 300; i++) {
      for (const { engine } of [a, b]) {
        const tx = engine.store.begin();
        tx.set("records", Buffer.from(`k${i}`), Buffer.from(`value ${i} `.repeat(1 + (i % 7))));
        if (i % 5 === 0) tx.set("public:records", Buffer.from(`p${i}`), Buffer.from(`public ${i}`));
        const txid = engine.commit(tx);
        if (engine === a.engine) ordinary.push(txid.seqno);
        if (i === 150) engine.rekey(txid.seqno, rekeyed);
        if (i % 60 === 59) {
          // Same seqno layout in both: the worker engine first hands everything to consensus
          // (waiting for its worker), so its signature is made at once, as the other one's.
          engine.drain();
          engine.emitSignature();
        }
      }
      if (i % 37 === 0) await new Promise((r) => setImmediate(r));
    }
    for (const { engine } of [a, b]) {
      engine.drain();
      engine.emitSignature();
    }
    const last = a.engine.lastSeqnoLocal;
    assert.equal(b.engine.lastSeqnoLocal, last);
    await waitCommit(a.engine, last);
    await waitCommit(b.engine, last);
    for (const seqno of ordinary) {
      assert.deepEqual(a.replicator.raft.entryAt(seqno)!.payload, b.replicator.raft.entryAt(seqno)!.payload, `entry ${seqno}`);
      assert.deepEqual(a.engine.tree.leaf(seqno - 1), b.engine.tree.leaf(seqno - 1), `leaf ${seqno}`);
    }
    // And receipts from the worker's entries verify.
    verifyReceipt(await b.engine.receipt(1, ordinary[0]!), id.serviceCertPem);
    verifyReceipt(await b.engine.receipt(1, ordinary[ordinary.length - 1]!), id.serviceCertPem);
    for (const { engine, ledger } of [a, b]) {
      await engine.close();
      await ledger.close();
    }
  } finally {
    rmSync(dirA, { recursive: true, force: true });
    rmSync(dirB, { recursive: true, force: true });
  }
});

test("a primary that steps down drops the transactions still at the entry encoder, and their late answer changes nothing", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const { engine, ledger, replicator } = await openEngine(dir, id, randomBytes(32), false, true);
    write(engine, "kept", "1");
    engine.emitSignature();
    await waitCommit(engine, 2);
    const rolledBack: number[] = [];
    engine.on("rollback", (seqno: number) => rolledBack.push(seqno));
    for (let i = 0; i < 50; i++) write(engine, `lost${i}`, "x");
    await new Promise((r) => setImmediate(r)); // the batch is now at the worker
    write(engine, "queued", "y"); // and this one still queued here
    assert.equal(engine.lastSeqnoLocal, 53);
    engine.becomeBackup(engine.currentView);
    assert.deepEqual(rolledBack, [2]);
    assert.equal(engine.lastSeqnoLocal, 2);
    assert.equal(engine.store.get("records", Buffer.from("lost0")), undefined);
    assert.equal(engine.store.get("records", Buffer.from("queued")), undefined);
    assert.equal(engine.store.get("records", Buffer.from("kept"))?.toString(), "1");
    await new Promise((r) => setTimeout(r, 50)); // the worker's answer arrives and is ignored
    assert.equal(engine.tree.size, 2);
    assert.equal(replicator.raft.lastIndex, 2);
    assert.equal(engine.status(1, 3), "Unknown");
    replicator.stop();
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("with the entry encoder, a signature takes its seqno at once and signs once the worker has answered; later writes commit meanwhile", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const { engine, ledger } = await openEngine(dir, id, randomBytes(32), true, true);
    const before = [];
    for (let i = 0; i < 40; i++) before.push(write(engine, `b${i}`, "x"));
    await new Promise((r) => setImmediate(r)); // at the worker now
    // A transaction that reads the signatures table before the signature is made...
    const reader = engine.store.begin();
    assert.equal(reader.get(SIGNATURES_MAP, SINGLETON_KEY), undefined);
    reader.set("records", Buffer.from("reader"), Buffer.from("1"));
    engine.emitSignature();
    const signatureSeqno = engine.lastSeqnoLocal;
    assert.equal(signatureSeqno, 41);
    assert.equal(engine.lastSignedSeqno, 0, "not signed yet: the worker still holds seqnos 1-40");
    const after = write(engine, "after", "y");
    assert.equal(after.seqno, 42, "later transactions commit while the signature waits");
    await waitCommit(engine, 41);
    assert.equal(engine.lastSignedSeqno, 41);
    const record = decodeSignature(engine.store.get(SIGNATURES_MAP, SINGLETON_KEY)!);
    assert.equal(record.seqno, 41);
    assert.equal(record.root, engine.tree.rootAt(40).toString("hex"), "it signs the root of exactly the transactions before it");
    // ...conflicts: the signature's write landed at seqno 41, under the reader's feet.
    assert.throws(() => engine.commit(reader), (e: any) => e.code === "TransactionConflict");
    for (const txid of before) verifyReceipt(await engine.receipt(txid.view, txid.seqno), id.serviceCertPem);
    engine.emitSignature();
    await waitCommit(engine, 43);
    verifyReceipt(await engine.receipt(after.view, after.seqno), id.serviceCertPem);
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("with early signatures, writes that wait when the last signature commits are signed at once, not at the signature timer", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const { ledger, entries } = await ThreadedLedger.open(join(dir, "ledger"), { durability: "none" });
    const engine = new TransactionEngine(ledger, {
      nodeId: id.nodeId, serviceCertPem: id.serviceCertPem, nodePrivateKeyPem: id.nodeKeys.privateKeyPem, nodeCertPem: id.nodeCertPem,
      ledgerSecrets: [{ fromSeqno: 1, raw: randomBytes(32) }],
      // The timer and the count would not sign within the test: only the early rule can.
      signatureTxCount: 1_000_000, signatureDelayMs: 1_000_000, pendingTransactionsMax: 1000, logger: quiet, earlySignatureMinMs: 1,
    });
    startEngine(engine, entries, dir, id.nodeId);
    const a = write(engine, "a", "1");
    engine.emitSignature();
    const b = write(engine, "b", "2"); // after the signature: it waits for the next one
    const deadline = Date.now() + 10_000;
    while (engine.status(b.view, b.seqno) !== "Committed" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    assert.equal(engine.status(a.view, a.seqno), "Committed");
    assert.equal(engine.status(b.view, b.seqno), "Committed", "signed once the signature before it committed");
    assert.ok(engine.lastSignedSeqno > b.seqno, "by a signature after it");
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
