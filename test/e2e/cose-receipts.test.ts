// End-to-end: CCF 6 COSE receipts from a real node. Signature transactions carry the service's
// COSE signature (public:ccf.internal.cose_signatures); GET /app/log/public/cose_receipt
// answers a COSE_Sign1 receipt that an independent COSE implementation and `coco receipt
// verify` both accept, and that neither accepts once changed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { independentlyVerifyCoseReceipt } from "../helpers/independent-cose-receipt.js";

const ws = tempWorkspace("coco-cose-receipts-");
let node: NodeProcess;
let serviceCertFile = "";

before(async () => {
  node = await NodeProcess.sandbox(ws.dir);
  serviceCertFile = join(ws.dir, "service_cert.pem");
});
after(async () => {
  await node?.stop();
  ws.cleanup();
});

async function committedWrite(path: string, id: number, msg: string): Promise<string> {
  const w = await node.request("POST", path, { body: JSON.stringify({ id, msg }) });
  assert.equal(w.status, 200, w.text);
  const txid = String(w.headers["x-ms-ccf-transaction-id"]);
  await node.waitForStatus(txid);
  return txid;
}

/** The receipt needs a committed signature after the transaction: poll until the node has one (bounded). */
async function coseReceipt(txid: string): Promise<Buffer> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await node.request("GET", "/app/log/public/cose_receipt", { headers: { "x-ms-ccf-transaction-id": txid } });
    if (r.status === 200) {
      assert.equal(r.headers["content-type"], "application/cose");
      return r.bytes;
    }
    assert.equal(r.status, 404, r.text);
    if (Date.now() > deadline) assert.fail(`no COSE receipt for ${txid} within 20 s: ${r.text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function verifyWithCli(file: string, ...extra: string[]) {
  return spawnSync(process.execPath, [CLI, "receipt", "verify", file, "--service-cert", serviceCertFile, ...extra], { encoding: "utf8" });
}

test("a public write's COSE receipt verifies with an independent COSE implementation and names the transaction", async () => {
  const txid = await committedWrite("/app/log/public", 1, "public message");
  const receipt = await coseReceipt(txid);
  const result = independentlyVerifyCoseReceipt(receipt, readFileSync(serviceCertFile, "utf8"));
  assert.equal(result.commitEvidence.split(":")[1], txid);
  const [view, seqno] = txid.split(".").map(Number) as [number, number];
  const [signedView, signedSeqno] = result.txid.split(".").map(Number) as [number, number];
  assert.ok(signedSeqno > seqno && signedView >= view, `signed by ${result.txid}, after ${txid}`);
  assert.ok(result.claimsDigest.equals(Buffer.alloc(32)), "no claims: the zero digest");
});

test("a private write has a COSE receipt too, and coco receipt verify checks it and the claimed transaction", async () => {
  const txid = await committedWrite("/app/log/private", 2, "private message");
  const file = join(ws.dir, "receipt.cose");
  writeFileSync(file, await coseReceipt(txid));
  const ok = verifyWithCli(file, "--transaction-id", txid, "--json");
  assert.equal(ok.status, 0, ok.stderr + ok.stdout);
  const report = JSON.parse(ok.stdout);
  assert.equal(report.valid, true);
  assert.equal(report.format, "cose");
  assert.equal(report.transaction_id, txid);
  const wrongTx = verifyWithCli(file, "--transaction-id", "1.1");
  assert.equal(wrongTx.status, 1);
  assert.match(wrongTx.stderr, /NOT valid.*proves transaction/);
  const wrongService = spawnSync(process.execPath, [CLI, "receipt", "verify", file, "--service-cert", join(ws.dir, "member0_cert.pem")], { encoding: "utf8" });
  assert.equal(wrongService.status, 1);
  assert.match(wrongService.stderr, /kid does not name this service key/);
});

test("a COSE receipt with any byte of its proof changed is refused by both verifiers", async () => {
  const txid = await committedWrite("/app/log/public", 3, "third");
  const receipt = await coseReceipt(txid);
  const serviceCert = readFileSync(serviceCertFile, "utf8");
  const file = join(ws.dir, "tampered.cose");
  // The commit evidence text sits inside the proof: flip one of its hex characters.
  const at = receipt.indexOf(Buffer.from(`ce:${txid}:`)) + `ce:${txid}:`.length;
  assert.ok(at > 20, "the receipt holds the commit evidence");
  const tampered = Buffer.from(receipt);
  tampered[at] = tampered[at] === 0x30 ? 0x31 : 0x30;
  assert.throws(() => independentlyVerifyCoseReceipt(tampered, serviceCert), /does not verify/);
  writeFileSync(file, tampered);
  const bad = verifyWithCli(file);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /NOT valid/);
});

test("a transaction that is not committed has no COSE receipt yet; a missing header is CCF's 400", async () => {
  const missing = await node.request("GET", "/app/log/public/cose_receipt");
  assert.equal(missing.status, 400);
  assert.equal(missing.json().error.code, "MissingRequiredHeader");
  const unknown = await node.request("GET", "/app/log/public/cose_receipt", { headers: { "x-ms-ccf-transaction-id": "2.999999" } });
  assert.equal(unknown.status, 404);
});
