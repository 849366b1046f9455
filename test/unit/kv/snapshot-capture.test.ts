// The snapshot capture (kv/snapshot-capture.ts): the state at a committed version copied in
// slices while later transactions keep committing (and the store keeps compacting), then
// encoded off the main thread (kv/snapshot-packed.ts). Its bytes must be exactly those of
// encodeSnapshot of the state at that version, whatever was written, deleted or created between
// the slices; a rollback while it runs abandons it.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Store, encodeSnapshot, encodePackedSnapshot, isPublicMapName, serialiseWriteSet, type MapState } from "../../../src/kv/index.js";
import { CocoError } from "../../../src/util/index.js";
import { commitHistory, historyArb, runActions } from "./generators.js";

function split(maps: ReadonlyMap<string, MapState>, version: number): { publicPart: Buffer; privatePart: Buffer } {
  return {
    publicPart: encodeSnapshot(version, new Map([...maps].filter(([name]) => isPublicMapName(name)))),
    privatePart: encodeSnapshot(version, new Map([...maps].filter(([name]) => !isPublicMapName(name)))),
  };
}

test("a capture sliced between later commits encodes byte for byte the state at its version", () => {
  fc.assert(
    fc.property(historyArb, historyArb, fc.nat(), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 3 }), (prefix, later, extra, perStep, commitsPerStep) => {
      const store = new Store();
      const writeSets = commitHistory(store, prefix);
      fc.pre(writeSets.length > 0);
      const at = Math.min(writeSets.length, 1 + (extra % writeSets.length));
      // The expected bytes: a store that only ever saw the transactions up to `at`.
      const reference = new Store();
      for (const ws of writeSets.slice(0, at)) {
        const { publicDomain, privateDomain } = serialiseWriteSet(ws);
        reference.applySerialised(ws.seqno, publicDomain, privateDomain);
      }
      const expected = split(reference.maps, at);
      store.compact(at);
      const capture = store.beginCapture(at);
      let next = 0;
      for (;;) {
        const done = capture.step(perStep);
        // The node goes on: more transactions commit and the store is compacted to its commit point.
        for (let c = 0; c < commitsPerStep && next < later.length; c++, next++) {
          const tx = store.begin();
          runActions(tx, later[next]!);
          if (tx.hasWrites) store.commit(tx, store.currentVersion + 1);
          store.compact(store.currentVersion);
        }
        if (done) break;
      }
      const packed = capture.finish();
      assert.equal(packed.version, at);
      const encoded = encodePackedSnapshot(packed);
      assert.ok(encoded.publicPart.equals(expected.publicPart), "public maps as at the version");
      assert.ok(encoded.privatePart.equals(expected.privatePart), "private maps as at the version");
      // The pin is gone: compaction reaches the commit point again, and a new capture may start.
      store.compact(store.currentVersion);
      assert.equal(store.undoLogLength, 0);
      store.beginCapture(store.currentVersion).cancel();
    }),
    { numRuns: 400 },
  );
});

test("while a capture runs the store keeps the undo records after its version; afterwards it drops them", () => {
  const store = new Store();
  const commit = (key: string, value: string) => {
    const tx = store.begin();
    tx.set("records", Buffer.from(key), Buffer.from(value));
    store.commit(tx, store.currentVersion + 1);
  };
  commit("a", "1");
  commit("b", "2");
  store.compact(2);
  const capture = store.beginCapture(2);
  commit("a", "3");
  commit("c", "4");
  store.compact(4);
  assert.equal(store.undoLogLength, 2, "seqnos 3 and 4 stay undoable for the capture");
  while (!capture.step(1)) { /* slices */ }
  const packed = capture.finish();
  const decoded = Store.fromSnapshot(encodePackedSnapshot(packed).privatePart);
  assert.equal(decoded.get("records", Buffer.from("a"))?.toString(), "1");
  assert.equal(decoded.get("records", Buffer.from("c")), undefined);
  store.compact(4);
  assert.equal(store.undoLogLength, 0);
});

test("a rollback while a capture runs abandons it (SnapshotAbandoned) and releases the store", () => {
  const store = new Store();
  for (let i = 0; i < 5; i++) {
    const tx = store.begin();
    tx.set("records", Buffer.from([i]), Buffer.from([i]));
    store.commit(tx, store.currentVersion + 1);
  }
  store.compact(3);
  const capture = store.beginCapture(3);
  capture.step(1);
  store.rollback(4);
  assert.throws(() => capture.step(1), (error: unknown) => error instanceof CocoError && error.code === "SnapshotAbandoned");
  store.compact(4);
  assert.equal(store.undoLogLength, 0, "the pin was released");
  store.beginCapture(4).cancel();
});
