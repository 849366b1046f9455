// The proposal lifecycle through CCF's gov API (2024-07-01): every proposal state, majority
// voting, ballot and constitution failures, constitution replacement.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GovHarness, makeIdentity, NO, TEST_CONSTITUTION, YES } from "./harness.js";

const [m0, m1, m2] = await Promise.all([makeIdentity("member0"), makeIdentity("member1"), makeIdentity("member2")]);

function consortium(size: 1 | 3): GovHarness {
  const h = new GovHarness(TEST_CONSTITUTION);
  for (const m of [m0, m1, m2].slice(0, size)) h.addMember(m!);
  return h;
}

const setValue = (key: string, value: string) => [{ name: "set_value", args: { key, value } }];

test("a new proposal is Open, answered in CCF's 2024-07-01 shape", () => {
  const h = consortium(3);
  const r = h.propose(m0!, setValue("k", "v"));
  assert.equal(r.status, 200, r.text);
  assert.match(r.json.proposalId, /^[0-9a-f]{64}$/);
  assert.deepEqual(r.json, { proposalId: r.json.proposalId, proposerId: m0!.id, proposalState: "Open", ballotCount: 0 });
  assert.deepEqual(h.proposal(r.json.proposalId).json, r.json);
  assert.equal(h.value("k"), undefined);
});

test("a proposal the constitution accepts at once is Accepted with zero ballots and applied", () => {
  const h = consortium(3);
  const r = h.propose(m0!, [{ name: "always_accept", args: { key: "k", value: "now" } }]);
  assert.equal(r.json.proposalState, "Accepted", r.text);
  assert.equal(r.json.ballotCount, 0);
  assert.deepEqual(r.json.finalVotes, {});
  assert.deepEqual(r.json.voteFailures, {});
  assert.equal(h.value("k"), "now");
});

test("in a 3-member consortium one yes vote leaves the proposal Open and a second accepts it", () => {
  const h = consortium(3);
  const id = h.propose(m0!, setValue("k", "v")).json.proposalId;
  const first = h.vote(m0!, id, YES);
  assert.equal(first.json.proposalState, "Open", first.text);
  assert.equal(first.json.ballotCount, 1);
  assert.equal(first.json.finalVotes, undefined);
  assert.equal(h.value("k"), undefined);
  const second = h.vote(m1!, id, YES);
  assert.equal(second.json.proposalState, "Accepted", second.text);
  assert.deepEqual(second.json.finalVotes, { [m0!.id]: true, [m1!.id]: true });
  assert.equal(h.value("k"), "v");
  const late = h.vote(m2!, id, YES);
  assert.equal(late.status, 400);
  assert.equal(late.json.error.code, "ProposalNotOpen");
});

test("a majority of no votes rejects the proposal and nothing is applied", () => {
  const h = consortium(3);
  const id = h.propose(m0!, setValue("k", "v")).json.proposalId;
  h.vote(m1!, id, NO);
  const r = h.vote(m2!, id, NO);
  assert.equal(r.json.proposalState, "Rejected", r.text);
  assert.deepEqual(r.json.finalVotes, { [m1!.id]: false, [m2!.id]: false });
  assert.equal(h.value("k"), undefined);
});

test("a ballot that throws is a vote failure, not an error, and the others still decide", () => {
  const h = consortium(3);
  const id = h.propose(m0!, setValue("k", "v")).json.proposalId;
  const thrown = h.vote(m0!, id, 'export function vote() { throw new Error("ballot exploded"); }');
  assert.equal(thrown.status, 200, thrown.text);
  assert.equal(thrown.json.proposalState, "Open");
  h.vote(m1!, id, YES);
  const r = h.vote(m2!, id, YES);
  assert.equal(r.json.proposalState, "Accepted", r.text);
  assert.deepEqual(r.json.finalVotes, { [m1!.id]: true, [m2!.id]: true });
  assert.match(r.json.voteFailures[m0!.id].reason, /ballot exploded/);
});

test("a ballot that never returns times out as a vote failure", () => {
  const h = consortium(1);
  const id = h.propose(m0!, setValue("k", "v")).json.proposalId;
  const r = h.vote(m0!, id, "export function vote() { for (;;) {} }");
  assert.equal(r.json.proposalState, "Open", r.text);
});

test("a ballot that tries to write the KV fails its vote (ballots read only)", () => {
  const h = consortium(1);
  const id = h.propose(m0!, setValue("k", "v")).json.proposalId;
  const r = h.vote(m0!, id, 'export function vote() { ccf.kv["public:test.values"].set(ccf.strToBuf("x"), ccf.strToBuf("y")); return true; }');
  assert.equal(r.json.proposalState, "Open", r.text);
  assert.equal(h.value("x"), undefined);
});

test("an apply that throws leaves the proposal Failed and none of apply's writes", () => {
  const h = consortium(1);
  const id = h.propose(m0!, [{ name: "apply_throws", args: {} }]).json.proposalId;
  const r = h.vote(m0!, id, YES);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.proposalState, "Failed");
  assert.match(r.json.failure.reason, /^Failed to apply\(\): .*apply exploded/);
  assert.equal(typeof r.json.failure.trace, "string");
  assert.deepEqual(r.json.finalVotes, { [m0!.id]: true });
  assert.equal(h.value("partial"), undefined);
  assert.equal(h.proposal(id).json.proposalState, "Failed");
});

test("with discardFailedProposals a Failed proposal is refused as CCF does (500, nothing recorded)", () => {
  const h = new GovHarness(TEST_CONSTITUTION, { discardFailedProposals: true });
  h.addMember(m0!);
  const id = h.propose(m0!, [{ name: "apply_throws", args: {} }]).json.proposalId;
  const r = h.vote(m0!, id, YES);
  assert.equal(r.status, 500);
  assert.equal(r.json.error.code, "InternalError");
  assert.match(r.json.error.message, /apply exploded/);
  assert.equal(h.proposal(id).json.proposalState, "Open");
});

test("a resolve that throws leaves the proposal Failed", () => {
  const h = consortium(1);
  const r = h.propose(m0!, [{ name: "resolve_throws", args: {} }]);
  assert.equal(r.json.proposalState, "Failed", r.text);
  assert.match(r.json.failure.reason, /^Failed to resolve\(\): .*resolve exploded/);
});

test("the proposer can withdraw an Open proposal; others cannot; it then takes no votes", () => {
  const h = consortium(3);
  const id = h.propose(m0!, setValue("k", "v")).json.proposalId;
  const other = h.withdraw(m1!, id);
  assert.equal(other.status, 403);
  assert.equal(other.json.error.code, "AuthorizationFailed");
  const r = h.withdraw(m0!, id);
  assert.equal(r.json.proposalState, "Withdrawn", r.text);
  assert.equal(h.withdraw(m0!, id).json.proposalState, "Withdrawn", "withdrawing twice is idempotent");
  const vote = h.vote(m1!, id, YES);
  assert.equal(vote.json.error.code, "ProposalNotOpen");
  assert.equal(h.withdraw(m0!, "c".repeat(64)).status, 204, "an unknown proposal withdraws as a no-op");
});

test("accepting set_constitution replaces the rules and drops every other Open proposal", () => {
  const h = consortium(1);
  const pending = h.propose(m0!, setValue("k", "v")).json.proposalId;
  const acceptAll = 'export function validate() { return { valid: true, description: "" }; } export function resolve() { return "Accepted"; } export function apply() { ccf.kv["public:test.values"].set(ccf.strToBuf("by"), ccf.strToBuf("new rules")); }';
  const id = h.propose(m0!, [{ name: "set_constitution", args: { constitution: acceptAll } }]).json.proposalId;
  assert.equal(h.vote(m0!, id, YES).json.proposalState, "Accepted");
  assert.equal(h.proposal(pending).json.proposalState, "Dropped");
  const text = h.request("GET", "/gov/service/constitution?api-version=2024-07-01");
  assert.equal(text.text, acceptAll);
  assert.equal(text.headers["content-type"], "text/javascript");
  const next = h.propose(m0!, [{ name: "anything" }]);
  assert.equal(next.json.proposalState, "Accepted", next.text);
  assert.equal(h.value("by"), "new rules");
});

test("a finished proposal is removed when a later one finishes, as CCF keeps the tables small", () => {
  const h = consortium(1);
  const first = h.propose(m0!, [{ name: "always_accept", args: { key: "a", value: "1" } }]).json.proposalId;
  assert.equal(h.proposal(first).json.proposalState, "Accepted");
  h.propose(m0!, [{ name: "always_accept", args: { key: "b", value: "2" } }]);
  assert.equal(h.proposal(first).status, 404);
  assert.equal(h.proposal(first).json.error.code, "ProposalNotFound");
});

test("a proposal the constitution finds invalid is refused with ProposalFailedToValidate", () => {
  const h = consortium(1);
  const r = h.propose(m0!, [{ name: "no_such_action" }]);
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, "ProposalFailedToValidate");
  assert.equal(r.json.error.message, "Proposal failed to validate: unknown action no_such_action");
  assert.deepEqual(h.request("GET", "/gov/members/proposals").json, { value: [] });
});

test("a ballot resubmitted unchanged is idempotent; a different one is VoteAlreadyExists", () => {
  const h = consortium(3);
  const id = h.propose(m0!, setValue("k", "v")).json.proposalId;
  h.vote(m0!, id, YES);
  const same = h.vote(m0!, id, YES);
  assert.equal(same.status, 200);
  assert.equal(same.json.ballotCount, 1);
  const changed = h.vote(m0!, id, NO);
  assert.equal(changed.status, 400);
  assert.equal(changed.json.error.code, "VoteAlreadyExists");
});

test("a ballot for another member's URL is refused", () => {
  const h = consortium(3);
  const id = h.propose(m0!, setValue("k", "v")).json.proposalId;
  const body = h.sign(m0!, "ballot", { ballot: YES }, id);
  const r = h.request("POST", `/gov/members/proposals/${id}/ballots/${m1!.id}:submit`, body);
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, "InvalidResourceName");
  assert.equal(r.json.error.message, "Authenticated member id does not match URL");
});

test("ballots, actions and the proposal list read back as CCF serves them", () => {
  const h = consortium(3);
  const id = h.propose(m0!, setValue("k", "v")).json.proposalId;
  h.vote(m1!, id, YES);
  const ballot = h.request("GET", `/gov/members/proposals/${id}/ballots/${m1!.id}?api-version=2024-07-01`);
  assert.equal(ballot.text, YES);
  assert.equal(ballot.headers["content-type"], "text/javascript");
  assert.equal(h.request("GET", `/gov/members/proposals/${id}/ballots/${m2!.id}`).json.error.code, "VoteNotFound");
  assert.deepEqual(h.request("GET", `/gov/members/proposals/${id}/actions`).json, { actions: setValue("k", "v") });
  const list = h.request("GET", "/gov/members/proposals?api-version=2024-07-01").json;
  assert.deepEqual(list.value.map((p: any) => [p.proposalId, p.proposalState, p.ballotCount]), [[id, "Open", 1]]);
  assert.equal(h.request("GET", "/gov/members/proposals/nothex").json.error.code, "InvalidResourceName");
});

test("the built-in transitionServiceToOpen hook writes service info through apply's overlay", () => {
  const h = consortium(1);
  const id = h.propose(m0!, [{ name: "open_service", args: { next_service_identity: "-----BEGIN CERTIFICATE-----\nservice\n-----END CERTIFICATE-----\n" } }]).json.proposalId;
  assert.equal(h.request("GET", "/gov/service/info").json.status, "Opening");
  assert.equal(h.vote(m0!, id, YES).json.proposalState, "Accepted");
  assert.equal(h.request("GET", "/gov/service/info").json.status, "Open");
});

// Node hooks that CCF's constitutions call from apply and that Coco implements as KV writes.
const HOOKS_CONSTITUTION = String.raw`
export function validate(input) { return { valid: true, description: "OK" }; }
export function resolve(proposal, proposerId, votes) { return "Accepted"; }
export function apply(proposal, proposalId) {
  for (const { name, args } of JSON.parse(proposal).actions) {
    if (name === "refresh") ccf.refreshAppBytecodeCache();
    if (name === "keys") ccf.setJwtPublicSigningKeys(args.issuer, { issuer: args.issuer }, args.jwks);
    if (name === "drop_keys") ccf.removeJwtPublicSigningKeys(args.issuer);
  }
}
`;

test("apply may refresh the app bytecode cache (a no-op: Coco compiles from source)", () => {
  const h = new GovHarness(HOOKS_CONSTITUTION);
  h.addMember(m0!);
  const r = h.propose(m0!, [{ name: "refresh" }]);
  assert.equal(r.json.proposalState, "Accepted", r.text);
});

test("apply sets and removes an issuer's JWT signing keys in CCF's public_signing_keys_metadata_v2 table", async () => {
  const { generateKeyPairSync, createPublicKey } = await import("node:crypto");
  const jwkOf = () => generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" });
  const h = new GovHarness(HOOKS_CONSTITUTION);
  h.addMember(m0!);
  const [a, b, c] = [jwkOf(), jwkOf(), jwkOf()];
  const TABLE = "public:ccf.gov.jwt.public_signing_keys_metadata_v2";
  const read = (kid: string) => {
    const raw = h.store.begin().get(TABLE, Buffer.from(kid));
    return raw === undefined ? undefined : JSON.parse(raw.toString()) as { public_key: string; issuer: string }[];
  };
  assert.equal(h.propose(m0!, [{ name: "keys", args: { issuer: "https://one", jwks: { keys: [{ kid: "k1", ...a }, { kid: "shared", ...b }] } } }]).json.proposalState, "Accepted");
  assert.equal(h.propose(m0!, [{ name: "keys", args: { issuer: "https://two", jwks: { keys: [{ kid: "shared", ...c }] } } }]).json.proposalState, "Accepted");
  const k1 = read("k1")!;
  assert.deepEqual(k1.map((m) => m.issuer), ["https://one"]);
  assert.deepEqual(createPublicKey({ key: Buffer.from(k1[0]!.public_key, "base64"), format: "der", type: "spki" }).export({ format: "jwk" }), a);
  assert.deepEqual(read("shared")!.map((m) => m.issuer), ["https://one", "https://two"]);
  // Setting keys again replaces the issuer's previous set.
  h.propose(m0!, [{ name: "keys", args: { issuer: "https://one", jwks: { keys: [{ kid: "k9", ...a }] } } }]);
  assert.equal(read("k1"), undefined);
  assert.deepEqual(read("shared")!.map((m) => m.issuer), ["https://two"]);
  h.propose(m0!, [{ name: "drop_keys", args: { issuer: "https://two" } }]);
  assert.equal(read("shared"), undefined);
  assert.deepEqual(read("k9")!.map((m) => m.issuer), ["https://one"]);
  const bad = h.propose(m0!, [{ name: "keys", args: { issuer: "https://one", jwks: { keys: [{ kid: "x", kty: "oct" }] } } }]);
  assert.equal(bad.json.proposalState, "Failed", bad.text);
});
