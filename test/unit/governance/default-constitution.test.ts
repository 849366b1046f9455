// The gov API driving Coco's default constitution (constitution/default/): adding a member by
// proposal, and that member acknowledging its way from Accepted to Active.
import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultConstitutionSource } from "../../../src/governance/index.js";
import { GovHarness, makeIdentity, YES } from "./harness.js";

const [m0, m1] = await Promise.all([makeIdentity("member0"), makeIdentity("member1")]);

test("with the default constitution, set_member adds an Accepted member who becomes Active by acking", () => {
  const h = new GovHarness(defaultConstitutionSource());
  h.addMember(m0!);
  const created = h.propose(m0!, [{ name: "set_member", args: { cert: m1!.certPem } }]);
  assert.equal(created.status, 200, created.text);
  assert.equal(created.json.proposalState, "Open");
  const accepted = h.vote(m0!, created.json.proposalId, YES);
  assert.equal(accepted.json.proposalState, "Accepted", accepted.text);
  assert.equal(h.request("GET", `/gov/service/members/${m1!.id}`).json.status, "Accepted");

  const update = h.request("POST", `/gov/members/state-digests/${m1!.id}:update`, h.sign(m1!, "state_digest", ""));
  assert.equal(update.status, 200, update.text);
  const ack = h.request("POST", `/gov/members/state-digests/${m1!.id}:ack`, h.sign(m1!, "ack", { stateDigest: update.json.stateDigest }));
  assert.equal(ack.status, 204, ack.text);
  const member = h.request("GET", `/gov/service/members/${m1!.id}`).json;
  assert.equal(member.status, "Active");
  assert.equal(member.certificate, m1!.certPem);
});

test("with the default constitution, an unknown action fails validation with its description", () => {
  const h = new GovHarness(defaultConstitutionSource());
  h.addMember(m0!);
  const r = h.propose(m0!, [{ name: "no_such_action" }]);
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, "ProposalFailedToValidate");
  assert.match(r.json.error.message, /no_such_action/);
});
