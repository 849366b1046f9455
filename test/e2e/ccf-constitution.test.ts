// End-to-end: CCF's own default constitution (6.0 LTS, test/fixtures/ccf-constitution-6.x) set
// unchanged on a real node with set_constitution, then the actions that change what the node
// does: a user added and removed (the app answers, then refuses), the node's certificate and the
// service certificate renewed (ccf.network.* hooks), a ledger rekey, an ACME refresh, and the
// constitution swapped back through ccf.gov.validateConstitution. Every action of the file is
// exercised in test/unit/governance/ccf-constitution.test.ts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { GovernanceClient, type ProposalAction, type ProposalInfo } from "../../src/client/index.js";
import { createIdentityCertificate, generateEcP384KeyPair, isCertificateIssuedBy } from "../../src/crypto/index.js";
import { defaultConstitutionSource, loadConstitutionFiles } from "../../src/governance/constitution.js";

const FIXTURE = join(process.cwd(), "test", "fixtures", "ccf-constitution-6.x");
const CCF_CONSTITUTION = loadConstitutionFiles(["actions.js", "validate.js", "resolve.js", "apply.js"].map((f) => join(FIXTURE, f)));

const ws = tempWorkspace("coco-ccf-constitution-");
let node: NodeProcess;
let client: GovernanceClient;

before(async () => {
  node = await NodeProcess.sandbox(ws.dir);
  client = new GovernanceClient({
    url: `https://127.0.0.1:${node.port}`,
    serviceCertPem: readFileSync(join(ws.dir, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8"),
  });
});
after(async () => {
  await client?.close();
  await node?.stop();
  ws.cleanup();
});

/** Proposes, votes yes (one member: a majority) and waits for the proposal's commit. */
async function pass(...actions: ProposalAction[]): Promise<ProposalInfo> {
  let proposal = await client.propose({ actions });
  if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
  return proposal;
}

async function accepted(...actions: ProposalAction[]): Promise<void> {
  const proposal = await pass(...actions);
  assert.equal(proposal.proposalState, "Accepted", JSON.stringify(proposal));
}

test("set_constitution installs CCF's default constitution unchanged", async () => {
  await accepted({ name: "set_constitution", args: { constitution: CCF_CONSTITUTION } });
  const stored = await node.request("GET", "/gov/service/constitution?api-version=2024-07-01", { identity: "none" });
  assert.equal(stored.status, 200);
  assert.equal(stored.text, CCF_CONSTITUTION);
});

test("under CCF's constitution a set_user lets the user in and remove_user shuts them out", async () => {
  const keys = generateEcP384KeyPair();
  const cert = await createIdentityCertificate(keys, "user1");
  const user = { cert, key: keys.privateKeyPem };
  const before = await node.request("POST", "/app/log/private", { identity: user, body: JSON.stringify({ id: 5, msg: "x" }) });
  assert.equal(before.status, 401);
  await accepted({ name: "set_user", args: { cert, user_data: { role: "writer" } } });
  const write = await node.request("POST", "/app/log/private", { identity: user, body: JSON.stringify({ id: 5, msg: "hello" }) });
  assert.equal(write.status, 200, write.text);
  const userId = (await node.request("GET", "/app/log/private?id=5", { identity: user })).status;
  assert.equal(userId, 200);
  const id = new X509Certificate(cert).fingerprint256.replace(/:/g, "").toLowerCase();
  await accepted({ name: "remove_user", args: { user_id: id } });
  assert.equal((await node.request("GET", "/app/log/private?id=5", { identity: user })).status, 401);
});

test("a broken constitution is refused by ccf.gov.validateConstitution before any vote", async () => {
  await assert.rejects(client.propose({ actions: [{ name: "set_constitution", args: { constitution: "export function validate(input) {}" } }] }),
    /does not export a function named apply/);
});

test("set_all_nodes_certificate_validity renews this node's certificate from its genesis CSR", async () => {
  await accepted({ name: "set_all_nodes_certificate_validity", args: { valid_from: "20260101000000Z", validity_period_days: 30 } });
});

test("set_service_certificate_validity renews the service certificate with the same key", async () => {
  const original = readFileSync(join(ws.dir, "service_cert.pem"), "utf8");
  await accepted({ name: "set_service_certificate_validity", args: { valid_from: "20260101000000Z", validity_period_days: 90 } });
  const info = await client.serviceInfo();
  const renewed = new X509Certificate(info.certificate);
  assert.notEqual(info.certificate.trim(), original.trim());
  assert.equal(new Date(renewed.validFrom).toISOString(), "2026-01-01T00:00:00.000Z");
  assert.equal(renewed.publicKey.export({ type: "spki", format: "pem" }), new X509Certificate(original).publicKey.export({ type: "spki", format: "pem" }));
  assert.ok(isCertificateIssuedBy(readFileSync(join(ws.dir, "node.pem"), "utf8"), info.certificate), "the node's certificate verifies under the renewed one");
});

test("trigger_ledger_rekey and trigger_acme_refresh are carried out by the node", async () => {
  await accepted({ name: "trigger_ledger_rekey" });
  await accepted({ name: "trigger_acme_refresh", args: { interfaces: ["primary"] } });
  const w = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 6, msg: "after rekey" }) });
  await node.waitForStatus(String(w.headers["x-ms-ccf-transaction-id"]));
  assert.match(readFileSync(join(ws.dir, "node.log"), "utf8"), /ledger secret rotated/);
});

test("set_constitution puts Coco's default constitution back (it passes validateConstitution)", async () => {
  await accepted({ name: "set_constitution", args: { constitution: defaultConstitutionSource() } });
  const stored = await node.request("GET", "/gov/service/constitution?api-version=2024-07-01", { identity: "none" });
  assert.equal(stored.text, defaultConstitutionSource());
});
