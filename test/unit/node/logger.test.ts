// Logging never crashes the node: on a full disk the log file drops and counts lines, retries,
// and once space is back the logger writes again and notes the gap. The disk is a small tmpfs.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { LogFile, createNodeLogger, type LogFileGap } from "../../../src/node/logger.js";
import { pino } from "pino";
import { mountTmpfs } from "../../helpers/ledger-fixtures.js";

const TMPFS_KIB = 128;
let mount: Awaited<ReturnType<typeof mountTmpfs>>;

before(async () => {
  mount = await mountTmpfs(TMPFS_KIB);
});
after(async () => {
  if ("unmount" in mount) await mount.unmount();
});
beforeEach(async () => {
  if ("dir" in mount) for (const name of await readdir(mount.dir)) await rm(join(mount.dir, name), { recursive: true, force: true });
});

function paths(): { log: string; filler: string } {
  assert.ok("dir" in mount);
  return { log: join(mount.dir, "logs", "node.log"), filler: join(mount.dir, "filler") };
}

async function fillDisk(filler: string): Promise<void> {
  await assert.rejects(writeFile(filler, Buffer.alloc(TMPFS_KIB * 1024, 1)), (e: unknown) => (e as NodeJS.ErrnoException).code === "ENOSPC");
}

/** Polls `check` until it holds; fails after `deadlineMs`. */
async function eventually(check: () => Promise<boolean> | boolean, what: string, deadlineMs = 5000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > deadlineMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const skip = () => ("skip" in mount ? mount.skip : false);

describe("node logger", () => {
  test("a log file on a full disk drops and counts lines, never throws, and resumes once space is freed", async (t) => {
    if (skip()) return t.skip(skip() as string);
    const { log, filler } = paths();
    const file = new LogFile(log, { pendingBytesMax: 4096, retryMs: 10 });
    t.after(() => file.close());
    const gaps: LogFileGap[] = [];
    file.onRecovered = (gap) => gaps.push(gap);
    file.write("before the disk filled up\n");
    await new Promise<void>((resolve) => file.flush(() => resolve()));
    await fillDisk(filler);
    for (let i = 0; i < 1000; i++) file.write(`line ${i} while the disk is full\n`);
    await eventually(() => file.failing, "a failed write");
    assert.ok(file.droppedLines > 0, "lines beyond the queue limit are dropped");
    assert.ok(file.writeErrors > 0);
    await rm(filler);
    await eventually(() => gaps.some((g) => g.code === "ENOSPC"), "the writer to notice the space");
    // The burst may overflow the queue before the first failed write: then two reports.
    assert.equal(gaps.reduce((sum, g) => sum + g.droppedLines, 0), file.droppedLines);
    file.write("after the space came back\n");
    await new Promise<void>((resolve) => file.flush(() => resolve()));
    file.close();
    const text = await readFile(log, "utf8");
    assert.ok(text.startsWith("before the disk filled up\n"));
    assert.ok(text.endsWith("after the space came back\n"));
    assert.ok(text.includes("line 0 while the disk is full\n"), "lines queued within the limit are written late, not lost");
  });

  test("the node logger keeps logging through a full disk and records how many lines were lost", async (t) => {
    if (skip()) return t.skip(skip() as string);
    const { log, filler } = paths();
    const logger = createNodeLogger({ logLevel: "info", logFile: log }, { pendingBytesMax: 64 * 1024, retryMs: 10 });
    const file = (logger as unknown as Record<symbol, LogFile>)[pino.symbols.streamSym]!;
    t.after(() => file.close());
    logger.info("started");
    await new Promise<void>((resolve) => file.flush(() => resolve()));
    await fillDisk(filler);
    for (let i = 0; i < 1000; i++) logger.info({ i }, "busy while the disk is full");
    // Space comes back only once a write has failed: freeing it at once raced the first write.
    await eventually(() => file.writeErrors > 0, "a write to fail on the full disk", 10000);
    await rm(filler);
    logger.info("sentinel");
    const written = async () => {
      const text = await readFile(log, "utf8");
      return text.includes("sentinel") && text.includes("log file writable again");
    };
    await eventually(written, "the sentinel and the gap note", 10000);
    const lines = (await readFile(log, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { msg: string; droppedLines?: number });
    assert.equal(lines[0]!.msg, "started");
    const gap = lines.find((l) => l.msg.startsWith("log file writable again"));
    assert.ok(gap && gap.droppedLines! > 0, "the gap is recorded in the log");
    assert.ok(file.writeErrors > 0, "writes failed while the disk was full");
  });
});
