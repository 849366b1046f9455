// Single-node reconfiguration and leadership transfer when the primary retires.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ConsensusError } from "../../../src/consensus/index.js";
import { Cluster, electionTicks } from "./cluster.js";

function reconfigure(cluster: Cluster, primary: string, voters: string[]): number {
  const proposed = cluster.node(primary).proposeReconfiguration(voters, "config");
  if (proposed instanceof ConsensusError) throw proposed;
  cluster.process(primary);
  return proposed.index;
}

test("an added node catches up the whole log and then counts towards the majority", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.write("n1", "a", "b");
  cluster.start("n4"); // not in the bootstrap configuration: it waits to be told
  cluster.tickAll(electionTicks * 3);
  assert.equal(cluster.node("n4").currentRole, "Backup");
  assert.equal(cluster.node("n4").lastIndex, 0, "nobody replicates to a non-member");
  reconfigure(cluster, "n1", ["n1", "n2", "n3", "n4"]);
  const signature = cluster.write("n1");
  cluster.tickAll(2);
  assert.deepEqual(cluster.payloads("n4"), cluster.payloads("n1"));
  assert.equal(cluster.node("n4").committedIndex, signature);
  assert.deepEqual(cluster.node("n4").configuration, ["n1", "n2", "n3", "n4"]);
  // Four voters: a majority is three, so n1 + n2 alone no longer commit.
  cluster.isolated.add("n3");
  cluster.isolated.add("n4");
  cluster.write("n1", "c");
  assert.equal(cluster.node("n1").committedIndex, signature);
});

test("a removed node no longer counts, so the rest commit without it", () => {
  const cluster = new Cluster(["n1", "n2", "n3", "n4"]);
  cluster.elect("n1");
  cluster.write("n1", "a");
  reconfigure(cluster, "n1", ["n1", "n2", "n3"]);
  cluster.write("n1");
  cluster.isolated.add("n3");
  cluster.isolated.add("n4");
  const signature = cluster.write("n1", "b"); // n1 + n2 are a majority of three
  assert.equal(cluster.node("n1").committedIndex, signature);
});

test("only one node changes per reconfiguration and only one is pending at a time", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  const two = cluster.node("n1").proposeReconfiguration(["n1", "n2", "n3", "n4", "n5"], "config");
  assert.ok(two instanceof ConsensusError && two.code === "InvalidConfiguration");
  reconfigure(cluster, "n1", ["n1", "n2", "n3", "n4"]);
  const second = cluster.node("n1").proposeReconfiguration(["n1", "n2", "n3", "n4", "n5"], "config");
  assert.ok(second instanceof ConsensusError && second.code === "ReconfigurationPending");
});

test("a retiring primary hands leadership to a backup once its retirement is committed", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.write("n1", "a");
  reconfigure(cluster, "n1", ["n2", "n3"]);
  assert.equal(cluster.node("n1").currentRole, "Primary", "leads until the retirement commits");
  cluster.write("n1"); // the signature commits the retirement; n1 sends TimeoutNow and steps down
  const [next] = cluster.primaries();
  assert.ok(next === "n2" || next === "n3", `expected n2 or n3, got ${cluster.primaries().join()}`);
  assert.equal(cluster.node(next!).currentTerm, 2);
  assert.equal(cluster.node("n1").currentRole, "Backup");
  assert.ok(cluster.sent.some((m) => m.type === "TimeoutNow" && m.from === "n1"));
  cluster.tickAll(electionTicks * 3);
  assert.deepEqual(cluster.primaries(), [next], "the retired node never campaigns again");
});
