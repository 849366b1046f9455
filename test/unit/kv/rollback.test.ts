// Rollback of the uncommitted tail and compaction of undo information.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Store } from "../../../src/kv/index.js";
import { b, commitWith, put } from "./helpers.js";

test("rollback restores exactly the earlier state, including deleted keys, new keys, new maps and map versions", () => {
  const store = new Store();
  put(store, "m", "a", "1");
  put(store, "m", "b", "2");
  const before = store.snapshot();
  commitWith(store, (tx) => {
    tx.delete("m", b("a"));
    tx.set("m", b("b"), b("changed"));
    tx.set("m", b("c"), b("created"));
    tx.set("public:new", b("k"), b("v"));
  });
  commitWith(store, (tx) => tx.clear("m"));
  store.rollback(2);
  assert.equal(store.currentVersion, 2);
  assert.deepEqual(store.snapshot(), before);
  assert.deepEqual(store.mapNames(), ["m"]);
  assert.equal(store.begin().getVersionOfPreviousWrite("m", b("b")), 2);
});

test("the store accepts new commits at the rolled-back seqnos", () => {
  const store = new Store();
  put(store, "m", "a", "1");
  put(store, "m", "a", "2");
  store.rollback(1);
  put(store, "m", "a", "3");
  assert.equal(store.currentVersion, 2);
  assert.equal(store.get("m", b("a"))?.toString(), "3");
});

test("rollback to the current version changes nothing", () => {
  const store = new Store();
  put(store, "m", "a", "1");
  const tx = store.begin();
  tx.get("m", b("a"));
  tx.set("m", b("b"), b("2"));
  store.rollback(1);
  store.commit(tx, 2);
  assert.equal(store.currentVersion, 2);
});

test("rollback below the compacted version is refused", () => {
  const store = new Store();
  put(store, "m", "a", "1");
  put(store, "m", "a", "2");
  store.compact(1);
  assert.throws(() => store.rollback(0), /assertion failed/);
  store.rollback(1);
  assert.equal(store.get("m", b("a"))?.toString(), "1");
});

test("compact bounds the undo log to the uncommitted seqnos", () => {
  const store = new Store();
  for (let i = 0; i < 1000; i++) {
    put(store, "m", `k${i % 10}`, `v${i}`);
    if (i % 100 === 99) store.compact(store.currentVersion - 5);
  }
  assert.equal(store.undoLogLength, 5);
  store.compact(store.currentVersion);
  assert.equal(store.undoLogLength, 0);
});

test("compact to an earlier version than before is a no-op", () => {
  const store = new Store();
  put(store, "m", "a", "1");
  put(store, "m", "a", "2");
  store.compact(2);
  store.compact(1);
  assert.equal(store.undoLogLength, 0);
});

test("onRollback observers hear the version rolled back to", () => {
  const store = new Store();
  const heard: number[] = [];
  store.onRollback((v) => heard.push(v));
  put(store, "m", "a", "1");
  put(store, "m", "a", "2");
  store.rollback(1);
  store.rollback(1);
  assert.deepEqual(heard, [1]);
});

test("a reserved seqno takes its writes later: readers meanwhile conflict, and rollback undoes them", () => {
  const store = new Store();
  put(store, "public:sig", "k", "old"); // seqno 1
  const reader = store.begin(); // begins at version 1 and reads the key before the late write
  assert.equal(reader.get("public:sig", b("k"))?.toString(), "old");
  reader.set("other", b("x"), b("1"));
  const before = store.snapshot();
  store.reserve(2);
  put(store, "m", "a", "1"); // seqno 3 commits while seqno 2 waits for its writes
  const lateReader = store.begin(); // begins at version 3, also before the late write
  assert.equal(lateReader.get("public:sig", b("k"))?.toString(), "old");
  lateReader.set("other", b("y"), b("1"));
  store.writeReserved(2, "public:sig", b("k"), b("new"));
  assert.equal(store.currentVersion, 3);
  assert.equal(store.get("public:sig", b("k"))?.toString(), "new");
  // Version 3 did not move, but the late write must still be seen as a conflict.
  assert.throws(() => store.commit(lateReader, 4), (e: any) => e.code === "TransactionConflict");
  assert.throws(() => store.commit(reader, 4), (e: any) => e.code === "TransactionConflict");
  assert.throws(() => store.writeReserved(3, "public:sig", b("k"), b("again")), /was reserved/);
  store.rollback(1);
  assert.deepEqual(store.snapshot(), before);
  assert.equal(store.get("public:sig", b("k"))?.toString(), "old");
});
