// Who may speak to a node over node-to-node channels (src/node/membership.ts): the pure rule,
// and PeerAdmission re-judging peers as nodes.info, the configuration and rollbacks change it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Store } from "../../../src/kv/index.js";
import { admitPeer, PeerAdmission, type AdmissionInput } from "../../../src/node/membership.js";
import { NODES_INFO_MAP } from "../../../src/node/join.js";

const none = new Set<string>();
function decide(overrides: Partial<AdmissionInput>) {
  return admitPeer({ self: "me", peerId: "peer", peerStatus: "Trusted", selfStatus: "Trusted", peerIsVoter: false, bootstrapPeers: none, ...overrides });
}

test("a Trusted peer is accepted and a node never accepts itself", () => {
  assert.equal(decide({}).accepted, true);
  assert.equal(decide({ peerId: "me" }).accepted, false);
});

test("a retired peer is refused once it is out of the configuration, with the reason", () => {
  const refused = decide({ peerStatus: "Retired" });
  assert.equal(refused.accepted, false);
  assert.match(refused.reason, /retired/);
  // Even a node that has not replayed its own admission refuses a peer its state calls Retired.
  assert.equal(decide({ peerStatus: "Retired", selfStatus: undefined, bootstrapPeers: new Set(["peer"]) }).accepted, false);
});

test("a retiring peer that is still a voter is accepted until its removal commits", () => {
  assert.equal(decide({ peerStatus: "Retired", peerIsVoter: true }).accepted, true);
});

test("a peer this node's state does not know yet (or knows as Pending) is accepted: it was trusted after this node's state", () => {
  assert.equal(decide({ peerStatus: undefined }).accepted, true);
  assert.equal(decide({ peerStatus: "Pending" }).accepted, true);
});

test("before its own admission is replayed, a joiner accepts only the peers the service named and peers it does not know yet", () => {
  const joining = { selfStatus: undefined, bootstrapPeers: new Set(["named"]) } as const;
  assert.equal(decide({ ...joining, peerId: "named" }).accepted, true);
  assert.equal(decide({ ...joining, peerId: "later", peerStatus: undefined }).accepted, true);
  // Its replayed state is the service's past: a node Trusted (or voting) there may have retired since.
  assert.equal(decide({ ...joining, peerId: "old", peerStatus: "Trusted" }).accepted, false);
  assert.equal(decide({ ...joining, peerId: "old", peerStatus: "Trusted", peerIsVoter: true }).accepted, false);
  // Once its own record is replayed, the normal rule applies.
  assert.equal(decide({ ...joining, selfStatus: "Trusted", peerId: "old", peerStatus: "Trusted" }).accepted, true);
});

function setStatus(store: Store, nodeId: string, status: string): void {
  const tx = store.begin();
  tx.set(NODES_INFO_MAP, Buffer.from(nodeId), Buffer.from(JSON.stringify({ status, cert: "" })));
  store.commit(tx, store.currentVersion + 1);
}

async function nextTurn(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}

test("PeerAdmission re-judges a peer after nodes.info changes and after a rollback, and tells its listeners", async () => {
  const store = new Store();
  const consensus = { configuration: ["me", "x"] as string[], committedConfiguration: ["me", "x"] as string[] };
  const admission = new PeerAdmission({ self: "me", store, consensus: () => consensus, bootstrapPeers: [] });
  let changes = 0;
  admission.onChange(() => changes++);
  setStatus(store, "me", "Trusted");
  setStatus(store, "x", "Trusted");
  await nextTurn();
  assert.equal(changes, 1, "changes in one turn are reported once");
  assert.equal(admission.accepts("x"), true);
  assert.equal(admission.isTrusted("x"), true);

  setStatus(store, "x", "Retired");
  const retiredAt = store.currentVersion;
  await nextTurn();
  assert.equal(admission.accepts("x"), true, "still a voter in both configurations");
  assert.equal(admission.isTrusted("x"), false, "but no longer trusted to forward requests");
  consensus.configuration = ["me"];
  assert.equal(admission.accepts("x"), true, "its removal is not committed yet");
  consensus.committedConfiguration = ["me"];
  admission.configurationMayHaveChanged();
  await nextTurn();
  assert.equal(admission.accepts("x"), false, "retired and out of the configuration");
  assert.match(admission.decide("x").reason, /retired/);
  assert.equal(changes, 3);

  store.rollback(retiredAt - 1);
  await nextTurn();
  assert.equal(changes, 4);
  assert.equal(admission.accepts("x"), true, "the retirement was rolled back: Trusted again");
});
