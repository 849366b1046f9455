// Log replication: commit only at signatures, flow control, catch-up after lag or restart.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ConsensusError } from "../../../src/consensus/index.js";
import { Cluster, electionTicks } from "./cluster.js";

test("writes replicate at once but commit only when a signature after them is on a majority", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.propose("n1", "a");
  cluster.propose("n1", "b");
  cluster.deliverAll();
  assert.equal(cluster.node("n2").lastIndex, 3);
  assert.equal(cluster.node("n1").committedIndex, 1, "a and b are replicated but not committed");
  const signature = cluster.propose("n1", "signature", true);
  cluster.deliverAll();
  assert.equal(cluster.node("n1").committedIndex, signature);
  cluster.tickAll(2); // heartbeats carry the commit index to backups
  assert.equal(cluster.node("n3").committedIndex, signature);
});

test("backups learn a new commit index at once, without waiting for a heartbeat or a next batch", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.propose("n1", "a");
  const signature = cluster.propose("n1", "signature", true);
  cluster.deliverAll(); // no tick: no heartbeat
  assert.equal(cluster.node("n1").committedIndex, signature);
  assert.equal(cluster.node("n2").committedIndex, signature);
  assert.equal(cluster.node("n3").committedIndex, signature);
  // One announcement per backup and commit: delivering again sends nothing more.
  const sentBefore = cluster.sent.length;
  cluster.deliverAll();
  assert.equal(cluster.sent.length, sentBefore);
});

test("a signature persisted by the primary alone is not committed", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.isolated.add("n2");
  cluster.isolated.add("n3");
  cluster.write("n1", "a");
  assert.equal(cluster.node("n1").committedIndex, 1);
});

test("one backup is enough for a majority of three", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.isolated.add("n3");
  const signature = cluster.write("n1", "a");
  assert.equal(cluster.node("n1").committedIndex, signature);
});

test("flow control keeps at most maxInflightAppends batches in flight to a backup", () => {
  const cluster = new Cluster(["n1", "n2", "n3"], { maxEntriesPerAppend: 4, maxInflightAppends: 2 });
  cluster.elect("n1");
  cluster.tickAll(1);
  cluster.queue.length = 0;
  for (let i = 0; i < 40; i++) cluster.propose("n1", `w${i}`);
  const toN2 = cluster.queue.filter((m) => m.type === "AppendEntries" && m.to === "n2");
  assert.equal(toN2.length, 2);
  assert.ok(toN2.every((m) => m.type === "AppendEntries" && m.entries.length <= 4));
  cluster.propose("n1", "signature", true);
  cluster.deliverAll(); // each acknowledgement opens the window for the next batch
  assert.equal(cluster.node("n2").lastIndex, cluster.node("n1").lastIndex);
  assert.equal(cluster.node("n1").committedIndex, cluster.node("n1").lastIndex);
});

test("a lagging backup catches up from where its log diverged", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.isolated.add("n3");
  for (let i = 0; i < 10; i++) cluster.write("n1", `a${i}`, `b${i}`);
  assert.equal(cluster.node("n3").lastIndex, 1);
  cluster.isolated.delete("n3");
  cluster.tickAll(electionTicks);
  assert.deepEqual(cluster.payloads("n3"), cluster.payloads("n1"));
  assert.equal(cluster.node("n3").committedIndex, cluster.node("n1").committedIndex);
});

test("a restarted backup keeps what it persisted and catches up on the rest", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.write("n1", "a");
  cluster.crash("n2");
  cluster.write("n1", "b", "c");
  cluster.start("n2");
  assert.equal(cluster.node("n2").lastIndex, 3, "restarts from its persisted log");
  assert.equal(cluster.node("n2").currentTerm, 1, "and its persisted term");
  cluster.tickAll(electionTicks);
  assert.deepEqual(cluster.payloads("n2"), cluster.payloads("n1"));
});

test("a backup's acknowledgement leaves in the same Ready as the entries it must persist first", () => {
  const cluster = new Cluster(["n1", "n2", "n3"]);
  cluster.elect("n1");
  cluster.propose("n1", "a");
  const append = cluster.queue.find((m) => m.type === "AppendEntries" && m.to === "n2" && m.entries.length > 0)!;
  cluster.queue.length = 0;
  const n2 = cluster.node("n2");
  n2.step(append);
  const ready = n2.ready();
  assert.equal(ready.entriesToPersist.length, 1);
  assert.equal(ready.messages[0]?.type, "AppendEntriesResponse");
  n2.advance(ready);
});

test("a primary refuses writes beyond maxUncommittedEntries but still accepts the signature that drains them", () => {
  const cluster = new Cluster(["n1", "n2", "n3"], { maxUncommittedEntries: 3 });
  cluster.elect("n1");
  cluster.isolated.add("n2");
  cluster.isolated.add("n3");
  cluster.propose("n1", "a");
  cluster.propose("n1", "b");
  cluster.propose("n1", "c");
  const refused = cluster.node("n1").propose("d", false);
  assert.ok(refused instanceof ConsensusError && refused.code === "TooManyUncommitted");
  const signature = cluster.propose("n1", "signature", true);
  cluster.isolated.clear();
  cluster.tickAll(2);
  assert.equal(cluster.node("n1").committedIndex, signature);
  cluster.propose("n1", "d");
});
