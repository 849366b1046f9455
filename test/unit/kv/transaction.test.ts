// Behaviour of a single transaction's view: own writes, deletes, clear, iteration, size.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Store } from "../../../src/kv/index.js";
import { b, commitWith, put, str } from "./helpers.js";

test("a transaction sees its own writes before they are committed", () => {
  const store = new Store();
  const tx = store.begin();
  tx.set("m", b("k"), b("v"));
  assert.equal(str(tx.get("m", b("k"))), "v");
  assert.equal(store.get("m", b("k")), undefined);
});

test("a transaction's own write shadows the committed value", () => {
  const store = new Store();
  put(store, "m", "k", "old");
  const tx = store.begin();
  tx.set("m", b("k"), b("new"));
  assert.equal(str(tx.get("m", b("k"))), "new");
  assert.equal(str(store.get("m", b("k"))), "old");
});

test("set copies the value so later mutation by the caller does not leak into the store", () => {
  const store = new Store();
  const value = b("abc");
  commitWith(store, (tx) => tx.set("m", b("k"), value));
  value[0] = 0x7a;
  assert.equal(str(store.get("m", b("k"))), "abc");
});

test("keys given as plain Uint8Array and as Buffer address the same entry", () => {
  const store = new Store();
  commitWith(store, (tx) => tx.set("m", new Uint8Array([1, 2, 255]), b("v")));
  assert.equal(str(store.get("m", Buffer.from([1, 2, 255]))), "v");
});

test("delete reports whether the key existed and hides it from the transaction", () => {
  const store = new Store();
  put(store, "m", "k", "v");
  const tx = store.begin();
  assert.equal(tx.delete("m", b("k")), true);
  assert.equal(tx.has("m", b("k")), false);
  assert.equal(tx.delete("m", b("k")), false);
  assert.equal(tx.delete("m", b("absent")), false);
});

test("a committed delete removes the key from the store", () => {
  const store = new Store();
  put(store, "m", "k", "v");
  commitWith(store, (tx) => tx.delete("m", b("k")));
  assert.equal(store.get("m", b("k")), undefined);
  assert.deepEqual(store.mapNames(), ["m"]);
});

test("set after delete in the same transaction stores the new value", () => {
  const store = new Store();
  put(store, "m", "k", "v1");
  commitWith(store, (tx) => {
    tx.delete("m", b("k"));
    tx.set("m", b("k"), b("v2"));
  });
  assert.equal(str(store.get("m", b("k"))), "v2");
});

test("clear hides every committed key but keeps later own writes", () => {
  const store = new Store();
  put(store, "m", "a", "1");
  put(store, "m", "b", "2");
  const tx = store.begin();
  tx.clear("m");
  tx.set("m", b("c"), b("3"));
  assert.equal(tx.get("m", b("a")), undefined);
  assert.equal(tx.size("m"), 1);
  store.commit(tx, 3);
  assert.equal(store.get("m", b("a")), undefined);
  assert.equal(store.get("m", b("b")), undefined);
  assert.equal(str(store.get("m", b("c"))), "3");
});

test("clear commits as explicit deletions of every committed key", () => {
  const store = new Store();
  put(store, "m", "b", "2");
  put(store, "m", "a", "1");
  const ws = commitWith(store, (tx) => tx.clear("m"));
  assert.deepEqual(ws.maps[0]!.writes.map(([k, v]) => [k.toString(), v]), [["a", null], ["b", null]]);
});

test("forEach visits the merged view in bytewise key order", () => {
  const store = new Store();
  put(store, "m", "b", "committed-b");
  put(store, "m", "d", "committed-d");
  put(store, "m", "c", "committed-c");
  const tx = store.begin();
  tx.set("m", b("a"), b("own-a"));
  tx.set("m", b("c"), b("own-c"));
  tx.delete("m", b("d"));
  const seen: string[] = [];
  tx.forEach("m", (value, key) => void seen.push(`${key}=${value}`));
  assert.deepEqual(seen, ["a=own-a", "b=committed-b", "c=own-c"]);
});

test("forEach stops when the callback returns false", () => {
  const store = new Store();
  for (const k of ["a", "b", "c"]) put(store, "m", k, k);
  const seen: string[] = [];
  store.begin().forEach("m", (_value, key) => {
    seen.push(key.toString());
    return key.toString() !== "b";
  });
  assert.deepEqual(seen, ["a", "b"]);
});

test("size counts committed keys plus own creations minus own deletions", () => {
  const store = new Store();
  put(store, "m", "a", "1");
  put(store, "m", "b", "2");
  const tx = store.begin();
  tx.set("m", b("a"), b("changed"));
  tx.set("m", b("c"), b("new"));
  tx.delete("m", b("b"));
  tx.delete("m", b("never"));
  assert.equal(tx.size("m"), 2);
  assert.equal(tx.size("unknown"), 0);
});

test("getVersionOfPreviousWrite returns the committed seqno of the last write, ignoring own writes", () => {
  const store = new Store();
  put(store, "m", "k", "v1");
  put(store, "m", "other", "x");
  put(store, "m", "k", "v2");
  const tx = store.begin();
  tx.set("m", b("k"), b("v3"));
  assert.equal(tx.getVersionOfPreviousWrite("m", b("k")), 3);
  assert.equal(tx.getVersionOfPreviousWrite("m", b("absent")), undefined);
});

test("hasWrites is false for a read-only transaction and true after a write", () => {
  const store = new Store();
  const tx = store.begin();
  tx.get("m", b("k"));
  assert.equal(tx.hasWrites, false);
  tx.set("m", b("k"), b("v"));
  assert.equal(tx.hasWrites, true);
});

test("committing a transaction without writes throws TransactionHasNoWrites", () => {
  const store = new Store();
  const tx = store.begin();
  tx.get("m", b("k"));
  assert.throws(() => store.commit(tx, 1), { code: "TransactionHasNoWrites" });
  assert.equal(store.currentVersion, 0);
});

test("a committed transaction can no longer be used", () => {
  const store = new Store();
  const tx = store.begin();
  tx.set("m", b("k"), b("v"));
  store.commit(tx, 1);
  assert.throws(() => tx.get("m", b("k")), { code: "TransactionClosed" });
});

test("commit asserts the seqno is the next version", () => {
  const store = new Store();
  const tx = store.begin();
  tx.set("m", b("k"), b("v"));
  assert.throws(() => store.commit(tx, 2), /assertion failed/);
});

test("commit returns the write set with maps sorted by name and their domain", () => {
  const store = new Store();
  const ws = commitWith(store, (tx) => {
    tx.set("z", b("k2"), b("v2"));
    tx.set("z", b("k1"), b("v1"));
    tx.set("public:a", b("k"), b("v"));
  });
  assert.equal(ws.seqno, 1);
  assert.deepEqual(
    ws.maps.map((m) => [m.name, m.isPublic, m.writes.map(([k]) => k.toString())]),
    [["public:a", true, ["k"]], ["z", false, ["k1", "k2"]]],
  );
});

test("a key that is not bytes is rejected with InvalidInput", () => {
  const tx = new Store().begin();
  assert.throws(() => tx.get("m", "k" as unknown as Uint8Array), { code: "InvalidInput" });
});

test("mapNames lists every written map in sorted order, including maps emptied by deletes", () => {
  const store = new Store();
  put(store, "z", "k", "v");
  put(store, "public:a", "k", "v");
  commitWith(store, (tx) => tx.delete("z", b("k")));
  assert.deepEqual(store.mapNames(), ["public:a", "z"]);
});

test("a snapshot taken after a large seqno restores that seqno", () => {
  const store = Store.fromSnapshot(Buffer.from([1, 0x80, 0x80, 0x80, 0x80, 0x10, 0]));
  assert.equal(store.currentVersion, 2 ** 32);
  put(store, "m", "k", "v");
  assert.equal(Store.fromSnapshot(store.snapshot()).begin().getVersionOfPreviousWrite("m", b("k")), 2 ** 32 + 1);
});
