// A backup that lost log entries it had acknowledged (its ledger wiped or damaged and moved
// away): the primary notices from its rejections and replicates everything again, and the
// backup withholds its vote until it has caught up past the loss.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Cluster } from "./cluster.js";

function wipe(cluster: Cluster, id: string): void {
  cluster.crash(id);
  cluster.stores.get(id)!.entries.length = 0;
  cluster.start(id, { lostEntries: true });
}

test("a backup whose ledger was wiped is replicated to again, from its first entry", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.write("n1", "a", "b", "c");
  cluster.write("n1", "d");
  assert.deepEqual(cluster.payloads("n2"), cluster.payloads("n1"));
  wipe(cluster, "n2");
  assert.deepEqual(cluster.payloads("n2"), []);
  cluster.write("n1", "e");
  for (let i = 0; i < 10; i++) cluster.tickAll();
  assert.deepEqual(cluster.payloads("n2"), cluster.payloads("n1"), "the wiped backup holds the whole log again");
  assert.equal(cluster.node("n2").committedIndex, cluster.node("n1").committedIndex);
});

test("once a backup that lost entries has caught up, the primary hands over leadership and the new view restores its vote", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.write("n1", "a", "b");
  const view = cluster.node("n1").currentTerm;
  wipe(cluster, "n2");
  assert.equal(cluster.node("n2").mayVote, false);
  cluster.write("n1", "c");
  for (let i = 0; i < 20 && cluster.node("n2").mayVote === false; i++) cluster.tickAll();
  assert.deepEqual(cluster.primaries(), ["n3"], "leadership went to the other voter, not to the backup that lost entries");
  assert.ok(cluster.node("n3").currentTerm > view);
  assert.equal(cluster.node("n2").mayVote, true, "an entry of the newer view committed: its log holds everything committed before the loss");
  assert.deepEqual(cluster.payloads("n2"), cluster.payloads("n3"));
});

test("a backup that lost entries never grants a vote while it catches up, even after a restart", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.write("n1", "a");
  const sentBefore = cluster.sent.length;
  wipe(cluster, "n2");
  cluster.crash("n2");
  assert.equal(cluster.stores.get("n2")!.hardState.catchUpThroughTerm, cluster.node("n1").currentTerm, "the catch-up state is part of the persisted hard state");
  cluster.start("n2");
  assert.equal(cluster.node("n2").mayVote, false);
  cluster.crash("n1");
  // n2 alone cannot be elected, and n3 cannot win with n2's vote: no primary until n1 is back.
  cluster.tickAll(40);
  assert.deepEqual(cluster.primaries(), []);
  const votes = cluster.sent.slice(sentBefore).filter((m) => m.type === "RequestVoteResponse" && m.from === "n2" && m.granted);
  assert.deepEqual(votes, []);
});
