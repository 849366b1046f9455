// The index file of each closed chunk (src/ledger/chunk-index.ts): a node's open reads it instead
// of every frame of the chunk, and it is never trusted: a missing, damaged or stale one is ignored
// (the chunk is scanned and the index written again), and a planted one can make a read fail but
// never return another entry, because every frame read is checked (length, crc32, seqno).
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ledger, LedgerSecret, encodeEntry, type LedgerOptions } from "../../../src/ledger/index.js";
import { chunkIndexName, decodeChunkIndex, encodeChunkIndex } from "../../../src/ledger/chunk-index.js";
import { CocoError } from "../../../src/util/errors.js";
import { appendEntries, testEntry } from "../../helpers/ledger-fixtures.js";

const secret = new LedgerSecret(Buffer.alloc(32, 7));
/** Chunks close at every signature (every 10th seqno): ledger_1-10, ledger_11-20, ... */
const small: LedgerOptions = { durability: "none", chunkSizeBytes: 1 };
/** How a node opens its ledger: entries are read back in ranges, not returned. */
const asNode: LedgerOptions = { durability: "none", returnEntries: false };
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "coco-chunk-index-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function isCorrupted(pattern: RegExp) {
  return (e: unknown) => e instanceof CocoError && e.code === "LedgerCorrupted" && pattern.test(e.message);
}

function recordingLogger() {
  const infos: { o: Record<string, unknown>; msg: string }[] = [];
  return { infos, logger: { info: (o: object, msg: string) => void infos.push({ o: o as Record<string, unknown>, msg }), warn() {} } };
}

const scanned = (infos: { o: Record<string, unknown>; msg: string }[]) =>
  infos.filter((l) => l.msg.includes("no usable chunk index")).map((l) => ({ file: String(l.o["file"]).split("/").pop(), reason: l.o["reason"] }));

/** Byte offset of seqno's frame in a chunk starting at `first` whose entries are testEntry(seqno). */
function frameOffset(first: number, seqno: number): number {
  let offset = 8;
  for (let s = first; s < seqno; s++) offset += 8 + testEntry(s).length;
  return offset;
}

async function writeLedger(last: number): Promise<void> {
  const { ledger } = await Ledger.open(dir, small);
  appendEntries(ledger, 1, last);
  await ledger.close();
}

describe("chunk index files", () => {
  test("closing a chunk writes its index, and a node's open reads the index instead of the chunk", async () => {
    await writeLedger(35);
    const names = (await readdir(dir)).sort();
    for (const range of ["1-10", "11-20", "21-30"]) assert.ok(names.includes(`chunk_index_${range}`), `index of ${range} in ${names.join(", ")}`);
    assert.ok(!names.some((n) => n.startsWith("chunk_index_31")), "the open chunk has no index");
    // Damage inside a closed chunk: a scan refuses it at open; an open through the index does not
    // read the chunk, so the damage shows only when that entry is read, and is refused then.
    const path = join(dir, "ledger_11-20");
    const bytes = await readFile(path);
    const frame = frameOffset(11, 15);
    bytes[frame + 8 + 100]! ^= 0xff;
    await writeFile(path, bytes);
    const { infos, logger } = recordingLogger();
    const { ledger } = await Ledger.open(dir, { ...asNode, logger });
    assert.deepEqual(scanned(infos), [], "no closed chunk was scanned");
    assert.deepEqual(await ledger.read(14), testEntry(14));
    await assert.rejects(ledger.read(15), isCorrupted(new RegExp(`ledger_11-20 is corrupted at byte offset ${frame} \\(entry for seqno 15\\): crc32 mismatch`)));
    await assert.rejects(ledger.readRange(12, 18, 1 << 20), isCorrupted(/entry for seqno 15/));
    await ledger.close();
    // The failed read removed the chunk's index: the next open scans the chunk and refuses it.
    assert.ok(!(await readdir(dir)).includes("chunk_index_11-20"));
    await assert.rejects(Ledger.open(dir, asNode), isCorrupted(new RegExp(`ledger_11-20 is corrupted at byte offset ${frame} \\(entry for seqno 15\\)`)));
  });

  test("every entry reads back through the indexes after reopen", async () => {
    await writeLedger(47);
    const { infos, logger } = recordingLogger();
    const { ledger, entries } = await Ledger.open(dir, { ...asNode, logger });
    assert.equal(entries.length, 0);
    assert.deepEqual(scanned(infos), []);
    assert.equal(ledger.lastSeqno, 47);
    for (let s = 1; s <= 47; s++) assert.deepEqual(await ledger.read(s), testEntry(s), `seqno ${s}`);
    const all: Buffer[] = [];
    while (all.length < 47) all.push(...(await ledger.readRange(all.length + 1, 47, 700)));
    assert.deepEqual(all, Array.from({ length: 47 }, (_, i) => testEntry(i + 1)));
    // Appending goes on after the indexed chunks.
    appendEntries(ledger, 48, 50);
    await ledger.close();
    const again = await Ledger.open(dir, { durability: "none" });
    assert.equal(again.entries.length, 50);
    await again.ledger.close();
  });

  test("a missing, damaged or stale index is ignored: the chunk is scanned and its index written again", async () => {
    await writeLedger(45);
    await unlink(join(dir, chunkIndexName(1, 10)));
    const damaged = await readFile(join(dir, chunkIndexName(11, 20)));
    damaged[40]! ^= 0x01;
    await writeFile(join(dir, chunkIndexName(11, 20)), damaged);
    // Stale: the index of a chunk that had one entry more (a rollback cut it since).
    const lengths = Uint32Array.from({ length: 10 }, (_, i) => testEntry(21 + i).length);
    lengths[9] = lengths[9]! + 1;
    await writeFile(join(dir, chunkIndexName(21, 30)), encodeChunkIndex({ firstSeqno: 21, lastSeqno: 30, chunkBytes: (await stat(join(dir, "ledger_21-30"))).size + 1, lengths }));
    const { infos, logger } = recordingLogger();
    const { ledger } = await Ledger.open(dir, { ...asNode, logger });
    assert.deepEqual(scanned(infos), [
      { file: "ledger_1-10", reason: "no index file" },
      { file: "ledger_11-20", reason: "its crc32 does not match" },
      { file: "ledger_21-30", reason: `it describes a chunk of ${(await stat(join(dir, "ledger_21-30"))).size + 1} bytes, the file has ${(await stat(join(dir, "ledger_21-30"))).size}` },
    ]);
    for (let s = 1; s <= 45; s++) assert.deepEqual(await ledger.read(s), testEntry(s));
    await ledger.close();
    for (const [first, last] of [[1, 10], [11, 20], [21, 30]] as const) {
      const info = { name: `ledger_${first}-${last}`, path: join(dir, `ledger_${first}-${last}`), firstSeqno: first, lastSeqno: last, committed: false };
      const index = decodeChunkIndex(await readFile(join(dir, chunkIndexName(first, last))), info, (await stat(info.path)).size);
      assert.notEqual(typeof index, "string", `chunk ${first}-${last} has a usable index again: ${String(index)}`);
    }
    const { infos: second, logger: quiet } = recordingLogger();
    await (await Ledger.open(dir, { ...asNode, logger: quiet })).ledger.close();
    assert.deepEqual(scanned(second), [], "the next open scans nothing");
  });

  test("a planted index whose lengths add up never makes a read return another entry", async () => {
    // Entries of different lengths, so that two of them can trade lengths in the index.
    const entryOf = (seqno: number) => encodeEntry({
      view: 2, seqno, isSignature: seqno % 10 === 0, claimsDigest: Buffer.alloc(32, 1), commitEvidenceDigest: Buffer.alloc(32, 1),
      keyNonce: Buffer.alloc(16, 3), publicDomain: Buffer.alloc(10 + (seqno % 5), 0x61), privatePlaintext: Buffer.from(`private ${seqno}`),
    }, secret);
    const { ledger: writer } = await Ledger.open(dir, small);
    for (let s = 1; s <= 25; s++) writer.append(entryOf(s), s, s % 10 === 0);
    await writer.close();
    const lengths = Uint32Array.from({ length: 10 }, (_, i) => entryOf(11 + i).length);
    [lengths[3], lengths[4]] = [lengths[4]!, lengths[3]!]; // seqnos 14 and 15
    assert.notEqual(lengths[3], lengths[4]);
    await writeFile(join(dir, chunkIndexName(11, 20)), encodeChunkIndex({ firstSeqno: 11, lastSeqno: 20, chunkBytes: (await stat(join(dir, "ledger_11-20"))).size, lengths }));
    const { infos, logger } = recordingLogger();
    const { ledger } = await Ledger.open(dir, { ...asNode, logger });
    assert.deepEqual(scanned(infos), [], "the planted index passes every check made at open");
    let refused = 0;
    for (let s = 1; s <= 25; s++) {
      try {
        assert.deepEqual(await ledger.read(s), entryOf(s), `seqno ${s} is the entry written, if anything`);
      } catch (error) {
        assert.ok(isCorrupted(/./)(error), `seqno ${s}: ${String(error)}`);
        refused++;
      }
    }
    assert.ok(refused >= 1, "the seqnos whose frames the index misplaces are refused");
    await ledger.close();
  });

  test("frames swapped on disk after the open are refused when read, by the seqno they carry", async () => {
    await writeLedger(25);
    const { ledger } = await Ledger.open(dir, asNode);
    // Seqnos 13 and 14 have entries of equal length: swapping their frames keeps every length and crc32 valid.
    assert.equal(testEntry(13).length, testEntry(14).length);
    const path = join(dir, "ledger_11-20");
    const bytes = await readFile(path);
    const a = frameOffset(11, 13);
    const b = frameOffset(11, 14);
    const frame = 8 + testEntry(13).length;
    const first = Buffer.from(bytes.subarray(a, a + frame));
    bytes.copy(bytes, a, b, b + frame);
    first.copy(bytes, b);
    await writeFile(path, bytes);
    await assert.rejects(ledger.read(13), isCorrupted(/entry for seqno 13\): the entry carries seqno 14/));
    await assert.rejects(ledger.readRange(11, 20, 1 << 20), isCorrupted(/entry for seqno 13\): the entry carries seqno 14/));
    await ledger.close();
  });

  test("a rollback into a closed chunk removes its index, and reopening scans the cut chunk", async () => {
    await writeLedger(35);
    const { ledger } = await Ledger.open(dir, asNode);
    await ledger.truncate(15);
    await ledger.flush();
    const names = await readdir(dir);
    assert.ok(!names.includes("chunk_index_11-20") && !names.includes("chunk_index_21-30"), names.join(", "));
    assert.ok(names.includes("chunk_index_1-10"));
    appendEntries(ledger, 16, 18);
    await ledger.close();
    const { ledger: reopened } = await Ledger.open(dir, asNode);
    assert.equal(reopened.lastSeqno, 18);
    for (let s = 1; s <= 18; s++) assert.deepEqual(await reopened.read(s), testEntry(s));
    await reopened.close();
  });
});
