// End-to-end: a real node process on loopback. Write, read back, wait for Committed, fetch and
// verify a receipt (in-process and with the CLI), restart from the ledger, survive SIGKILL, and
// keep private messages out of every file in the workspace.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { NodeProcess, tempWorkspace, CLI } from "../helpers/node-process.js";
import { GovernanceClient, verifyReceipt } from "../../src/client/index.js";
import { generateKeyPairSync } from "node:crypto";
import { createIdentityCertificate } from "../../src/crypto/index.js";
import { decryptShare } from "../../src/node/recovery-shares.js";

const ws = tempWorkspace();
let node: NodeProcess;

before(async () => {
  node = await NodeProcess.sandbox(ws.dir);
});
after(async () => {
  await node?.stop();
  ws.cleanup();
});

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

const SECRET_MSG = "the-launch-code-is-0451-" + Math.random().toString(36).slice(2);
const PUBLIC_MSG = "public-announcement-" + Math.random().toString(36).slice(2);
let privateTxId = "";

test("a private write answers true with a transaction id and reads back", async () => {
  const w = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 7, msg: SECRET_MSG }) });
  assert.equal(w.status, 200, w.text);
  assert.equal(w.json(), true);
  privateTxId = String(w.headers["x-ms-ccf-transaction-id"]);
  assert.match(privateTxId, /^\d+\.\d+$/);
  const r = await node.request("GET", "/app/log/private?id=7");
  assert.equal(r.status, 200);
  assert.deepEqual(r.json(), { msg: SECRET_MSG });
});

test("a public write reads back and the counts follow writes and deletes", async () => {
  const w = await node.request("POST", "/app/log/public", { body: JSON.stringify({ id: 1, msg: PUBLIC_MSG }) });
  assert.equal(w.status, 200, w.text);
  assert.deepEqual((await node.request("GET", "/app/log/public?id=1")).json(), { msg: PUBLIC_MSG });
  await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 8, msg: "eight" }) });
  assert.equal((await node.request("GET", "/app/log/private/count")).json(), 2);
  assert.equal((await node.request("DELETE", "/app/log/private?id=8")).json(), true);
  assert.equal((await node.request("DELETE", "/app/log/private?id=8")).json(), false);
  assert.equal((await node.request("GET", "/app/log/private/count")).json(), 1);
  const missing = await node.request("GET", "/app/log/private?id=8");
  assert.equal(missing.status, 404);
  assert.equal(missing.json().error.code, "ResourceNotFound");
});

test("the write becomes Committed and its receipt verifies offline", async () => {
  await node.waitForStatus(privateTxId);
  const r = await node.request("GET", `/app/receipt?transaction_id=${privateTxId}`);
  assert.equal(r.status, 200, r.text);
  const receipt = r.json();
  for (const field of ["cert", "node_id", "signature", "proof", "leaf_components"]) assert.ok(field in receipt, field);
  const serviceCert = readFileSync(join(ws.dir, "service_cert.pem"), "utf8");
  verifyReceipt(receipt, serviceCert);
  assert.equal(receipt.leaf_components.commit_evidence.split(":")[1], privateTxId);

  const file = join(ws.dir, "receipt.json");
  writeFileSync(file, r.text);
  const ok = spawnSync(process.execPath, [CLI, "receipt", "verify", file, "--service-cert", join(ws.dir, "service_cert.pem")], { encoding: "utf8" });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /Receipt is valid/);

  const tampered = { ...receipt, leaf_components: { ...receipt.leaf_components, write_set_digest: "00".repeat(32) } };
  writeFileSync(file, JSON.stringify(tampered));
  const bad = spawnSync(process.execPath, [CLI, "receipt", "verify", file, "--service-cert", join(ws.dir, "service_cert.pem")], { encoding: "utf8" });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /NOT valid/);
});

test("transaction status distinguishes Unknown and Invalid ids", async () => {
  await node.waitForStatus(privateTxId);
  const unknown = await node.request("GET", "/node/tx?transaction_id=99.999999", { identity: "none" });
  assert.equal(unknown.json().status, "Unknown");
  const [, seqno] = privateTxId.split(".");
  const wrongView = await node.request("GET", `/node/tx?transaction_id=${Number(privateTxId.split(".")[0]) + 5}.${seqno}`, { identity: "none" });
  // That seqno is committed in another view, so this id can never be committed.
  assert.equal(wrongView.json().status, "Invalid");
  const bad = await node.request("GET", "/node/tx?transaction_id=banana", { identity: "none" });
  assert.equal(bad.status, 400);
  assert.equal(bad.json().error.code, "InvalidQueryParameterValue");
});

test("node endpoints describe the service", async () => {
  const state = (await node.request("GET", "/node/state", { identity: "none" })).json();
  assert.equal(state.state, "PartOfNetwork");
  const network = (await node.request("GET", "/node/network", { identity: "none" })).json();
  assert.equal(network.service_certificate.trim(), readFileSync(join(ws.dir, "service_cert.pem"), "utf8").trim());
  assert.equal(network.service_status, "Open");
  const version = (await node.request("GET", "/node/version", { identity: "none" })).json();
  assert.match(version.ccf_version, /coco/);
  const commit = (await node.request("GET", "/node/commit", { identity: "none" })).json();
  assert.match(commit.transaction_id, /^\d+\.\d+$/);
});

test("GET /node/api and GET /gov/api are OpenAPI 3 documents of every routed node and gov endpoint", async () => {
  const nodeApi = await node.request("GET", "/node/api", { identity: "none" });
  assert.equal(nodeApi.status, 200, nodeApi.text);
  const nodeDoc = nodeApi.json();
  assert.equal(nodeDoc.openapi, "3.0.0");
  assert.equal(nodeDoc.info.title, "CCF Public Node API");
  for (const path of ["/node/state", "/node/tx", "/node/network/nodes/{nodeId}", "/node/quotes/self", "/node/api"]) {
    assert.ok(nodeDoc.paths[path]?.get, `/node/api describes GET ${path}`);
  }
  assert.ok(Object.keys(nodeDoc.paths).every((p: string) => p.startsWith("/node/")));
  const govApi = await node.request("GET", "/gov/api?api-version=2024-07-01", { identity: "none" });
  assert.equal(govApi.status, 200, govApi.text);
  const govDoc = govApi.json();
  assert.ok(govDoc.paths["/gov/members/proposals:create"]?.post);
  assert.ok(govDoc.paths["/gov/service/info"]?.get);
  assert.ok(Object.keys(govDoc.paths).every((p: string) => p.startsWith("/gov/")));
});

test("the private message never reaches disk in plaintext; the public one does", async () => {
  await node.waitForStatus(privateTxId);
  let foundPublic = false;
  for (const file of filesUnder(ws.dir)) {
    const bytes = readFileSync(file);
    assert.equal(bytes.indexOf(SECRET_MSG), -1, `private message found in plaintext in ${file}`);
    if (bytes.indexOf(PUBLIC_MSG) !== -1) foundPublic = true;
  }
  assert.ok(foundPublic, "the public message should be in the ledger in plaintext (sanity check of the scan)");
});

test("a clean restart rebuilds every message from the ledger", async () => {
  const w = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 9, msg: "before restart" }) });
  const txid = String(w.headers["x-ms-ccf-transaction-id"]);
  assert.equal(await node.stop("SIGINT"), 0);
  node = await NodeProcess.sandbox(ws.dir);
  assert.deepEqual((await node.request("GET", "/app/log/private?id=7")).json(), { msg: SECRET_MSG });
  assert.deepEqual((await node.request("GET", "/app/log/private?id=9")).json(), { msg: "before restart" });
  assert.deepEqual((await node.request("GET", "/app/log/public?id=1")).json(), { msg: PUBLIC_MSG });
  assert.equal((await node.request("GET", `/node/tx?transaction_id=${txid}`, { identity: "none" })).json().status, "Committed");
  const receipt = await node.request("GET", `/app/receipt?transaction_id=${privateTxId}`);
  assert.equal(receipt.status, 200, receipt.text);
  verifyReceipt(receipt.json(), readFileSync(join(ws.dir, "service_cert.pem"), "utf8"));
});

test("a trigger_ledger_rekey proposal rotates the ledger secret; old and new entries stay readable and encrypted", async () => {
  const client = new GovernanceClient({
    url: `https://127.0.0.1:${node.port}`,
    serviceCertPem: readFileSync(join(ws.dir, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8"),
  });
  try {
    let proposal = await client.propose({ actions: [{ name: "trigger_ledger_rekey" }] });
    if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
    assert.equal(proposal.proposalState, "Accepted", JSON.stringify(proposal));
  } finally {
    await client.close();
  }
  const secret = "after-rekey-" + Math.random().toString(36).slice(2);
  const w = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 77, msg: secret }) });
  await node.waitForStatus(String(w.headers["x-ms-ccf-transaction-id"]));
  assert.match(readFileSync(join(ws.dir, "node.log"), "utf8"), /ledger secret rotated/);
  await node.stop("SIGINT");
  node = await NodeProcess.sandbox(ws.dir);
  assert.deepEqual((await node.request("GET", "/app/log/private?id=77")).json(), { msg: secret });
  assert.deepEqual((await node.request("GET", "/app/log/private?id=7")).json(), { msg: SECRET_MSG });
  for (const file of filesUnder(ws.dir)) assert.equal(readFileSync(file).indexOf(secret), -1, `plaintext in ${file}`);
});

test("a recovery member gets an encrypted share that opens with its key, after set_recovery_threshold", async () => {
  const keys = generateKeyPairSync("ec", { namedCurve: "P-384" });
  const identityKeys = {
    privateKeyPem: keys.privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicKeyPem: keys.publicKey.export({ format: "pem", type: "spki" }).toString(),
  };
  const member1Cert = await createIdentityCertificate(identityKeys, "member1");
  const enc = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const encPub = enc.publicKey.export({ format: "pem", type: "spki" }).toString();
  const encPriv = enc.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  const base = { url: `https://127.0.0.1:${node.port}`, serviceCertPem: readFileSync(join(ws.dir, "service_cert.pem"), "utf8") };
  const member0 = new GovernanceClient({ ...base, memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"), memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8") });
  const member1 = new GovernanceClient({ ...base, memberCertPem: member1Cert, memberKeyPem: identityKeys.privateKeyPem });
  try {
    let p = await member0.propose({ actions: [{ name: "set_member", args: { cert: member1Cert, encryption_pub_key: encPub } }] });
    if (p.proposalState === "Open") p = await member0.accept(p.proposalId);
    assert.equal(p.proposalState, "Accepted", JSON.stringify(p));
    await member1.ack();
    p = await member0.propose({ actions: [{ name: "set_recovery_threshold", args: { recovery_threshold: 1 } }] });
    if (p.proposalState === "Open") p = await member0.accept(p.proposalId);
    if (p.proposalState === "Open") p = await member1.accept(p.proposalId);
    assert.equal(p.proposalState, "Accepted", JSON.stringify(p));
    let share: { encryptedShare: string } | undefined;
    for (let i = 0; i < 100 && share === undefined; i++) {
      const r = await node.request("GET", `/gov/recovery/encrypted-shares/${member1.memberId}`, { identity: "none" });
      if (r.status === 200) share = r.json();
      else await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(share, "member1's recovery share was issued");
    const raw = (await node.request("GET", "/gov/service/info", { identity: "none" })).status;
    assert.equal(raw, 200);
    const decrypted = decryptShare(share!.encryptedShare, encPriv);
    assert.equal(decrypted.length, 32);
    // member1 leaves again, so that member0 alone can recover the sandbox (later tests restart it).
    p = await member0.propose({ actions: [{ name: "remove_member", args: { member_id: member1.memberId } }] });
    if (p.proposalState === "Open") p = await member0.accept(p.proposalId);
    if (p.proposalState === "Open") p = await member1.accept(p.proposalId);
    assert.equal(p.proposalState, "Accepted", JSON.stringify(p));
    if (p.transactionId) await member0.waitForCommit(p.transactionId);
  } finally {
    await member0.close();
    await member1.close();
  }
});

test("SIGKILL loses no committed transaction", async () => {
  const ids: string[] = [];
  for (let i = 0; i < 200; i++) {
    const w = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1000 + i, msg: `crash-${i}` }) });
    ids.push(String(w.headers["x-ms-ccf-transaction-id"]));
  }
  await node.waitForStatus(ids[ids.length - 1]!);
  await node.stop("SIGKILL");
  node = await NodeProcess.sandbox(ws.dir);
  for (let i = 0; i < 200; i += 17) {
    assert.deepEqual((await node.request("GET", `/app/log/private?id=${1000 + i}`)).json(), { msg: `crash-${i}` });
  }
  assert.equal((await node.request("GET", `/node/tx?transaction_id=${ids[199]}`, { identity: "none" })).json().status, "Committed");
  // A new view after every restart: new writes never reuse an old transaction id.
  const w = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 5, msg: "after crash" }) });
  const [view] = String(w.headers["x-ms-ccf-transaction-id"]).split(".");
  assert.ok(Number(view) > Number(ids[0]!.split(".")[0]));
});

test("a ledger corrupted in the middle stops the node at start with a message naming the file", async () => {
  for (let i = 0; i < 50; i++) {
    await node.request("POST", "/app/log/public", { body: JSON.stringify({ id: 2000 + i, msg: `filler-${i}` }) });
  }
  await node.stop("SIGINT");
  const ledgerDir = join(ws.dir, "ledger");
  const file = readdirSync(ledgerDir).filter((f) => f.startsWith("ledger_")).sort()[0]!;
  const path = join(ledgerDir, file);
  const bytes = readFileSync(path);
  const at = bytes.indexOf("filler-10");
  assert.ok(at > 0);
  bytes[at] ^= 0xff;
  writeFileSync(path, bytes);
  await assert.rejects(NodeProcess.sandbox(ws.dir), (error: Error) => {
    assert.match(error.message, /LedgerCorrupted/);
    assert.match(error.message, new RegExp(file.replace(/[.]/g, "\\.")));
    return true;
  });
  bytes[at] ^= 0xff;
  writeFileSync(path, bytes);
  node = await NodeProcess.sandbox(ws.dir);
  assert.deepEqual((await node.request("GET", "/app/log/public?id=2010")).json(), { msg: "filler-10" });
});

test("a lone node whose ledger was removed refuses to start rather than found a second service under the same identity", async () => {
  await node.stop("SIGINT");
  const ledgerDir = join(ws.dir, "ledger");
  const moved = `${ledgerDir}.moved`;
  renameSync(ledgerDir, moved);
  try {
    await assert.rejects(NodeProcess.sandbox(ws.dir), (error: Error) => {
      assert.match(error.message, /LedgerMissing/);
      assert.match(error.message, /peers\.json/);
      return true;
    });
  } finally {
    rmSync(ledgerDir, { recursive: true, force: true });
    renameSync(moved, ledgerDir);
  }
  node = await NodeProcess.sandbox(ws.dir);
  assert.deepEqual((await node.request("GET", "/app/log/public?id=2010")).json(), { msg: "filler-10" });
});
