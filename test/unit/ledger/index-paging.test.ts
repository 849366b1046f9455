// The seqno index is bounded (src/ledger/chunk-files.ts): once it holds more than twice
// `residentIndexEntries` seqnos, old committed chunks are paged out and their entries are found
// through their chunk index files, or by a scan of the chunk when that file is missing or refused.
// A node that runs for months keeps a resident index of the same size whatever its ledger's length.
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, rm, mkdtemp, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { crc32 } from "node:zlib";
import { join } from "node:path";
import { Ledger, type LedgerOptions } from "../../../src/ledger/index.js";
import { SeqnoIndex } from "../../../src/ledger/seqno-index.js";
import { FRAME_HEADER_BYTES } from "../../../src/ledger/files.js";
import { CocoError } from "../../../src/util/errors.js";
import { appendEntries, testEntry } from "../../helpers/ledger-fixtures.js";

/** Chunks close at every signature (every 10th seqno); 40 seqnos stay resident, 80 at most. */
const paged: LedgerOptions = { durability: "none", chunkSizeBytes: 1, returnEntries: false, residentIndexEntries: 40 };
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "coco-index-paging-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes seqnos 1..last, commits `committed` (default all) and closes the ledger. */
async function writeCommitted(last: number, committed = last): Promise<void> {
  const { ledger } = await Ledger.open(dir, paged);
  appendEntries(ledger, 1, last);
  await ledger.flush();
  await ledger.commit(committed);
  await ledger.close();
}

async function readsBack(ledger: Ledger, first: number, last: number): Promise<void> {
  for (let seqno = first; seqno <= last; seqno++) assert.deepEqual(await ledger.read(seqno), testEntry(seqno), `entry ${seqno}`);
  // Ranges that cross chunk boundaries and the paged/resident boundary, with small and large budgets.
  for (const budget of [1, 300, 1_000_000]) {
    let seqno = first;
    while (seqno <= last) {
      const range = await ledger.readRange(seqno, last, budget);
      assert.ok(range.length > 0, `a range from ${seqno} makes progress`);
      for (const entry of range) assert.deepEqual(entry, testEntry(seqno++), `ranged entry ${seqno - 1}, budget ${budget}`);
    }
  }
}

describe("the seqno index pages out old committed chunks", () => {
  test("SeqnoIndex.dropBefore keeps every later offset and length exact", () => {
    const index = new SeqnoIndex(5);
    const expected = new Map<number, [number, number]>();
    let offset = 8 + FRAME_HEADER_BYTES;
    for (let seqno = 5; seqno <= 400; seqno++) {
      if (seqno % 37 === 0) offset = 8 + FRAME_HEADER_BYTES; // a new chunk
      const length = seqno % 50 === 0 ? 70_000 : 100 + (seqno % 13);
      index.push(offset, length);
      expected.set(seqno, [offset, length]);
      offset += FRAME_HEADER_BYTES + length;
    }
    index.dropBefore(150);
    assert.equal(index.firstSeqno, 5 + 128, "rounded down to a checkpoint");
    assert.equal(index.lastSeqno, 400);
    for (let seqno = index.firstSeqno; seqno <= 400; seqno++) {
      assert.deepEqual([index.offset(seqno), index.length(seqno)], expected.get(seqno), `seqno ${seqno}`);
    }
    // Appends, truncates and rewrites go on as before.
    index.push(offset, 9);
    assert.equal(index.offset(401), offset);
    index.truncate(390);
    assert.equal(index.lastSeqno, 390);
    assert.deepEqual([index.offset(390), index.length(390)], expected.get(390));
    index.dropBefore(10_000);
    assert.equal(index.lastSeqno, 390, "the last seqno is always kept");
    assert.deepEqual([index.offset(390), index.length(390)], expected.get(390));
  });

  test("the resident index stays bounded while the ledger grows, and every entry reads back", async () => {
    const { ledger } = await Ledger.open(dir, paged);
    let peak = 0;
    for (let last = 10; last <= 1_000; last += 10) {
      appendEntries(ledger, last - 9, last);
      await ledger.flush();
      await ledger.commit(last);
      peak = Math.max(peak, ledger.residentIndexSeqnos);
    }
    assert.ok(peak <= 2 * 40 + 10, `at most twice the resident count and one chunk: peak ${peak}`);
    assert.ok(ledger.residentIndexSeqnos < 1_000, "old chunks were paged out");
    await readsBack(ledger, 1, 1_000);
    await ledger.close();
  });

  test("a restart indexes only the recent chunks, reads old ones through their index files, and goes on writing", async () => {
    await writeCommitted(500, 490);
    const { ledger } = await Ledger.open(dir, paged);
    assert.equal(ledger.lastSeqno, 500);
    assert.ok(ledger.residentIndexSeqnos <= 40 + 20, `resident after open: ${ledger.residentIndexSeqnos}`);
    await readsBack(ledger, 1, 500);
    appendEntries(ledger, 501, 520);
    await ledger.flush();
    // A rollback of what is not committed still works at the resident end.
    await ledger.truncate(505);
    appendEntries(ledger, 506, 530);
    await ledger.flush();
    await ledger.commit(530);
    await readsBack(ledger, 480, 530);
    await assert.rejects(ledger.read(0), (e: unknown) => e instanceof CocoError && e.code === "LedgerEntryNotFound" && /holds 1\.\.530/.test(e.message));
    await ledger.close();
  });

  test("a paged-out chunk without a usable index file is scanned, and its index written again", async () => {
    await writeCommitted(300);
    await unlink(join(dir, "chunk_index_11-20"));
    await writeFile(join(dir, "chunk_index_21-30"), Buffer.alloc(40, 1)); // planted garbage
    const infos: string[] = [];
    const { ledger } = await Ledger.open(dir, { ...paged, logger: { info: (_o, msg) => void infos.push(msg), warn() {} } });
    await readsBack(ledger, 11, 30);
    assert.ok((await readdir(dir)).includes("chunk_index_11-20"), "the missing index is written again");
    const rewritten = await readFile(join(dir, "chunk_index_21-30"));
    assert.notDeepEqual(rewritten, Buffer.alloc(40, 1), "the planted index is replaced");
    await ledger.close();
  });

  test("a planted index that passes its checks but misplaces frames fails one read; the next read scans the chunk", async () => {
    await writeCommitted(300);
    // Seqno 11 one byte longer, 12 one shorter: the same count, sizes and sum, the same last frame.
    const name = join(dir, "chunk_index_11-20");
    const bytes = await readFile(name);
    bytes.writeUInt32BE(testEntry(11).length + 1, 36);
    bytes.writeUInt32BE(testEntry(12).length - 1, 40);
    bytes.writeUInt32BE(crc32(bytes.subarray(0, bytes.length - 4)), bytes.length - 4);
    await writeFile(name, bytes);
    const { ledger } = await Ledger.open(dir, paged);
    await assert.rejects(ledger.read(12), (e: unknown) => e instanceof CocoError && e.code === "LedgerCorrupted" && /the next read scans the chunk/.test(e.message));
    assert.deepEqual(await ledger.read(12), testEntry(12), "read again through a scan of the chunk");
    await readsBack(ledger, 11, 20);
    await ledger.close();
  });

  test("a damaged paged-out chunk is refused when read, naming the file and seqno", async () => {
    await writeCommitted(300);
    const { ledger } = await Ledger.open(dir, paged);
    const file = join(dir, "ledger_11-20.committed");
    const bytes = await readFile(file);
    bytes[8 + FRAME_HEADER_BYTES + 20] ^= 0xff; // inside seqno 11's entry
    await writeFile(file, bytes);
    await assert.rejects(ledger.read(11), (e: unknown) => e instanceof CocoError && e.code === "LedgerCorrupted" && e.message.includes("ledger_11-20") && /seqno 11/.test(e.message));
    assert.deepEqual(await ledger.read(300), testEntry(300), "the rest of the ledger still reads");
    await ledger.close();
  });

  test("an index file left half-written by a crash is removed at open", async () => {
    {
      const { ledger } = await Ledger.open(dir, paged);
      appendEntries(ledger, 1, 30);
      await ledger.flush();
      await ledger.close();
    }
    await writeFile(join(dir, "chunk_index_31-40.tmp"), Buffer.alloc(10));
    await writeFile(join(dir, "notes.tmp"), "an operator's file");
    const { ledger } = await Ledger.open(dir, paged);
    const names = await readdir(dir);
    assert.ok(!names.includes("chunk_index_31-40.tmp"));
    assert.ok(names.includes("notes.tmp"), "other files are left alone");
    await ledger.close();
  });
});
