// fast-check generators for KV properties: random transactions over a few maps and short
// keys, so that histories overwrite, delete and clear the same keys often.

import fc from "fast-check";
import type { Store, Transaction, WriteSet, MapWrites } from "../../../src/kv/index.js";

export const mapNameArb = fc.constantFrom("public:ccf.gov.members.certs", "public:a", "public:é", "records", "z", "ü");
export const keyArb = fc.uint8Array({ maxLength: 3, max: 3 });
export const valueArb = fc.uint8Array({ maxLength: 16 });

export type Action =
  | { kind: "set"; map: string; key: Uint8Array; value: Uint8Array }
  | { kind: "delete"; map: string; key: Uint8Array }
  | { kind: "clear"; map: string };

export const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("set" as const), map: mapNameArb, key: keyArb, value: valueArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("delete" as const), map: mapNameArb, key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("clear" as const), map: mapNameArb }) },
);

export const historyArb = fc.array(fc.array(actionArb, { minLength: 1, maxLength: 6 }), { maxLength: 25 });

export function runActions(tx: Transaction, actions: readonly Action[]): void {
  for (const a of actions) {
    if (a.kind === "set") tx.set(a.map, a.key, a.value);
    else if (a.kind === "delete") tx.delete(a.map, a.key);
    else tx.clear(a.map);
  }
}

/** Commits each transaction that has writes; returns the write sets in order. */
export function commitHistory(store: Store, history: readonly (readonly Action[])[]): WriteSet[] {
  const writeSets: WriteSet[] = [];
  for (const actions of history) {
    const tx = store.begin();
    runActions(tx, actions);
    if (tx.hasWrites) writeSets.push(store.commit(tx, store.currentVersion + 1));
  }
  return writeSets;
}

/** A canonical write set (maps sorted by UTF-8 name, unique keys sorted bytewise). */
export const writeSetArb: fc.Arbitrary<WriteSet> = fc
  .array(fc.tuple(mapNameArb, keyArb, fc.option(valueArb, { nil: null })), { maxLength: 20 })
  .map((triples) => {
    const byMap = new Map<string, Map<string, [Buffer, Buffer | null]>>();
    for (const [name, key, value] of triples) {
      const writes = byMap.get(name) ?? new Map<string, [Buffer, Buffer | null]>();
      writes.set(Buffer.from(key).toString("hex"), [Buffer.from(key), value === null ? null : Buffer.from(value)]);
      byMap.set(name, writes);
    }
    const maps: MapWrites[] = Array.from(byMap, ([name, writes]) => ({
      name,
      isPublic: name.startsWith("public:"),
      writes: Array.from(writes.values()).sort((x, y) => Buffer.compare(x[0], y[0])),
    })).sort((x, y) => Buffer.compare(Buffer.from(x.name), Buffer.from(y.name)));
    return { seqno: 1, maps };
  });
