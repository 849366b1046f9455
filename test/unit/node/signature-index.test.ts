// The signature seqnos a node keeps in memory stay bounded (the newest `resident`, twice that
// before a trim), only committed ones are dropped, and a lookup below what was dropped answers
// undefined (the engine then reads the ledger) rather than a wrong signature.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { SignatureIndex, type SignatureRecord } from "../../../src/node/signatures.js";

const record = (seqno: number): SignatureRecord => ({ seqno, view: 2, commit_seqno: 0, commit_view: 0, root: "00", sig: "", node: "n", cert: "" });

/** The reference answers over every signature ever added. */
function firstAbove(all: readonly number[], seqno: number): number | undefined {
  return all.find((s) => s > seqno);
}
function lastAtOrBelow(all: readonly number[], seqno: number): number | undefined {
  let found: number | undefined;
  for (const s of all) if (s <= seqno) found = s;
  return found;
}

test("signature seqnos stay bounded; lookups at or above exactFrom equal the full list's, below it they answer undefined (property)", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 8 }), fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 300 }), fc.nat(), fc.nat(),
    (resident, gaps, lagSeed, probeSeed) => {
      const index = new SignatureIndex(resident);
      const all: number[] = [];
      let seqno = 0;
      for (const gap of gaps) {
        seqno += gap;
        index.add(record(seqno));
        all.push(seqno);
        // Commit trails the newest signature by a few signatures.
        const committed = all[Math.max(0, all.length - 1 - (lagSeed % 4))]!;
        index.trimCommitted(committed);
        assert.ok(index.residentCount < 2 * resident + 4, `${index.residentCount} seqnos in memory (resident ${resident})`);
        assert.ok(index.exactFrom <= committed, "only committed signatures are dropped");
      }
      const last = all[all.length - 1]!;
      for (let probe = 0; probe <= last + 1; probe += 1 + (probeSeed % 7)) {
        if (probe >= index.exactFrom) {
          assert.equal(index.seqnoAbove(probe), firstAbove(all, probe), `seqnoAbove(${probe})`);
          assert.equal(index.seqnoAtOrBelow(probe), lastAtOrBelow(all, probe), `seqnoAtOrBelow(${probe})`);
        } else {
          assert.equal(index.seqnoAbove(probe), undefined);
          assert.equal(index.seqnoAtOrBelow(probe), undefined);
        }
      }
      if (index.exactFrom > 0) assert.ok(all.includes(index.exactFrom), "exactFrom is a signature seqno");
    },
  ), { numRuns: 300 });
});

test("a trim never drops a signature above the commit point, and a rollback cannot reach a dropped one", () => {
  const index = new SignatureIndex(2);
  for (let s = 10; s <= 100; s += 10) index.add(record(s));
  index.trimCommitted(0);
  assert.equal(index.exactFrom, 0, "nothing committed: nothing dropped");
  assert.equal(index.residentCount, 10);
  index.trimCommitted(40);
  assert.equal(index.exactFrom, 40, "dropped up to the commit point only");
  assert.equal(index.residentCount, 6);
  assert.equal(index.seqnoAbove(35), undefined, "below exactFrom: ask the ledger");
  assert.equal(index.seqnoAbove(40), 50);
  assert.equal(index.seqnoAtOrBelow(45), 40, "the newest dropped seqno is still known");
  index.truncate(70);
  assert.equal(index.seqnoAbove(65), 70);
  assert.equal(index.seqnoAbove(70), undefined);
  assert.throws(() => index.truncate(30), /keeps the committed signature 40/);
  index.add(record(75));
  assert.equal(index.last?.seqno, 75);
});

test("100,000 signatures over a long life: memory holds at most twice the resident count", () => {
  const index = new SignatureIndex(1024);
  for (let s = 1; s <= 100_000; s++) {
    index.add(record(s * 7));
    index.trimCommitted(s * 7);
  }
  assert.ok(index.residentCount < 2048, `${index.residentCount} seqnos in memory`);
  assert.equal(index.seqnoAbove(100_000 * 7 - 1), 100_000 * 7);
  assert.equal(index.seqnoAbove(100_000 * 7 - 8), 100_000 * 7 - 7);
  assert.ok(index.exactFrom > 600_000);
});
