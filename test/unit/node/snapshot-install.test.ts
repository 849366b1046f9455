// A backup the primary cannot catch up installs the primary's snapshot: the installer fetches
// one at a time, no more often than its retry interval, records the install and asks for a
// restart; at the next start the pending install moves the old ledger aside (never deletes it),
// and a marker that no longer applies is dropped, naming why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { rename as renameAsync } from "node:fs/promises";
import { INSTALL_MARKER_FILE, SnapshotInstaller, applyPendingInstall, type PendingInstall } from "../../../src/node/snapshot-install.js";
import type { fetchServiceSnapshot } from "../../../src/node/snapshot-fetch.js";

type FetchArgs = Parameters<typeof fetchServiceSnapshot>[0];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function workspace() {
  const dir = mkdtempSync(join(tmpdir(), "coco-install-"));
  mkdirSync(join(dir, "snapshots"));
  mkdirSync(join(dir, "ledger"));
  return dir;
}

test("the installer fetches the primary's snapshot newer than what it lacks, records it, and asks for one restart", async () => {
  const dir = workspace();
  try {
    const calls: FetchArgs[] = [];
    const restarts: string[] = [];
    const logs: string[] = [];
    let clock = 0;
    let answer: { name: string; seqno: number; evidenceSeqno: number; committed: boolean } | undefined;
    const installer = new SnapshotInstaller({
      workspace: dir, directory: join(dir, "snapshots"), durable: false, serviceCertPem: "-",
      logger: { info: (_o, m) => void logs.push(m), warn: (_o, m) => void logs.push(m) },
      rpcAddressOf: (id) => (id === "p" ? "127.0.0.1:4443" : undefined),
      restart: (reason) => void restarts.push(reason), retryMs: 1000, now: () => clock,
      fetch: (async (args: FetchArgs) => { calls.push(args); return answer; }) as unknown as typeof fetchServiceSnapshot,
    });
    // No address known for this primary: nothing fetched, said why.
    installer.onRequired({ primary: "q", index: 100 });
    assert.equal(calls.length, 0);
    assert.ok(logs.some((m) => /RPC address is unknown/.test(m)));
    // The primary has nothing at or after 100 yet: asked for newer than 99, no restart.
    clock += 1000;
    installer.onRequired({ primary: "p", index: 100 });
    await sleep(10);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.newerThan, 99);
    assert.deepEqual(restarts, []);
    // Within the retry interval: nothing, however often consensus repeats it.
    for (let i = 0; i < 5; i++) installer.onRequired({ primary: "p", index: 100 });
    assert.equal(calls.length, 1);
    // Later, a snapshot: recorded, then one restart asked.
    clock += 1000;
    answer = { name: "snapshot_140_143.committed", seqno: 140, evidenceSeqno: 143, committed: true };
    installer.onRequired({ primary: "p", index: 100 });
    for (let i = 0; i < 100 && restarts.length === 0; i++) await sleep(5);
    assert.deepEqual(restarts, ["install-snapshot"]);
    const pending = JSON.parse(readFileSync(join(dir, INSTALL_MARKER_FILE), "utf8")) as PendingInstall;
    assert.equal(pending.name, "snapshot_140_143.committed");
    assert.equal(pending.seqno, 140);
    assert.equal(pending.required_index, 100);
    clock += 10_000;
    installer.onRequired({ primary: "p", index: 100 });
    assert.equal(calls.length, 2, "nothing more once the restart is asked");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a pending install moves the old ledger aside whole and is done once; a marker that no longer applies is dropped", async () => {
  const dir = workspace();
  const logs: string[] = [];
  const apply = (last: number, rename?: (from: string, to: string) => Promise<void>) => applyPendingInstall({
    workspace: dir, ledgerDirectory: join(dir, "ledger"), snapshotDirectory: join(dir, "snapshots"),
    logger: { info: (_o, m) => void logs.push(m), warn: (_o, m) => void logs.push(m) }, ledgerLastSeqno: async () => last,
    ...(rename !== undefined ? { rename } : {}),
  });
  const mark = (pending: object | string) => writeFileSync(join(dir, INSTALL_MARKER_FILE), typeof pending === "string" ? pending : JSON.stringify(pending));
  const pending = { name: "snapshot_140_143.committed", seqno: 140, primary: "p", required_index: 100, requested_at: "" };
  try {
    assert.equal(await apply(10), undefined, "no marker: nothing to do");
    // Its snapshot is gone (pruned, or the host removed it): dropped.
    mark(pending);
    assert.equal(await apply(10), undefined);
    assert.ok(!existsSync(join(dir, INSTALL_MARKER_FILE)));
    assert.ok(logs.some((m) => m === "pending snapshot install not applied"));
    // The ledger already reaches past the snapshot (the node caught up another way): dropped.
    writeFileSync(join(dir, "snapshots", pending.name), "x");
    mark(pending);
    assert.equal(await apply(150), undefined);
    assert.ok(!existsSync(join(dir, INSTALL_MARKER_FILE)));
    // Damaged: dropped.
    mark("{ not json");
    assert.equal(await apply(10), undefined);
    // Applied: the old ledger (every file in it) goes aside, an empty ledger directory is left.
    writeFileSync(join(dir, "ledger", "ledger_1-50.committed"), "old");
    writeFileSync(join(dir, "ledger", "ledger_51"), "old tail");
    mark(pending);
    const done = await apply(60);
    assert.equal(done?.seqno, 140);
    assert.equal(done?.archivedTo, join(dir, "ledger.before-snapshot-140"));
    assert.deepEqual(readdirSync(join(dir, "ledger")), []);
    assert.deepEqual(readdirSync(done!.archivedTo).sort(), ["ledger_1-50.committed", "ledger_51"]);
    assert.ok(!existsSync(join(dir, INSTALL_MARKER_FILE)), "done once");
    // A second install at the same seqno keeps the first archive.
    writeFileSync(join(dir, "ledger", "ledger_1"), "again");
    mark(pending);
    const again = await apply(1);
    assert.notEqual(again?.archivedTo, done!.archivedTo);
    assert.deepEqual(readdirSync(done!.archivedTo).sort(), ["ledger_1-50.committed", "ledger_51"]);
    // The ledger directory is a mount point (renaming it fails with EBUSY): its files move into a
    // directory inside it that no ledger file name matches, and the ledger directory is left empty of them.
    writeFileSync(join(dir, "ledger", "ledger_1-9.committed"), "old");
    writeFileSync(join(dir, "ledger", "chunk_index_1-9"), "idx");
    mark(pending);
    const mounted = await apply(9, async (from, to) => {
      if (from === join(dir, "ledger")) throw Object.assign(new Error("resource busy"), { code: "EBUSY" });
      await renameAsync(from, to);
    });
    assert.equal(mounted?.archivedTo, join(dir, "ledger", "before-snapshot-140"));
    assert.deepEqual(readdirSync(join(dir, "ledger")), ["before-snapshot-140"]);
    assert.deepEqual(readdirSync(mounted!.archivedTo).sort(), ["chunk_index_1-9", "ledger_1-9.committed"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
