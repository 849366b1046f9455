// The compact seqno index (ledger/seqno-index.ts) answers exactly what a plain offset and length
// per entry would, through appends, new chunks, long entries, retried writes and truncates.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { SeqnoIndex } from "../../../src/ledger/seqno-index.js";
import { FRAME_HEADER_BYTES } from "../../../src/ledger/files.js";

type Op =
  | { kind: "append"; length: number }
  | { kind: "newChunk"; length: number }
  | { kind: "truncate"; back: number }
  | { kind: "rewrite"; back: number; length: number };

const CHUNK_START = 8; // what a chunk's magic takes before its first frame

/** The model: one offset and length per seqno, as the index held them before it was compacted. */
class Model {
  offsets: number[] = [];
  lengths: number[] = [];
  constructor(public first: number) {}
  get last(): number { return this.first + this.offsets.length - 1; }
  nextOffset(): number {
    const n = this.offsets.length;
    return n === 0 ? CHUNK_START + FRAME_HEADER_BYTES : this.offsets[n - 1]! + this.lengths[n - 1]! + FRAME_HEADER_BYTES;
  }
}

const lengthArb = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 65_530, max: 70_000 }));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: lengthArb.map((length) => ({ kind: "append" as const, length })) },
  { weight: 1, arbitrary: lengthArb.map((length) => ({ kind: "newChunk" as const, length })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 80 }).map((back) => ({ kind: "truncate" as const, back })) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 80 }), lengthArb).map(([back, length]) => ({ kind: "rewrite" as const, back, length })) },
);

test("the compact index agrees with one offset and length per seqno (property)", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 1000 }), fc.array(opArb, { maxLength: 400 }), (first, ops) => {
    const index = new SeqnoIndex(first);
    const model = new Model(first);
    for (const op of ops) {
      if (op.kind === "append" || op.kind === "newChunk") {
        const offset = op.kind === "newChunk" ? CHUNK_START + FRAME_HEADER_BYTES : model.nextOffset();
        index.push(offset, op.length);
        model.offsets.push(offset);
        model.lengths.push(op.length);
      } else if (op.kind === "truncate") {
        const seqno = Math.max(first - 1, model.last - op.back);
        index.truncate(seqno);
        model.offsets.length = model.lengths.length = seqno - first + 1;
      } else if (model.offsets.length > 0) {
        // A retried write: seqno is written again at the same offset, and what followed is forgotten.
        const slot = Math.max(0, model.offsets.length - 1 - op.back);
        const offset = model.offsets[slot]!;
        index.set(first + slot, offset, op.length);
        model.offsets.length = model.lengths.length = slot + 1;
        model.lengths[slot] = op.length;
      }
      assert.equal(index.lastSeqno, model.last);
    }
    for (let slot = 0; slot < model.offsets.length; slot++) {
      assert.equal(index.offset(first + slot), model.offsets[slot], `offset of seqno ${first + slot}`);
      assert.equal(index.length(first + slot), model.lengths[slot], `length of seqno ${first + slot}`);
    }
  }), { numRuns: 300 });
});

test("a rollback past the index's start empties it and the next append starts there", () => {
  const index = new SeqnoIndex(10);
  index.push(20, 5);
  index.push(33, 7);
  index.truncate(4);
  assert.equal(index.firstSeqno, 5);
  assert.equal(index.lastSeqno, 4);
  index.push(20, 9);
  assert.equal(index.offset(5), 20);
  assert.equal(index.length(5), 9);
  assert.throws(() => index.offset(6), /seqno 6 is indexed/);
});

test("a million entries, in chunks of 30,000, take under 2.5 bytes each (a plain offset and length took 12)", () => {
  const index = new SeqnoIndex(1);
  let offset = CHUNK_START + FRAME_HEADER_BYTES;
  for (let seqno = 1; seqno <= 1_000_000; seqno++) {
    if (seqno % 30_000 === 1) offset = CHUNK_START + FRAME_HEADER_BYTES; // a new chunk
    index.push(offset, 120);
    offset += 120 + FRAME_HEADER_BYTES;
  }
  assert.ok(index.bytes < 2.5 * 1_000_000, `${index.bytes} bytes`);
  assert.equal(index.offset(999_999), index.offset(999_998) + 120 + FRAME_HEADER_BYTES);
  assert.equal(index.offset(30_001), CHUNK_START + FRAME_HEADER_BYTES);
});
