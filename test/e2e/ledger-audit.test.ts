// End-to-end: `coco ledger verify | read | export` against the ledger of a real node process.
// The sandbox writes public and private log messages, a recovery member (with an RSA encryption
// key) gets a recovery share, the node stops, and the CLI then verifies the ledger against the
// service certificate, decrypts the private messages offline with the member's key alone, and
// catches an entry edited with its crc32 recomputed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateKeyPairSync } from "node:crypto";
import { crc32 } from "node:zlib";
import { NodeProcess, runCli, tempWorkspace } from "../helpers/node-process.js";
import { GovernanceClient } from "../../src/client/index.js";
import { createIdentityCertificate, createServiceCertificate, generateEcP384KeyPair } from "../../src/crypto/index.js";

const ws = tempWorkspace("coco-ledger-audit-");
let node: NodeProcess | undefined;
const SECRET_MSG = `audit-secret-${Math.random().toString(36).slice(2)}`;
const PUBLIC_MSG = `audit-public-${Math.random().toString(36).slice(2)}`;
let memberEncKeyFile = "";
let ledgerDir = "";
let serviceCert = "";

async function addRecoveryMember(): Promise<void> {
  const identityKeys = generateEcP384KeyPair();
  const memberCert = await createIdentityCertificate(identityKeys, "member1");
  const enc = generateKeyPairSync("rsa", { modulusLength: 2048 });
  memberEncKeyFile = join(ws.dir, "member1_enc_privk.pem");
  writeFileSync(memberEncKeyFile, enc.privateKey.export({ format: "pem", type: "pkcs8" }));
  const base = { url: `https://127.0.0.1:${node!.port}`, serviceCertPem: readFileSync(serviceCert, "utf8") };
  const member0 = new GovernanceClient({ ...base, memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"), memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8") });
  const member1 = new GovernanceClient({ ...base, memberCertPem: memberCert, memberKeyPem: identityKeys.privateKeyPem });
  try {
    let p = await member0.propose({ actions: [{ name: "set_member", args: { cert: memberCert, encryption_pub_key: enc.publicKey.export({ format: "pem", type: "spki" }).toString() } }] });
    if (p.proposalState === "Open") p = await member0.accept(p.proposalId);
    assert.equal(p.proposalState, "Accepted", JSON.stringify(p));
    await member1.ack();
    p = await member0.propose({ actions: [{ name: "set_recovery_threshold", args: { recovery_threshold: 1 } }] });
    if (p.proposalState === "Open") p = await member0.accept(p.proposalId);
    if (p.proposalState === "Open") p = await member1.accept(p.proposalId);
    assert.equal(p.proposalState, "Accepted", JSON.stringify(p));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await node!.request("GET", `/gov/recovery/encrypted-shares/${member1.memberId}`, { identity: "none" });
      if (r.status === 200) break;
      assert.ok(Date.now() < deadline, "member1's recovery share was never issued");
      await new Promise((res) => setTimeout(res, 50));
    }
  } finally {
    await member0.close();
    await member1.close();
  }
}

before(async () => {
  node = await NodeProcess.sandbox(ws.dir);
  serviceCert = join(ws.dir, "service_cert.pem");
  ledgerDir = join(ws.dir, "ledger");
  await addRecoveryMember();
  const priv = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1, msg: SECRET_MSG }) });
  assert.equal(priv.status, 200, priv.text);
  const pub = await node.request("POST", "/app/log/public", { body: JSON.stringify({ id: 2, msg: PUBLIC_MSG }) });
  assert.equal(pub.status, 200, pub.text);
  await node.waitForStatus(String(pub.headers["x-ms-ccf-transaction-id"]));
  await node.stop("SIGINT");
  node = undefined;
});
after(async () => {
  await node?.stop();
  ws.cleanup();
});

test("coco ledger verify proves the node's ledger against the service certificate", async () => {
  const r = await runCli(["ledger", "verify", ledgerDir, "--service-cert", serviceCert, "--json"]);
  const report = JSON.parse(r.stdout);
  assert.equal(report.problem, null, r.stdout);
  assert.equal(report.verified, true);
  assert.equal(report.trustAnchor.source, "service-cert");
  assert.ok(report.signatures >= 2, `${report.signatures} signatures`);
  assert.equal(r.code, report.unsignedTail === null ? 0 : 3, r.stderr);
  const text = await runCli(["ledger", "verify", ledgerDir]);
  assert.match(text.stdout, /Trust anchor: the service identity recorded in the ledger itself/);
  assert.match(text.stdout, /Verified: seqnos 1\.\.\d+/);
});

test("coco ledger verify exits 2, not 1, for a directory it cannot read or a missing argument", async () => {
  const missing = await runCli(["ledger", "verify", join(ws.dir, "no-such-ledger")]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /no-such-ledger/);
  assert.equal((await runCli(["ledger", "verify"])).code, 2);
});

test("coco ledger verify rejects the ledger against another service's certificate", async () => {
  const otherCert = join(ws.dir, "other_service_cert.pem");
  writeFileSync(otherCert, await createServiceCertificate(generateEcP384KeyPair()));
  const r = await runCli(["ledger", "verify", ledgerDir, "--service-cert", otherCert, "--json"]);
  assert.equal(r.code, 1, r.stdout);
  assert.equal(JSON.parse(r.stdout).problem.code, "UntrustedServiceIdentity");
});

test("coco ledger read decrypts private data with the recovery member's key, and shows it encrypted without", async () => {
  const withKey = await runCli(["ledger", "read", ledgerDir, "--member-enc-key", memberEncKeyFile]);
  assert.equal(withKey.code, 0, withKey.stderr);
  const lines = withKey.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const secretLine = lines.find((l) => JSON.stringify(l.private ?? {}).includes(SECRET_MSG));
  assert.ok(secretLine, "the private message is decrypted");
  assert.ok(secretLine.private.records, "in the private map records");
  assert.ok(lines.some((l) => JSON.stringify(l.public["public:records"] ?? []).includes(PUBLIC_MSG)));
  assert.deepEqual(lines.map((l) => l.seqno), lines.map((_, i) => i + 1), "every entry, in order");

  const withoutKey = await runCli(["ledger", "read", ledgerDir, "--seqno", `${secretLine.seqno}..${secretLine.seqno}`]);
  assert.equal(withoutKey.code, 0, withoutKey.stderr);
  assert.ok(!withoutKey.stdout.includes(SECRET_MSG));
  assert.ok(JSON.parse(withoutKey.stdout).private_encrypted_bytes > 0);
});

test("coco ledger export writes the decoded ledger as CSV", async () => {
  const out = join(ws.dir, "ledger.csv");
  const r = await runCli(["ledger", "export", ledgerDir, "--format", "csv", "--out", out, "--member-enc-key", memberEncKeyFile, "--tables", "records,public:records"]);
  assert.equal(r.code, 0, r.stderr);
  const csv = readFileSync(out, "utf8");
  assert.ok(csv.startsWith("txid,seqno,view,signature,domain,map,key,key_encoding,value,value_encoding\r\n"));
  assert.ok(csv.split("\r\n").some((row) => row.includes(",private,records,") && row.includes(SECRET_MSG)));
  assert.ok(csv.split("\r\n").some((row) => row.includes(",public,public:records,") && row.includes(PUBLIC_MSG)));
});

test("an entry of the node's ledger edited with its crc32 recomputed fails verification", async () => {
  const copy = join(ws.dir, "ledger-edited");
  cpSync(ledgerDir, copy, { recursive: true });
  let edited = false;
  for (const name of readdirSync(copy).filter((n) => n.startsWith("ledger_"))) {
    const path = join(copy, name);
    const buf = readFileSync(path);
    for (let offset = 8; offset < buf.length && !edited; offset += 8 + buf.readUInt32BE(offset)) {
      const entry = buf.subarray(offset + 8, offset + 8 + buf.readUInt32BE(offset));
      const at = entry.indexOf(PUBLIC_MSG);
      if (at < 0) continue;
      entry.write("X", at);
      buf.writeUInt32BE(crc32(entry), offset + 4);
      writeFileSync(path, buf);
      edited = true;
    }
  }
  assert.ok(edited, "found the public message in the ledger");
  const r = await runCli(["ledger", "verify", copy, "--service-cert", serviceCert, "--json"]);
  assert.equal(r.code, 1, r.stdout);
  assert.equal(JSON.parse(r.stdout).problem.code, "MerkleRootMismatch");
});
