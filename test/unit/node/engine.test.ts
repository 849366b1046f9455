// The transaction engine on a real ledger directory: commit, signatures as commit points,
// transaction status, receipts that verify, and recovery that drops the uncommitted tail.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { TransactionEngine } from "../../../src/node/engine.js";
import { Ledger, ThreadedLedger } from "../../../src/ledger/index.js";
import { createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey, randomBytes } from "../../../src/crypto/index.js";
import { verifyReceipt } from "../../../src/client/index.js";

const quiet = { info() {}, warn() {}, error() {} };

async function identity() {
  const serviceKeys = generateEcP384KeyPair();
  const serviceCertPem = await createServiceCertificate(serviceKeys, {});
  const nodeKeys = generateEcP384KeyPair();
  const nodeCertPem = await createNodeCertificate({ nodePublicKeyPem: nodeKeys.publicKeyPem, serviceKeys, serviceCertPem, ipAddresses: ["127.0.0.1"] });
  return { serviceCertPem, nodeKeys, nodeCertPem, nodeId: nodeIdFromPublicKey(nodeKeys.publicKeyPem) };
}

async function openEngine(dir: string, id: Awaited<ReturnType<typeof identity>>, secret: Buffer, persistedView = 0, threaded = false) {
  const { ledger, entries } = threaded ? await ThreadedLedger.open(dir, { durability: "none" }) : await Ledger.open(dir, { durability: "none" });
  const engine = new TransactionEngine(ledger, {
    nodeId: id.nodeId, nodePrivateKeyPem: id.nodeKeys.privateKeyPem, nodeCertPem: id.nodeCertPem, ledgerSecrets: [{ fromSeqno: 1, raw: secret }],
    signatureTxCount: 1_000_000, signatureDelayMs: 1_000_000, pendingTransactionsMax: 1000, logger: quiet,
  });
  try {
    await engine.recover(entries, persistedView);
  } catch (error) {
    await ledger.close();
    throw error;
  }
  return { engine, ledger };
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

for (const threaded of [false, true]) {
test(`receipts verify against the service certificate for every committed transaction (${threaded ? "ledger worker thread" : "in-thread ledger"})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const { engine, ledger } = await openEngine(dir, id, randomBytes(32), 0, threaded);
    const ids = [];
    for (let i = 0; i < 13; i++) ids.push(write(engine, `k${i}`, `v${i}`));
    engine.emitSignature();
    for (let i = 0; i < 4; i++) ids.push(write(engine, `m${i}`, `w${i}`));
    engine.emitSignature();
    await waitCommit(engine, 19);
    for (const txid of ids) {
      const receipt = await engine.receipt(txid.view, txid.seqno);
      const verified = verifyReceipt(receipt, id.serviceCertPem);
      assert.deepEqual(verified.txId, txid);
    }
    await assert.rejects(engine.receipt(1, 19), /signature transaction/);
    await assert.rejects(engine.receipt(1, 50), /unknown/i);
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`recovery replays the ledger, drops the tail after the last signature and starts a new view (${threaded ? "ledger worker thread" : "in-thread ledger"})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-engine-"));
  try {
    const id = await identity();
    const secret = randomBytes(32);
    const first = await openEngine(dir, id, secret, 0, threaded);
    write(first.engine, "a", "1");
    first.engine.emitSignature();
    await waitCommit(first.engine, 2);
    write(first.engine, "b", "2"); // never signed: must not survive
    await new Promise((r) => setTimeout(r, 10));
    await first.ledger.flush();
    await first.ledger.close();

    const second = await openEngine(dir, id, secret, 1, threaded);
    assert.equal(second.engine.currentView, 2);
    assert.equal(second.engine.commitTxId.seqno, 2);
    assert.equal(second.engine.store.get("records", Buffer.from("a"))?.toString(), "1");
    assert.equal(second.engine.store.get("records", Buffer.from("b")), undefined);
    assert.equal(second.engine.status(1, 3), "Invalid");
    assert.equal(second.engine.status(1, 1), "Committed");
    const next = write(second.engine, "c", "3");
    assert.deepEqual(next, { view: 2, seqno: 3 });
    second.engine.emitSignature();
    await waitCommit(second.engine, 4);
    verifyReceipt(await second.engine.receipt(2, 3), id.serviceCertPem);
    verifyReceipt(await second.engine.receipt(1, 1), id.serviceCertPem);
    await second.engine.close();
    await second.ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

}

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
    const { ledger, entries } = await Ledger.open(dir, { durability: "none" });
    const engine = new TransactionEngine(ledger, {
      nodeId: id.nodeId, nodePrivateKeyPem: id.nodeKeys.privateKeyPem, nodeCertPem: id.nodeCertPem,
      ledgerSecrets: [{ fromSeqno: 1, raw: first }, { fromSeqno: 2, raw: second }],
      signatureTxCount: 1_000_000, signatureDelayMs: 1_000_000, pendingTransactionsMax: 1000, logger: quiet,
    });
    await engine.recover(entries, 1);
    assert.equal(engine.store.get("records", Buffer.from("b"))?.toString(), "2");
    verifyReceipt(await engine.receipt(1, 2), id.serviceCertPem);
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
