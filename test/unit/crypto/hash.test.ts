// Hash, MAC, KDF and AEAD wrappers checked against published test vectors
// (FIPS 180-2, RFC 4231, RFC 5869, the GCM specification's test cases 13 and 14).
import { test } from "node:test";
import assert from "node:assert/strict";
import { AesGcmKey, hkdfSha256, hmacSha256, randomBytes, sha256, sha256Into, sha256Pair } from "../../../src/crypto/index.js";

const hex = (text: string): Buffer => Buffer.from(text, "hex");

test("sha256 matches FIPS 180-2 'abc' and hashes the concatenation of its parts", () => {
  const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  assert.equal(sha256(Buffer.from("abc")).toString("hex"), abc);
  assert.equal(sha256(Buffer.from("a"), Buffer.from("bc")).toString("hex"), abc);
});

test("sha256Pair equals sha256 of the concatenation, for digests and other lengths", () => {
  const a = randomBytes(32);
  const b = randomBytes(32);
  assert.deepEqual(sha256Pair(a, b), sha256(Buffer.concat([a, b])));
  const first = sha256Pair(a, b);
  sha256Pair(b, a); // the reused scratch buffer must not alias earlier results
  assert.deepEqual(first, sha256(a, b));
  assert.deepEqual(sha256Pair(a.subarray(0, 5), b), sha256(a.subarray(0, 5), b));
});

test("hmacSha256 matches RFC 4231 test case 1", () => {
  const mac = hmacSha256(Buffer.alloc(20, 0x0b), Buffer.from("Hi There"));
  assert.equal(mac.toString("hex"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
});

test("hkdfSha256 matches RFC 5869 test case 1 and rejects impossible lengths", () => {
  const okm = hkdfSha256(Buffer.alloc(22, 0x0b), hex("000102030405060708090a0b0c"), hex("f0f1f2f3f4f5f6f7f8f9"), 42);
  assert.equal(
    okm.toString("hex"),
    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
  );
  assert.throws(() => hkdfSha256(Buffer.alloc(1), Buffer.alloc(0), Buffer.alloc(0), 0), { code: "InvalidInput" });
});

test("randomBytes returns fresh bytes of the requested length", () => {
  assert.equal(randomBytes(48).length, 48);
  assert.notDeepEqual(randomBytes(32), randomBytes(32));
});

test("AES-256-GCM matches GCM spec test cases 13 and 14", () => {
  const key = new AesGcmKey(Buffer.alloc(32));
  const iv = Buffer.alloc(12);
  assert.equal(key.seal(iv, Buffer.alloc(0), Buffer.alloc(0)).toString("hex"), "530f8afbc74536b9a963b4f1c4cb738b");
  assert.equal(
    key.seal(iv, Buffer.alloc(16), Buffer.alloc(0)).toString("hex"),
    "cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919",
  );
});

test("AES-256-GCM round-trips and rejects tampering, wrong AAD, wrong IV and wrong key", () => {
  const key = new AesGcmKey(randomBytes(32));
  const iv = randomBytes(12);
  const aad = Buffer.from("header");
  const plaintext = Buffer.from("private write set");
  const sealed = key.seal(iv, plaintext, aad);
  assert.equal(sealed.length, plaintext.length + 16);
  assert.deepEqual(key.open(iv, sealed, aad), plaintext);

  const flipped = Buffer.from(sealed);
  flipped[0]! ^= 1;
  const failure = { name: "CocoError", code: "DecryptionFailed" };
  assert.throws(() => key.open(iv, flipped, aad), failure);
  assert.throws(() => key.open(iv, sealed, Buffer.from("other")), failure);
  assert.throws(() => key.open(randomBytes(12), sealed, aad), failure);
  assert.throws(() => new AesGcmKey(randomBytes(32)).open(iv, sealed, aad), failure);
  assert.throws(() => key.open(iv, sealed.subarray(0, 15), aad), failure);
});

test("AesGcmKey validates key and IV sizes", () => {
  assert.throws(() => new AesGcmKey(Buffer.alloc(16)), /32 bytes/);
  const key = new AesGcmKey(Buffer.alloc(32));
  assert.throws(() => key.seal(Buffer.alloc(16), Buffer.alloc(1), Buffer.alloc(0)), /12 bytes/);
});

test("sha256Into writes exactly sha256 of its input at the offset, for every byte value", () => {
  const out = Buffer.alloc(80, 0xee);
  for (const input of [Buffer.alloc(0), Buffer.from("abc"), randomBytes(64), randomBytes(1000), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]) {
    out.fill(0xee);
    sha256Into(input, out, 7);
    assert.deepEqual(out.subarray(7, 39), sha256(input));
    assert.ok(out.subarray(0, 7).every((b) => b === 0xee) && out.subarray(39).every((b) => b === 0xee), "nothing outside the 32 bytes changes");
  }
});
