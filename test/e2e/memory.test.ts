// Bounded memory with real node processes: a node whose in-memory windows (coco.memory) are
// tiny still serves receipts of old transactions (Merkle paths rebuilt from its ledger files),
// restarts by streaming its ledger, and catches a joining node up from its ledger files
// (entries far below its consensus window). Its seqno index keeps only the newest few dozen
// seqnos, so every old entry is found through its chunk's index file, and it keeps only the
// newest few signature seqnos, so an old receipt finds its signature in the ledger.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { verifyReceipt } from "../../src/client/index.js";
import type { CcfReceipt } from "../../src/merkle/index.js";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { Network, type NetworkNode } from "../helpers/network.js";

const SMALL_WINDOWS = { memory: { merkle_window_leaves: 16, consensus_window_entries: 8, consensus_window_size: "64KiB", historical_cache_size: "64KiB", ledger_index_entries: 32, signature_index_entries: 4 } };
/** Chunks of ~16 KiB (a few dozen transactions), so the seqno index pages old chunks out. */
const SMALL_CHUNKS = { chunk_size: "16KiB" };

async function write(node: NetworkNode, id: number): Promise<string> {
  const r = await node.process!.request("POST", "/app/log/private", { body: JSON.stringify({ id, msg: `message ${id}` }) });
  assert.equal(r.status, 200, r.text);
  return r.headers["x-ms-ccf-transaction-id"] as string;
}

/** Writes `count` transactions, 20 at a time; returns the last id. */
async function writeMany(node: NetworkNode, from: number, count: number): Promise<string> {
  let last = "";
  for (let i = 0; i < count; i += 20) {
    const ids = await Promise.all(Array.from({ length: Math.min(20, count - i) }, (_, k) => write(node, from + i + k)));
    last = ids[ids.length - 1]!;
  }
  return last;
}

async function memory(node: NetworkNode): Promise<{
  merkle: { flushed_below: number }; consensus_window: { compacted_seqno: number; entries: number }; ledger_index: { seqnos: number };
  signatures: { seqnos: number; exact_from: number }; heap_spaces: Record<string, { size: number; used: number }>; peak_allocated_heap_size: number;
}> {
  const r = await node.process!.request("GET", "/node/memory", { identity: "none" });
  assert.equal(r.status, 200, r.text);
  return r.json();
}

async function receipt(node: NetworkNode, txid: string): Promise<CcfReceipt> {
  const r = await node.process!.request("GET", `/app/receipt?transaction_id=${txid}`);
  assert.equal(r.status, 200, `receipt of ${txid}: ${r.text}`);
  return r.json() as CcfReceipt;
}

test("a historical receipt for a transaction older than the in-memory window verifies, before and after a restart", { timeout: 180_000 }, async () => {
  const ws = tempWorkspace("coco-memory-");
  const net = await Network.start(ws.dir, 1, { coco: SMALL_WINDOWS, ledger: SMALL_CHUNKS }).catch((e) => { ws.cleanup(); throw e; });
  try {
    const node = net.nodes[0]!;
    const old = await write(node, 1);
    const last = await writeMany(node, 2, 700);
    await node.process!.waitForStatus(last, "Committed", 30_000);
    const seqno = Number(old.split(".")[1]);
    const chunks = readdirSync(join(node.dir, "ledger")).filter((name) => /^ledger_\d+-\d+\.committed$/.test(name));
    assert.ok(chunks.length >= 10, `the ledger is in many committed chunks, most paged out of the index (${chunks.length})`);
    const before = await memory(node);
    // The main heap by space: the spaces' committed bytes make up heapTotal (CCF's peak field here).
    const spaces = Object.values(before.heap_spaces);
    assert.ok(before.heap_spaces["old_space"]!.used > 0 && before.heap_spaces["new_space"]!.size > 0, JSON.stringify(before.heap_spaces));
    // (Read a moment apart: a collection in between may resize the young generation.)
    const committed = spaces.reduce((sum, space) => sum + space.size, 0);
    assert.ok(Math.abs(committed - before.peak_allocated_heap_size) <= 16 * 2 ** 20, `spaces ${committed} against heapTotal ${before.peak_allocated_heap_size}`);
    assert.ok(spaces.every((space) => space.used <= space.size), JSON.stringify(before.heap_spaces));
    assert.ok(before.merkle.flushed_below > seqno + 256, `the tree flushed ${seqno}'s leaf (flushed below ${before.merkle.flushed_below})`);
    // Twice signature_index_entries (4) at most; the signature covering the old write was dropped.
    assert.ok(before.signatures.seqnos >= 1 && before.signatures.seqnos < 2 * 4, `the node keeps ${before.signatures.seqnos} signature seqnos`);
    assert.ok(before.signatures.exact_from > seqno + 1, `the signature after ${seqno} left memory (signature seqnos exact from ${before.signatures.exact_from})`);
    assert.ok(before.consensus_window.compacted_seqno > seqno, `consensus dropped ${seqno} from memory (compacted to ${before.consensus_window.compacted_seqno})`);
    assert.ok(before.consensus_window.entries <= 8 * 1.25 + 200, `consensus holds ${before.consensus_window.entries} entries`);
    // Twice ledger_index_entries (32), plus the chunk that was open when the last page-out ran.
    assert.ok(before.ledger_index.seqnos > 0 && before.ledger_index.seqnos <= 2 * 32 + 100, `the ledger's index holds ${before.ledger_index.seqnos} seqnos of ${seqno + 700}`);
    const serviceCertPem = readFileSync(join(ws.dir, "service_cert.pem"), "utf8");
    const verified = verifyReceipt(await receipt(node, old), serviceCertPem);
    assert.equal(`${verified.txId.view}.${verified.txId.seqno}`, old);
    // A recent transaction's path still comes from memory; both verify against the same service.
    verifyReceipt(await receipt(node, last), serviceCertPem);

    // Restart: the ledger is streamed back, the tree flushed as it goes; the old receipt still verifies.
    await node.process!.stop();
    node.process = await NodeProcess.nodeStart(node.dir, node.configFile);
    const after = await write(node, 10_000);
    await node.process.waitForStatus(after, "Committed", 30_000);
    assert.ok((await memory(node)).merkle.flushed_below > seqno, "the restarted node flushed its tree while replaying");
    const again = verifyReceipt(await receipt(node, old), serviceCertPem);
    assert.equal(`${again.txId.view}.${again.txId.seqno}`, old);
    const r = await node.process.request("GET", "/app/log/private?id=1");
    assert.equal(r.json().msg, "message 1");
  } finally {
    await net.stop();
    ws.cleanup();
  }
});

test("a node joining long after the consensus window moved on is caught up from the primary's ledger files", { timeout: 180_000 }, async () => {
  const ws = tempWorkspace("coco-memory-join-");
  const net = await Network.start(ws.dir, 1, { coco: SMALL_WINDOWS, ledger: SMALL_CHUNKS }).catch((e) => { ws.cleanup(); throw e; });
  try {
    const primary = net.nodes[0]!;
    const last = await writeMany(primary, 1, 400);
    await primary.process!.waitForStatus(last, "Committed", 30_000);
    assert.ok((await memory(primary)).consensus_window.compacted_seqno > 300, "the primary no longer holds the early entries in memory");
    const joiner = await net.join({ coco: SMALL_WINDOWS });
    await net.waitForConfiguration(2, 60_000);
    await joiner.process!.waitForStatus(last, "Committed", 60_000);
    for (const id of [1, 200, 400]) {
      const r = await joiner.process!.request("GET", `/app/log/private?id=${id}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().msg, `message ${id}`);
    }
  } finally {
    await net.stop();
    ws.cleanup();
  }
});
