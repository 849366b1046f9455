// Member authentication, acknowledgement and the service views of CCF's gov API (2024-07-01).
import { test } from "node:test";
import assert from "node:assert/strict";
import { signGovernanceRequest, TABLES } from "../../../src/governance/index.js";
import { GovHarness, makeIdentity, NODE_ID, SERVICE_CERT, TEST_CONSTITUTION, YES } from "./harness.js";

const [m0, m1, outsider] = await Promise.all([makeIdentity("member0"), makeIdentity("member1"), makeIdentity("outsider")]);
const CREATE = "/gov/members/proposals:create?api-version=2024-07-01";
const PROPOSAL = { actions: [{ name: "set_value", args: { key: "k", value: "v" } }] };

function harness(): GovHarness {
  const h = new GovHarness(TEST_CONSTITUTION);
  h.addMember(m0!);
  h.addMember(m1!, "Accepted");
  return h;
}

test("an unsigned request is refused as an invalid COSE Sign1", () => {
  const r = harness().request("POST", CREATE, Buffer.from(JSON.stringify(PROPOSAL)));
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, "InvalidCoseSign1");
});

test("a request signed with a key other than the member's is 401 with CCF's WWW-Authenticate", () => {
  const body = signGovernanceRequest({ memberCertPem: m0!.certPem, memberKeyPem: outsider!.keys.privateKeyPem, msgType: "proposal", createdAt: 1_720_000_000, payload: JSON.stringify(PROPOSAL) });
  const r = harness().request("POST", CREATE, body);
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, "InvalidAuthenticationInfo");
  assert.equal(r.json.error.message, "Failed to validate COSE Sign1");
  assert.equal(r.headers["www-authenticate"], 'COSE-SIGN1 realm="Signed request access"');
});

test("a request signed by someone who is not a member is 401", () => {
  const h = harness();
  const r = h.request("POST", CREATE, h.sign(outsider!, "proposal", PROPOSAL));
  assert.equal(r.status, 401);
  assert.equal(r.json.error.message, "Signer is not a known member");
});

test("a member that has not acknowledged (Accepted, not Active) cannot propose", () => {
  const h = harness();
  const r = h.request("POST", CREATE, h.sign(m1!, "proposal", PROPOSAL));
  assert.equal(r.status, 401);
  assert.match(r.json.error.message, /is not an active member \(status: Accepted\)/);
});

test("a signed message of the wrong type is refused", () => {
  const h = harness();
  const r = h.request("POST", CREATE, h.sign(m0!, "ballot", PROPOSAL, "a".repeat(64)));
  assert.equal(r.status, 401);
  assert.match(r.json.error.message, /expected ccf.gov.msg.type to be proposal/);
});

test("a replayed proposal is refused with ProposalReplay naming the first proposal", () => {
  const h = harness();
  const body = h.sign(m0!, "proposal", PROPOSAL);
  const first = h.request("POST", CREATE, body);
  assert.equal(first.status, 200, first.text);
  const again = h.request("POST", CREATE, body);
  assert.equal(again.status, 400);
  assert.equal(again.json.error.code, "ProposalReplay");
  assert.equal(again.json.error.message, `Proposal submission replay, already exists as proposal ${first.json.proposalId}`);
});

test("a proposal older than the median of the recent window is ProposalCreatedTooLongAgo", () => {
  const h = harness();
  for (let i = 0; i < 3; i++) assert.equal(h.request("POST", CREATE, h.sign(m0!, "proposal", PROPOSAL)).status, 200);
  const old = signGovernanceRequest({ memberCertPem: m0!.certPem, memberKeyPem: m0!.keys.privateKeyPem, msgType: "proposal", createdAt: 1_600_000_000, payload: JSON.stringify(PROPOSAL) });
  const r = h.request("POST", CREATE, old);
  assert.equal(r.json.error.code, "ProposalCreatedTooLongAgo");
});

test("a ballot signed for another proposal id is refused", () => {
  const h = harness();
  const id = h.request("POST", CREATE, h.sign(m0!, "proposal", PROPOSAL)).json.proposalId;
  const body = h.sign(m0!, "ballot", { ballot: YES }, "d".repeat(64));
  const r = h.request("POST", `/gov/members/proposals/${id}/ballots/${m0!.id}:submit`, body);
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, "InvalidResourceName");
});

test("api-version: 2024-07-01, latest or none are served; anything else is UnsupportedApiVersionValue", () => {
  const h = harness();
  for (const q of ["?api-version=2024-07-01", "?api-version=latest", ""]) {
    assert.equal(h.request("GET", `/gov/members/proposals${q}`).status, 200);
  }
  const r = h.request("GET", "/gov/members/proposals?api-version=2020-01-01");
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, "UnsupportedApiVersionValue");
  assert.match(r.json.error.message, /^Unsupported api-version '2020-01-01'. The supported api-versions are: 2023-06-01-preview, 2024-07-01, latest$/);
});

test("an unknown action suffix is ResourceNotFound", () => {
  const h = harness();
  const r = h.request("POST", `/gov/members/proposals/${"a".repeat(64)}:explode`, h.sign(m0!, "withdrawal", "", "a".repeat(64)));
  assert.equal(r.status, 404);
});

test("ack flow: update gives a digest, a wrong digest is StateDigestMismatch, the right one makes the member Active", () => {
  const h = harness();
  const base = `/gov/members/state-digests/${m1!.id}`;
  assert.equal(h.request("GET", base).status, 404);
  const update = h.request("POST", `${base}:update?api-version=2024-07-01`, h.sign(m1!, "state_digest", ""));
  assert.equal(update.status, 200, update.text);
  assert.deepEqual(update.json, { memberId: m1!.id, stateDigest: h.stateDigest });
  assert.deepEqual(h.request("GET", base).json, update.json);

  const wrong = h.request("POST", `${base}:ack`, h.sign(m1!, "ack", { stateDigest: "00".repeat(32) }));
  assert.equal(wrong.status, 400);
  assert.equal(wrong.json.error.code, "StateDigestMismatch");
  assert.equal(h.request("GET", `/gov/service/members/${m1!.id}`).json.status, "Accepted");

  const ack = h.request("POST", `${base}:ack`, h.sign(m1!, "ack", { stateDigest: h.stateDigest }));
  assert.equal(ack.status, 204, ack.text);
  assert.equal(h.request("GET", `/gov/service/members/${m1!.id}`).json.status, "Active");
  assert.equal(h.request("POST", CREATE, h.sign(m1!, "proposal", PROPOSAL)).status, 200);
});

test("a member cannot update or ack another member's digest", () => {
  const h = harness();
  const r = h.request("POST", `/gov/members/state-digests/${m1!.id}:update`, h.sign(m0!, "state_digest", ""));
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, "InvalidAuthenticationInfo");
  const ack = h.request("POST", `/gov/members/state-digests/${m0!.id}:ack`, h.sign(m0!, "ack", { stateDigest: "x" }));
  assert.equal(ack.status, 403, "no ack record yet");
});

test("service views: info, members, nodes and users in CCF's shapes", () => {
  const h = harness();
  assert.deepEqual(h.request("GET", "/gov/service/info?api-version=2024-07-01").json, {
    status: "Opening", certificate: SERVICE_CERT, recoveryCount: 0, creationTransactionId: "2.1", serviceData: null,
  });
  const members = h.request("GET", "/gov/service/members").json.value;
  assert.equal(members.length, 2);
  const first = members.find((m: any) => m.memberId === m0!.id);
  assert.deepEqual(first, { memberId: m0!.id, status: "Active", memberData: null, certificate: m0!.certPem, recoveryRole: "NonParticipant" });
  assert.equal(h.request("GET", `/gov/service/members/${"e".repeat(64)}`).status, 404);
  const nodes = h.request("GET", "/gov/service/nodes").json.value;
  assert.deepEqual(nodes, [{
    nodeId: NODE_ID, status: "Trusted", nodeData: null, certificate: "node-cert", retiredCommitted: false,
    quoteInfo: { format: "Insecure_Virtual" }, rpcInterfaces: { primary_rpc_interface: { publishedAddress: "127.0.0.1:8000" } },
  }]);
  assert.equal(h.request("GET", `/gov/service/nodes/${NODE_ID}`).json.nodeId, NODE_ID);
  assert.deepEqual(h.request("GET", "/gov/service/users").json, { value: [] });
  assert.deepEqual(h.request("GET", "/gov/service/javascript-app").json, { endpoints: {} });
  assert.equal(h.request("GET", "/gov/service/javascript-app?api-version=2023-06-01-preview").json.error.code, "UnsupportedApiVersionValue");
});

test("/gov/service/javascript-app reads endpoint keys as CCF serialises them (\"VERB /path\")", () => {
  const h = new GovHarness(TEST_CONSTITUTION);
  const tx = h.store.begin();
  const properties = { js_module: "/app.js", js_function: "get_item", forwarding_required: "never", authn_policies: ["user_cert"], mode: "readonly", openapi: {} };
  tx.set(TABLES.jsEndpoints, Buffer.from("GET /items/{id}"), Buffer.from(JSON.stringify(properties)));
  tx.set(TABLES.jsEndpoints, Buffer.from("POST /items"), Buffer.from(JSON.stringify({ ...properties, js_function: "add_item", mode: "readwrite" })));
  h.store.commit(tx, h.store.currentVersion + 1);
  const endpoints = h.request("GET", "/gov/service/javascript-app?api-version=2024-07-01").json.endpoints;
  assert.deepEqual(Object.keys(endpoints).sort(), ["/items", "/items/{id}"]);
  assert.equal(endpoints["/items/{id}"].GET.jsFunction, "get_item");
  assert.equal(endpoints["/items"].POST.mode, "readwrite");
  assert.deepEqual(h.request("GET", "/gov/service/javascript-app?api-version=2024-07-01&case=original").json.endpoints["/items"].POST, { ...properties, js_function: "add_item", mode: "readwrite" });
});
