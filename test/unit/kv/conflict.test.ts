// Optimistic concurrency: which interleavings of transactions conflict at commit.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ConflictError, Store } from "../../../src/kv/index.js";
import { b, put } from "./helpers.js";

const conflict = { code: "TransactionConflict", status: 409 };

test("a transaction whose read was overwritten by a later commit conflicts", () => {
  const store = new Store();
  put(store, "m", "k", "v1");
  const tx = store.begin();
  tx.get("m", b("k"));
  tx.set("m", b("other"), b("x"));
  put(store, "m", "k", "v2");
  assert.throws(() => store.commit(tx, 3), (e) => e instanceof ConflictError && e.code === conflict.code && e.status === 409);
  assert.equal(store.currentVersion, 2);
});

test("a read of an absent key conflicts when another transaction creates it", () => {
  const store = new Store();
  const tx = store.begin();
  assert.equal(tx.has("m", b("k")), false);
  tx.set("m", b("flag"), b("1"));
  put(store, "m", "k", "v");
  assert.throws(() => store.commit(tx, 2), conflict);
});

test("a read of a key conflicts when another transaction deletes it", () => {
  const store = new Store();
  put(store, "m", "k", "v");
  const tx = store.begin();
  tx.get("m", b("k"));
  tx.set("m", b("x"), b("1"));
  const deleter = store.begin();
  deleter.delete("m", b("k"));
  store.commit(deleter, 2);
  assert.throws(() => store.commit(tx, 3), conflict);
});

test("blind writes to the same key never conflict and the last commit wins", () => {
  const store = new Store();
  const first = store.begin();
  const second = store.begin();
  first.set("m", b("k"), b("first"));
  second.set("m", b("k"), b("second"));
  store.commit(first, 1);
  store.commit(second, 2);
  assert.equal(store.get("m", b("k"))?.toString(), "second");
});

test("a read of a key untouched by a concurrent commit does not conflict", () => {
  const store = new Store();
  put(store, "m", "a", "1");
  const tx = store.begin();
  tx.get("m", b("a"));
  tx.set("m", b("c"), b("3"));
  put(store, "m", "b", "2");
  store.commit(tx, 3);
  assert.equal(store.currentVersion, 3);
});

test("forEach conflicts with any later commit to the same map", () => {
  const store = new Store();
  put(store, "m", "a", "1");
  const tx = store.begin();
  tx.forEach("m", () => {});
  tx.set("other", b("k"), b("v"));
  put(store, "m", "new", "x");
  assert.throws(() => store.commit(tx, 3), conflict);
});

test("size conflicts with a later commit to the same map, even to a key never read", () => {
  const store = new Store();
  const tx = store.begin();
  tx.size("m");
  tx.set("other", b("k"), b("v"));
  put(store, "m", "x", "1");
  assert.throws(() => store.commit(tx, 2), conflict);
});

test("clear conflicts with a later commit to the same map", () => {
  const store = new Store();
  put(store, "m", "a", "1");
  const tx = store.begin();
  tx.clear("m");
  put(store, "m", "b", "2");
  assert.throws(() => store.commit(tx, 3), conflict);
});

test("a map-level read does not conflict with commits to other maps", () => {
  const store = new Store();
  const tx = store.begin();
  tx.size("m");
  tx.set("m", b("k"), b("v"));
  put(store, "other", "k", "v");
  store.commit(tx, 2);
  assert.equal(store.currentVersion, 2);
});

test("delete records a read, so it conflicts with a concurrent write of that key", () => {
  const store = new Store();
  put(store, "m", "k", "v");
  const tx = store.begin();
  tx.delete("m", b("k"));
  put(store, "m", "k", "v2");
  assert.throws(() => store.commit(tx, 3), conflict);
});

test("getVersionOfPreviousWrite records a read", () => {
  const store = new Store();
  put(store, "m", "k", "v");
  const tx = store.begin();
  tx.getVersionOfPreviousWrite("m", b("k"));
  tx.set("m", b("x"), b("1"));
  put(store, "m", "k", "v2");
  assert.throws(() => store.commit(tx, 3), conflict);
});

test("a transaction that spans a rollback conflicts even if versions line up again", () => {
  const store = new Store();
  put(store, "m", "k", "v1");
  const tx = store.begin();
  tx.get("m", b("k"));
  tx.set("m", b("x"), b("1"));
  store.rollback(0);
  put(store, "m", "k", "other");
  assert.throws(() => store.commit(tx, 2), conflict);
});

test("a conflicting transaction is closed and must be re-executed in a new one", () => {
  const store = new Store();
  const tx = store.begin();
  tx.get("m", b("k"));
  tx.set("m", b("x"), b("1"));
  put(store, "m", "k", "v");
  assert.throws(() => store.commit(tx, 2), conflict);
  assert.throws(() => tx.get("m", b("k")), { code: "TransactionClosed" });
});

test("a key read twice around a concurrent commit conflicts on its first observation", () => {
  const store = new Store();
  put(store, "m", "k", "v1");
  const tx = store.begin();
  tx.get("m", b("k"));
  put(store, "m", "k", "v2");
  assert.equal(tx.get("m", b("k"))?.toString(), "v2");
  tx.set("m", b("x"), b("1"));
  assert.throws(() => store.commit(tx, 3), conflict);
});

test("hasStaleReads tells, without closing the transaction, whether commit would conflict", () => {
  const store = new Store();
  put(store, "m", "k", "v1");
  const tx = store.begin();
  assert.equal(tx.get("m", b("k"))!.toString(), "v1");
  assert.equal(tx.hasStaleReads(), false);
  put(store, "m", "other", "x"); // a key it did not read
  assert.equal(tx.hasStaleReads(), false);
  put(store, "m", "k", "v2");
  assert.equal(tx.hasStaleReads(), true);
  // Still open: it can be written, and its commit conflicts as hasStaleReads said.
  tx.set("m", b("w"), b("1"));
  assert.throws(() => store.commit(tx, store.currentVersion + 1), ConflictError);
});
