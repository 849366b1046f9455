// The threaded ledger keeps the main thread's call order on disk: a rollback, the entries that
// follow it and a commit reach the worker in the order they were made, so the files never hold
// a fork and durability or commit is never claimed for entries the ledger does not hold.
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ledger, ThreadedLedger, decodeEntry, readLedgerDirectory } from "../../../src/ledger/index.js";
import { CocoError } from "../../../src/util/errors.js";
import { appendEntries } from "../../helpers/ledger-fixtures.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "coco-threaded-ledger-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every entry on disk as "seqno@view", read back by the audit reader. */
async function onDisk(): Promise<string[]> {
  const out: string[] = [];
  for await (const { entry } of readLedgerDirectory(dir)) out.push(`${entry.seqno}@${entry.view}`);
  return out;
}

function history(parts: [from: number, to: number, view: number][]): string[] {
  const out: string[] = [];
  for (const [from, to, view] of parts) for (let s = from; s <= to; s++) out.push(`${s}@${view}`);
  return out;
}

/** Lets the flush just called post its batch to the worker, so that it is in flight. */
const posted = () => new Promise((resolve) => setImmediate(resolve));

describe("ThreadedLedger", () => {
  test("a rollback during a flush, then new entries and a commit, leave exactly the new history on disk", async () => {
    const { ledger } = await ThreadedLedger.open(dir, { durability: "fsync", chunkSizeBytes: 4000 });
    appendEntries(ledger, 1, 100, 2);
    const flushing = ledger.flush();
    await posted();
    const truncated = ledger.truncate(90);
    appendEntries(ledger, 91, 95, 3);
    const committed = ledger.commit(95);
    // On the old code the worker got commit(95) before truncate(90) and refused the truncation.
    await Promise.all([flushing, truncated, committed]);
    assert.equal(await ledger.flush(), 95);
    await ledger.close();
    assert.deepEqual(await onDisk(), history([[1, 90, 2], [91, 95, 3]]));
    const reopened = await Ledger.open(dir, { durability: "none" });
    assert.equal(reopened.ledger.committedSeqno, 95);
    assert.deepEqual(reopened.entries.map((e) => decodeEntry(e).view), [...Array(90).fill(2), 3, 3, 3, 3, 3]);
    await reopened.ledger.close();
  });

  test("the durability reported after a rollback never covers entries appended after it", async () => {
    const { ledger } = await ThreadedLedger.open(dir, { durability: "fsync" });
    appendEntries(ledger, 1, 100, 2);
    const flushing = ledger.flush();
    await posted();
    await ledger.truncate(90);
    appendEntries(ledger, 91, 95, 3);
    const durable = await flushing;
    assert.ok(durable <= 90, `the old flush vouches for at most 90 (got ${durable})`);
    assert.ok(ledger.durableSeqno <= 90);
    assert.equal(await ledger.flush(), 95);
    await ledger.close();
    assert.deepEqual(await onDisk(), history([[1, 90, 2], [91, 95, 3]]));
  });

  test("a commit point ahead of what the worker holds follows the flush that posts those entries", async () => {
    const { ledger } = await ThreadedLedger.open(dir, { durability: "none" });
    appendEntries(ledger, 1, 20);
    await ledger.flush();
    appendEntries(ledger, 21, 30);
    await ledger.commit(30);
    await ledger.flush();
    await ledger.close();
    const reopened = await Ledger.open(dir, { durability: "none" });
    assert.equal(reopened.ledger.committedSeqno, 30);
    await reopened.ledger.close();
  });

  test("a commit point beyond the last entry marks only the entries the ledger holds", async () => {
    const { ledger } = await ThreadedLedger.open(dir, { durability: "none" });
    appendEntries(ledger, 1, 30, 2);
    await ledger.flush();
    await ledger.commit(50);
    appendEntries(ledger, 31, 40, 2);
    await ledger.flush();
    // 31..40 were never committed, so rolling them back is allowed.
    await ledger.truncate(35);
    await assert.rejects(ledger.truncate(29), (e: unknown) => e instanceof CocoError && e.code === "LedgerTruncateBelowCommit");
    appendEntries(ledger, 36, 38, 3);
    await ledger.close();
    assert.deepEqual(await onDisk(), history([[1, 35, 2], [36, 38, 3]]));
    const reopened = await Ledger.open(dir, { durability: "none" });
    assert.equal(reopened.ledger.committedSeqno, 30);
    await reopened.ledger.close();
  });

  test("entries read back from the main thread, the worker's memory and the disk", async () => {
    const { ledger } = await ThreadedLedger.open(dir, { durability: "none", chunkSizeBytes: 1000 });
    appendEntries(ledger, 1, 30);
    await ledger.flush();
    appendEntries(ledger, 31, 35);
    for (const seqno of [1, 15, 30, 31, 35]) assert.equal(decodeEntry(await ledger.read(seqno)).seqno, seqno);
    await ledger.close();
  });
});

describe("Ledger commit", () => {
  test("a commit point beyond the last entry is clamped to it, so later entries can still roll back", async () => {
    const { ledger } = await Ledger.open(dir, { durability: "none" });
    appendEntries(ledger, 1, 30, 2);
    await ledger.flush();
    await ledger.commit(50);
    assert.equal(ledger.committedSeqno, 30);
    appendEntries(ledger, 31, 40, 2);
    await ledger.truncate(35);
    await ledger.close();
    assert.equal((await onDisk()).length, 35);
  });

  test("the commit point on disk only covers entries already on disk", async () => {
    const { ledger } = await Ledger.open(dir, { durability: "fsync" });
    appendEntries(ledger, 1, 10);
    await ledger.flush();
    appendEntries(ledger, 11, 20);
    await ledger.commit(20);
    await ledger.close();
    const reopened = await Ledger.open(dir, { durability: "none" });
    assert.equal(reopened.ledger.committedSeqno, 10, "20 was committed before 11..20 were written");
    assert.equal(reopened.entries.length, 20);
    await reopened.ledger.close();
  });

  test("a flush told what its durability commits records that commit point right after it, and the file survives a reopen", async () => {
    const { ledger } = await ThreadedLedger.open(dir, { durability: "fsync" });
    const recorded: number[] = [];
    ledger.on("commitRecorded", (seqno) => recorded.push(seqno));
    appendEntries(ledger, 1, 25, 2);
    // Entries 1..25 (signatures at 10 and 20): their durability commits up to 20.
    assert.equal(await ledger.flush(20), 25);
    const deadline = Date.now() + 10_000;
    while (ledger.recordedCommitSeqno < 20 && Date.now() < deadline) await posted();
    assert.equal(ledger.recordedCommitSeqno, 20, "recorded without a commit() call");
    assert.deepEqual(recorded, [20]);
    await ledger.close();
    const reopened = await Ledger.open(dir, { durability: "none" });
    assert.equal(reopened.ledger.committedSeqno, 20);
    await reopened.ledger.close();
  });

  test("flushes posted back to back, without waiting for each other, are each answered and keep every entry in order", async () => {
    const { ledger } = await ThreadedLedger.open(dir, { durability: "fsync", chunkSizeBytes: 4000 });
    const flushes: Promise<number>[] = [];
    for (let batch = 0; batch < 20; batch++) {
      appendEntries(ledger, batch * 10 + 1, batch * 10 + 10, 2);
      flushes.push(ledger.flush());
    }
    const durable = await Promise.all(flushes);
    durable.forEach((seqno, batch) => assert.ok(seqno >= batch * 10 + 10, `flush ${batch} answers once its entries are durable (${seqno})`));
    assert.equal(ledger.durableSeqno, 200);
    await ledger.close();
    assert.deepEqual(await onDisk(), history([[1, 200, 2]]));
  });
});
