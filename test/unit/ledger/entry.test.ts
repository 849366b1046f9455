// Properties of the ledger entry codec: lossless round trip, authentication of every byte
// through AES-GCM's AAD, a decoder that fails only with InvalidLedgerEntry, and a key per key
// nonce so that reusing a (view, seqno) under a fresh nonce reuses no keystream.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import fc from "fast-check";
import {
  ENTRY_HEADER_BYTES,
  ENTRY_KEY_NONCE_BYTES,
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

/** 16 bytes, not all zero (encodeEntry refuses a zero nonce, decodeEntry rejects one). */
const keyNonceArb = fc
  .uint8Array({ minLength: ENTRY_KEY_NONCE_BYTES, maxLength: ENTRY_KEY_NONCE_BYTES })
  .filter((a) => a.some((b) => b !== 0))
  .map((a) => Buffer.from(a));

function xor(a: Buffer, b: Buffer): Buffer {
  assert.equal(a.length, b.length);
  return Buffer.from(a.map((x, i) => x ^ b[i]!));
}

/** The ciphertext of a decoded entry's private domain, without the GCM tag. */
function ciphertextOf(bytes: Buffer): Buffer {
  const sealed = decodeEntry(bytes).privateCiphertext;
  return sealed.subarray(0, sealed.length - 16);
}

const fieldsArb = (minPrivate = 0): fc.Arbitrary<EntryFields> =>
  fc.record({
    view: fc.integer({ min: 0, max: 0xffff_ffff }),
    seqno: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    isSignature: fc.boolean(),
    claimsDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a)),
    commitEvidenceDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a)),
    keyNonce: keyNonceArb,
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
        assert.deepEqual(d.keyNonce, f.keyNonce);
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

  test("two entries with the same view and seqno but different key nonces share no keystream", () => {
    fc.assert(
      fc.property(fieldsArb(16), keyNonceArb, fc.uint8Array({ minLength: 16, maxLength: 200 }), (f, otherNonce, otherPlain) => {
        fc.pre(!otherNonce.equals(f.keyNonce));
        const plainB = Buffer.from(otherPlain.subarray(0, Math.min(otherPlain.length, f.privatePlaintext.length)));
        const plainA = f.privatePlaintext.subarray(0, plainB.length);
        const a = ciphertextOf(encodeEntry({ ...f, privatePlaintext: plainA }, secret));
        const b = ciphertextOf(encodeEntry({ ...f, keyNonce: otherNonce, privatePlaintext: plainB }, secret));
        // Under one (key, IV) these would be equal (CTR mode): that is how B leaks from a known A.
        assert.notDeepEqual(xor(a, b), xor(plainA, plainB));
      }),
    );
  });

  test("the same view, seqno and key nonce reuse the keystream (what the key nonce must prevent)", () => {
    // The detector the restore test relies on: it does find reuse when there is reuse.
    const f = fc.sample(fieldsArb(32), 1)[0]!;
    const plainB = randomBytes(f.privatePlaintext.length);
    const a = ciphertextOf(encodeEntry(f, secret));
    const b = ciphertextOf(encodeEntry({ ...f, privatePlaintext: plainB }, secret));
    assert.deepEqual(xor(a, b), xor(f.privatePlaintext, plainB));
  });

  test("an entry whose key nonce was altered does not decrypt", () => {
    fc.assert(
      fc.property(fieldsArb(1), fc.integer({ min: 0, max: ENTRY_KEY_NONCE_BYTES - 1 }), fc.integer({ min: 1, max: 255 }), (f, at, delta) => {
        const tampered = Buffer.from(encodeEntry(f, secret));
        const offset = ENTRY_HEADER_BYTES - ENTRY_KEY_NONCE_BYTES + at;
        tampered[offset] = (tampered[offset]! + delta) & 0xff;
        assert.throws(
          () => decryptPrivate(decodeEntry(tampered), secret),
          (e: unknown) => e instanceof CocoError && (e.code === "LedgerDecryptionFailed" || e.code === "InvalidLedgerEntry"),
        );
      }),
    );
  });

  test("a zero key nonce is refused by the encoder and rejected by the decoder", () => {
    const f = fc.sample(fieldsArb(1), 1)[0]!;
    assert.throws(() => encodeEntry({ ...f, keyNonce: Buffer.alloc(ENTRY_KEY_NONCE_BYTES) }, secret), /key nonce/);
    const bytes = Buffer.from(encodeEntry(f, secret));
    bytes.fill(0, ENTRY_HEADER_BYTES - ENTRY_KEY_NONCE_BYTES, ENTRY_HEADER_BYTES);
    assert.throws(() => decodeEntry(bytes), (e: unknown) => e instanceof CocoError && e.code === "InvalidLedgerEntry" && /key nonce/.test(e.message));
  });

  test("entries of many key nonces, read in any order, all decrypt (the per-secret key cache evicts correctly)", () => {
    const nonces = fc.sample(keyNonceArb, 20);
    const fields = nonces.map((keyNonce, i) => ({ ...fc.sample(fieldsArb(1), 1)[0]!, keyNonce, seqno: i + 1 }));
    const encoded = fields.map((f) => encodeEntry(f, secret));
    for (const i of [...fields.keys(), ...[...fields.keys()].reverse(), 3, 17, 3, 0, 19, 0]) {
      assert.deepEqual(decryptPrivate(decodeEntry(encoded[i]!), secret), fields[i]!.privatePlaintext);
    }
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
      view: 1 + i, seqno: 100 + i, isSignature: i % 3 === 0, claimsDigest: randomBytes(32), commitEvidenceDigest: randomBytes(32), keyNonce: randomBytes(16),
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
