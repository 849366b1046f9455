// A backup fetches the primary's newest committed snapshot once its own commit point is tx_count
// past its newest one: only as a backup, one fetch at a time, again after a failure or when the
// primary had nothing newer, and it keeps no more than keep_max committed snapshots.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { SnapshotFollower } from "../../../src/node/snapshot-follower.js";
import type { fetchServiceSnapshot } from "../../../src/node/snapshot-fetch.js";
import { MERKLE_RETAINED_FILE, readRetainedHashes } from "../../../src/node/merkle-retained-file.js";
import { MerkleTree } from "../../../src/merkle/index.js";

const quiet = { info() {}, warn() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls `check` until it holds (the follower's fetch, prune and log run on later turns). */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
type FetchArgs = Parameters<typeof fetchServiceSnapshot>[0];

/** What an engine whose tree holds every leaf retains of the first `seqno` (here: 2 per leaf). */
function retainedAt(seqno: number) {
  const tree = new MerkleTree(4);
  for (let i = 0; i < seqno; i++) tree.append(Buffer.alloc(32, i % 251));
  return { size: seqno, retainHeight: 4, ...tree.retainedAt(seqno) };
}

function follower(dir: string, fetch: (args: FetchArgs) => Promise<{ seqno: number } | undefined>, state: { primary: boolean; known: boolean }, logs: string[] = []) {
  return new SnapshotFollower({
    directory: dir, txCount: 100, keepMax: 2, durable: false, serviceCertPem: "-", retryMs: 30,
    retained: { directory: join(dir, "ledger"), at: retainedAt },
    isPrimary: () => state.primary,
    primary: () => (state.known ? { nodeId: "ab".repeat(32), rpcAddress: "127.0.0.1:4443" } : undefined),
    logger: { info: (_o: object, msg: string) => void logs.push(msg), warn: (_o: object, msg: string) => void logs.push(msg) },
    fetch: fetch as unknown as typeof fetchServiceSnapshot,
  }, 50);
}

test("a backup fetches once its commit is tx_count past its newest snapshot, asking for newer ones only, and prunes to keep_max", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-follow-"));
  try {
    for (const name of ["snapshot_10_12.committed", "snapshot_50_53.committed"]) writeFileSync(join(dir, name), "x");
    mkdirSync(join(dir, "ledger"));
    assert.equal(await SnapshotFollower.newestLocal(dir), 50);
    const calls: FetchArgs[] = [];
    const logs: string[] = [];
    const state = { primary: false, known: true };
    const f = follower(dir, async (args) => {
      calls.push(args);
      writeFileSync(join(dir, "snapshot_180_183.committed"), "x");
      return { seqno: 180 };
    }, state, logs);
    f.onCommit(149);
    assert.equal(calls.length, 0, "less than tx_count past its newest snapshot");
    state.primary = true;
    f.onCommit(150);
    assert.equal(calls.length, 0, "the primary takes its own snapshots");
    state.primary = false;
    f.onCommit(150);
    f.onCommit(210);
    assert.equal(calls.length, 1, "one fetch at a time");
    assert.deepEqual([calls[0]!.target, calls[0]!.newerThan], [{ host: "127.0.0.1", port: 4443 }, 50]);
    await until(() => logs.some((m) => /backup kept the primary's newest snapshot/.test(m)), "the fetch to be kept");
    assert.equal(f.newestSeqno, 180);
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith("snapshot_")).sort(), ["snapshot_180_183.committed", "snapshot_50_53.committed"], "keep_max 2: the oldest went");
    const kept = await readRetainedHashes(join(dir, "ledger"));
    assert.ok(kept !== undefined && !("refused" in kept) && kept.size === 180, `the Merkle hashes before the kept snapshot are kept beside the ledger (${MERKLE_RETAINED_FILE})`);
    f.onCommit(270);
    assert.equal(calls.length, 1, "not tx_count past the new one yet");
    f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("after a failure, an unknown primary or nothing newer, it asks again by itself, even if nothing commits", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-follow-"));
  try {
    const answers: (() => Promise<{ seqno: number } | undefined>)[] = [
      async () => { throw new Error("ECONNREFUSED"); },
      async () => undefined,
      async () => ({ seqno: 300 }),
    ];
    let calls = 0;
    const logs: string[] = [];
    const state = { primary: false, known: false };
    const f = follower(dir, () => answers[calls++]!(), state, logs);
    f.onCommit(400);
    assert.equal(calls, 0, "no primary known (an election)");
    state.known = true;
    await until(() => logs.some((m) => /backup kept the primary's newest snapshot/.test(m)), `the snapshot fetched in the end (${calls} calls)`);
    assert.equal(f.newestSeqno, 300);
    assert.equal(calls, 3, "a failure, then nothing newer, then the snapshot");
    assert.ok(logs.some((m) => /could not fetch the primary's snapshot/.test(m)));
    f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
