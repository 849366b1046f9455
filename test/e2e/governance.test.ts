// End-to-end: governance of a real node with a three-member consortium, through CCF's gov REST
// API and the `coco gov` CLI. The tests run in file order and share one node: the consortium is
// activated and the service opened first, the constitution is replaced last.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NodeProcess, runCli, tempWorkspace, type CliResult, type Response } from "../helpers/node-process.js";
import { certificateFingerprint, createIdentityCertificate, generateEcP384KeyPair } from "../../src/crypto/index.js";
import { GovernanceClient, type ProposalInfo } from "../../src/client/index.js";
import { signGovernanceRequest } from "../../src/governance/cose-auth.js";

const ws = tempWorkspace("coco-gov-test-");
const MEMBERS = ["member0", "member1", "member2"] as const;
type MemberName = (typeof MEMBERS)[number];
type Identity = { cert: string; key: string };

let node: NodeProcess;
let url: string;
let serviceCertPem: string;
const clients = new Map<MemberName, GovernanceClient>();
const member = (name: MemberName): GovernanceClient => clients.get(name)!;

async function newIdentity(name: string): Promise<Identity> {
  const keys = generateEcP384KeyPair();
  return { cert: await createIdentityCertificate(keys, name), key: keys.privateKeyPem };
}

const fileOf = (name: string, kind: "cert" | "privk") => join(ws.dir, `${name}_${kind}.pem`);
const readIdentity = (name: string): Identity => ({ cert: readFileSync(fileOf(name, "cert"), "utf8"), key: readFileSync(fileOf(name, "privk"), "utf8") });

before(async () => {
  for (const name of [...MEMBERS, "user0"]) {
    const id = await newIdentity(name);
    writeFileSync(fileOf(name, "cert"), id.cert);
    writeFileSync(fileOf(name, "privk"), id.key);
  }
  const config = {
    network: { rpc_interfaces: { primary: { bind_address: "127.0.0.1:0" } } },
    command: {
      type: "Start",
      service_certificate_file: "service_cert.pem",
      start: { members: MEMBERS.map((name) => ({ certificate_file: `${name}_cert.pem` })) },
    },
    ledger: { directory: "ledger" },
    coco: { durability: "none" },
  };
  writeFileSync(join(ws.dir, "config.json"), JSON.stringify(config));
  node = await NodeProcess.nodeStart(ws.dir, join(ws.dir, "config.json"));
  url = `https://127.0.0.1:${node.port}`;
  serviceCertPem = readFileSync(join(ws.dir, "service_cert.pem"), "utf8");
  for (const name of MEMBERS) {
    const id = readIdentity(name);
    clients.set(name, new GovernanceClient({ url, serviceCertPem, memberCertPem: id.cert, memberKeyPem: id.key }));
  }
});

after(async () => {
  for (const client of clients.values()) await client.close();
  await node?.stop();
  ws.cleanup();
});

// ---- Helpers ---------------------------------------------------------------------------------

/** `coco gov <args>` as `name`, with the workspace's files, as an operator types it. */
function gov(name: MemberName, ...args: string[]): Promise<CliResult> {
  return runCli(["gov", ...args, "--url", url, "--service-cert", join(ws.dir, "service_cert.pem"),
    "--member-cert", fileOf(name, "cert"), "--member-key", fileOf(name, "privk")]);
}

function parseCliJson(result: CliResult): any {
  assert.equal(result.code, 0, `coco gov failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

async function proposeSetUser(proposer: MemberName, user: Identity): Promise<ProposalInfo> {
  const info = await member(proposer).propose({ actions: [{ name: "set_user", args: { cert: user.cert } }] });
  assert.equal(info.proposalState, "Open");
  return info;
}

async function userCanWrite(user: Identity | "user0", id: number): Promise<boolean> {
  const r = await node.request("POST", "/app/log/private", { identity: user, body: JSON.stringify({ id, msg: `message ${id}` }) });
  if (r.status !== 200) return false;
  await node.waitForStatus(String(r.headers["x-ms-ccf-transaction-id"]));
  return true;
}

async function expectCcfError(r: Response, status: number, code: string): Promise<string> {
  assert.equal(r.status, status, r.text);
  const body = r.json();
  assert.equal(body.error.code, code, r.text);
  assert.ok(typeof body.error.message === "string" && body.error.message.length > 10, `the message explains the error: ${r.text}`);
  return body.error.message;
}

async function rejects(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: { code?: string }) => error.code === code);
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const proposalBody = (actions: unknown[]) => JSON.stringify({ actions });

// ---- Opening the service -----------------------------------------------------------------------

test("a user endpoint answers 404 FrontendNotOpen until the service is opened", async () => {
  const r = await node.request("GET", "/app/log/private?id=1");
  await expectCcfError(r, 404, "FrontendNotOpen");
  assert.equal((await member("member0").serviceInfo()).status, "Opening");
});

test("genesis members start Accepted and each becomes Active by acknowledging the state digest", async () => {
  const listed = parseCliJson(await gov("member0", "members", "--json")) as { memberId: string; status: string }[];
  assert.equal(listed.length, 3);
  assert.deepEqual(listed.map((m) => m.status), ["Accepted", "Accepted", "Accepted"]);
  // An Accepted member may not propose yet.
  await rejects(member("member0").propose({ actions: [{ name: "transition_service_to_open", args: {} }] }), "InvalidAuthenticationInfo");

  for (const name of MEMBERS) {
    const acked = parseCliJson(await gov(name, "ack", "--json"));
    assert.equal(acked.acked, true);
    assert.equal(acked.memberId, member(name).memberId);
  }
  const r = await node.request("GET", "/gov/service/members?api-version=2024-07-01", { identity: "none" });
  assert.equal(r.status, 200, r.text);
  const members = r.json().value as { memberId: string; status: string }[];
  assert.deepEqual(members.map((m) => m.status), ["Active", "Active", "Active"]);
  assert.deepEqual(new Set(members.map((m) => m.memberId)), new Set(MEMBERS.map((name) => member(name).memberId)));
});

test("opening the service needs two of three votes: after one ballot the proposal is still Open, after two it is Accepted", async () => {
  const user0 = readIdentity("user0");
  const proposal = await member("member0").propose({
    actions: [
      { name: "set_user", args: { cert: user0.cert } },
      { name: "transition_service_to_open", args: { next_service_identity: serviceCertPem } },
    ],
  });
  assert.equal(proposal.proposalState, "Open");
  const afterOne = await member("member0").accept(proposal.proposalId);
  assert.equal(afterOne.proposalState, "Open");
  assert.equal(afterOne.ballotCount, 1);
  await expectCcfError(await node.request("GET", "/app/log/private?id=1"), 404, "FrontendNotOpen");

  const afterTwo = await member("member1").accept(proposal.proposalId);
  assert.equal(afterTwo.proposalState, "Accepted");
  assert.deepEqual(afterTwo.finalVotes, { [member("member0").memberId!]: true, [member("member1").memberId!]: true });
  await member("member1").waitForCommit(afterTwo.transactionId!);
  assert.equal((await member("member0").serviceInfo()).status, "Open");

  assert.ok(await userCanWrite("user0", 1), "user0 can write once the service is open");
  const read = await node.request("GET", "/app/log/private?id=1");
  assert.deepEqual(read.json(), { msg: "message 1" });
});

// ---- Proposal lifecycle ------------------------------------------------------------------------

test("a proposal that two of three members vote against ends Rejected and is not applied", async () => {
  const user = await newIdentity("rejected-user");
  const proposal = await proposeSetUser("member0", user);
  assert.equal((await member("member1").reject(proposal.proposalId)).proposalState, "Open");
  const final = await member("member2").reject(proposal.proposalId);
  assert.equal(final.proposalState, "Rejected");
  assert.deepEqual(final.finalVotes, { [member("member1").memberId!]: false, [member("member2").memberId!]: false });
  assert.equal(await userCanWrite(user, 2), false);
});

test("a withdrawn proposal ends Withdrawn and refuses further ballots with ProposalNotOpen", async () => {
  const proposal = await proposeSetUser("member0", await newIdentity("withdrawn-user"));
  await member("member1").accept(proposal.proposalId);
  // Only the proposer may withdraw.
  await rejects(member("member1").withdraw(proposal.proposalId), "AuthorizationFailed");
  const withdrawn = await member("member0").withdraw(proposal.proposalId);
  assert.equal(withdrawn?.proposalState, "Withdrawn");
  assert.equal((await member("member2").get(proposal.proposalId)).proposalState, "Withdrawn");
  await rejects(member("member2").accept(proposal.proposalId), "ProposalNotOpen");
});

// ---- The CLI, as an operator uses it -----------------------------------------------------------

test("an operator proposes, votes, shows and lists with coco gov, and every --json output parses", async () => {
  const user1 = await newIdentity("user1");
  writeFileSync(fileOf("user1", "cert"), user1.cert);
  const proposed = parseCliJson(await gov("member0", "propose", "--action", "set_user", "--args", JSON.stringify({ cert: user1.cert }), "--json"));
  assert.equal(proposed.proposalState, "Open");
  assert.match(proposed.proposalId, /^[0-9a-f]{64}$/);
  const id: string = proposed.proposalId;

  const firstVote = parseCliJson(await gov("member0", "vote", id, "--accept", "--json"));
  assert.equal(firstVote.proposalState, "Open");
  assert.equal(firstVote.ballotCount, 1);
  const secondVote = await gov("member1", "vote", id, "--accept", "--wait");
  assert.equal(secondVote.code, 0, secondVote.stderr);
  assert.match(secondVote.stdout, new RegExp(`Proposal ${id} is Accepted \\(2 ballots\\)`));
  assert.match(secondVote.stdout, /\(committed\)/);

  const shown = parseCliJson(await gov("member2", "show", id, "--json"));
  assert.equal(shown.proposalState, "Accepted");
  assert.deepEqual(shown.actions, [{ name: "set_user", args: { cert: user1.cert } }]);
  const shownText = await gov("member2", "show", id);
  assert.match(shownText.stdout, /actions:\n\s+set_user \{"cert":/);

  const listed = parseCliJson(await gov("member2", "list", "--json")) as ProposalInfo[];
  assert.equal(listed.find((p) => p.proposalId === id)?.proposalState, "Accepted");
  const listedText = await gov("member2", "list");
  assert.match(listedText.stdout, new RegExp(`${id}\\s+Accepted\\s+2 ballots`));

  assert.ok(await userCanWrite(user1, 3), "the user added by the CLI proposal can write");
});

test("coco gov propose takes a proposal file, and a refused request exits 1 with the service's error code", async () => {
  const file = join(ws.dir, "proposal.json");
  writeFileSync(file, proposalBody([{ name: "set_user", args: { cert: (await newIdentity("file-user")).cert } }]));
  const proposed = parseCliJson(await gov("member2", "propose", file, "--json"));
  assert.equal(proposed.proposalState, "Open");
  const withdrawn = parseCliJson(await gov("member2", "withdraw", proposed.proposalId, "--json"));
  assert.equal(withdrawn.proposalState, "Withdrawn");
  const refused = await gov("member0", "vote", proposed.proposalId, "--accept");
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^coco: ProposalNotOpen: /);
  const invalid = await gov("member0", "propose", "--action", "set_user", "--args", '{"cert": "not a certificate"}');
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /ProposalFailedToValidate: .*args\.cert/);
});

// ---- Hostile ballots ---------------------------------------------------------------------------

/**
 * member2 submits `ballot`; it must be recorded as a vote failure, the node must keep serving
 * (a write that commits), and member0 and member1 must still be able to accept the proposal.
 */
async function hostileBallotIsContained(ballot: string, userId: number): Promise<ProposalInfo> {
  const user = await newIdentity(`user-${userId}`);
  const proposal = await proposeSetUser("member0", user);
  const afterHostile = await member("member2").vote(proposal.proposalId, ballot);
  assert.equal(afterHostile.proposalState, "Open", "a failing ballot is no vote");
  assert.equal(node.child.exitCode, null, "the node process is alive");
  assert.ok(await userCanWrite("user0", userId), "the node still serves writes that commit");

  assert.equal((await member("member0").accept(proposal.proposalId)).proposalState, "Open");
  const final = await member("member1").accept(proposal.proposalId);
  assert.equal(final.proposalState, "Accepted");
  const failure = final.voteFailures?.[member("member2").memberId!];
  assert.ok(failure !== undefined && failure.reason.length > 0, `member2's ballot is a vote failure: ${JSON.stringify(final)}`);
  assert.equal(final.finalVotes?.[member("member2").memberId!], undefined);
  await member("member1").waitForCommit(final.transactionId!);
  assert.ok(await userCanWrite(user, userId + 1), "the accepted proposal was applied");
  return final;
}

test("a ballot that loops forever is stopped, recorded as a vote failure, and the node keeps serving", async () => {
  const final = await hostileBallotIsContained("export function vote(proposal, proposerId) { while (true) {} }", 100);
  assert.match(final.voteFailures![member("member2").memberId!]!.reason, /too long/);
});

test("a ballot that allocates without bound is stopped, recorded as a vote failure, and the node keeps serving", async () => {
  await hostileBallotIsContained(
    "export function vote() { const a = []; while (true) a.push(new Array(1e6).fill(1)); }", 200);
});

test("a ballot that reaches for the host process is recorded as a vote failure and the node keeps serving", async () => {
  const final = await hostileBallotIsContained(`
    export function vote() {
      const viaConstructor = (function () {}).constructor("return typeof process === 'undefined' ? undefined : process")();
      if (viaConstructor !== undefined) viaConstructor.exit(1);
      globalThis.process.exit(1);
      return true;
    }`, 300);
  assert.match(final.voteFailures![member("member2").memberId!]!.reason, /process|undefined/);
});

// ---- Authentication of governance requests -----------------------------------------------------

const CREATE = "/gov/members/proposals:create?api-version=2024-07-01";

test("an unsigned proposal (a plain JSON body) is refused with a 4xx CCF error", async () => {
  const r = await node.request("POST", CREATE, { identity: "none", body: proposalBody([{ name: "trigger_snapshot" }]) });
  assert.ok(r.status >= 400 && r.status < 500, `${r.status} ${r.text}`);
  assert.match(r.json().error.code, /^(InvalidCoseSign1|InvalidAuthenticationInfo)$/, r.text);
  assert.ok(r.json().error.message.length > 10, r.text);
});

// CCF's member_cose_sign1 policy checks the Content-Type first.
test("an unsigned proposal is refused as CCF refuses it: 401 'Content type is not set to application/cose'", async () => {
  const r = await node.request("POST", CREATE, { identity: "none", body: proposalBody([{ name: "trigger_snapshot" }]) });
  assert.match(await expectCcfError(r, 401, "InvalidAuthenticationInfo"), /Content type is not set to application\/cose/);
});

test("a proposal signed by a key that is not the member's is refused with 401", async () => {
  const stranger = await newIdentity("stranger");
  const body = signGovernanceRequest({
    memberCertPem: readIdentity("member0").cert, // claims to be member0 (kid) ...
    memberKeyPem: stranger.key, // ... but is signed by someone else
    msgType: "proposal", createdAt: nowSeconds(), payload: proposalBody([{ name: "trigger_snapshot" }]),
  });
  const r = await node.postCose(CREATE, body);
  const message = await expectCcfError(r, 401, "InvalidAuthenticationInfo");
  assert.match(message, /Failed to validate COSE Sign1/);
  assert.equal(r.headers["www-authenticate"], 'COSE-SIGN1 realm="Signed request access"');
});

test("a proposal from someone who is not a member is refused with 401", async () => {
  const stranger = await newIdentity("stranger");
  const body = signGovernanceRequest({
    memberCertPem: stranger.cert, memberKeyPem: stranger.key,
    msgType: "proposal", createdAt: nowSeconds(), payload: proposalBody([{ name: "trigger_snapshot" }]),
  });
  assert.match(await expectCcfError(await node.postCose(CREATE, body), 401, "InvalidAuthenticationInfo"), /not a known member/);
  // A user is not a member either, whether it signs or presents its TLS certificate.
  const user0 = readIdentity("user0");
  const asUser = signGovernanceRequest({
    memberCertPem: user0.cert, memberKeyPem: user0.key,
    msgType: "proposal", createdAt: nowSeconds(), payload: proposalBody([{ name: "trigger_snapshot" }]),
  });
  await expectCcfError(await node.postCose(CREATE, asUser, { identity: "user0" }), 401, "InvalidAuthenticationInfo");
});

test("the same signed proposal sent twice is refused the second time as a replay", async () => {
  const member0 = readIdentity("member0");
  const body = signGovernanceRequest({
    memberCertPem: member0.cert, memberKeyPem: member0.key,
    msgType: "proposal", createdAt: nowSeconds(),
    payload: proposalBody([{ name: "set_user", args: { cert: (await newIdentity("replayed-user")).cert } }]),
  });
  const first = await node.postCose(CREATE, body);
  assert.equal(first.status, 200, first.text);
  assert.equal(first.json().proposalState, "Open");
  const second = await node.postCose(CREATE, body);
  assert.match(await expectCcfError(second, 400, "ProposalReplay"), new RegExp(first.json().proposalId));
  await member("member0").withdraw(first.json().proposalId);
});

test("a ballot signed for one proposal cannot be submitted for another", async () => {
  const a = await proposeSetUser("member0", await newIdentity("user-a"));
  const b = await proposeSetUser("member0", await newIdentity("user-b"));
  const member1 = readIdentity("member1");
  const memberId = certificateFingerprint(member1.cert);
  const body = signGovernanceRequest({
    memberCertPem: member1.cert, memberKeyPem: member1.key, msgType: "ballot", createdAt: nowSeconds(),
    proposalId: a.proposalId, payload: JSON.stringify({ ballot: "export function vote() { return true; }" }),
  });
  const r = await node.postCose(`/gov/members/proposals/${b.proposalId}/ballots/${memberId}:submit?api-version=2024-07-01`, body);
  await expectCcfError(r, 400, "InvalidResourceName");
  await member("member0").withdraw(a.proposalId);
  await member("member0").withdraw(b.proposalId);
});

// ---- Replacing the constitution (last: it changes the rules for everything after) --------------

/** Accepts any proposal with one yes vote; `set_user` as the default; `fail_after_write` writes, then throws. */
const TINY_CONSTITUTION = `
export function validate(input) {
  const proposal = JSON.parse(input);
  return Array.isArray(proposal.actions) ? { valid: true, description: "OK" } : { valid: false, description: "no actions" };
}
export function resolve(proposal, proposerId, votes) {
  return votes.some((v) => v.vote === true) ? "Accepted" : "Open";
}
function setUser(cert) {
  ccf.kv["public:ccf.gov.users.certs"].set(ccf.strToBuf(ccf.pemToId(cert)), ccf.strToBuf(cert));
}
export function apply(proposal, proposalId) {
  for (const action of JSON.parse(proposal).actions) {
    if (action.name === "set_user") setUser(action.args.cert);
    else if (action.name === "fail_after_write") {
      setUser(action.args.cert);
      throw new Error("fail_after_write fails on purpose");
    } else throw new Error("unknown action " + action.name);
  }
}
`;

let openAtConstitutionChange: string;

test("set_constitution replaces the rules, and proposals Open at the time become Dropped", async () => {
  openAtConstitutionChange = (await proposeSetUser("member2", await newIdentity("dropped-user"))).proposalId;
  const proposal = await member("member0").propose({ actions: [{ name: "set_constitution", args: { constitution: TINY_CONSTITUTION } }] });
  await member("member0").accept(proposal.proposalId);
  const final = await member("member1").accept(proposal.proposalId);
  assert.equal(final.proposalState, "Accepted", JSON.stringify(final));
  await member("member1").waitForCommit(final.transactionId!);

  const stored = await node.request("GET", "/gov/service/constitution?api-version=2024-07-01", { identity: "none" });
  assert.equal(stored.status, 200, stored.text);
  assert.match(stored.text, /fail_after_write/);
  assert.equal((await member("member0").get(openAtConstitutionChange)).proposalState, "Dropped");
  await rejects(member("member0").accept(openAtConstitutionChange), "ProposalNotOpen");
});

test("the next proposal follows the new constitution: one yes vote of three accepts it", async () => {
  const user = await newIdentity("tiny-rules-user");
  const proposal = await proposeSetUser("member2", user);
  const final = await member("member2").accept(proposal.proposalId);
  assert.equal(final.proposalState, "Accepted", JSON.stringify(final));
  await member("member2").waitForCommit(final.transactionId!);
  assert.ok(await userCanWrite(user, 400));
});

test("a proposal whose apply throws ends Failed and none of its writes are applied", async () => {
  const user = await newIdentity("never-applied-user");
  const proposal = await member("member0").propose({ actions: [{ name: "fail_after_write", args: { cert: user.cert } }] });
  const final = await member("member0").accept(proposal.proposalId);
  assert.equal(final.proposalState, "Failed", JSON.stringify(final));
  assert.match(final.failure?.reason ?? "", /fail_after_write fails on purpose/);
  await member("member0").waitForCommit(final.transactionId!);
  const userId = certificateFingerprint(user.cert);
  const lookup = await node.request("GET", `/gov/service/users/${userId}?api-version=2024-07-01`, { identity: "none" });
  assert.equal(lookup.status, 404, lookup.text);
  assert.equal(await userCanWrite(user, 500), false);
  assert.ok(await userCanWrite("user0", 501), "the node still serves");
});
