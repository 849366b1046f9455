// Disaster recovery with members' recovery shares, end to end with real processes: a 3-node
// service with 3 recovery members (threshold 2) loses every node (SIGKILL); a new node recovers
// it from one node's ledger, members open it and submit their shares (CLI and client), and every
// committed write, receipt, member and user is back; then it happens a second time.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Network, type NetworkNode } from "../helpers/network.js";
import { runCli, tempWorkspace } from "../helpers/node-process.js";
import { GovernanceClient, submitMemberRecoveryShare, verifyReceipt, type CcfReceipt } from "../../src/client/index.js";
import { createIdentityCertificate, generateEcP384KeyPair, randomBytes } from "../../src/crypto/index.js";
import { CocoError } from "../../src/util/index.js";

const workspace = tempWorkspace("coco-recovery-");
let network: Network;
after(async () => {
  await network?.stop();
  if (process.env["COCO_KEEP_WORKSPACE"] === undefined) workspace.cleanup();
});

const WRITES = 12;
/** Committed writes so far: id -> message, private and public. */
const written = { private: new Map<number, string>(), public: new Map<number, string>() };
/** Receipts fetched before each disaster, with the service certificate of the time. */
const receipts: { txid: string; receipt: CcfReceipt; serviceCertPem: string }[] = [];

async function writeAndCommit(node: NetworkNode, from: number, label: string): Promise<string> {
  let last = "";
  for (let i = from; i < from + WRITES; i++) {
    for (const kind of ["private", "public"] as const) {
      const msg = `${label} ${kind} ${i}`;
      const r = await node.process!.request("POST", `/app/log/${kind}`, { body: JSON.stringify({ id: i, msg }) });
      assert.equal(r.status, 200, r.text);
      written[kind].set(i, msg);
      last = r.headers["x-ms-ccf-transaction-id"] as string;
    }
  }
  // Every live node holds it, so whichever ledger a recovery starts from has it.
  for (const other of network.nodes) if (other.process) await other.process.waitForStatus(last, "Committed", 30_000);
  return last;
}

async function receiptOf(node: NetworkNode, txid: string): Promise<CcfReceipt> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await node.process!.request("GET", `/app/receipt?transaction_id=${txid}`);
    if (r.status === 200) return r.json() as CcfReceipt;
    if (Date.now() > deadline) throw new Error(`no receipt for ${txid}: ${r.text}`);
    // A receipt needs a later committed signature: write something so that one comes.
    await node.process!.request("POST", "/app/log/public", { body: JSON.stringify({ id: 999_999, msg: "nudge" }) });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function checkAllData(node: NetworkNode): Promise<void> {
  for (const kind of ["private", "public"] as const) {
    for (const [id, msg] of written[kind]) {
      const r = await node.process!.request("GET", `/app/log/${kind}?id=${id}`);
      assert.equal(r.status, 200, `${kind} ${id} on node ${node.index}: ${r.text}`);
      assert.equal(r.json().msg, msg);
    }
  }
}

async function waitForServiceStatus(node: NetworkNode, status: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await node.process!.request("GET", "/node/network", { identity: "none" });
    const body = r.json() as Record<string, unknown>;
    if (body["service_status"] === status) return body;
    if (Date.now() > deadline) throw new Error(`service never became ${status}: ${r.text}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function memberClient(node: NetworkNode, index: number): GovernanceClient {
  return new GovernanceClient(network.member(node, index));
}

function encryptionKey(index: number): string {
  return readFileSync(join(workspace.dir, `member${index}_enc_privk.pem`), "utf8");
}

async function expectRefused(promise: Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof CocoError, String(error));
    assert.equal(error.status, status, error.message);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

async function cliOpen(node: NetworkNode, previousCertFile: string): Promise<void> {
  const result = await runCli(["gov", "recovery", "open", "--url", `https://127.0.0.1:${node.rpcPort}`,
    "--service-cert", join(workspace.dir, "service_cert.pem"), "--previous-service-cert", previousCertFile,
    "--member-cert", join(workspace.dir, "member0_cert.pem"), "--member-key", join(workspace.dir, "member0_privk.pem"), "--wait"]);
  assert.equal(result.code, 0, result.stderr + result.stdout);
}

async function cliShare(node: NetworkNode, index: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(["gov", "recovery", "share", "--url", `https://127.0.0.1:${node.rpcPort}`,
    "--service-cert", join(workspace.dir, "service_cert.pem"),
    "--member-cert", join(workspace.dir, `member${index}_cert.pem`), "--member-key", join(workspace.dir, `member${index}_privk.pem`),
    "--member-enc-key", join(workspace.dir, `member${index}_enc_privk.pem`)]);
}

let recovered: NetworkNode;

test("a 3-node service with 3 recovery members (threshold 2) commits private and public writes around a rekey, then every node is SIGKILLed", async () => {
  network = await Network.start(workspace.dir, 3, { recoveryMembers: 3, recoveryThreshold: 2 });
  const primary = await network.primary();
  await writeAndCommit(primary, 0, "service0");
  // A rekey: the secrets before it must come back through the historical chain.
  await network.propose([{ name: "trigger_ledger_rekey", args: {} }]);
  const last = await writeAndCommit(primary, 50, "service0");
  receipts.push({ txid: last, receipt: await receiptOf(primary, last), serviceCertPem: readFileSync(join(workspace.dir, "service_cert.pem"), "utf8") });
  for (const node of network.nodes) await network.kill(node);
});

test("a node recovers the public state from one node's ledger: Recovering, recovery_count 1, app endpoints closed", async () => {
  const { node, previousServiceCertPem } = await network.recover(network.nodes[1]!);
  recovered = node;
  const state = (await node.process!.request("GET", "/node/state", { identity: "none" })).json();
  assert.equal(state.state, "PartOfPublicNetwork");
  const info = await waitForServiceStatus(node, "Recovering");
  assert.equal(info["recovery_count"], 1);
  assert.notEqual(info["service_certificate"], previousServiceCertPem, "the recovered service has a new identity");
  assert.equal((await node.process!.request("GET", "/app/log/private?id=0")).status, 404, "the app frontend is not open while recovering");
  const previous = (await node.process!.request("GET", "/node/service/previous_identity", { identity: "none" })).json();
  assert.equal(previous.previous_service_identity, previousServiceCertPem);
  // Shares are refused until members accept transition_service_to_open.
  const member1 = memberClient(node, 1);
  try {
    await expectRefused(submitMemberRecoveryShare(member1, encryptionKey(1)), 403, "ServiceNotWaitingForRecoveryShares");
  } finally {
    await member1.close();
  }
});

test("members open the recovered service (CLI); wrong, foreign and repeated shares are refused; below the threshold it stays public-only", async () => {
  const previousFile = join(workspace.dir, "service_cert_0.pem");
  const { writeFileSync } = await import("node:fs");
  writeFileSync(previousFile, receipts[0]!.serviceCertPem);
  await cliOpen(recovered, previousFile);
  const member1 = memberClient(recovered, 1);
  const member2 = memberClient(recovered, 2);
  try {
    // Majority of 3: member1 votes for member0's proposal.
    const open = (await member1.list()).find((p) => p.proposalState === "Open");
    if (open !== undefined) await member1.accept(open.proposalId);
    await waitForServiceStatus(recovered, "WaitingForRecoveryShares");

    // Not a member at all: the COSE signature names no known member.
    const strangerKeys = generateEcP384KeyPair();
    const stranger = new GovernanceClient({
      url: `https://127.0.0.1:${recovered.rpcPort}`, serviceCertPem: readFileSync(join(workspace.dir, "service_cert.pem"), "utf8"),
      memberCertPem: await createIdentityCertificate(strangerKeys, "stranger"), memberKeyPem: strangerKeys.privateKeyPem,
    });
    try {
      await expectRefused(stranger.submitRecoveryShare(randomBytes(33)), 401, "InvalidAuthenticationInfo");
    } finally {
      await stranger.close();
    }
    // A share of the wrong size is refused at once.
    await expectRefused(member2.submitRecoveryShare(randomBytes(7)), 400, "InvalidRecoveryShare");
    // A wrong share of the right size is found out at the threshold: every share is dropped.
    assert.equal((await member2.submitRecoveryShare(randomBytes(33))).submittedCount, 1);
    const combined = await cliShare(recovered, 0);
    assert.equal(combined.code, 1, combined.stdout);
    assert.match(combined.stderr, /InvalidRecoveryShare/);
    assert.equal((await recovered.process!.request("GET", "/node/state", { identity: "none" })).json().state, "PartOfPublicNetwork");

    // One good share (below the threshold) leaves the service public-only; a second from the same member is refused.
    const first = await cliShare(recovered, 0);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /1\/2 recovery shares successfully submitted/);
    const again = await cliShare(recovered, 0);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /RecoveryShareAlreadySubmitted/);
    const network0 = (await recovered.process!.request("GET", "/node/network", { identity: "none" })).json();
    assert.equal(network0.service_status, "WaitingForRecoveryShares");
    assert.equal((await recovered.process!.request("GET", "/app/log/private?id=0")).status, 404);
  } finally {
    await member1.close();
    await member2.close();
  }
});

test("at the threshold the private state comes back: all committed data, recovery_count 1, old receipts verify, new writes commit, a node joins", async () => {
  const member1 = memberClient(recovered, 1);
  try {
    const result = await submitMemberRecoveryShare(member1, encryptionKey(1));
    assert.equal(result.submittedCount, 2);
    assert.equal(result.recoveryThreshold, 2);
  } finally {
    await member1.close();
  }
  const info = await waitForServiceStatus(recovered, "Open");
  assert.equal(info["recovery_count"], 1);
  assert.equal((await recovered.process!.request("GET", "/node/state", { identity: "none" })).json().state, "PartOfNetwork");
  // Two secrets came back (the one before the rekey through the historical chain).
  assert.match(recovered.process!.output(), /"secrets":2,"msg":"recovery: reading the private ledger"/);
  await checkAllData(recovered);
  const gov = memberClient(recovered, 0);
  try {
    assert.equal((await gov.serviceInfo()).recoveryCount, 1);
  } finally {
    await gov.close();
  }

  // The receipt issued before the disaster verifies against the previous identity; the same
  // transaction's receipt from the recovered service verifies against the new identity, which
  // endorses the previous one.
  const before = receipts[0]!;
  verifyReceipt(before.receipt, before.serviceCertPem);
  const now = await receiptOf(recovered, before.txid);
  assert.equal(now.service_endorsements?.length, 1);
  const currentCert = readFileSync(join(workspace.dir, "service_cert.pem"), "utf8");
  verifyReceipt(now, currentCert);
  assert.throws(() => verifyReceipt({ ...now, service_endorsements: [] }, currentCert), /not endorsed/);

  const last = await writeAndCommit(recovered, 100, "service1");
  receipts.push({ txid: last, receipt: await receiptOf(recovered, last), serviceCertPem: currentCert });
  const joined = await network.join();
  await network.waitForConfiguration(2);
  await checkAllData(joined);
});

test("a second disaster and recovery on top: recovery_count 2, receipts of both earlier services still verify", async () => {
  const joined = network.nodes[network.nodes.length - 1]!;
  for (const node of network.nodes) if (node.process) await network.kill(node);
  const { node, previousServiceCertPem } = await network.recover(joined);
  recovered = node;
  await waitForServiceStatus(node, "Recovering");
  const previousFile = join(workspace.dir, "service_cert_1.pem");
  const { writeFileSync } = await import("node:fs");
  writeFileSync(previousFile, previousServiceCertPem);
  await cliOpen(node, previousFile);
  const member1 = memberClient(node, 1);
  const member2 = memberClient(node, 2);
  try {
    const open = (await member1.list()).find((p) => p.proposalState === "Open");
    if (open !== undefined) await member1.accept(open.proposalId);
    await waitForServiceStatus(node, "WaitingForRecoveryShares");
    await submitMemberRecoveryShare(member1, encryptionKey(1));
    await submitMemberRecoveryShare(member2, encryptionKey(2));
  } finally {
    await member1.close();
    await member2.close();
  }
  const info = await waitForServiceStatus(node, "Open");
  assert.equal(info["recovery_count"], 2);
  await checkAllData(node);
  const currentCert = readFileSync(join(workspace.dir, "service_cert.pem"), "utf8");
  for (const { txid, receipt, serviceCertPem } of receipts) {
    verifyReceipt(receipt, serviceCertPem);
    verifyReceipt(await receiptOf(node, txid), currentCert);
  }
  const chained = await receiptOf(node, receipts[0]!.txid);
  assert.equal(chained.service_endorsements?.length, 2, "a receipt from the first service needs both endorsements");
  await writeAndCommit(node, 200, "service2");
});
