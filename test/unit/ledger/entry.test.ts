// Properties of the ledger entry codec: lossless round trip, authentication of every byte
// through AES-GCM's AAD, and a decoder that fails only with InvalidLedgerEntry.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import fc from "fast-check";
import {
  ENTRY_HEADER_BYTES,
  LedgerSecret,
  decodeEntry,
  decryptPrivate,
  encodeEntry,
  entryLeaf,
  entryLeafInto,
  writeSetDigest,
  type EntryFields,
} from "../../../src/ledger/index.js";
import { sha256 } from "../../../src/crypto/index.js";
import { CocoError } from "../../../src/util/errors.js";

const secret = new LedgerSecret(randomBytes(32));

const fieldsArb = (minPrivate = 0): fc.Arbitrary<EntryFields> =>
  fc.record({
    view: fc.integer({ min: 0, max: 0xffff_ffff }),
    seqno: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    isSignature: fc.boolean(),
    claimsDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a)),
    commitEvidenceDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a)),
    publicDomain: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
    privatePlaintext: fc.uint8Array({ minLength: minPrivate, maxLength: 200 }).map((a) => Buffer.from(a)),
  });

describe("ledger entry codec", () => {
  test("decoding an encoded entry gives back every field and the private plaintext", () => {
    fc.assert(
      fc.property(fieldsArb(), (f) => {
        const bytes = encodeEntry(f, secret);
        const d = decodeEntry(bytes);
        assert.equal(d.view, f.view);
        assert.equal(d.seqno, f.seqno);
        assert.equal(d.isSignature, f.isSignature);
        assert.deepEqual(d.claimsDigest, f.claimsDigest);
        assert.deepEqual(d.commitEvidenceDigest, f.commitEvidenceDigest);
        assert.deepEqual(d.publicDomain, f.publicDomain);
        assert.equal(d.bytes, bytes);
        assert.deepEqual(decryptPrivate(d, secret), f.privatePlaintext);
      }),
    );
  });

  test("any single flipped bit in header, public or private domain makes decryption fail", () => {
    fc.assert(
      fc.property(fieldsArb(1), fc.nat(), (f, bitChoice) => {
        const bytes = encodeEntry(f, secret);
        const bit = bitChoice % (bytes.length * 8);
        const tampered = Buffer.from(bytes);
        tampered[bit >> 3]! ^= 1 << (bit & 7);
        assert.throws(
          () => decryptPrivate(decodeEntry(tampered), secret),
          (e: unknown) =>
            e instanceof CocoError && (e.code === "LedgerDecryptionFailed" || e.code === "InvalidLedgerEntry"),
        );
      }),
    );
  });

  test("decoding random bytes only ever throws InvalidLedgerEntry", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (raw) => {
        try {
          decodeEntry(Buffer.from(raw));
        } catch (e) {
          assert.ok(e instanceof CocoError && e.code === "InvalidLedgerEntry", String(e));
        }
      }),
    );
  });

  test("decoding a corrupted valid entry only ever throws InvalidLedgerEntry", () => {
    fc.assert(
      fc.property(fieldsArb(), fc.nat(), fc.integer({ min: 0, max: 255 }), (f, at, value) => {
        const bytes = Buffer.from(encodeEntry(f, secret));
        bytes[at % ENTRY_HEADER_BYTES] = value;
        try {
          decodeEntry(bytes);
        } catch (e) {
          assert.ok(e instanceof CocoError && e.code === "InvalidLedgerEntry", String(e));
        }
      }),
    );
  });

  test("an empty private plaintext gives an empty private domain and no ciphertext", () => {
    const f = fc.sample(fieldsArb(), 1)[0]!;
    f.privatePlaintext = Buffer.alloc(0);
    const bytes = encodeEntry(f, secret);
    assert.equal(bytes.length, ENTRY_HEADER_BYTES + f.publicDomain.length);
    assert.equal(decodeEntry(bytes).privateCiphertext.length, 0);
  });

  test("decrypting with another ledger secret fails with LedgerDecryptionFailed", () => {
    const f = fc.sample(fieldsArb(1), 1)[0]!;
    const d = decodeEntry(encodeEntry(f, secret));
    assert.throws(
      () => decryptPrivate(d, new LedgerSecret(randomBytes(32))),
      (e: unknown) => e instanceof CocoError && e.code === "LedgerDecryptionFailed",
    );
  });

  test("the write set digest is the SHA-256 of the whole entry and needs no secret", () => {
    const bytes = encodeEntry(fc.sample(fieldsArb(1), 1)[0]!, secret);
    const digest = writeSetDigest(bytes);
    assert.equal(digest.length, 32);
    assert.deepEqual(digest, writeSetDigest(Buffer.from(bytes)));
    bytes[bytes.length - 1]! ^= 1;
    assert.notDeepEqual(digest, writeSetDigest(bytes));
  });

  test("a ledger secret never shows its key when logged or serialised", () => {
    const raw = Buffer.alloc(32, 0xab);
    const s = new LedgerSecret(raw);
    assert.equal(JSON.stringify({ s }), '{"s":"[LedgerSecret]"}');
    assert.ok(!inspect(s).includes("ab"));
  });
});

test("entryLeaf is CCF's leaf, SHA-256(write set digest || commit evidence digest || claims digest)", () => {
  for (let i = 0; i < 20; i++) {
    const bytes = encodeEntry({
      view: 1 + i, seqno: 100 + i, isSignature: i % 3 === 0, claimsDigest: randomBytes(32), commitEvidenceDigest: randomBytes(32),
      publicDomain: randomBytes(i * 7), privatePlaintext: randomBytes(i % 2 === 0 ? 0 : i * 11),
    }, secret);
    const entry = decodeEntry(bytes);
    const expected = sha256(writeSetDigest(bytes), entry.commitEvidenceDigest, entry.claimsDigest);
    assert.deepEqual(entryLeaf(bytes), expected);
    const out = Buffer.alloc(32 * 3);
    entryLeafInto(bytes, out, 32);
    assert.deepEqual(out.subarray(32, 64), expected);
    assert.ok(out.subarray(0, 32).every((b) => b === 0) && out.subarray(64).every((b) => b === 0));
  }
});
