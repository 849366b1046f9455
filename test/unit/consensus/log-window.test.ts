// The Raft log keeps a bounded window of committed entries in memory; a backup behind it is
// caught up from the shell's storage (Ready.fetches), and the compact prefix (terms,
// signatures, configurations) still answers every question consensus asks about old entries.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LogPrefixBuilder } from "../../../src/consensus/index.js";
import { RaftLog } from "../../../src/consensus/log.js";
import { Cluster } from "./cluster.js";

const window = { entriesMax: 8, bytesMax: 1_000_000, payloadBytes: (p: unknown) => String(p).length };

test("a primary keeps at most 1.25 windows of committed entries in memory, however long its log", () => {
  const cluster = new Cluster(["n1", "n2", "n3"], { logWindow: window, maxEntriesPerAppend: 16 });
  cluster.elect("n1");
  for (let i = 0; i < 40; i++) cluster.write("n1", `a${i}`, `b${i}`, `c${i}`);
  const primary = cluster.node("n1");
  assert.ok(primary.committedIndex > 150, `committed ${primary.committedIndex}`);
  for (const id of ["n1", "n2", "n3"]) {
    const state = cluster.node(id).logWindowState;
    assert.ok(state.entries <= 10, `${id} holds ${state.entries} entries in memory`);
    assert.ok(state.compactedIndex >= primary.committedIndex - 10, `${id} compacted up to ${state.compactedIndex}`);
    // Terms of compacted entries are still known (elections and AppendEntries consistency checks use them).
    assert.equal(cluster.node(id).termAt(1), cluster.stores.get(id)!.entries[0]!.term);
  }
  assert.equal(cluster.fetchedEntries, 0, "healthy backups never need the store");
});

test("a backup far behind the in-memory window is caught up from storage and ends with the primary's log", () => {
  const cluster = new Cluster(["n1", "n2", "n3"], { logWindow: window, maxEntriesPerAppend: 16 });
  cluster.elect("n1");
  cluster.write("n1", "first");
  cluster.isolated.add("n3");
  for (let i = 0; i < 30; i++) cluster.write("n1", `x${i}`, `y${i}`);
  const primary = cluster.node("n1");
  assert.ok(primary.logWindowState.compactedIndex > cluster.stores.get("n3")!.entries.length + 20, "n3 is far behind the window");
  cluster.isolated.delete("n3");
  for (let i = 0; i < 200 && cluster.payloads("n3").length < cluster.payloads("n1").length; i++) cluster.tickAll();
  assert.deepEqual(cluster.payloads("n3"), cluster.payloads("n1"));
  assert.ok(cluster.fetchedEntries > 0, "the entries came from the primary's store");
  assert.equal(cluster.node("n3").committedIndex, primary.committedIndex);
});

test("a fetch answered after the backup's progress moved on sends nothing stale", () => {
  const cluster = new Cluster(["n1", "n2"], { logWindow: window, maxEntriesPerAppend: 16 });
  cluster.elect("n1");
  cluster.write("n1", "first");
  const primary = cluster.node("n1");
  // Nothing was requested from index 999: the answer is ignored, no message leaves.
  const sentBefore = cluster.sent.length;
  primary.appendFetched("n2", 999, [{ term: 1, index: 999, isSignature: false, payload: "forged" }]);
  cluster.process("n1");
  assert.equal(cluster.sent.slice(sentBefore).filter((m) => m.type === "AppendEntries" && m.entries.length > 0).length, 0);
});

test("the log answers terms, signatures and configurations from its compact prefix", () => {
  const log = new RaftLog<string>([], undefined, window);
  let index = 0;
  for (const term of [1, 1, 2, 2, 2, 3]) {
    for (let k = 0; k < 5; k++) {
      index++;
      log.append({ term, index, isSignature: k === 4, payload: `p${index}`, ...(index === 3 ? { config: ["a", "b"] } : {}) });
    }
  }
  log.markStable(index, true);
  log.compact(index);
  assert.ok(log.compactedIndex >= 20 && log.entriesInMemory <= 10, `compacted ${log.compactedIndex}, in memory ${log.entriesInMemory}`);
  assert.equal(log.term(1), 1);
  assert.equal(log.term(10), 1);
  assert.equal(log.term(11), 2);
  assert.equal(log.term(26), 3);
  assert.equal(log.firstIndexOfTermAt(14), 11);
  assert.equal(log.signatureAtOrBefore(24), 20);
  assert.deepEqual(log.configAt(10)?.voters, ["a", "b"]);
  assert.equal(log.entry(2), undefined);
  assert.equal(log.entry(30)?.payload, "p30");
  // A rollback below the window (uncommitted entries read back at start) keeps the prefix right.
  log.truncateAfter(12);
  assert.equal(log.lastIndex(), 12);
  assert.equal(log.term(12), 2);
  assert.equal(log.lastSignature().index, 10);
});

test("a log rebuilt from a replay keeps only the window's payloads and the same answers as the full log", () => {
  const builder = new LogPrefixBuilder<string>(4, 40);
  const full = new RaftLog<string>();
  for (let index = 1; index <= 50; index++) {
    const entry = { term: 1 + Math.floor(index / 17), index, isSignature: index % 5 === 0, payload: `p${index}` };
    builder.add(entry);
    full.append(entry);
  }
  const { prefix, entries } = builder.result();
  assert.equal(entries[0]!.index, 41, "every entry above the commit point (40) keeps its payload, however many");
  const committedOnly = new LogPrefixBuilder<string>(4, 50);
  for (let index = 1; index <= 50; index++) committedOnly.add({ term: 1, index, isSignature: false, payload: `p${index}` });
  assert.equal(committedOnly.result().entries[0]!.index, 47, "of committed entries only the window (4) keeps its payload");
  const rebuilt = new RaftLog<string>(entries, prefix);
  assert.equal(rebuilt.lastIndex(), 50);
  for (let index = 0; index <= 50; index++) assert.equal(rebuilt.term(index), full.term(index), `term at ${index}`);
  assert.deepEqual(rebuilt.lastSignature(), full.lastSignature());
  assert.equal(rebuilt.signatureAtOrBefore(43), 40);
});
