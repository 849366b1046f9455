// CCF 6.0 LTS's KV access rules for governance JS (permissions_checks.h): apply() may write
// public application tables but not read them (6.0.8, #7088), never touch private tables, only
// read internal ones; ballots, validate and resolve read governance and internal tables only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { governanceTablePermission } from "../../../src/governance/index.js";
import { GovHarness, makeIdentity } from "./harness.js";

test("the access matrix is CCF's for both governance contexts", () => {
  const cases: [string, string, string][] = [
    // table, read-write governance (apply), read-only governance (ballots, validate, resolve)
    ["public:ccf.gov.members.info", "read-write", "read-only"],
    ["public:ccf.internal.signatures", "read-only", "read-only"],
    ["public:records", "write-only", "inaccessible"],
    ["records", "inaccessible", "inaccessible"],
    ["ccf.gov.private_thing", "inaccessible", "inaccessible"],
    ["public:ccf.reserved", "inaccessible", "inaccessible"],
  ];
  for (const [table, rw, ro] of cases) {
    assert.equal(governanceTablePermission(table, "read-write governance"), rw, `${table} in apply`);
    assert.equal(governanceTablePermission(table, "read-only governance"), ro, `${table} read-only`);
  }
});

// apply() tries each operation and records what happened in a governance table it may write.
const PROBING_CONSTITUTION = String.raw`
export function validate(input) { return { valid: true, description: "OK" }; }
export function resolve(proposal, proposerId, votes) { return "Accepted"; }
function attempt(name, fn) {
  let outcome;
  try { fn(); outcome = "ok"; } catch (e) { outcome = "refused: " + e.message; }
  ccf.kv["public:ccf.gov.probe"].set(ccf.strToBuf(name), ccf.strToBuf(outcome));
}
export function apply(proposal, proposalId) {
  const k = ccf.strToBuf("k");
  const v = ccf.strToBuf("v");
  attempt("write public app table", () => ccf.kv["public:records"].set(k, v));
  attempt("delete in public app table", () => ccf.kv["public:records"].delete(ccf.strToBuf("other")));
  attempt("read public app table", () => ccf.kv["public:records"].get(k));
  attempt("iterate public app table", () => ccf.kv["public:records"].forEach(() => {}));
  attempt("write private app table", () => ccf.kv["records"].set(k, v));
  attempt("read private app table", () => ccf.kv["records"].get(k));
  attempt("read internal table", () => ccf.kv["public:ccf.internal.signatures"].get(k));
  attempt("write internal table", () => ccf.kv["public:ccf.internal.signatures"].set(k, v));
  attempt("read governance table", () => ccf.kv["public:ccf.gov.members.info"].get(k));
}
`;

test("apply() writes public app tables but cannot read them, and cannot reach private or write internal tables", async () => {
  const h = new GovHarness(PROBING_CONSTITUTION);
  const member = await makeIdentity("m0");
  h.addMember(member);
  const created = h.propose(member, [{ name: "probe", args: {} }]);
  assert.equal(created.json.proposalState, "Accepted", created.text);
  const tx = h.store.begin();
  const outcome = (name: string): string => tx.get("public:ccf.gov.probe", Buffer.from(name))?.toString() ?? "(not recorded)";
  assert.equal(outcome("write public app table"), "ok");
  assert.equal(outcome("delete in public app table"), "ok");
  assert.equal(tx.get("public:records", Buffer.from("k"))?.toString(), "v", "the write reached the store");
  assert.match(outcome("read public app table"), /refused: Cannot call get on table named public:records\. This table is write-only in current \(read-write governance\) execution context/);
  assert.match(outcome("iterate public app table"), /refused: Cannot call forEach on table named public:records\. This table is write-only/);
  assert.match(outcome("write private app table"), /refused: Cannot call set on table named records\. This table is inaccessible/);
  assert.match(outcome("read private app table"), /refused: .*inaccessible/);
  assert.equal(tx.get("records", Buffer.from("k")), undefined);
  assert.equal(outcome("read internal table"), "ok");
  assert.match(outcome("write internal table"), /refused: Cannot call set on table named public:ccf\.internal\.signatures\. This table is read-only/);
  assert.equal(outcome("read governance table"), "ok");
});

test("a ballot cannot read public app tables (read-only governance), but reads governance tables", async () => {
  const h = new GovHarness(String.raw`
export function validate(input) { return { valid: true, description: "OK" }; }
export function resolve(proposal, proposerId, votes) { return votes.length > 0 && votes.every((v) => v.vote === true) ? "Accepted" : "Open"; }
export function apply(proposal, proposalId) {}
`);
  const [m0, m1] = [await makeIdentity("m0"), await makeIdentity("m1")];
  h.addMember(m0);
  h.addMember(m1);
  const id = h.propose(m0, [{ name: "anything", args: {} }]).json.proposalId as string;
  const failed = h.vote(m0, id, 'export function vote(proposal, proposerId) { ccf.kv["public:records"].get(ccf.strToBuf("k")); return true; }');
  assert.equal(failed.json.proposalState, "Open", failed.text);
  const decided = h.vote(m1, id, 'export function vote(proposal, proposerId) { ccf.kv["public:ccf.gov.members.info"].get(ccf.strToBuf("k")); return true; }');
  assert.equal(decided.json.proposalState, "Accepted", decided.text);
  assert.deepEqual(decided.json.finalVotes, { [m1.id]: true });
  assert.match(decided.json.voteFailures[m0.id].reason,
    /Cannot call get on table named public:records\. This table is inaccessible in current \(read-only governance\) execution context/);
});
