// Determinism properties over random histories: replaying write sets, rollback, snapshots.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Store, serialiseWriteSet } from "../../../src/kv/index.js";
import { CocoError } from "../../../src/util/errors.js";
import { commitHistory, historyArb } from "./generators.js";

test("property: applying the serialised write sets of a committed history rebuilds an identical store", () => {
  fc.assert(
    fc.property(historyArb, (history) => {
      const primary = new Store();
      const writeSets = commitHistory(primary, history);
      const replica = new Store();
      for (const ws of writeSets) {
        const { publicDomain, privateDomain } = serialiseWriteSet(ws);
        replica.applySerialised(ws.seqno, publicDomain, privateDomain);
      }
      assert.equal(replica.currentVersion, primary.currentVersion);
      assert.deepEqual(replica.snapshot(), primary.snapshot());
      assert.deepEqual(replica.mapNames(), primary.mapNames());
    }),
  );
});

test("property: a history rolled back to seqno r equals a store built from its first r transactions", () => {
  fc.assert(
    fc.property(historyArb, historyArb, fc.nat(), fc.nat(), (history, continuation, rollbackAt, compactAt) => {
      const full = new Store();
      const writeSets = commitHistory(full, history);
      const r = rollbackAt % (writeSets.length + 1);
      full.compact(compactAt % (r + 1));
      full.rollback(r);

      const prefix = new Store();
      for (const ws of writeSets.slice(0, r)) {
        const { publicDomain, privateDomain } = serialiseWriteSet(ws);
        prefix.applySerialised(ws.seqno, publicDomain, privateDomain);
      }
      assert.deepEqual(full.snapshot(), prefix.snapshot());
      // Both must keep behaving identically afterwards too.
      commitHistory(full, continuation);
      commitHistory(prefix, continuation);
      assert.deepEqual(full.snapshot(), prefix.snapshot());
    }),
  );
});

test("property: a store restored from a snapshot has the same state and continues identically", () => {
  fc.assert(
    fc.property(historyArb, historyArb, (history, continuation) => {
      const original = new Store();
      commitHistory(original, history);
      const restored = Store.fromSnapshot(original.snapshot());
      assert.equal(restored.currentVersion, original.currentVersion);
      assert.deepEqual(restored.snapshot(), original.snapshot());
      commitHistory(original, continuation);
      commitHistory(restored, continuation);
      assert.deepEqual(restored.snapshot(), original.snapshot());
    }),
  );
});

test("property: restoring a corrupted snapshot throws nothing but CocoError InvalidSnapshot", () => {
  fc.assert(
    fc.property(historyArb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (history, at, byte, cut) => {
      const store = new Store();
      commitHistory(store, history);
      const snapshot = store.snapshot();
      const corrupted = Buffer.from(snapshot);
      corrupted[at % corrupted.length] = byte;
      for (const bytes of [corrupted, snapshot.subarray(0, cut % snapshot.length)]) {
        try {
          Store.fromSnapshot(bytes);
        } catch (e) {
          assert.ok(e instanceof CocoError && e.code === "InvalidSnapshot", `unexpected ${String(e)}`);
        }
      }
    }),
    { numRuns: 300 },
  );
});

test("an empty store's snapshot restores to an empty store at version 0", () => {
  const restored = Store.fromSnapshot(new Store().snapshot());
  assert.equal(restored.currentVersion, 0);
  assert.deepEqual(restored.mapNames(), []);
});

test("a malformed write set is rejected without changing the store", () => {
  const store = new Store();
  assert.throws(() => store.applySerialised(1, Buffer.from([1, 1, 1]), Buffer.alloc(0)), { code: "InvalidLedgerEntry" });
  assert.equal(store.currentVersion, 0);
});
