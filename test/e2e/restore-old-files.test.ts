// End-to-end attack from issue 14: the host stops a node, keeps a copy of its workspace
// (ledger, consensus_state.json, sealed secrets), lets it run on, then puts the old copy back
// and restarts it. The node then writes new transactions at the (view, seqno) pairs it already
// used in the run the host threw away. If it encrypted them under the same key and IV, the xor
// of two ciphertexts would be the xor of the two plaintexts (AES-GCM is CTR mode underneath):
// one known plaintext gives away the other, and the GCM hash key with it. Its commit evidence
// would also be the one the discarded run may already have revealed in receipts.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { LedgerSecrets, decryptPrivate, readLedgerDirectory, type DecodedEntry } from "../../src/ledger/index.js";
import { loadConfigFile } from "../../src/node/config.js";
import { loadOrCreateIdentity } from "../../src/node/identity.js";

const ws = tempWorkspace("coco-restore-");
const copies = mkdtempSync(join(tmpdir(), "coco-restore-copies-"));
let node: NodeProcess | undefined;

after(async () => {
  await node?.stop();
  ws.cleanup();
  rmSync(copies, { recursive: true, force: true });
});

/** Writes private messages id 1..count (all of one length, so the two runs' entries line up byte for byte). */
async function writePrivate(n: NodeProcess, fill: string, count: number): Promise<void> {
  let last = "";
  for (let id = 1; id <= count; id++) {
    const r = await n.request("POST", "/app/log/private", { body: JSON.stringify({ id, msg: `${fill.repeat(40)}-${id}` }) });
    assert.equal(r.status, 200, r.text);
    last = String(r.headers["x-ms-ccf-transaction-id"]);
  }
  await n.waitForStatus(last);
}

async function entriesWithPrivateDomain(ledgerDirectory: string): Promise<Map<string, DecodedEntry>> {
  const out = new Map<string, DecodedEntry>();
  for await (const { entry } of readLedgerDirectory(ledgerDirectory)) {
    if (entry.privateCiphertext.length > 0) out.set(`${entry.view}.${entry.seqno}`, entry);
  }
  return out;
}

function xor(a: Buffer, b: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

test("a node restarted from restored old files never reuses a key and IV for different plaintexts", { timeout: 180_000 }, async () => {
  // Run 1: a service with some private data; the host then keeps a copy of the whole workspace.
  node = await NodeProcess.sandbox(ws.dir);
  await writePrivate(node, "a", 3);
  assert.equal(await node.stop(), 0);
  node = undefined;
  const kept = join(copies, "kept");
  cpSync(ws.dir, kept, { recursive: true });

  // Run 2: the node goes on and writes private data B (restarted from its disk, not recovered).
  node = await NodeProcess.sandbox(ws.dir, ["--restart-from-disk"]);
  await writePrivate(node, "B", 6);
  assert.equal(await node.stop(), 0);
  node = undefined;
  const run2Ledger = join(copies, "run2-ledger");
  cpSync(join(ws.dir, "ledger"), run2Ledger, { recursive: true });

  // The host restores the old copy (consensus_state.json included) and restarts: run 3 writes C
  // at the same view and seqnos as run 2 wrote B.
  rmSync(ws.dir, { recursive: true, force: true });
  cpSync(kept, ws.dir, { recursive: true });
  node = await NodeProcess.sandbox(ws.dir, ["--restart-from-disk"]);
  await writePrivate(node, "C", 6);
  assert.equal(await node.stop(), 0);
  node = undefined;

  // What an attacker holding both ledgers sees, checked against the plaintexts (read with the
  // node's own sealed secrets; both runs have the same ones, there was no rekey).
  const identity = await loadOrCreateIdentity(loadConfigFile(join(ws.dir, "config.json")), true);
  const secrets = new LedgerSecrets(identity.ledgerSecrets);
  const run2 = await entriesWithPrivateDomain(run2Ledger);
  const run3 = await entriesWithPrivateDomain(join(ws.dir, "ledger"));
  let sameTxIdDifferentPlaintext = 0;
  let pairs = 0;
  for (const [txId, b] of run2) {
    const c = run3.get(txId);
    // Entries of run 1 are in both copies, byte for byte: the same write, not a second one.
    if (c === undefined || c.bytes.equals(b.bytes)) continue;
    pairs++;
    const plainB = decryptPrivate(b, secrets.forSeqno(b.seqno));
    const plainC = decryptPrivate(c, secrets.forSeqno(c.seqno));
    if (!plainB.equals(plainC)) sameTxIdDifferentPlaintext++;
    const length = Math.min(plainB.length, plainC.length);
    // Same key and IV would make these equal (for equal plaintexts: equal ciphertexts).
    assert.notDeepEqual(xor(b.privateCiphertext, c.privateCiphertext, length), xor(plainB, plainC, length),
      `transaction ${txId} of the restored run reuses the keystream of the discarded run`);
    // Run 2 committed B, so its commit evidence may be out (receipts); C's must not be derivable from it.
    assert.notDeepEqual(c.commitEvidenceDigest, b.commitEvidenceDigest, `transaction ${txId} of the restored run has the discarded run's commit evidence`);
  }
  // The restore must really have replayed (view, seqno) pairs with other data, or this proves nothing.
  assert.ok(sameTxIdDifferentPlaintext >= 3, `expected the restored run to rewrite transaction ids of the discarded run with other data (${pairs} ids written twice, ${sameTxIdDifferentPlaintext} with other plaintext)`);
});
