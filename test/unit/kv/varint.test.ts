// Varints carry lengths, counts and seqnos; seqnos outgrow 32 bits, so 53-bit values matter.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ByteReader, varintLength, writeVarint } from "../../../src/kv/varint.js";

function roundTrip(n: number): number {
  const buf = Buffer.alloc(varintLength(n));
  assert.equal(writeVarint(buf, 0, n), buf.length);
  const reader = new ByteReader(buf, "Test");
  const decoded = reader.varint();
  assert.equal(reader.remaining, 0);
  return decoded;
}

test("varints round-trip the largest safe integer and values just above 32 bits", () => {
  for (const n of [0, 127, 128, 2 ** 32 - 1, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) assert.equal(roundTrip(n), n);
});

test("property: every safe non-negative integer round-trips in varintLength bytes", () => {
  fc.assert(fc.property(fc.maxSafeNat(), (n) => assert.equal(roundTrip(n), n)));
});

test("a varint with a redundant trailing zero group is rejected", () => {
  assert.throws(() => new ByteReader(Buffer.from([0x81, 0x00]), "Test").varint(), { code: "Test" });
});
