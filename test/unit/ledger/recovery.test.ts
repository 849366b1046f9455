// Opening a ledger never silently drops a committed entry: a torn tail above the recorded commit
// point is cut and reported; anything cut or damaged at or below it, damage in the middle of a
// chunk, or a closed chunk missing entries refuses to start with LedgerCorrupted.
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, truncate as truncateFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ledger, ThreadedLedger, readLedgerDirectory } from "../../../src/ledger/index.js";
import { CocoError } from "../../../src/util/errors.js";
import { appendEntries } from "../../helpers/ledger-fixtures.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "coco-recovery-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes seqnos 1..count, commits `committed`, closes; returns each seqno's frame offset. */
async function writeLedger(count: number, committed: number, chunkSizeBytes?: number): Promise<Map<number, { file: string; offset: number }>> {
  const { ledger } = await Ledger.open(dir, { durability: "fsync", chunkSizeBytes });
  appendEntries(ledger, 1, count);
  await ledger.flush();
  if (committed > 0) await ledger.commit(committed);
  await ledger.close();
  const frames = new Map<number, { file: string; offset: number }>();
  for await (const { file, offset, entry } of readLedgerDirectory(dir)) frames.set(entry.seqno, { file, offset });
  return frames;
}

function refuses(path: string, offset: number, seqno: number, extra?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof CocoError, `a CocoError, got ${String(e)}`);
    assert.equal(e.code, "LedgerCorrupted");
    assert.ok(e.message.includes(path), `names the file: ${e.message}`);
    assert.ok(e.message.includes(`byte offset ${offset}`), `names the offset ${offset}: ${e.message}`);
    assert.ok(e.message.includes(`seqno ${seqno}`), `names seqno ${seqno}: ${e.message}`);
    assert.match(e.message, /restore the file.*move the ledger directory away/i);
    if (extra) assert.match(e.message, extra);
    return true;
  };
}

function captureWarnings(): { logger: { info(): void; warn(o: object): void }; warnings: object[] } {
  const warnings: object[] = [];
  return { logger: { info() {}, warn: (o: object) => void warnings.push(o) }, warnings };
}

describe("Ledger recovery against the recorded commit point", () => {
  test("a last chunk cut inside a committed entry refuses to open, naming file, offset, seqno and the fix", async () => {
    const frames = await writeLedger(40, 30);
    const { file, offset } = frames.get(25)!;
    await truncateFile(file, offset + 10);
    await assert.rejects(Ledger.open(dir), refuses(file, offset, 25, /committed/));
    await assert.rejects(ThreadedLedger.open(dir), refuses(file, offset, 25));
    assert.equal((await stat(file)).size, offset + 10, "nothing was trimmed");
  });

  test("a last chunk cut inside an entry above the commit point is cut back and reported", async () => {
    const frames = await writeLedger(40, 30);
    const { file, offset } = frames.get(35)!;
    await truncateFile(file, offset + 10);
    const { logger, warnings } = captureWarnings();
    const { ledger, entries } = await Ledger.open(dir, { logger });
    assert.equal(entries.length, 34);
    assert.equal(ledger.committedSeqno, 30);
    assert.deepEqual(warnings, [{ file, offset, seqno: 35, bytesDropped: 10 }]);
    await ledger.close();
    assert.equal((await stat(file)).size, offset);
  });

  test("a last chunk cut at a frame boundary below the commit point refuses to open", async () => {
    const frames = await writeLedger(40, 30);
    const { file, offset } = frames.get(26)!;
    await truncateFile(file, offset);
    await assert.rejects(Ledger.open(dir), refuses(file, offset, 26, /every entry up to seqno 30 as committed/));
  });

  test("a crc failure followed by valid frames refuses to open, even above the commit point", async () => {
    const frames = await writeLedger(40, 30);
    const { file, offset } = frames.get(35)!;
    const bytes = await readFile(file);
    bytes[offset + 8 + 100]! ^= 0xff;
    await writeFile(file, bytes);
    await assert.rejects(Ledger.open(dir), refuses(file, offset, 35, /followed by valid frames/));
  });

  test("a damaged final frame above the commit point is cut like a torn one", async () => {
    const frames = await writeLedger(40, 30);
    const { file, offset } = frames.get(40)!;
    const bytes = await readFile(file);
    bytes[offset + 8 + 100]! ^= 0xff;
    await writeFile(file, bytes);
    const { logger, warnings } = captureWarnings();
    const { ledger, entries } = await Ledger.open(dir, { logger });
    assert.equal(entries.length, 39);
    assert.equal((warnings[0] as { seqno: number }).seqno, 40);
    await ledger.close();
  });

  test("a closed chunk holding fewer entries than its name says refuses to open", async () => {
    const frames = await writeLedger(25, 0, 1);
    const { file, offset } = frames.get(10)!;
    assert.ok(file.endsWith("ledger_1-10"));
    await truncateFile(file, offset);
    await assert.rejects(Ledger.open(dir), refuses(file, offset, 10, /name says it holds entries up to 10/));
  });

  test("without a recorded commit point a torn tail is cut as before", async () => {
    const frames = await writeLedger(20, 0);
    const { file, offset } = frames.get(3)!;
    await truncateFile(file, offset + 5);
    const { ledger, entries } = await Ledger.open(dir);
    assert.equal(entries.length, 2);
    await ledger.close();
  });

  test("a torn write of the newest commit point record falls back to the previous one", async () => {
    const { ledger } = await Ledger.open(dir, { durability: "fsync" });
    appendEntries(ledger, 1, 30);
    await ledger.flush();
    await ledger.commit(10);
    await ledger.commit(20);
    await ledger.close();
    const path = join(dir, "commit_point");
    const bytes = await readFile(path);
    bytes[512 + 12]! ^= 0xff; // the second record (20) went to the second slot
    await writeFile(path, bytes);
    const reopened = await Ledger.open(dir);
    assert.equal(reopened.ledger.committedSeqno, 10);
    await reopened.ledger.close();
    bytes[12]! ^= 0xff;
    await writeFile(path, bytes);
    await assert.rejects(Ledger.open(dir), (e: unknown) => e instanceof CocoError && e.code === "LedgerCorrupted" && e.message.includes(path));
  });

  test("a ledger whose chunks are gone but whose commit point remains refuses to open", async () => {
    const frames = await writeLedger(20, 20);
    await rm(frames.get(1)!.file);
    await assert.rejects(Ledger.open(dir), (e: unknown) => e instanceof CocoError && e.code === "LedgerCorrupted" && /up to seqno 20/.test(e.message));
  });
});
