// The snapshot worker (node/snapshot-writer.ts, snapshot-worker.ts): the file it writes from a
// capture is byte for byte what the main thread's encoding gave for the same state and the
// same key nonce and IV; a full disk or a worker that dies mid-write leaves no file behind
// (not even a temporary one), and the next snapshot is written by a fresh worker.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store, encodeSnapshotPieces, isPublicMapName, type MapState } from "../../../src/kv/index.js";
import { sha256 } from "../../../src/crypto/index.js";
import { removeTemporarySnapshotFiles, temporarySnapshotPath } from "../../../src/ledger/index.js";
import { encodeSnapshotBody } from "../../../src/node/snapshot-format.js";
import { SnapshotWriter } from "../../../src/node/snapshot-writer.js";
import { CocoError } from "../../../src/util/index.js";

const randomness = { keyNonce: Buffer.alloc(32, 5), iv: Buffer.alloc(12, 9) };
const ledgerSecret = Buffer.alloc(32, 1);
const tree = [Buffer.alloc(32, 2), Buffer.alloc(32, 3)];
const views = [{ view: 1, seqno: 1 }, { view: 2, seqno: 40 }];

/** A store with `keys` keys over a public and a private map, then `later` more transactions. */
function storeWith(keys: number): Store {
  const store = new Store();
  for (let i = 0; i < keys; i += 100) {
    const tx = store.begin();
    for (let j = i; j < Math.min(keys, i + 100); j++) {
      const key = Buffer.alloc(8);
      key.writeUInt32BE(j * 2654435761 >>> 0, 0);
      tx.set(j % 2 === 0 ? "public:records" : "records", key, Buffer.alloc(32 + (j % 7), j % 251));
    }
    store.commit(tx, store.currentVersion + 1);
  }
  return store;
}

/** The old main-thread path: stateAt, encodeSnapshotPieces per domain, then the body. */
function mainThreadBody(store: Store, version: number): Buffer {
  const maps = store.stateAt(version);
  const encode = (filter: (name: string) => boolean) =>
    Buffer.concat([...encodeSnapshotPieces(version, new Map<string, MapState>([...maps].filter(([name]) => filter(name))), 1000)]);
  return encodeSnapshotBody({
    seqno: version, view: 2, views, tree, ledgerSecret, randomness,
    publicPart: encode(isPublicMapName), privatePart: encode((name) => !isPublicMapName(name)),
  });
}

function captureAll(store: Store, version: number) {
  const capture = store.beginCapture(version);
  while (!capture.step(777)) { /* the node yields to its event loop here */ }
  return capture.finish();
}

/** Runs `body` with a snapshot writer and a temporary directory, both gone afterwards. */
async function withWriter(body: (writer: SnapshotWriter, dir: string) => Promise<void>, idleMs?: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "coco-snapshot-worker-"));
  const writer = new SnapshotWriter(idleMs);
  try {
    await body(writer, dir);
  } finally {
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("the worker's file is byte for byte the main thread's encoding of the same state (writes landing meanwhile)", async () => {
  await withWriter(async (writer, dir) => {
    const store = storeWith(5_000);
    const version = store.currentVersion;
    const expected = mainThreadBody(store, version);
    const capture = store.beginCapture(version);
    let steps = 0;
    while (!capture.step(500)) {
      // Later transactions overwrite, delete and add keys between the slices.
      const tx = store.begin();
      tx.set("records", Buffer.from(`later-${steps}`), Buffer.from("new"));
      tx.delete("public:records", Buffer.alloc(8));
      tx.set("public:records", (() => { const k = Buffer.alloc(8); k.writeUInt32BE((2 * steps) * 2654435761 >>> 0, 0); return k; })(), Buffer.from("overwritten"));
      tx.set("public:created-later", Buffer.from("k"), Buffer.from("v"));
      store.commit(tx, store.currentVersion + 1);
      store.compact(store.currentVersion);
      steps++;
    }
    assert.ok(steps > 3, "the capture took several slices");
    const temporaryPath = temporarySnapshotPath(dir, version);
    const written = await writer.write({ packed: capture.finish(), view: 2, views, tree, ledgerSecret, temporaryPath, durable: true, randomness });
    const file = readFileSync(temporaryPath);
    assert.ok(file.equals(expected), "same bytes as the main-thread encoding");
    assert.ok(Buffer.from(written.digest).equals(sha256(expected)), "the digest is SHA-256 of the body");
    assert.equal(written.bytes, expected.length);
  });
});

test("a full disk while the worker writes leaves no file, and the next snapshot is written", async () => {
  await withWriter(async (writer, dir) => {
    const store = storeWith(2_000);
    // The temporary file resolves to /dev/full: every write fails with ENOSPC, as on a full disk.
    const temporaryPath = temporarySnapshotPath(dir, store.currentVersion);
    symlinkSync("/dev/full", temporaryPath);
    await assert.rejects(
      writer.write({ packed: captureAll(store, store.currentVersion), view: 2, views, tree, ledgerSecret, temporaryPath, durable: true }),
      (error: unknown) => error instanceof CocoError && error.code === "SnapshotDiskFull",
    );
    assert.deepEqual(readdirSync(dir), [], "no snapshot file and no temporary file left");
    const next = temporarySnapshotPath(dir, store.currentVersion);
    const written = await writer.write({ packed: captureAll(store, store.currentVersion), view: 2, views, tree, ledgerSecret, temporaryPath: next, durable: true });
    assert.ok(sha256(readFileSync(next)).equals(Buffer.from(written.digest)));
  });
});

test("a worker that dies mid-snapshot fails that snapshot only, leaves no file, and a new worker writes the next", async () => {
  await withWriter(async (writer, dir) => {
    const store = storeWith(200_000);
    const temporaryPath = temporarySnapshotPath(dir, store.currentVersion);
    const pending = writer.write({ packed: captureAll(store, store.currentVersion), view: 2, views, tree, ledgerSecret, temporaryPath, durable: true });
    await writer.crashWorkerForTest();
    await assert.rejects(pending, (error: unknown) => error instanceof CocoError && error.code === "SnapshotWorkerFailed");
    assert.equal(existsSync(temporaryPath), false, "the temporary file of the dead worker is removed");
    const small = storeWith(300);
    const next = temporarySnapshotPath(dir, small.currentVersion);
    const written = await writer.write({ packed: captureAll(small, small.currentVersion), view: 2, views, tree, ledgerSecret, temporaryPath: next, durable: false });
    assert.ok(sha256(readFileSync(next)).equals(Buffer.from(written.digest)));
    assert.deepEqual(readdirSync(dir), [next.slice(dir.length + 1)]);
  });
});

test("an idle worker stops (its memory goes back), and the next snapshot starts a new one; one requested at the moment it stops is written", async () => {
  const idleMs = 300;
  await withWriter(async (writer, dir) => {
    const store = storeWith(2_000);
    const write = (name: string) => writer.write({ packed: captureAll(store, store.currentVersion), view: 2, views, tree, ledgerSecret, temporaryPath: join(dir, name), durable: false });
    await write("a");
    await write("b");
    assert.equal(writer.startedCount, 1, "back-to-back snapshots share one worker");
    await new Promise((r) => setTimeout(r, idleMs + 200));
    const written = await write("c");
    assert.ok(sha256(readFileSync(join(dir, "c"))).equals(Buffer.from(written.digest)));
    assert.equal(writer.startedCount, 2, "the idle worker stopped; a new one wrote the next snapshot");
    // A write racing the idle stop: the stopped worker's exit must not fail the new request.
    await new Promise((r) => setTimeout(r, idleMs - 5));
    const racing = await Promise.all([write("d"), new Promise((r) => setTimeout(r, 10)).then(() => write("e"))]);
    for (const [i, name] of ["d", "e"].entries()) assert.ok(sha256(readFileSync(join(dir, name))).equals(Buffer.from(racing[i]!.digest)), `snapshot ${name} written whole`);
  }, idleMs);
});

test("at start, temporary snapshot files of an interrupted process are removed; this process's own and real snapshots stay", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-snapshot-worker-"));
  try {
    const foreign = `snapshot_40.${process.pid + 1_000_000}.3.tmp`;
    const own = temporarySnapshotPath(dir, 41).slice(dir.length + 1);
    for (const name of [foreign, own, "snapshot_40_42.committed", "snapshot_40_42.committed.123.7.tmp"]) writeFileSync(join(dir, name), "x");
    const removed = await removeTemporarySnapshotFiles(dir);
    assert.deepEqual(removed.sort(), [foreign, "snapshot_40_42.committed.123.7.tmp"].sort());
    assert.deepEqual(readdirSync(dir).sort(), [own, "snapshot_40_42.committed"].sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
