// The governance client and `coco gov` against an in-process fake node: it checks each request's
// method, path, api-version and content type, authenticates the COSE_Sign1 body as CCF would
// (msg type, proposal id, kid = member id) and answers with canned CCF-shaped JSON.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ACCEPT_BALLOT,
  GOV_API_VERSION,
  GovernanceClient,
  REJECT_BALLOT,
} from "../../../src/client/index.js";
import {
  certificateFingerprint,
  createIdentityCertificate,
  createNodeCertificate,
  createServiceCertificate,
  generateEcP384KeyPair,
} from "../../../src/crypto/index.js";
import { authenticateMemberCose, type MemberCoseIdentity } from "../../../src/governance/cose-auth.js";
import { CocoError } from "../../../src/util/index.js";

const serviceKeys = generateEcP384KeyPair();
const nodeKeys = generateEcP384KeyPair();
const memberKeys = generateEcP384KeyPair();
const serviceCertPem = await createServiceCertificate(serviceKeys);
const nodeCertPem = await createNodeCertificate({
  nodePublicKeyPem: nodeKeys.publicKeyPem,
  serviceKeys,
  serviceCertPem,
  ipAddresses: ["127.0.0.1"],
});
const memberCertPem = await createIdentityCertificate(memberKeys, "member0");
const memberId = certificateFingerprint(memberCertPem);
const PROPOSAL_ID = "a".repeat(64);
const NOW_MS = 1_700_000_000_123;

interface SeenRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string | undefined;
  cose?: MemberCoseIdentity;
}

/** What the fake node answers next; keyed by "METHOD /path". */
type Reply = { status: number; body?: unknown; headers?: Record<string, string> };
const replies = new Map<string, Reply | (() => Reply)>();
const seen: SeenRequest[] = [];

/** Signed endpoints and the ccf.gov.msg.type CCF's policy expects on each. */
const SIGNED: Array<{ pattern: RegExp; msgType: string; proposalIdGroup?: number }> = [
  { pattern: /^\/gov\/members\/proposals:create$/, msgType: "proposal" },
  { pattern: /^\/gov\/members\/proposals\/([^/]+)\/ballots\/[^/]+:submit$/, msgType: "ballot", proposalIdGroup: 1 },
  { pattern: /^\/gov\/members\/proposals\/([^/]+):withdraw$/, msgType: "withdrawal", proposalIdGroup: 1 },
  { pattern: /^\/gov\/members\/state-digests\/[^/]+:update$/, msgType: "state_digest" },
  { pattern: /^\/gov\/members\/state-digests\/[^/]+:ack$/, msgType: "ack" },
];

function ccfError(status: number, code: string, message: string): Reply {
  return { status, body: { error: { code, message } } };
}

const server = https.createServer({ key: nodeKeys.privateKeyPem, cert: nodeCertPem }, (request, response) => {
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  request.on("end", () => {
    const url = new URL(request.url!, "https://127.0.0.1");
    const path = decodeURIComponent(url.pathname);
    const entry: SeenRequest = { method: request.method!, path, query: url.searchParams, contentType: request.headers["content-type"] };
    seen.push(entry);
    const canned = replies.get(`${request.method} ${path}`) ?? ccfError(404, "ResourceNotFound", `Unknown path: ${path}`);
    let reply = typeof canned === "function" ? canned() : canned;
    try {
      if (path.startsWith("/gov/") && url.searchParams.get("api-version") !== GOV_API_VERSION) {
        throw new CocoError("UnsupportedApiVersion", "api-version missing or unknown", 400);
      }
      const signed = SIGNED.find((s) => s.pattern.test(path));
      if (signed !== undefined) {
        const match = signed.pattern.exec(path)!;
        entry.cose = authenticateMemberCose(Buffer.concat(chunks), {
          lookupMemberCert: (id) => (id === memberId ? memberCertPem : undefined),
          expectedMsgType: signed.msgType,
          ...(signed.proposalIdGroup === undefined ? {} : { expectedProposalId: match[signed.proposalIdGroup]! }),
          contentType: request.headers["content-type"] ?? "",
        });
      }
    } catch (error) {
      const e = error as CocoError;
      reply = ccfError(e.status, e.code, e.message);
    }
    const headers: Record<string, string> = { ...(reply.headers ?? {}) };
    if (reply.body !== undefined) headers["content-type"] = "application/json";
    response.writeHead(reply.status, headers);
    response.end(reply.body === undefined ? undefined : JSON.stringify(reply.body));
  });
});

let url = "";
let client: GovernanceClient;

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  client = new GovernanceClient({ url, serviceCertPem, memberCertPem, memberKeyPem: memberKeys.privateKeyPem, now: () => NOW_MS });
});

after(async () => {
  await client.close();
  server.close();
});

function lastRequest(): SeenRequest {
  return seen[seen.length - 1]!;
}

function openProposal(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { proposalId: PROPOSAL_ID, proposerId: memberId, proposalState: "Open", ballotCount: 0, ...overrides };
}

test("the client's member id is the SHA-256 fingerprint of its certificate", () => {
  assert.equal(client.memberId, memberId);
  assert.match(memberId, /^[0-9a-f]{64}$/);
});

test("propose signs the proposal as msg type 'proposal' and returns the proposal info with the transaction id", async () => {
  replies.set("POST /gov/members/proposals:create", { status: 200, body: openProposal(), headers: { "x-ms-ccf-transaction-id": "2.15" } });
  const proposal = { actions: [{ name: "set_constitution", args: { constitution: "export function apply() {}" } }] };
  const info = await client.propose(proposal);
  assert.equal(info.proposalId, PROPOSAL_ID);
  assert.equal(info.proposalState, "Open");
  assert.equal(info.transactionId, "2.15");
  const req = lastRequest();
  assert.equal(req.method, "POST");
  assert.equal(req.query.get("api-version"), "2024-07-01");
  assert.equal(req.contentType, "application/cose");
  assert.equal(req.cose!.memberId, memberId);
  assert.equal(req.cose!.msgType, "proposal");
  assert.equal(req.cose!.createdAt, Math.floor(NOW_MS / 1000));
  assert.equal(req.cose!.proposalId, undefined);
  assert.deepEqual(JSON.parse(req.cose!.payload.toString("utf8")), proposal);
});

test("propose signs again with the next second's created_at when the same proposal was already made this second (once)", async () => {
  const createdAts: number[] = [];
  let calls = 0;
  replies.set("POST /gov/members/proposals:create", () => {
    calls += 1;
    return calls === 1 ? ccfError(400, "ProposalReplay", `Proposal submission replay, already exists as proposal ${PROPOSAL_ID}`) : { status: 200, body: openProposal() };
  });
  const before = seen.length;
  const info = await client.propose({ actions: [{ name: "trigger_snapshot" }] });
  assert.equal(info.proposalId, PROPOSAL_ID);
  for (const req of seen.slice(before)) createdAts.push(req.cose!.createdAt);
  assert.deepEqual(createdAts, [Math.floor(NOW_MS / 1000), Math.floor(NOW_MS / 1000) + 1]);
  // A second refusal is the service's answer, not something to retry forever.
  replies.set("POST /gov/members/proposals:create", ccfError(400, "ProposalReplay", "Proposal submission replay"));
  await assert.rejects(client.propose({ actions: [{ name: "trigger_snapshot" }] }), (e: CocoError) => e.code === "ProposalReplay");
  replies.set("POST /gov/members/proposals:create", ccfError(400, "ProposalCreatedTooLongAgo", "too old"));
  const count = seen.length;
  await assert.rejects(client.propose({ actions: [{ name: "trigger_snapshot" }] }), (e: CocoError) => e.code === "ProposalCreatedTooLongAgo");
  assert.equal(seen.length, count + 1, "other errors are not retried");
});

test("accept submits CCF's always-true ballot to this member's ballot path, bound to the proposal id", async () => {
  replies.set(`POST /gov/members/proposals/${PROPOSAL_ID}/ballots/${memberId}:submit`, {
    status: 200,
    body: openProposal({ proposalState: "Accepted", ballotCount: 1, finalVotes: { [memberId]: true }, voteFailures: {} }),
  });
  const info = await client.accept(PROPOSAL_ID);
  assert.equal(info.proposalState, "Accepted");
  assert.deepEqual(info.finalVotes, { [memberId]: true });
  const req = lastRequest();
  assert.equal(req.cose!.msgType, "ballot");
  assert.equal(req.cose!.proposalId, PROPOSAL_ID);
  assert.deepEqual(JSON.parse(req.cose!.payload.toString("utf8")), { ballot: ACCEPT_BALLOT });
});

test("reject and vote send the given ballot source as {\"ballot\": source}", async () => {
  replies.set(`POST /gov/members/proposals/${PROPOSAL_ID}/ballots/${memberId}:submit`, { status: 200, body: openProposal({ ballotCount: 1 }) });
  await client.reject(PROPOSAL_ID);
  assert.deepEqual(JSON.parse(lastRequest().cose!.payload.toString("utf8")), { ballot: REJECT_BALLOT });
  const custom = "export function vote (proposal, proposerId) { return JSON.parse(proposal).actions.length === 1; }";
  await client.vote(PROPOSAL_ID, custom);
  assert.deepEqual(JSON.parse(lastRequest().cose!.payload.toString("utf8")), { ballot: custom });
});

test("withdraw signs msg type 'withdrawal' with the proposal id; an unknown proposal (204) gives undefined", async () => {
  replies.set(`POST /gov/members/proposals/${PROPOSAL_ID}:withdraw`, { status: 200, body: openProposal({ proposalState: "Withdrawn" }) });
  const info = await client.withdraw(PROPOSAL_ID);
  assert.equal(info?.proposalState, "Withdrawn");
  assert.equal(lastRequest().cose!.msgType, "withdrawal");
  assert.equal(lastRequest().cose!.proposalId, PROPOSAL_ID);
  const unknown = "b".repeat(64);
  replies.set(`POST /gov/members/proposals/${unknown}:withdraw`, { status: 204 });
  assert.equal(await client.withdraw(unknown), undefined);
});

test("list, get and actions read the proposal endpoints without signing", async () => {
  replies.set("GET /gov/members/proposals", { status: 200, body: { value: [openProposal()] } });
  replies.set(`GET /gov/members/proposals/${PROPOSAL_ID}`, { status: 200, body: openProposal() });
  const proposal = { actions: [{ name: "transition_service_to_open", args: {} }] };
  replies.set(`GET /gov/members/proposals/${PROPOSAL_ID}/actions`, { status: 200, body: proposal });
  assert.deepEqual(await client.list(), [openProposal()]);
  assert.equal(lastRequest().query.get("api-version"), GOV_API_VERSION);
  assert.equal(lastRequest().cose, undefined);
  assert.deepEqual(await client.get(PROPOSAL_ID), openProposal());
  assert.deepEqual(await client.actions(PROPOSAL_ID), proposal);
});

test("members and serviceInfo read /gov/service/*", async () => {
  const member = { memberId, status: "Active", memberData: null, certificate: memberCertPem, recoveryRole: "NonParticipant" };
  replies.set("GET /gov/service/members", { status: 200, body: { value: [member] } });
  replies.set("GET /gov/service/info", { status: 200, body: { status: "Open", certificate: serviceCertPem, recoveryCount: 0 } });
  assert.deepEqual(await client.members(), [member]);
  assert.equal((await client.serviceInfo()).status, "Open");
});

test("ack fetches a fresh state digest (msg type state_digest) and signs it back (msg type ack)", async () => {
  const stateDigest = "c".repeat(64);
  replies.set(`POST /gov/members/state-digests/${memberId}:update`, { status: 200, body: { memberId, stateDigest } });
  replies.set(`POST /gov/members/state-digests/${memberId}:ack`, { status: 204 });
  const digest = await client.updateStateDigest();
  assert.deepEqual(digest, { memberId, stateDigest });
  assert.equal(lastRequest().cose!.msgType, "state_digest");
  await client.ack(digest.stateDigest);
  assert.equal(lastRequest().cose!.msgType, "ack");
  assert.deepEqual(JSON.parse(lastRequest().cose!.payload.toString("utf8")), { stateDigest });
});

test("a CCF error body becomes a CocoError with the service's code, message and HTTP status", async () => {
  const missing = "d".repeat(64);
  replies.set(`GET /gov/members/proposals/${missing}`, ccfError(404, "ProposalNotFound", `Could not find proposal ${missing}.`));
  await assert.rejects(client.get(missing), (error: unknown) => {
    assert.ok(error instanceof CocoError);
    assert.equal(error.code, "ProposalNotFound");
    assert.equal(error.status, 404);
    assert.equal(error.message, `Could not find proposal ${missing}.`);
    return true;
  });
});

test("a request signed by an unknown member is refused by the node's COSE policy, and the refusal surfaces", async () => {
  const strangerKeys = generateEcP384KeyPair();
  const stranger = new GovernanceClient({
    url, serviceCertPem, memberCertPem: await createIdentityCertificate(strangerKeys, "stranger"), memberKeyPem: strangerKeys.privateKeyPem,
  });
  try {
    await assert.rejects(stranger.propose({ actions: [] }), { code: "InvalidAuthenticationInfo", status: 401 });
  } finally {
    await stranger.close();
  }
});

test("waitForCommit polls /node/tx until Committed and fails on Invalid", async () => {
  let polls = 0;
  const statuses = ["Pending", "Pending", "Committed"];
  replies.set("GET /node/tx", () => ({ status: 200, body: { status: statuses[Math.min(polls++, statuses.length - 1)], transaction_id: "2.15" } }));
  await client.waitForCommit("2.15", { intervalMs: 5 });
  assert.equal(polls, 3);
  assert.equal(lastRequest().query.get("transaction_id"), "2.15");
  statuses.splice(0, statuses.length, "Invalid");
  polls = 0;
  await assert.rejects(client.waitForCommit("2.15", { intervalMs: 5 }), { code: "TransactionInvalid" });
  statuses.splice(0, statuses.length, "Pending");
  await assert.rejects(client.waitForCommit("2.15", { intervalMs: 5, timeoutMs: 30 }), { code: "TransactionNotCommitted" });
});

test("a client trusting another service certificate refuses to talk to the node", async () => {
  const other = new GovernanceClient({ url, serviceCertPem: await createServiceCertificate(generateEcP384KeyPair()) });
  try {
    await assert.rejects(other.list(), { code: "ConnectionFailed" });
  } finally {
    await other.close();
  }
});

// ---- The `coco gov` command ----------------------------------------------------------------

const mainJs = fileURLToPath(new URL("../../../src/cli/main.js", import.meta.url));

function withWorkspace(): { dir: string; files: string[]; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "coco-gov-cli-"));
  writeFileSync(join(dir, "service_cert.pem"), serviceCertPem);
  writeFileSync(join(dir, "member0_cert.pem"), memberCertPem);
  writeFileSync(join(dir, "member0_privk.pem"), memberKeys.privateKeyPem);
  const files = [
    "--url", url,
    "--service-cert", join(dir, "service_cert.pem"),
    "--member-cert", join(dir, "member0_cert.pem"),
    "--member-key", join(dir, "member0_privk.pem"),
  ];
  return { dir, files, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs the CLI asynchronously, so the fake node in this process can answer it. */
function coco(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [mainJs, ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

test("coco gov propose FILE prints the proposal's state and id; --json prints the service's answer", async () => {
  const ws = withWorkspace();
  try {
    replies.set("POST /gov/members/proposals:create", { status: 200, body: openProposal(), headers: { "x-ms-ccf-transaction-id": "2.20" } });
    const file = join(ws.dir, "proposal.json");
    writeFileSync(file, JSON.stringify({ actions: [{ name: "set_user", args: { cert: "x" } }] }));
    const readable = await coco(["gov", "propose", file, ...ws.files]);
    assert.equal(readable.code, 0, readable.stderr);
    assert.match(readable.stdout, new RegExp(`Proposal ${PROPOSAL_ID} is Open \\(0 ballots\\)`));
    assert.equal(lastRequest().cose!.msgType, "proposal");
    const json = await coco(["gov", "propose", "--action", "set_user", "--args", '{"cert":"x"}', "--json", ...ws.files]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), { ...openProposal(), transactionId: "2.20" });
    assert.deepEqual(JSON.parse(lastRequest().cose!.payload.toString("utf8")), { actions: [{ name: "set_user", args: { cert: "x" } }] });
  } finally {
    ws.cleanup();
  }
});

test("coco gov vote --accept prints the new state; a service error prints 'coco: <code>: <message>' and exits 1", async () => {
  const ws = withWorkspace();
  try {
    replies.set(`POST /gov/members/proposals/${PROPOSAL_ID}/ballots/${memberId}:submit`, {
      status: 200, body: openProposal({ proposalState: "Accepted", ballotCount: 1, finalVotes: { [memberId]: true } }),
    });
    const ok = await coco(["gov", "vote", PROPOSAL_ID, "--accept", ...ws.files]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /is Accepted \(1 ballot\)/);
    const closed = "e".repeat(64);
    replies.set(`POST /gov/members/proposals/${closed}/ballots/${memberId}:submit`,
      ccfError(400, "ProposalNotOpen", `Proposal ${closed} is currently in state Accepted - only Open proposals can receive votes`));
    const refused = await coco(["gov", "vote", closed, "--reject", ...ws.files]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^coco: ProposalNotOpen: Proposal e+ is currently in state Accepted/);
  } finally {
    ws.cleanup();
  }
});

test("coco gov list and members print one line per entry", async () => {
  const ws = withWorkspace();
  try {
    replies.set("GET /gov/members/proposals", { status: 200, body: { value: [openProposal({ ballotCount: 1 })] } });
    replies.set("GET /gov/service/members", { status: 200, body: { value: [{ memberId, status: "Active", recoveryRole: "Owner" }] } });
    const list = await coco(["gov", "list", ...ws.files]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`^${PROPOSAL_ID}\\s+Open\\s+1 ballot\\s`));
    const members = await coco(["gov", "members", ...ws.files]);
    assert.match(members.stdout, new RegExp(`^${memberId}\\s+Active\\s+Owner\\s+\\(you\\)`));
  } finally {
    ws.cleanup();
  }
});

test("coco gov rejects bad command lines with exit code 2 and names the problem", async () => {
  const ws = withWorkspace();
  try {
    const both = await coco(["gov", "vote", PROPOSAL_ID, "--accept", "--reject", ...ws.files]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /coco: give only one of --accept, --reject and --ballot FILE/);
    const none = await coco(["gov", "vote", PROPOSAL_ID, ...ws.files]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--accept, --reject or --ballot FILE/);
    const missingFile = await coco(["gov", "propose", join(ws.dir, "nope.json"), ...ws.files]);
    assert.equal(missingFile.code, 2);
    assert.match(missingFile.stderr, /cannot read proposal file '.*nope\.json': ENOENT/);
    const badJson = join(ws.dir, "bad.json");
    writeFileSync(badJson, "{ not json");
    const invalid = await coco(["gov", "propose", badJson, ...ws.files]);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /proposal file '.*bad\.json' is not valid JSON/);
    const badArgs = await coco(["gov", "propose", "--action", "set_user", "--args", "{x", ...ws.files]);
    assert.equal(badArgs.code, 2);
    assert.match(badArgs.stderr, /--args is not valid JSON/);
    const noKey = await coco(["gov", "withdraw", PROPOSAL_ID, ...ws.files.slice(0, 6), "--member-key", join(ws.dir, "missing.pem")]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /cannot read member private key .*missing\.pem.*--member-key/);
    const unknownOption = await coco(["gov", "list", "--frobnicate"]);
    assert.equal(unknownOption.code, 2);
    const help = await coco(["gov", "vote", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--accept/);
  } finally {
    ws.cleanup();
  }
});
