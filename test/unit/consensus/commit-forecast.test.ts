// commitIndexIfPersisted: what a primary's own durability would commit. The node's shell lets its
// ledger record that commit point in the same visit to the disk as the flush (replication.ts).

import { test } from "node:test";
import assert from "node:assert/strict";
import { RaftNode } from "../../../src/consensus/index.js";
import { Cluster } from "./cluster.js";

function loneVoter(): RaftNode<string> {
  const node = new RaftNode<string>("n1", ["n1"], { hardState: { term: 0, votedFor: undefined }, entries: [] }, {
    electionTicks: 10, heartbeatTicks: 2, maxEntriesPerAppend: 16, maxInflightAppends: 2, random: () => 0.5,
  });
  node.campaignNow();
  for (let round = 0; round < 4; round++) node.advance(node.ready(), { durable: false });
  assert.equal(node.currentRole, "Primary");
  return node;
}

test("a lone voter's flush of a signature would commit it: the forecast names it before it is durable", () => {
  const node = loneVoter();
  node.persisted(node.currentTerm, node.lastIndex);
  const before = node.committedIndex;
  node.propose("a", false);
  const signature = node.propose("signature", true);
  assert.ok(!(signature instanceof Error));
  node.propose("b", false);
  node.advance(node.ready(), { durable: false });
  assert.equal(node.committedIndex, before, "nothing is durable yet, so nothing new is committed");
  assert.equal(node.commitIndexIfPersisted(signature.index - 1), before, "durable short of the signature commits nothing new");
  assert.equal(node.commitIndexIfPersisted(node.lastIndex), signature.index, "durable past the signature commits up to it, never past it");
  node.persisted(node.currentTerm, node.lastIndex);
  assert.equal(node.committedIndex, signature.index, "consensus then commits exactly what was forecast");
});

test("a backup forecasts nothing: it learns commits from its primary", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.write("n1", "a");
  const backup = cluster.node("n2");
  assert.equal(backup.commitIndexIfPersisted(backup.lastIndex), backup.committedIndex);
});
