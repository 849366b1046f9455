// onWrite observers for governance and internal tables.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Store, serialiseWriteSet } from "../../../src/kv/index.js";
import { b, commitWith } from "./helpers.js";

const table = "public:ccf.gov.members.certs";

function record(store: Store, map: string): Array<[number, Array<[string, string | null]>]> {
  const calls: Array<[number, Array<[string, string | null]>]> = [];
  store.onWrite(map, (seqno, writes) => {
    calls.push([seqno, Array.from(writes, ([k, v]) => [k, v === null ? null : v.toString()] as [string, string | null]).sort()]);
  });
  return calls;
}

test("onWrite is called after a commit with the seqno and that map's writes", () => {
  const store = new Store();
  const calls = record(store, table);
  commitWith(store, (tx) => {
    tx.set(table, b("m1"), b("cert"));
    tx.delete(table, b("m0"));
    tx.set("public:other", b("k"), b("v"));
  });
  assert.deepEqual(calls, [[1, [["m0", null], ["m1", "cert"]]]]);
});

test("onWrite sees the committed state when it is called", () => {
  const store = new Store();
  let seen: string | undefined;
  store.onWrite(table, () => (seen = store.get(table, b("m1"))?.toString()));
  commitWith(store, (tx) => tx.set(table, b("m1"), b("cert")));
  assert.equal(seen, "cert");
});

test("onWrite is called when a serialised write set is applied", () => {
  const source = new Store();
  const ws = commitWith(source, (tx) => tx.set(table, b("m1"), b("cert")));
  const { publicDomain, privateDomain } = serialiseWriteSet(ws);
  const replica = new Store();
  const calls = record(replica, table);
  replica.applySerialised(1, publicDomain, privateDomain);
  assert.deepEqual(calls, [[1, [["m1", "cert"]]]]);
});

test("onWrite is not called for transactions that do not touch the map", () => {
  const store = new Store();
  const calls = record(store, table);
  commitWith(store, (tx) => tx.set("private", b("k"), b("v")));
  assert.deepEqual(calls, []);
});
