// Small helpers shared by the KV tests: string keys/values as bytes, one-line commits.

import { Store, type Transaction, type WriteSet } from "../../../src/kv/index.js";

export const b = (s: string): Buffer => Buffer.from(s, "utf8");
export const str = (v: Buffer | undefined): string | undefined => v?.toString("utf8");

/** Runs body in a fresh transaction and commits it at the next seqno. */
export function commitWith(store: Store, body: (tx: Transaction) => void): WriteSet {
  const tx = store.begin();
  body(tx);
  return store.commit(tx, store.currentVersion + 1);
}

export function put(store: Store, map: string, key: string, value: string): WriteSet {
  return commitWith(store, (tx) => tx.set(map, b(key), b(value)));
}
