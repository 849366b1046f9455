// The write-set codec: exact bytes, round trips, and rejection of malformed input.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { deserialiseDomain, serialiseWriteSet, type MapWrites } from "../../../src/kv/index.js";
import { CocoError } from "../../../src/util/errors.js";
import { writeSetArb } from "./generators.js";

const b = (s: string): Buffer => Buffer.from(s);

function mergeDomains(publicDomain: Buffer, privateDomain: Buffer): MapWrites[] {
  return [...deserialiseDomain(publicDomain, "public").maps, ...deserialiseDomain(privateDomain, "private").maps].sort((x, y) =>
    Buffer.compare(Buffer.from(x.name), Buffer.from(y.name)),
  );
}

test("a one-key public write set encodes to the documented bytes", () => {
  const { publicDomain, privateDomain } = serialiseWriteSet({
    seqno: 7,
    maps: [{ name: "public:m", isPublic: true, writes: [[b("k"), b("v")], [b("x"), null]] }],
  });
  assert.deepEqual(publicDomain, Buffer.concat([Buffer.from([1, 1, 8]), b("public:m"), Buffer.from([2, 1]), b("k"), Buffer.from([2]), b("v"), Buffer.from([1]), b("x"), Buffer.from([0])]));
  assert.equal(privateDomain.length, 0);
});

test("an empty value is distinct from a deletion", () => {
  const { privateDomain } = serialiseWriteSet({ seqno: 1, maps: [{ name: "m", isPublic: false, writes: [[b("k"), Buffer.alloc(0)]] }] });
  assert.deepEqual(deserialiseDomain(privateDomain).maps[0]!.writes[0]![1], Buffer.alloc(0));
});

test("the deserialiser rejects a map in the wrong domain", () => {
  const { privateDomain } = serialiseWriteSet({ seqno: 1, maps: [{ name: "m", isPublic: false, writes: [[b("k"), b("v")]] }] });
  assert.throws(() => deserialiseDomain(privateDomain, "public"), { code: "InvalidLedgerEntry" });
});

test("the deserialiser rejects unknown formats, trailing bytes and unsorted keys", () => {
  assert.throws(() => deserialiseDomain(Buffer.from([2, 0])), { code: "InvalidLedgerEntry" });
  const { privateDomain } = serialiseWriteSet({ seqno: 1, maps: [{ name: "m", isPublic: false, writes: [[b("a"), null], [b("b"), null]] }] });
  assert.throws(() => deserialiseDomain(Buffer.concat([privateDomain, Buffer.from([0])])), { code: "InvalidLedgerEntry" });
  const swapped = Buffer.from(privateDomain);
  swapped[5] = 0x63; // "a" -> "c": now after "b"
  assert.throws(() => deserialiseDomain(swapped), { code: "InvalidLedgerEntry" });
});

test("property: deserialising a serialised write set gives back the same maps and writes", () => {
  fc.assert(
    fc.property(writeSetArb, (ws) => {
      const { publicDomain, privateDomain } = serialiseWriteSet(ws);
      assert.deepEqual(mergeDomains(publicDomain, privateDomain), ws.maps);
      if (!ws.maps.some((m) => !m.isPublic)) assert.equal(privateDomain.length, 0);
    }),
  );
});

test("property: re-serialising a deserialised domain reproduces the bytes exactly", () => {
  fc.assert(
    fc.property(writeSetArb, (ws) => {
      const { publicDomain, privateDomain } = serialiseWriteSet(ws);
      const again = serialiseWriteSet({ seqno: ws.seqno, maps: mergeDomains(publicDomain, privateDomain) });
      assert.deepEqual(again.publicDomain, publicDomain);
      assert.deepEqual(again.privateDomain, privateDomain);
    }),
  );
});

function onlyCocoErrors(bytes: Uint8Array): void {
  try {
    deserialiseDomain(bytes);
  } catch (e) {
    assert.ok(e instanceof CocoError, `unexpected ${String(e)}`);
    assert.equal(e.code, "InvalidLedgerEntry");
  }
}

test("property: the deserialiser throws nothing but CocoError on random bytes", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), onlyCocoErrors), { numRuns: 2000 });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }).map((tail) => Buffer.concat([Buffer.from([1]), tail])), onlyCocoErrors), { numRuns: 2000 });
});

test("property: the deserialiser throws nothing but CocoError on corrupted valid encodings", () => {
  fc.assert(
    fc.property(writeSetArb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (ws, at, byte, cut) => {
      const { publicDomain } = serialiseWriteSet(ws);
      if (publicDomain.length === 0) return;
      const corrupted = Buffer.from(publicDomain);
      corrupted[at % corrupted.length] = byte;
      onlyCocoErrors(corrupted);
      onlyCocoErrors(publicDomain.subarray(0, cut % publicDomain.length));
    }),
    { numRuns: 1000 },
  );
});
