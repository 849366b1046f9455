// Behaviour of the chunked ledger files: durability across reopen, CCF chunk naming and
// rotation, crash recovery of a torn tail, refusal on corruption, and rollback.
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, truncate as truncateFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Ledger,
  LedgerSecret,
  decodeEntry,
  encodeEntry,
  listLedgerFiles,
  readLedgerDirectory,
  type LedgerOptions,
} from "../../../src/ledger/index.js";
import { CocoError } from "../../../src/util/errors.js";

const secret = new LedgerSecret(Buffer.alloc(32, 7));
const digest = Buffer.alloc(32, 1);
const keyNonce = Buffer.alloc(16, 3);

function entry(seqno: number, isSignature = false, view = 2): Buffer {
  return encodeEntry(
    {
      view,
      seqno,
      isSignature,
      claimsDigest: digest,
      commitEvidenceDigest: digest,
      keyNonce,
      publicDomain: Buffer.from(`public ${seqno}`),
      privatePlaintext: Buffer.from(`private ${seqno}`.padEnd(100, ".")),
    },
    secret,
  );
}

/** Appends seqnos from..to; every `signatureEvery`-th seqno is a signature transaction. */
function appendRange(ledger: Ledger, from: number, to: number, signatureEvery = 10, view = 2): void {
  for (let s = from; s <= to; s++) ledger.append(entry(s, s % signatureEvery === 0, view), s, s % signatureEvery === 0);
}

const fast: LedgerOptions = { durability: "none" };
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "coco-ledger-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function names(): Promise<string[]> {
  return (await listLedgerFiles(dir)).map((f) => f.name);
}

function isCorrupted(pattern: RegExp) {
  return (e: unknown) => e instanceof CocoError && e.code === "LedgerCorrupted" && pattern.test(e.message);
}

describe("Ledger", () => {
  test("entries written, flushed and closed come back in order on reopen", async () => {
    const { ledger } = await Ledger.open(dir);
    appendRange(ledger, 1, 50);
    assert.equal(await ledger.flush(), 50);
    await ledger.close();
    const reopened = await Ledger.open(dir);
    assert.equal(reopened.entries.length, 50);
    reopened.entries.forEach((e, i) => assert.deepEqual(e, entry(i + 1, (i + 1) % 10 === 0)));
    assert.equal(reopened.ledger.lastSeqno, 50);
    assert.equal(reopened.ledger.durableSeqno, 50);
    await reopened.ledger.close();
  });

  test("chunks close only after a signature once over the size limit and take CCF names", async () => {
    const size = entry(1).length + 8;
    const { ledger } = await Ledger.open(dir, { ...fast, chunkSizeBytes: size * 15 });
    appendRange(ledger, 1, 45);
    await ledger.flush();
    // 15 frames reach the limit at seqno 14/15, but the next signature is 20; then 40.
    assert.deepEqual(await names(), ["ledger_1-20", "ledger_21-40", "ledger_41"]);
    await ledger.close();
  });

  test("commit renames closed chunks that are entirely committed, idempotently", async () => {
    const { ledger } = await Ledger.open(dir, { ...fast, chunkSizeBytes: 1 });
    appendRange(ledger, 1, 35);
    await ledger.flush();
    assert.deepEqual(await names(), ["ledger_1-10", "ledger_11-20", "ledger_21-30", "ledger_31"]);
    await ledger.commit(25);
    await ledger.commit(20);
    assert.deepEqual(await names(), ["ledger_1-10.committed", "ledger_11-20.committed", "ledger_21-30", "ledger_31"]);
    await ledger.close();
    const reopened = await Ledger.open(dir, fast);
    assert.equal(reopened.entries.length, 35);
    assert.equal(reopened.ledger.committedSeqno, 25, "the commit point file remembers 25");
    await reopened.ledger.close();
  });

  test("a torn final frame is trimmed with a warning and the entries before it survive", async () => {
    const { ledger } = await Ledger.open(dir, fast);
    appendRange(ledger, 1, 20);
    await ledger.close();
    const path = join(dir, "ledger_1");
    const fullSize = (await stat(path)).size;
    await truncateFile(path, fullSize - 5);
    const warnings: object[] = [];
    const logger = { info() {}, warn: (o: object) => void warnings.push(o) };
    const reopened = await Ledger.open(dir, { ...fast, logger });
    assert.equal(reopened.entries.length, 19);
    assert.equal(warnings.length, 1);
    const frameOffset = fullSize - (entry(20).length + 8);
    assert.deepEqual(warnings[0], { file: path, offset: frameOffset, seqno: 20, bytesDropped: entry(20).length + 8 - 5 });
    assert.equal((await stat(path)).size, frameOffset);
    reopened.ledger.append(entry(20, true), 20, true);
    await reopened.ledger.close();
    const again = await Ledger.open(dir, fast);
    assert.equal(again.entries.length, 20);
    await again.ledger.close();
  });

  test("a corrupted byte in the middle refuses to open, naming the file and byte offset", async () => {
    const { ledger } = await Ledger.open(dir, fast);
    appendRange(ledger, 1, 20);
    await ledger.close();
    const path = join(dir, "ledger_1");
    const bytes = await readFile(path);
    const frame = 8 + 4 * (entry(1).length + 8); // frame of seqno 5
    bytes[frame + 8 + 100]! ^= 0xff;
    await writeFile(path, bytes);
    await assert.rejects(
      Ledger.open(dir, fast),
      isCorrupted(new RegExp(`${path} .*byte offset ${frame} \\(entry for seqno 5\\).*restore the file`, "i")),
    );
  });

  test("a missing chunk in the middle refuses to open, naming the gap", async () => {
    const { ledger } = await Ledger.open(dir, { ...fast, chunkSizeBytes: 1 });
    appendRange(ledger, 1, 35);
    await ledger.close();
    await rm(join(dir, "ledger_11-20"));
    await assert.rejects(Ledger.open(dir, fast), isCorrupted(/11\.\.20 are missing between ledger_1-10 and ledger_21-30/));
  });

  test("truncating across chunk boundaries drops files and a tail, and appending resumes", async () => {
    const { ledger } = await Ledger.open(dir, { ...fast, chunkSizeBytes: 1 });
    appendRange(ledger, 1, 35);
    await ledger.flush();
    await ledger.commit(10);
    await assert.rejects(ledger.truncate(9), (e: unknown) => e instanceof CocoError);
    await ledger.truncate(15);
    assert.deepEqual(await names(), ["ledger_1-10.committed", "ledger_11"]);
    assert.equal(ledger.lastSeqno, 15);
    appendRange(ledger, 16, 25, 10, 3);
    await ledger.close();
    const reopened = await Ledger.open(dir, { ...fast, chunkSizeBytes: 1 });
    assert.equal(reopened.entries.length, 25);
    assert.equal(decodeEntry(reopened.entries[14]!).view, 2);
    assert.equal(decodeEntry(reopened.entries[15]!).view, 3);
    assert.deepEqual(await names(), ["ledger_1-10.committed", "ledger_11-20", "ledger_21"]);
    await reopened.ledger.close();
  });

  test("truncating buffered and flushed entries before a flush lands them correctly", async () => {
    const { ledger } = await Ledger.open(dir, fast);
    appendRange(ledger, 1, 10);
    await ledger.flush();
    appendRange(ledger, 11, 20);
    const truncated = ledger.truncate(5);
    appendRange(ledger, 6, 8, 10, 3);
    await Promise.all([truncated, ledger.flush()]);
    await ledger.close();
    const { ledger: reopened, entries } = await Ledger.open(dir, fast);
    await reopened.close();
    assert.deepEqual(entries.map((e) => decodeEntry(e).view), [2, 2, 2, 2, 2, 3, 3, 3]);
  });

  test("truncating while a flush is writing still leaves exactly the kept and re-appended entries", async () => {
    const { ledger } = await Ledger.open(dir, { durability: "fsync", chunkSizeBytes: 1500 });
    appendRange(ledger, 1, 40);
    const flushing = ledger.flush();
    await new Promise((resolve) => setImmediate(resolve));
    const truncated = ledger.truncate(5);
    assert.equal(ledger.durableSeqno <= 5, true);
    appendRange(ledger, 6, 12, 10, 3);
    assert.deepEqual(decodeEntry(await ledger.read(6)).view, 3);
    await Promise.all([flushing, truncated]);
    assert.equal(await ledger.flush(), 12);
    await ledger.close();
    const { ledger: reopened, entries } = await Ledger.open(dir, fast);
    await reopened.close();
    assert.deepEqual(entries.map((e) => decodeEntry(e).view), [2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3]);
  });

  test("a zero-filled tail of the last chunk is trimmed like a torn frame", async () => {
    const { ledger } = await Ledger.open(dir, fast);
    appendRange(ledger, 1, 5);
    await ledger.close();
    const path = join(dir, "ledger_1");
    await writeFile(path, Buffer.concat([await readFile(path), Buffer.alloc(4096)]));
    const reopened = await Ledger.open(dir, fast);
    assert.equal(reopened.entries.length, 5);
    await reopened.ledger.close();
  });

  test("a frame cut short at the end of a closed chunk refuses to open", async () => {
    const { ledger } = await Ledger.open(dir, { ...fast, chunkSizeBytes: 1 });
    appendRange(ledger, 1, 15);
    await ledger.close();
    const path = join(dir, "ledger_1-10");
    await truncateFile(path, (await stat(path)).size - 3);
    await assert.rejects(Ledger.open(dir, fast), isCorrupted(/ledger_1-10 is corrupted at byte offset \d+ \(entry for seqno 10\)/));
  });

  test("every seqno reads back after reopen, and buffered entries read from memory", async () => {
    const { ledger } = await Ledger.open(dir, { ...fast, chunkSizeBytes: 1000 });
    appendRange(ledger, 1, 60);
    await ledger.close();
    const { ledger: reopened } = await Ledger.open(dir, { ...fast, chunkSizeBytes: 1000 });
    assert.ok((await names()).length > 2);
    appendRange(reopened, 61, 70);
    for (let s = 1; s <= 70; s++) {
      assert.deepEqual(await reopened.read(s), entry(s, s % 10 === 0));
      assert.deepEqual(await reopened.read(s), entry(s, s % 10 === 0));
    }
    await assert.rejects(reopened.read(71), (e: unknown) => e instanceof CocoError && e.code === "LedgerEntryNotFound");
    await reopened.close();
  });

  test("concurrent flush calls run one at a time and each covers what was appended before it", async () => {
    const { ledger } = await Ledger.open(dir, { durability: "fsync", chunkSizeBytes: 2000 });
    const results: Promise<number>[] = [];
    for (let batch = 0; batch < 20; batch++) {
      appendRange(ledger, batch * 10 + 1, batch * 10 + 10);
      results.push(ledger.flush());
    }
    const durable = await Promise.all(results);
    durable.forEach((d, i) => assert.ok(d >= i * 10 + 10, `flush ${i} made ${i * 10 + 10} durable (got ${d})`));
    for (let i = 1; i < durable.length; i++) assert.ok(durable[i]! >= durable[i - 1]!);
    assert.equal(ledger.durableSeqno, 200);
    await ledger.close();
    const seqnos: number[] = [];
    for await (const { entry: e } of readLedgerDirectory(dir)) seqnos.push(e.seqno);
    assert.deepEqual(seqnos, Array.from({ length: 200 }, (_, i) => i + 1));
  });

  test("durability none still writes every entry to the files", async () => {
    const { ledger } = await Ledger.open(dir, { durability: "none" });
    appendRange(ledger, 1, 30);
    assert.equal(await ledger.flush(), 30);
    const size = (await stat(join(dir, "ledger_1"))).size;
    let expected = 8;
    for (let s = 1; s <= 30; s++) expected += 8 + entry(s, s % 10 === 0).length;
    assert.equal(size, expected);
    await ledger.close();
  });

  test("appending a seqno that does not follow the last one is refused", async () => {
    const { ledger } = await Ledger.open(dir, fast);
    appendRange(ledger, 1, 3);
    assert.throws(() => ledger.append(entry(5), 5, false), /follows last seqno 3/);
    await ledger.close();
  });

  test("the audit reader yields file and offset of each entry without changing anything", async () => {
    const { ledger } = await Ledger.open(dir, { ...fast, chunkSizeBytes: 1 });
    appendRange(ledger, 1, 12);
    await ledger.close();
    const before = await readdir(dir);
    const seen: string[] = [];
    for await (const { file, offset, entry: e } of readLedgerDirectory(dir)) seen.push(`${file}@${offset}#${e.seqno}`);
    assert.equal(seen.length, 12);
    assert.equal(seen[0], `${join(dir, "ledger_1-10")}@8#1`);
    assert.equal(seen[10], `${join(dir, "ledger_11")}@8#11`);
    assert.deepEqual(await readdir(dir), before);
  });
});
