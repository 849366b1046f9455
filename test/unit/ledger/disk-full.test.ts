// A full disk is recoverable: the flush fails with LedgerDiskFull (507), keeps its entries in
// memory, and once space is freed a later flush writes them all; the files then read back intact.
// The disk is a small tmpfs filled with a filler file.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import fsPromises, { mkdir, mkdtemp, readdir, rm, stat, truncate as truncateFile, writeFile } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ledger, ThreadedLedger, decodeEntry, readLedgerDirectory, type LedgerStore } from "../../../src/ledger/index.js";
import { CocoError } from "../../../src/util/errors.js";
import { appendEntries, mountTmpfs, testEntry } from "../../helpers/ledger-fixtures.js";

const TMPFS_KIB = 256;
let mount: Awaited<ReturnType<typeof mountTmpfs>>;
let dir: string;
let filler: string;

before(async () => {
  mount = await mountTmpfs(TMPFS_KIB);
});
after(async () => {
  if ("unmount" in mount) await mount.unmount();
});
beforeEach(async () => {
  if (!("dir" in mount)) return;
  for (const name of await readdir(mount.dir)) await rm(join(mount.dir, name), { recursive: true, force: true });
  dir = join(mount.dir, "ledger");
  filler = join(mount.dir, "filler");
  await mkdir(dir);
});

/** Fills the file system: writes the filler until the disk refuses. */
async function fillDisk(): Promise<void> {
  await assert.rejects(writeFile(filler, Buffer.alloc(TMPFS_KIB * 1024, 1)), (e: unknown) => (e as NodeJS.ErrnoException).code === "ENOSPC");
}

function isDiskFull(e: unknown): boolean {
  return e instanceof CocoError && e.code === "LedgerDiskFull" && e.status === 507 && e.message.includes(dir) && /Free space/.test(e.message);
}

async function readBack(): Promise<string[]> {
  const out: string[] = [];
  for await (const { entry } of readLedgerDirectory(dir)) out.push(`${entry.seqno}@${entry.view}`);
  return out;
}

function expected(to: number): string[] {
  return Array.from({ length: to }, (_, i) => `${i + 1}@2`);
}

async function checkEveryEntryReadable(ledger: LedgerStore, to: number): Promise<void> {
  for (let s = 1; s <= to; s++) assert.deepEqual(await ledger.read(s), testEntry(s), `seqno ${s} reads back`);
}

const skip = () => ("skip" in mount ? mount.skip : false);

describe("Ledger on a full disk", () => {
  test("a flush on a full disk fails with LedgerDiskFull, loses nothing, and succeeds once space is freed", async (t) => {
    if (skip()) return t.skip(skip() as string);
    const { ledger } = await Ledger.open(dir, { durability: "fsync", chunkSizeBytes: 3000 });
    const events: string[] = [];
    ledger.on("diskFull", () => events.push("full"));
    ledger.on("diskSpaceAvailable", (d) => events.push(`available ${d}`));
    appendEntries(ledger, 1, 20);
    assert.equal(await ledger.flush(), 20);
    await fillDisk();
    appendEntries(ledger, 21, 80);
    await assert.rejects(ledger.flush(), isDiskFull);
    assert.equal(ledger.diskFull, true);
    assert.ok(ledger.durableSeqno < 80, "not everything was written");
    await checkEveryEntryReadable(ledger, 80);
    // More entries while full, and a second failing attempt: still nothing lost, one event.
    appendEntries(ledger, 81, 90);
    await assert.rejects(ledger.flush(), isDiskFull);
    await assert.rejects(ledger.commit(20), isDiskFull);
    assert.deepEqual(events, ["full"]);
    await rm(filler);
    assert.equal(await ledger.flush(), 90);
    assert.equal(ledger.diskFull, false);
    assert.deepEqual(events, ["full", "available 90"]);
    await ledger.commit(90);
    await checkEveryEntryReadable(ledger, 90);
    await ledger.close();
    assert.deepEqual(await readBack(), expected(90));
    const reopened = await Ledger.open(dir, { durability: "none" });
    assert.equal(reopened.entries.length, 90);
    assert.equal(reopened.ledger.committedSeqno, 90);
    await reopened.ledger.close();
  });

  test("a flush that runs out of space midway keeps the chunks it synced and retries only the rest", async (t) => {
    if (skip()) return t.skip(skip() as string);
    const { ledger } = await Ledger.open(dir, { durability: "fsync", chunkSizeBytes: 3000 });
    appendEntries(ledger, 1, 20);
    await ledger.flush();
    await fillDisk();
    // Four pages free: room for chunk 21-40 (two pages), its index file (one) and part of the next chunk.
    await truncateFile(filler, (await stat(filler)).size - 4 * 4096);
    appendEntries(ledger, 21, 100);
    await assert.rejects(ledger.flush(), isDiskFull);
    assert.equal(ledger.durableSeqno, 40, "the chunk closed before the disk filled up is durable");
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith("ledger_")).sort(), ["ledger_1-20", "ledger_21-40", "ledger_41"]);
    assert.equal((await stat(join(dir, "ledger_41"))).size, 8, "the unsynced part of the open chunk is cut back");
    await rm(filler);
    assert.equal(await ledger.flush(), 100);
    await ledger.close();
    assert.deepEqual(await readBack(), expected(100));
  });

  test("a rollback requested while the disk is full is applied before the kept entries are written", async (t) => {
    if (skip()) return t.skip(skip() as string);
    const { ledger } = await Ledger.open(dir, { durability: "fsync", chunkSizeBytes: 3000 });
    appendEntries(ledger, 1, 30);
    await ledger.flush();
    await fillDisk();
    appendEntries(ledger, 31, 70);
    await assert.rejects(ledger.flush(), isDiskFull);
    const durable = ledger.durableSeqno;
    await ledger.truncate(25).catch((e: unknown) => assert.ok(isDiskFull(e)));
    appendEntries(ledger, 26, 40, 3);
    await rm(filler);
    assert.equal(await ledger.flush(), 40);
    await ledger.close();
    const views = (await readBack()).map((s) => s.split("@")[1]);
    assert.deepEqual(views, [...Array(25).fill("2"), ...Array(15).fill("3")], `durable was ${durable} when full`);
  });

  test("the threaded ledger reports a full disk by event and resumes by itself once space is freed", async (t) => {
    if (skip()) return t.skip(skip() as string);
    const { ledger } = await ThreadedLedger.open(dir, { durability: "fsync", chunkSizeBytes: 3000, diskFullRetryMs: 20 });
    appendEntries(ledger, 1, 20);
    assert.equal(await ledger.flush(), 20);
    await fillDisk();
    const full = new Promise<CocoError>((resolve) => ledger.once("diskFull", resolve));
    appendEntries(ledger, 21, 80);
    await assert.rejects(ledger.flush(), isDiskFull);
    assert.ok(isDiskFull(await full));
    assert.equal(ledger.diskFull, true);
    await checkEveryEntryReadable(ledger, 80);
    const available = new Promise<number>((resolve) => ledger.once("diskSpaceAvailable", resolve));
    await rm(filler);
    // No flush from here: the ledger's own retry notices the space (the test runner's timeout bounds the wait).
    assert.equal(await available, 80);
    assert.equal(ledger.durableSeqno, 80);
    assert.equal(ledger.diskFull, false);
    await ledger.close();
    assert.deepEqual(await readBack(), expected(80));
    const views = (await Ledger.open(dir, { durability: "none" }).then(async ({ ledger: l, entries }) => {
      await l.close();
      return entries;
    })).map((e) => decodeEntry(e).seqno);
    assert.equal(views.length, 80);
  });
});

/** Makes the next `times` calls of fs.promises.<name> whose first argument matches fail with ENOSPC. */
function failNext(name: "rename", match: RegExp, times = 1): () => void {
  const original = fsPromises[name];
  let left = times;
  fsPromises[name] = (async (from: string, to: string) => {
    if (left > 0 && match.test(String(to))) {
      left--;
      throw Object.assign(new Error(`ENOSPC: no space left on device, ${name} '${from}'`), { code: "ENOSPC" });
    }
    return original(from, to);
  }) as typeof original;
  syncBuiltinESMExports();
  return () => {
    fsPromises[name] = original;
    syncBuiltinESMExports();
  };
}

describe("Ledger with injected ENOSPC", () => {
  let plain: string;
  beforeEach(async () => {
    plain = await mkdtemp(join(tmpdir(), "coco-ledger-enospc-"));
  });

  test("a chunk whose closing rename fails stays open with its entries durable and closes at a later signature", async () => {
    const { ledger } = await Ledger.open(plain, { durability: "fsync", chunkSizeBytes: 2000 });
    appendEntries(ledger, 1, 25);
    const restore = failNext("rename", /ledger_1-10$/);
    try {
      await assert.rejects(ledger.flush(), (e: unknown) => e instanceof CocoError && e.code === "LedgerDiskFull");
    } finally {
      restore();
    }
    assert.equal(ledger.durableSeqno, 10, "synced before the rename");
    assert.equal(ledger.diskFull, true);
    appendEntries(ledger, 26, 30);
    assert.equal(await ledger.flush(), 30);
    assert.equal(ledger.diskFull, false);
    await ledger.close();
    const names = (await readdir(plain)).filter((n) => n.startsWith("ledger_")).sort();
    assert.deepEqual(names, ["ledger_1-20", "ledger_21-30"], "ledger_1 closed at the next signature, 20");
    const seqnos: number[] = [];
    for await (const { entry } of readLedgerDirectory(plain)) seqnos.push(entry.seqno);
    assert.deepEqual(seqnos, Array.from({ length: 30 }, (_, i) => i + 1));
    await rm(plain, { recursive: true, force: true });
  });

  test("a commit whose rename to .committed fails is redone by the next flush", async () => {
    const { ledger } = await Ledger.open(plain, { durability: "fsync", chunkSizeBytes: 1 });
    appendEntries(ledger, 1, 25);
    await ledger.flush();
    const restore = failNext("rename", /\.committed$/);
    try {
      await assert.rejects(ledger.commit(20), (e: unknown) => e instanceof CocoError && e.code === "LedgerDiskFull");
    } finally {
      restore();
    }
    assert.equal(ledger.diskFull, true);
    await ledger.flush();
    assert.equal(ledger.diskFull, false);
    assert.deepEqual((await readdir(plain)).filter((n) => n.startsWith("ledger_")).sort(), ["ledger_1-10.committed", "ledger_11-20.committed", "ledger_21"]);
    await ledger.close();
    const reopened = await Ledger.open(plain);
    assert.equal(reopened.ledger.committedSeqno, 20);
    await reopened.ledger.close();
    await rm(plain, { recursive: true, force: true });
  });
});
