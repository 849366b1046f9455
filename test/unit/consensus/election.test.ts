// Elections with CCF's rules: pre-vote, check-quorum, and "the winner holds the latest signature".

import { test } from "node:test";
import assert from "node:assert/strict";
import { ConsensusError } from "../../../src/consensus/index.js";
import { Cluster, electionTicks } from "./cluster.js";

test("the node that times out first becomes primary and signs in its new term", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  assert.deepEqual(cluster.primaries(), ["n1"]);
  assert.equal(cluster.node("n1").currentTerm, 1);
  assert.equal(cluster.node("n2").leader, "n1");
  // The shell's first signature in the new term commits once a majority persisted it.
  assert.equal(cluster.node("n1").committedIndex, 1);
  assert.deepEqual(cluster.payloads("n3"), ["1.1:signature"]);
});

test("a backup refuses proposals and names the primary", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  const refused = cluster.node("n2").propose("w", false);
  assert.ok(refused instanceof ConsensusError);
  assert.equal(refused.code, "NotPrimary");
  assert.equal(refused.leaderId, "n1");
});

test("a candidate without the latest signature cannot win, however many times it tries", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.isolated.add("n3");
  cluster.write("n1", "a"); // signature at 3 reaches n1 and n2 only
  cluster.isolated.delete("n3");
  cluster.isolated.add("n1");
  cluster.tick("n3", electionTicks * 3);
  cluster.deliverAll();
  assert.notEqual(cluster.node("n3").currentRole, "Primary");
  cluster.elect("n2");
  assert.equal(cluster.node("n2").currentRole, "Primary");
  assert.match(cluster.payloads("n3").join(), /1\.2:a/);
});

test("a new primary rolls back the unsigned tail it inherited and signs in its own term", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.write("n1", "a"); // 2 = a, 3 = signature: committed
  cluster.propose("n1", "unsigned"); // 4: never followed by a signature
  cluster.deliverAll();
  assert.equal(cluster.node("n2").entryAt(4)?.payload, "unsigned");
  cluster.isolated.add("n1");
  cluster.tickAll(electionTicks * 2); // n2 and n3 stop hearing from n1; n2 times out first
  assert.deepEqual(cluster.primaries(), ["n2"]);
  assert.deepEqual(cluster.payloads("n2"), ["1.1:signature", "1.2:a", "1.3:signature", "2.4:signature"]);
  cluster.isolated.delete("n1");
  cluster.tickAll(electionTicks);
  assert.deepEqual(cluster.payloads("n1"), cluster.payloads("n2"), "the old primary's unsigned write is replaced");
  assert.equal(cluster.node("n1").txStatus(1, 4), "Invalid");
  assert.equal(cluster.node("n1").txStatus(1, 2), "Committed");
});

test("pre-vote stops a partitioned node from disrupting the healthy majority when it rejoins", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.isolated.add("n3");
  cluster.tickAll(electionTicks * 5); // n3 keeps timing out alone
  assert.equal(cluster.node("n3").currentTerm, 1, "pre-votes never raised n3's term");
  cluster.isolated.delete("n3");
  cluster.tickAll(electionTicks * 2);
  assert.deepEqual(cluster.primaries(), ["n1"]);
  assert.equal(cluster.node("n1").currentTerm, 1);
  assert.equal(cluster.node("n3").leader, "n1");
});

test("without pre-vote the same rejoining node does disrupt the primary (why pre-vote exists)", () => {
  const cluster = new Cluster(["n1", "n2", "n3"], { preVote: false, checkQuorum: false });
  cluster.elect("n1");
  cluster.isolated.add("n3");
  cluster.tickAll(electionTicks * 5);
  assert.ok(cluster.node("n3").currentTerm > 1);
  cluster.isolated.delete("n3");
  cluster.tickAll(electionTicks * 3);
  assert.ok(cluster.node("n1").currentTerm > 1, "n1 was forced out of term 1");
});

test("check-quorum steps down a primary that cannot hear a majority", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.isolated.add("n1");
  cluster.tick("n1", electionTicks); // the first round still counts the acks from before the cut
  assert.equal(cluster.node("n1").currentRole, "Primary");
  cluster.tick("n1", electionTicks);
  assert.equal(cluster.node("n1").currentRole, "Backup");
  assert.equal(cluster.node("n1").leader, undefined);
});

test("a backup that hears from its primary ignores vote requests (the lease)", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.tickAll(2);
  const before = cluster.node("n2").currentTerm;
  cluster.node("n2").step({ type: "RequestVote", from: "n3", to: "n2", term: 9, preVote: false, leadershipTransfer: false, lastSignatureIndex: 99, lastSignatureTerm: 9 });
  cluster.process("n2");
  assert.equal(cluster.node("n2").currentTerm, before);
  assert.equal(cluster.node("n2").leader, "n1");
});

test("a vote survives a crash: a restarted voter does not vote twice in one term", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.crash("n2");
  cluster.start("n2");
  assert.deepEqual(cluster.node("n2").hardState(), { term: 1, votedFor: "n1" });
  const n2 = cluster.node("n2");
  n2.step({ type: "RequestVote", from: "n3", to: "n2", term: 1, preVote: false, leadershipTransfer: false, lastSignatureIndex: 5, lastSignatureTerm: 1 });
  const ready = n2.ready();
  n2.advance(ready);
  assert.deepEqual(ready.messages.map((m) => m.type === "RequestVoteResponse" && m.granted), [false]);
});

test("a primary asked to transfer leadership hands over to the chosen backup", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.write("n1", "a");
  assert.equal(cluster.node("n1").transferLeadership("n3"), undefined);
  cluster.process("n1");
  cluster.deliverAll();
  assert.equal(cluster.node("n3").currentRole, "Primary");
  assert.equal(cluster.node("n3").currentTerm, 2);
  cluster.tickAll(electionTicks);
  assert.deepEqual(cluster.primaries(), ["n3"]);
  assert.ok(cluster.node("n3").committedIndex >= 4, "the new primary's signature commits");
});
