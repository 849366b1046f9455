// Snapshots produced by a real engine on a real ledger: a node rebuilt from a snapshot plus the
// ledger after it holds exactly the state of a full replay; the snapshot's proof verifies and
// every kind of tampering is refused by name; a host that plants forged, foreign or relabelled
// snapshot files cannot make a node start from state the signed ledger does not hold.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import fc from "fast-check";
import { MERKLE_RETAINED_HEIGHT, TransactionEngine } from "../../../src/node/engine.js";
import { MERKLE_RETAINED_FILE, encodeRetainedHashes } from "../../../src/node/merkle-retained-file.js";
import { Replicator } from "../../../src/node/replication.js";
import { Snapshotter } from "../../../src/node/snapshots.js";
import { rebuildState, rebuildStateStreamed } from "../../../src/node/snapshot-startup.js";
import { encodeEvidence, parseSnapshot, SnapshotStreamCheck, verifySnapshot } from "../../../src/node/snapshot-format.js";
import { fetchServiceSnapshot } from "../../../src/node/snapshot-fetch.js";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { verifiedSnapshotBytes } from "../../../src/node/snapshot-load.js";
import { Ledger, parseSnapshotName } from "../../../src/ledger/index.js";
import { randomBytes, sha256 } from "../../../src/crypto/index.js";
import { CocoError } from "../../../src/util/errors.js";
import { verifyReceipt } from "../../../src/client/receipt.js";
import { crc32 } from "node:zlib";
import { testNodeIdentity, type TestNodeIdentity } from "../../helpers/node-identity.js";

type Log = (o: object, msg: string) => void;
const quiet: { info: Log; warn: Log; error: Log } = { info() {}, warn() {}, error() {} };
const SNAPSHOT_TX_COUNT = 20;

const identity = testNodeIdentity;
type Identity = TestNodeIdentity;

function newEngine(ledger: Ledger, id: Identity, secret: Buffer): TransactionEngine {
  return new TransactionEngine(ledger, {
    nodeId: id.nodeId, serviceCertPem: id.serviceCertPem, nodePrivateKeyPem: id.nodeKeys.privateKeyPem, nodeCertPem: id.nodeCertPem,
    ledgerSecrets: [{ fromSeqno: 1, raw: secret }], signatureTxCount: 1_000_000, signatureDelayMs: 1_000_000, pendingTransactionsMax: 10_000, logger: quiet,
  });
}

/** A lone voter with a snapshotter, writing into `dir`. */
async function primary(dir: string, id: Identity, secret: Buffer) {
  const { ledger, entries } = await Ledger.open(join(dir, "ledger"), { durability: "none" });
  const engine = newEngine(ledger, id, secret);
  const replicator = new Replicator(engine, engine.replay(entries), {
    nodeId: id.nodeId, workspace: dir, bootstrapVoters: [id.nodeId], tickMs: 10, electionTicks: 10, heartbeatTicks: 2,
    maxEntriesPerAppend: 100, maxInflightAppends: 4, maxUncommittedEntries: 10_000, logger: quiet,
  });
  replicator.start();
  const snapshotter = new Snapshotter(engine, { directory: join(dir, "snapshots"), txCount: SNAPSHOT_TX_COUNT, keepMax: 3, durable: false, logger: quiet }, 0);
  return { engine, ledger, replicator, snapshotter };
}

type Op = { map: string; key: number; value: number | null };
const opArb: fc.Arbitrary<Op> = fc.record({
  map: fc.constantFrom("records", "public:records", "private:other", "public:x"),
  key: fc.integer({ min: 0, max: 15 }),
  value: fc.option(fc.integer({ min: 0, max: 1000 }), { freq: 4 }),
});

async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function committedSnapshots(dir: string): string[] {
  try {
    return readdirSync(join(dir, "snapshots")).filter((n) => n.endsWith(".committed")).sort((a, b) => parseSnapshotName(b)!.seqno - parseSnapshotName(a)!.seqno);
  } catch {
    return [];
  }
}

/** Runs the ops as transactions (a signature every few), until at least one snapshot is committed, then stops the node. */
async function runService(dir: string, id: Identity, secret: Buffer, ops: readonly Op[]): Promise<void> {
  const node = await primary(dir, id, secret);
  let i = 0;
  for (const op of ops) {
    const tx = node.engine.store.begin();
    if (op.value === null) tx.delete(op.map, Buffer.from([op.key]));
    else tx.set(op.map, Buffer.from([op.key]), Buffer.from(String(op.value)));
    if (tx.hasWrites) node.engine.commit(tx);
    if (++i % 7 === 0) {
      node.engine.emitSignature();
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  node.engine.emitSignature();
  await waitFor(() => node.engine.commitTxId.seqno >= node.engine.lastSignedSeqno, "everything committed");
  // The engine's signature timer is off here: sign until an evidence transaction commits.
  const deadline = Date.now() + 10_000;
  while (committedSnapshots(dir).length === 0) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a committed snapshot");
    node.engine.emitSignature();
    await new Promise((r) => setTimeout(r, 5));
  }
  // Let the last evidence commit too (its snapshot may be the newest).
  for (let k = 0; k < 3; k++) {
    node.engine.emitSignature();
    await waitFor(() => node.engine.commitTxId.seqno >= node.engine.lastSignedSeqno, "the tail committed");
    await new Promise((r) => setTimeout(r, 5));
  }
  await node.engine.close();
  node.replicator.stop();
  await node.ledger.close();
}

/** Runs `body` with a fresh node identity, ledger secret and temporary directory (removed afterwards). */
async function withServiceDir(prefix: string, body: (id: Identity, secret: Buffer, dir: string) => Promise<void>): Promise<void> {
  const id = await identity();
  const secret = randomBytes(32);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    await body(id, secret, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A fresh engine over (a copy of) `dir`'s ledger, rebuilt with or without its snapshots. */
async function rebuilt(dir: string, id: Identity, secret: Buffer, useSnapshots: boolean, serviceCertPems = [id.serviceCertPem], logger = quiet) {
  const { ledger, entries } = await Ledger.open(join(dir, "ledger"), { durability: "none" });
  const engine = newEngine(ledger, id, secret);
  const state = useSnapshots
    ? await rebuildState({ engine, entries, ledgerLastSeqno: ledger.lastSeqno, snapshotDirectory: join(dir, "snapshots"), serviceCertPems, logger })
    : { replayed: engine.replay(entries), snapshotSeqno: 0 };
  return { engine, ledger, state };
}

test("state from a snapshot plus the ledger after it equals state from a full replay (random histories)", { timeout: 120_000 }, async () => {
  const id = await identity();
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 45, maxLength: 120 }), async (ops) => {
      const dir = mkdtempSync(join(tmpdir(), "coco-snapshot-prop-"));
      try {
        const secret = randomBytes(32);
        await runService(dir, id, secret, ops);
        const full = await rebuilt(dir, id, secret, false);
        const fromSnapshot = await rebuilt(dir, id, secret, true);
        try {
          assert.ok(fromSnapshot.state.snapshotSeqno > 0, "started from a snapshot");
          assert.ok(fromSnapshot.engine.store.snapshot().equals(full.engine.store.snapshot()), "same KV state");
          assert.ok(fromSnapshot.engine.tree.root().equals(full.engine.tree.root()), "same Merkle root");
          assert.deepEqual(fromSnapshot.engine.lastTxId, full.engine.lastTxId);
          assert.equal(fromSnapshot.state.replayed.length, full.engine.lastSeqnoLocal, "consensus still gets every entry (to catch up backups)");
        } finally {
          await full.ledger.close();
          await fromSnapshot.ledger.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 4, endOnFailure: true },
  );
});

test("a restart that streams its ledger from a snapshot (never the whole ledger in memory) equals a full replay (random histories)", { timeout: 120_000 }, async () => {
  const id = await identity();
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 45, maxLength: 120 }), async (ops) => {
      const dir = mkdtempSync(join(tmpdir(), "coco-snapshot-stream-"));
      try {
        const secret = randomBytes(32);
        await runService(dir, id, secret, ops);
        const full = await rebuilt(dir, id, secret, false);
        const { ledger } = await Ledger.open(join(dir, "ledger"), { durability: "none", returnEntries: false });
        const engine = newEngine(ledger, id, secret);
        try {
          const state = await rebuildStateStreamed({
            engine, ledger, ledgerLastSeqno: ledger.lastSeqno, ledgerCommittedSeqno: ledger.committedSeqno, keepEntries: 16,
            merkleWindowLeaves: 1_000_000, snapshotDirectory: join(dir, "snapshots"), serviceCertPems: [id.serviceCertPem], logger: quiet,
          });
          assert.ok(state.snapshotSeqno > 0, "started from a snapshot");
          assert.ok(engine.store.snapshot().equals(full.engine.store.snapshot()), "same KV state");
          assert.ok(engine.tree.root().equals(full.engine.tree.root()), "same Merkle root");
          assert.deepEqual(engine.lastTxId, full.engine.lastTxId);
          // Consensus records every entry (the covered ones too: it can still catch up a backup from the ledger).
          assert.equal(state.replayed.count, full.engine.lastSeqnoLocal);
          assert.equal(state.replayed.prefix.lastIndex + state.replayed.entries.length, full.engine.lastSeqnoLocal);
          // The same terms for every entry as a full replay gives consensus (the snapshot's view history).
          const fullLog = full.state.replayed as readonly { term: number; index: number }[];
          const runs = state.replayed.prefix.termStarts;
          for (const entry of fullLog.filter((e) => e.index <= state.replayed.prefix.lastIndex)) {
            const run = runs.filter((r) => r.index <= entry.index).at(-1);
            assert.equal(run?.term, entry.term, `term of entry ${entry.index}`);
          }
          // Receipts of transactions the snapshot covers: the whole tree is rebuilt from the ledger's
          // leaves once the node serves, and taken only if it matches the snapshot's.
          assert.equal(engine.tree.flushedIndex, state.snapshotSeqno, "served with the snapshot's frontier only");
          assert.ok(state.history !== undefined);
          await state.history.start();
          assert.equal(engine.snapshotStartSeqno, 0, "the engine took the whole tree");
          assert.ok(engine.tree.root().equals(full.engine.tree.root()), "same Merkle root after");
          for (const leaf of [0, state.snapshotSeqno - 1, state.snapshotSeqno, full.engine.tree.size - 1]) {
            assert.deepEqual(engine.tree.path(leaf), full.engine.tree.path(leaf), `path of leaf ${leaf}`);
          }
        } finally {
          await full.ledger.close();
          await ledger.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 4, endOnFailure: true },
  );
});

/** A restart from the newest snapshot of a service run, streamed as a node does (its history not built yet). */
async function streamedRestart(dir: string, id: Identity, secret: Buffer, options: { retained?: boolean; logger?: typeof quiet } = {}) {
  const { ledger } = await Ledger.open(join(dir, "ledger"), { durability: "none", returnEntries: false });
  const engine = newEngine(ledger, id, secret);
  const state = await rebuildStateStreamed({
    engine, ledger, ledgerLastSeqno: ledger.lastSeqno, ledgerCommittedSeqno: ledger.committedSeqno, keepEntries: 16,
    merkleWindowLeaves: 1_000_000, snapshotDirectory: join(dir, "snapshots"), serviceCertPems: [id.serviceCertPem], logger: options.logger ?? quiet,
    ...(options.retained === true ? { retainedMerkleDirectory: join(dir, "ledger") } : {}),
  });
  // Committed as far as the ledger recorded (a node's consensus would tell the engine so).
  engine.advanceCommit(ledger.committedSeqno);
  return { ledger, engine, state };
}

test("receipts before the snapshot answer 503 with Retry-After while the Merkle tree is rebuilt, then a receipt that verifies, for the same leaf as a full replay's", { timeout: 60_000 }, async () => {
  await withServiceDir("coco-snapshot-history-", async (id, secret, dir) => {
    const ops: Op[] = Array.from({ length: 80 }, (_, i) => ({ map: i % 2 ? "records" : "public:records", key: i % 9, value: i }));
    await runService(dir, id, secret, ops);
    const full = await rebuilt(dir, id, secret, false);
    full.engine.advanceCommit(full.ledger.committedSeqno);
    const { ledger, engine, state } = await streamedRestart(dir, id, secret);
    try {
      assert.ok(state.snapshotSeqno > 3 && state.history !== undefined);
      const view = engine.viewAt(2)!;
      await assert.rejects(engine.receipt(view, 2), (e: unknown) =>
        e instanceof CocoError && e.status === 503 && e.code === "MerkleHistoryNotReady" && e.headers?.["retry-after"] === "2" && /being rebuilt/.test(e.message));
      // After the snapshot: at once.
      const after = state.snapshotSeqno + 1;
      assert.deepEqual(await engine.receipt(engine.viewAt(after)!, after), await full.engine.receipt(full.engine.viewAt(after)!, after));
      verifyReceipt(await engine.receipt(engine.viewAt(after)!, after), id.serviceCertPem);
      await state.history.start();
      // Signed by the snapshot's signature (the first this node knows after seqno 2): it verifies
      // against the service certificate as the full replay's receipt does, for the same leaf.
      const receipt = await engine.receipt(view, 2);
      const reference = await full.engine.receipt(view, 2);
      assert.deepEqual(verifyReceipt(receipt, id.serviceCertPem).leaf, verifyReceipt(reference, id.serviceCertPem).leaf);
      assert.deepEqual(verifyReceipt(receipt, id.serviceCertPem).txId, { view, seqno: 2 });
    } finally {
      await full.ledger.close();
      await ledger.close();
    }
  });
});

test("a ledger whose entries before the snapshot are not the snapshot's tree is never used for receipts (a host's edit with a valid crc32)", { timeout: 60_000 }, async () => {
  await withServiceDir("coco-snapshot-history-", async (id, secret, dir) => {
    const ops: Op[] = Array.from({ length: 80 }, (_, i) => ({ map: i % 2 ? "records" : "public:records", key: i % 9, value: i }));
    await runService(dir, id, secret, ops);
    // Flip the last byte of seqno 2's entry and fix its frame's crc32: the frame reads back fine.
    const chunk = readdirSync(join(dir, "ledger")).find((n) => /^ledger_1(-\d+)?(\.committed)?$/.test(n))!;
    const path = join(dir, "ledger", chunk);
    const bytes = readFileSync(path);
    const second = 8 + 8 + bytes.readUInt32BE(8);
    const length = bytes.readUInt32BE(second);
    bytes[second + 8 + length - 1]! ^= 0x01;
    bytes.writeUInt32BE(crc32(bytes.subarray(second + 8, second + 8 + length)), second + 4);
    writeFileSync(path, bytes);
    const errors: string[] = [];
    const { ledger } = await Ledger.open(join(dir, "ledger"), { durability: "none", returnEntries: false });
    const engine = newEngine(ledger, id, secret);
    const state = await rebuildStateStreamed({
      engine, ledger, ledgerLastSeqno: ledger.lastSeqno, ledgerCommittedSeqno: ledger.committedSeqno, keepEntries: 16,
      merkleWindowLeaves: 1_000_000, snapshotDirectory: join(dir, "snapshots"), serviceCertPems: [id.serviceCertPem],
      logger: { ...quiet, error: (_o: object, msg: string) => void errors.push(msg) },
    });
    engine.advanceCommit(ledger.committedSeqno);
    try {
      assert.ok(state.snapshotSeqno > 2 && state.history !== undefined);
      await state.history.start();
      assert.equal(engine.snapshotStartSeqno, state.snapshotSeqno, "the engine kept the snapshot's tree");
      assert.ok(errors.some((m) => /Merkle tree before the snapshot refused/.test(m)), errors.join("; "));
      await assert.rejects(engine.receipt(engine.viewAt(2)!, 2), (e: unknown) =>
        e instanceof CocoError && e.code === "TransactionNotInThisNodesHistory" && /does not match the snapshot/.test(e.message));
      const after = state.snapshotSeqno + 1;
      assert.ok((await engine.receipt(engine.viewAt(after)!, after)).signature, "receipts after the snapshot still work");
    } finally {
      await ledger.close();
    }
  });
});

test("a restart keeps the Merkle hashes before its snapshot beside the ledger; the next hashes only what follows them, and refuses hashes that are not the snapshot's", { timeout: 60_000 }, async () => {
  await withServiceDir("coco-snapshot-retained-", async (id, secret, dir) => {
    const ops: Op[] = Array.from({ length: 80 }, (_, i) => ({ map: i % 2 ? "records" : "public:records", key: i % 9, value: i }));
    await runService(dir, id, secret, ops);
    const full = await rebuilt(dir, id, secret, false);
    full.engine.advanceCommit(full.ledger.committedSeqno);
    const logs: { msg: string; o: Record<string, unknown> }[] = [];
    const logger = { info: (o: object, msg: string) => void logs.push({ msg, o: o as Record<string, unknown> }), warn: (o: object, msg: string) => void logs.push({ msg, o: o as Record<string, unknown> }), error() {} };
    const rebuiltLine = () => logs.filter((l) => /Merkle tree before the snapshot rebuilt/.test(l.msg)).pop()?.o;
    const restart = async (check: (snapshotSeqno: number) => void) => {
      const { ledger, engine, state } = await streamedRestart(dir, id, secret, { retained: true, logger });
      try {
        await state.history!.start();
        check(state.snapshotSeqno);
        for (const seqno of [2, state.snapshotSeqno - 1]) {
          const view = engine.viewAt(seqno)!;
          assert.deepEqual(verifyReceipt(await engine.receipt(view, seqno), id.serviceCertPem).leaf, verifyReceipt(await full.engine.receipt(view, seqno), id.serviceCertPem).leaf);
        }
      } finally {
        await ledger.close();
      }
    };
    const file = join(dir, "ledger", MERKLE_RETAINED_FILE);
    try {
      // First restart: the whole ledger before the snapshot is hashed, and its hashes kept.
      await restart((s) => assert.deepEqual([rebuiltLine()?.["from_retained"], rebuiltLine()?.["hashed"]], [0, s]));
      assert.ok(existsSync(file), "the retained hashes were written");
      // Second restart from the same snapshot: nothing is hashed again.
      await restart((s) => assert.deepEqual([rebuiltLine()?.["from_retained"], rebuiltLine()?.["hashed"]], [s, 0]));
      // Hashes kept at an earlier seqno (an earlier snapshot): only the entries after them are hashed.
      const earlier = 5;
      writeFileSync(file, encodeRetainedHashes({ size: earlier, retainHeight: MERKLE_RETAINED_HEIGHT, ...full.engine.tree.retainedAt(earlier) }));
      await restart((s) => assert.deepEqual([rebuiltLine()?.["from_retained"], rebuiltLine()?.["hashed"]], [earlier, s - earlier]));
      // Hashes that pass the file's checksum but are not this ledger's: refused, the ledger is hashed instead.
      const planted = full.engine.tree.retainedAt(earlier);
      planted.lowFrontier[0] = Buffer.alloc(32, 7);
      writeFileSync(file, encodeRetainedHashes({ size: earlier, retainHeight: MERKLE_RETAINED_HEIGHT, ...planted }));
      await restart((s) => assert.deepEqual([rebuiltLine()?.["from_retained"], rebuiltLine()?.["hashed"]], [0, s]));
      assert.ok(logs.some((l) => /retained Merkle hashes refused/.test(l.msg)), "the refusal is logged");
      // A torn file is not used either (and the node says why).
      writeFileSync(file, readFileSync(file).subarray(0, 50));
      await restart((s) => assert.equal(rebuiltLine()?.["hashed"], s));
      assert.ok(logs.some((l) => /retained Merkle hashes not used/.test(l.msg) && /shorter|checksum/.test(String(l.o["reason"]))));
    } finally {
      await full.ledger.close();
    }
  });
});

/** One service run with committed snapshots, shared by the proof and attack tests. */
async function serviceWithSnapshots() {
  const id = await identity();
  const secret = randomBytes(32);
  const dir = mkdtempSync(join(tmpdir(), "coco-snapshot-proof-"));
  const ops: Op[] = Array.from({ length: 80 }, (_, i) => ({ map: i % 2 ? "records" : "public:records", key: i % 9, value: i }));
  await runService(dir, id, secret, ops);
  const name = committedSnapshots(dir)[0]!;
  const bytes = readFileSync(join(dir, "snapshots", name));
  return { id, secret, dir, name, bytes, file: parseSnapshotName(name)! };
}

test("a committed snapshot's proof verifies; damage to its state, receipt or evidence, or another service, is refused by name", { timeout: 60_000 }, async () => {
  const { id, dir, name, bytes, file } = await serviceWithSnapshots();
  try {
    const ok = verifiedSnapshotBytes(bytes, file, [id.serviceCertPem]);
    assert.equal(ok.seqno, file.seqno);
    const parsed = parseSnapshot(bytes, name);
    const receipt = parsed.evidence!.receipt;
    const entry = parsed.evidence!.entry;
    const refused = (tampered: Buffer, pattern: RegExp, certs = [id.serviceCertPem]) =>
      assert.throws(() => verifiedSnapshotBytes(tampered, file, certs), (e: Error) => e.message.includes(name) && pattern.test(e.message));

    // A byte of the public state.
    const damaged = Buffer.from(bytes);
    damaged[parsed.aad.length - 3] ^= 0x01;
    refused(damaged, /digest .* is not the claims digest/);
    // The receipt's signature, or its proof.
    const withReceipt = (r: object) => Buffer.concat([parsed.body, encodeEvidence(r as typeof receipt, entry)]);
    const sig = Buffer.from(receipt.signature, "base64");
    sig[sig.length - 2] ^= 0x01;
    refused(withReceipt({ ...receipt, signature: sig.toString("base64") }), /signature does not verify/);
    refused(withReceipt({ ...receipt, proof: [...receipt.proof, { left: "00".repeat(32) }] }), /signature does not verify/);
    refused(withReceipt({ ...receipt, leaf_components: { ...receipt.leaf_components, claims_digest: "00".repeat(32) } }), /claims digest/);
    // No receipt at all (an uncommitted snapshot renamed .committed by the host).
    refused(parsed.body, /carries no receipt/);
    // Truncated.
    refused(bytes.subarray(0, bytes.length - 10), /truncated/);
    // Another service: same file, checked against another service certificate.
    const other = await identity();
    refused(bytes, /did not endorse/, [other.serviceCertPem]);
    // A relabelled file: the name claims another seqno.
    assert.throws(() => verifiedSnapshotBytes(bytes, { ...file, name: `snapshot_${file.seqno + 1}_${file.evidenceSeqno}.committed`, seqno: file.seqno + 1 }, [id.serviceCertPem]),
      /holds seqno .*, its name says/);
    assert.doesNotThrow(() => verifySnapshot(parsed, name, [id.serviceCertPem], file.evidenceSeqno));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a forged snapshot carrying the receipt of an app transaction whose claims digest is its digest is refused", { timeout: 60_000 }, async () => {
  await withServiceDir("coco-snapshot-forge-", async (id, secret, dir) => {
    await runService(dir, id, secret, Array.from({ length: 50 }, (_, i) => ({ map: "records", key: i % 5, value: i })));
    const name = committedSnapshots(dir)[0]!;
    const genuine = parseSnapshot(readFileSync(join(dir, "snapshots", name)), name);
    // The forger's body: the genuine one with one state byte changed. Any app may bind a claims
    // digest to its transaction, so the forger gets one bound to the forged digest.
    const forgedBody = Buffer.from(genuine.body);
    forgedBody[genuine.aad.length - 3] ^= 0x01;
    const node = await primary(dir, id, secret);
    const tx = node.engine.store.begin();
    tx.set("records", Buffer.from("forger"), Buffer.from("1"));
    const forgedTx = node.engine.commit(tx, sha256(forgedBody));
    node.engine.emitSignature();
    node.engine.emitSignature();
    await waitFor(() => node.engine.commitTxId.seqno >= node.engine.lastSignedSeqno, "the forger's transaction committed");
    const tx2 = node.engine.store.begin();
    tx2.set("records", Buffer.from("later"), Buffer.from("1"));
    node.engine.commit(tx2);
    node.engine.emitSignature();
    await waitFor(() => node.engine.commitTxId.seqno >= node.engine.lastSignedSeqno, "a later signature committed");
    const receipt = await node.engine.receipt(forgedTx.view, forgedTx.seqno);
    const entry = await node.engine.readLedgerEntry(forgedTx.seqno);
    await node.engine.close();
    node.replicator.stop();
    await node.ledger.close();
    const forgedName = `snapshot_${genuine.header.seqno}_${forgedTx.seqno}.committed`;
    const forged = Buffer.concat([forgedBody, encodeEvidence(receipt, entry)]);
    // The receipt is genuine and its claims digest matches; only the evidence table check catches it.
    assert.equal(receipt.leaf_components.claims_digest, sha256(forgedBody).toString("hex"));
    assert.throws(() => verifiedSnapshotBytes(forged, parseSnapshotName(forgedName)!, [id.serviceCertPem]),
      (e: Error) => e.message.includes(forgedName) && /does not record this snapshot/.test(e.message));
  });
});

test("a host that plants forged, foreign or relabelled snapshot files cannot make a restarted node load state the signed ledger does not hold", { timeout: 60_000 }, async () => {
  const { id, secret, dir, name, bytes, file } = await serviceWithSnapshots();
  try {
    const full = await rebuilt(dir, id, secret, false);
    const expected = full.engine.store.snapshot();
    const expectedRoot = full.engine.tree.root();
    await full.ledger.close();
    const snapshots = join(dir, "snapshots");
    const parsed = parseSnapshot(bytes, name);
    // 1. A "newer" snapshot with altered state and the genuine receipt.
    const altered = Buffer.from(bytes);
    altered[parsed.aad.length - 3] ^= 0x01;
    writeFileSync(join(snapshots, `snapshot_${file.seqno + 2}_${file.evidenceSeqno + 2}.committed`), altered);
    // 2. The genuine file relabelled as a newer seqno.
    writeFileSync(join(snapshots, `snapshot_${file.seqno + 1}_${file.evidenceSeqno + 1}.committed`), bytes);
    // 3. Another service's genuine snapshot, named newest of all.
    const foreign = await serviceWithSnapshots();
    writeFileSync(join(snapshots, `snapshot_${file.seqno + 3}_${foreign.file.evidenceSeqno + file.seqno + 3}.committed`), foreign.bytes);
    rmSync(foreign.dir, { recursive: true, force: true });
    const refusals: string[] = [];
    // A planted file is either refused (it does not verify) or, when named beyond the ledger's last
    // seqno (which depends on how many signatures the service wrote), not used; each is named.
    const note = (o: object) => { const file = (o as { file?: string }).file; if (file) refusals.push(file); };
    const logger = { ...quiet, warn: note, info: note };
    const node = await rebuilt(dir, id, secret, true, [id.serviceCertPem], logger);
    try {
      assert.equal(node.state.snapshotSeqno, file.seqno, "the genuine snapshot was used");
      const planted = [file.seqno + 1, file.seqno + 2, file.seqno + 3].map((seqno) => refusals.find((n) => n.startsWith(`snapshot_${seqno}_`)));
      assert.ok(planted.every((n) => n !== undefined), `three planted files refused or passed over, and named: ${refusals}`);
      assert.ok(node.engine.store.snapshot().equals(expected), "state equals a full replay");
      assert.ok(node.engine.tree.root().equals(expectedRoot));
    } finally {
      await node.ledger.close();
    }
    // 4. An older genuine snapshot planted alone still gives the right state (the ledger after it is replayed).
    for (const n of readdirSync(snapshots)) if (n !== name) rmSync(join(snapshots, n));
    const again = await rebuilt(dir, id, secret, true);
    try {
      assert.ok(again.engine.store.snapshot().equals(expected));
    } finally {
      await again.ledger.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a copied ledger directory without its snapshots: the node replays the whole ledger", { timeout: 60_000 }, async () => {
  const { id, secret, dir } = await serviceWithSnapshots();
  const copy = mkdtempSync(join(tmpdir(), "coco-snapshot-copy-"));
  try {
    cpSync(join(dir, "ledger"), join(copy, "ledger"), { recursive: true });
    const node = await rebuilt(copy, id, secret, true);
    assert.equal(node.state.snapshotSeqno, 0);
    await node.ledger.close();
  } finally {
    rmSync(copy, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a snapshot made due while another is being written is taken when that one ends, with no further commit", { timeout: 60_000 }, async () => {
  // An idle service after a burst: the burst's last commits came while a snapshot was in flight.
  // Before, they were skipped and only a later commit could start the next snapshot, so a quiet
  // service never took it (seen in CI: one snapshot at 45 for 131 transactions).
  const id = await identity();
  const dir = mkdtempSync(join(tmpdir(), "coco-snapshot-due-"));
  const node = await primary(dir, id, randomBytes(32));
  const producing = () => (node.snapshotter as unknown as { producing: boolean }).producing;
  const burst = async (from: number) => {
    for (let i = from; i < from + SNAPSHOT_TX_COUNT + 5; i++) {
      const tx = node.engine.store.begin();
      tx.set("records", Buffer.from(String(i)), Buffer.from("v"));
      node.engine.commit(tx);
    }
    node.engine.emitSignature();
    const signed = node.engine.lastSignedSeqno;
    await waitFor(() => node.engine.commitTxId.seqno >= signed, "the burst committed");
    return signed;
  };
  try {
    await burst(0);
    await waitFor(producing, "the first snapshot started");
    const second = await burst(100);
    assert.ok(producing(), "the second burst committed while the first snapshot was still being written");
    // No signature from here on, so no commit: the second snapshot must start by itself.
    await waitFor(() => node.snapshotter.producedCount >= 2, "the second snapshot, started when the first ended");
    const names = readdirSync(join(dir, "snapshots")).map((n) => parseSnapshotName(n)!.seqno);
    assert.ok(names.includes(second), `a snapshot at the second burst's signature ${second} (${names})`);
  } finally {
    await node.snapshotter.close();
    await node.engine.close();
    node.replicator.stop();
    await node.ledger.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// Downloads (a joiner's, a backup's): the file is checked as it streams to a temporary file, and
// only a verified file gets its snapshot name. A hostile or broken server cannot leave a file
// behind, make the node hold more than a network buffer, or make it write without bound.
test("the streamed check of a snapshot agrees with parseSnapshot however the bytes are split, and refuses the same damage", { timeout: 60_000 }, async () => {
  const { id, dir, name, bytes, file } = await serviceWithSnapshots();
  try {
    const whole = parseSnapshot(bytes, name);
    const streamed = (data: Buffer, cuts: number[], bytesMax = 1 << 30) => {
      const check = new SnapshotStreamCheck(name, bytesMax);
      let at = 0;
      for (const cut of [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b).concat(data.length)) {
        check.push(data.subarray(at, cut));
        at = cut;
      }
      return check.finish();
    };
    fc.assert(fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
      const proof = streamed(bytes, cuts);
      assert.ok(proof.digest.equals(whole.digest));
      assert.deepEqual(proof.header, whole.header);
      assert.deepEqual(proof.evidence?.receipt, whole.evidence?.receipt);
      assert.ok(proof.evidence?.entry.equals(whole.evidence!.entry));
    }), { numRuns: 200 });
    assert.doesNotThrow(() => verifySnapshot(streamed(bytes, [1, 9, 100]), name, [id.serviceCertPem], file.evidenceSeqno));
    // A damaged state byte: framing passes, the proof fails, as for a file read whole.
    const damaged = Buffer.from(bytes);
    damaged[whole.aad.length - 3] ^= 0x01;
    assert.throws(() => verifySnapshot(streamed(damaged, [7, 500]), name, [id.serviceCertPem], file.evidenceSeqno), /digest .* is not the claims digest/);
    // Truncated anywhere; trailing bytes; not a snapshot; a limit below the announced size.
    for (const cut of [3, 20, whole.body.length - 1, bytes.length - 1]) {
      assert.throws(() => verifySnapshot(streamed(bytes.subarray(0, cut), [5]), name, [id.serviceCertPem], file.evidenceSeqno), /truncated|carries no receipt/);
    }
    assert.throws(() => streamed(Buffer.concat([bytes, Buffer.from("x")]), [3]), /truncated or followed by extra bytes/);
    assert.throws(() => streamed(Buffer.from("GET / HTTP/1.1\r\n\r\n"), [2]), /snapshot magic/);
    // (the header arriving in small pieces: refused as soon as it is whole, not at the limit)
    assert.throws(() => streamed(bytes, Array.from({ length: 40 }, (_, i) => 8 + 32 * i), whole.body.length - 1), /announces \d+ bytes, more than the \d+ accepted/);
    // Bytes past what an evidence section can hold are refused as they arrive, not after.
    const check = new SnapshotStreamCheck(name, 1 << 30);
    check.push(whole.body);
    assert.throws(() => { for (let i = 0; i < 64; i++) check.push(Buffer.alloc(64 * 1024)); }, /exceed what its evidence section can hold/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a snapshot download keeps only a verified file: damaged, cut, endless or foreign answers leave nothing behind", { timeout: 60_000 }, async () => {
  const { id, dir, name, bytes } = await serviceWithSnapshots();
  const served: { body: (res: import("node:http").ServerResponse) => void } = { body: (res) => res.end(bytes) };
  const server = createHttpsServer({ key: id.nodeKeys.privateKeyPem, cert: id.nodeCertPem, minVersion: "TLSv1.3" }, (req, res) => {
    if (req.url?.startsWith("/node/snapshot?") || req.url === "/node/snapshot") {
      res.writeHead(307, { location: `/node/snapshot/${name}` }).end();
      return;
    }
    served.body(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const into = join(dir, "fetched");
  const lines: { o: Record<string, unknown>; msg: string }[] = [];
  const logger = { info: (o: object, msg: string) => void lines.push({ o: o as Record<string, unknown>, msg }), warn() {} };
  const fetch = (extra: { bytesMax?: number; serviceCertPem?: string } = {}) => fetchServiceSnapshot({
    target: { host: "127.0.0.1", port }, serviceCertPem: extra.serviceCertPem ?? id.serviceCertPem, directory: into, durable: true, logger,
    progressLogMs: 0, ...(extra.bytesMax !== undefined ? { bytesMax: extra.bytesMax } : {}),
  });
  const files = () => (existsSync(into) ? readdirSync(into) : []);
  try {
    // Genuine: the file appears under its name, identical, and nothing else.
    const got = await fetch();
    assert.equal(got?.name, name);
    assert.deepEqual(files(), [name]);
    assert.ok(readFileSync(join(into, name)).equals(bytes));
    // Progress lines (here after every network read), then the end.
    const progress = lines.filter((l) => l.msg === "fetching the service's snapshot");
    assert.ok(progress.length >= 1 && progress.every((l) => l.o["of_bytes"] === bytes.length && Number(l.o["bytes"]) <= bytes.length));
    assert.equal(lines.at(-1)?.msg, "fetched and verified the service's snapshot");
    assert.equal(lines.at(-1)?.o["bytes"], bytes.length);
    rmSync(into, { recursive: true });

    const refusedWith = async (pattern: RegExp, extra: { bytesMax?: number } = {}) => {
      await assert.rejects(fetch(extra), pattern);
      assert.deepEqual(files(), [], "no file and no temporary file is left");
    };
    // A damaged byte.
    const damaged = Buffer.from(bytes);
    damaged[100] ^= 0x01;
    served.body = (res) => res.end(damaged);
    await refusedWith(/refused/);
    // The connection cut part way, twice: the download resumes where it stopped (Range), and the
    // file is whole and verified.
    const cutAt = [bytes.length >> 2, bytes.length >> 1];
    const ranges: string[] = [];
    served.body = (res) => {
      const range = res.req.headers["range"];
      if (range !== undefined) ranges.push(String(range));
      const start = range === undefined ? 0 : Number(/^bytes=(\d+)-$/.exec(String(range))![1]);
      const headers = range === undefined ? { "content-length": String(bytes.length) }
        : { "content-length": String(bytes.length - start), "content-range": `bytes ${start}-${bytes.length - 1}/${bytes.length}` };
      res.writeHead(range === undefined ? 200 : 206, headers);
      const cut = cutAt.shift();
      if (cut === undefined) return void res.end(bytes.subarray(start));
      res.write(bytes.subarray(start, cut));
      setTimeout(() => res.socket?.destroy(), 20);
    };
    lines.length = 0;
    assert.equal((await fetch())?.name, name);
    assert.deepEqual(ranges, [`bytes=${bytes.length >> 2}-`, `bytes=${bytes.length >> 1}-`]);
    assert.ok(readFileSync(join(into, name)).equals(bytes));
    assert.equal(lines.filter((l) => l.msg === "resuming the service's snapshot where the connection was cut").length, 2);
    rmSync(into, { recursive: true });
    // A server that answers a resumption with the whole file again (or another file): refused.
    served.body = (res) => { res.writeHead(200, { "content-length": String(bytes.length) }); res.write(bytes.subarray(0, bytes.length >> 1)); setTimeout(() => res.socket?.destroy(), 20); };
    await refusedWith(/not the rest of the same file/);
    // Cut before anything new arrives: no endless resuming.
    served.body = (res) => { res.writeHead(200, { "content-length": String(bytes.length) }); res.flushHeaders(); setTimeout(() => res.socket?.destroy(), 20); };
    await refusedWith(/aborted|socket hang up|ECONNRESET|premature/i);
    // An endless answer: stopped at the limit, having written no more than it.
    let sent = 0;
    served.body = (res) => {
      res.writeHead(200);
      const more = () => { while (sent < 64 << 20 && res.write(bytes.subarray(0, 16 * 1024))) sent += 16 * 1024; if (sent < 64 << 20) res.once("drain", more); else res.end(); };
      res.on("close", () => undefined);
      more();
    };
    await refusedWith(/larger than|followed by extra bytes|evidence section/, { bytesMax: bytes.length + 4096 });
    assert.ok(sent < 32 << 20, `the download stopped early (${sent} bytes sent)`);
    // A declared length over the limit is refused before any byte is kept.
    served.body = (res) => { res.writeHead(200, { "content-length": String(bytes.length) }); res.end(bytes); };
    await refusedWith(/more than the \d+ accepted/, { bytesMax: bytes.length - 1 });
    // Another service's node (or a snapshot of another service): TLS or the receipt refuses it.
    const other = await identity();
    await assert.rejects(fetch({ serviceCertPem: other.serviceCertPem }), /certificate|did not endorse/);
    assert.deepEqual(files().filter((n) => n !== name), []);
    // An error answer names its status.
    served.body = (res) => { res.writeHead(404, { "content-type": "application/json" }).end('{"error":{"code":"ResourceNotFound","message":"pruned"}}'); };
    await refusedWith(/answered 404: .*pruned/);
  } finally {
    await new Promise((resolve) => server.close(resolve));
    server.closeAllConnections();
    rmSync(dir, { recursive: true, force: true });
  }
});
