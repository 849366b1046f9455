// The ledger is read back in bounded ranges (a node's start-up replay, a primary serving a
// backup behind its in-memory window, leaves for old receipts), never whole: open() can skip
// returning the entries, and readRange() returns at most a byte budget per call, across chunk
// files and entries still buffered in memory, in seqno order.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ledger, LedgerSecret, ThreadedLedger, encodeEntry } from "../../../src/ledger/index.js";

const secret = new LedgerSecret(Buffer.alloc(32, 7));
const digest = Buffer.alloc(32, 1);

function entry(seqno: number): Buffer {
  return encodeEntry({
    view: 2, seqno, isSignature: seqno % 10 === 0, claimsDigest: digest, commitEvidenceDigest: digest, keyNonce: Buffer.alloc(16, 3),
    publicDomain: Buffer.from(`public ${seqno}`), privatePlaintext: Buffer.from(`private ${seqno}`.padEnd(100 + (seqno % 37), ".")),
  }, secret);
}

let dir: string;
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), "coco-read-range-")); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

/** Reads seqnos 1..last through `read` in calls of at most `budget` bytes; returns entries and the largest call. */
async function readAll(read: (first: number, last: number, budget: number) => Promise<Buffer[]>, last: number, budget: number) {
  const out: Buffer[] = [];
  let largestCallBytes = 0;
  let calls = 0;
  while (out.length < last) {
    const got = await read(out.length + 1, last, budget);
    assert.ok(got.length > 0, "every call makes progress");
    largestCallBytes = Math.max(largestCallBytes, got.reduce((n, e) => n + e.length, 0));
    out.push(...got);
    calls++;
  }
  return { out, largestCallBytes, calls };
}

test("a ledger many times larger than the read budget is read back whole, in order, within the budget per call", async () => {
  const count = 600;
  const ledger = (await Ledger.open(dir, { chunkSizeBytes: 8 * 1024, durability: "none" })).ledger;
  const written: Buffer[] = [];
  for (let seqno = 1; seqno <= count; seqno++) {
    written.push(entry(seqno));
    ledger.append(written[seqno - 1]!, seqno, seqno % 10 === 0);
    if (seqno === 500) await ledger.flush(); // the last 100 stay buffered in memory
  }
  const totalBytes = written.reduce((n, e) => n + e.length, 0);
  const budget = 2000;
  assert.ok(totalBytes > 50 * budget, `the ledger (${totalBytes} bytes) is far larger than the budget`);
  const { out, largestCallBytes, calls } = await readAll((f, l, b) => ledger.readRange(f, l, b), count, budget);
  assert.deepEqual(out, written);
  assert.ok(largestCallBytes <= budget, `largest read ${largestCallBytes} bytes`);
  assert.ok(calls >= totalBytes / budget, `${calls} calls`);
  await ledger.close();
  // Reopened without returning entries: nothing is read into memory at open.
  const reopened = await Ledger.open(dir, { durability: "none", returnEntries: false });
  assert.equal(reopened.entries.length, 0);
  assert.equal(reopened.ledger.lastSeqno, count);
  assert.deepEqual((await readAll((f, l, b) => reopened.ledger.readRange(f, l, b), count, budget)).out, written);
  await reopened.ledger.close();
});

test("the node's threaded ledger streams the same way through its worker", async () => {
  const count = 300;
  const first = await ThreadedLedger.open(dir, { chunkSizeBytes: 4 * 1024, durability: "none" });
  const written: Buffer[] = [];
  for (let seqno = 1; seqno <= count; seqno++) {
    written.push(entry(seqno));
    first.ledger.append(written[seqno - 1]!, seqno, seqno % 10 === 0);
    if (seqno === 200) await first.ledger.flush();
  }
  try {
    // Entries 201..300 are still on this thread: readRange serves both parts.
    assert.deepEqual((await readAll((f, l, b) => first.ledger.readRange(f, l, b), count, 1500)).out, written);
  } finally {
    await first.ledger.close();
  }
  const { ledger, entries } = await ThreadedLedger.open(dir, { durability: "none", returnEntries: false });
  try {
    assert.equal(entries.length, 0);
    assert.equal(ledger.lastSeqno, count);
    const { out, largestCallBytes } = await readAll((f, l, b) => ledger.readRange(f, l, b), count, 1500);
    assert.deepEqual(out, written);
    assert.ok(largestCallBytes <= 1500, `largest read ${largestCallBytes} bytes`);
  } finally {
    await ledger.close();
  }
});
