// Governance signature malleability: an ECDSA signature (r, s) has a twin (r, n - s) that
// verifies too, and a COSE envelope can be re-encoded without touching what was signed. None of
// these may count as a new governance request: high-S is refused, and the replay key hashes
// the signed Sig_structure, which no one without the key can change.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Encoder, Tag } from "cbor-x";
import { p256, p384, p521 } from "@noble/curves/nist.js";
import {
  certificateFingerprint,
  createIdentityCertificate,
  generateEcP384KeyPair,
  isLowSCoseSignature,
  lowSSignature,
  parseCoseSign1,
  verifyCoseSign1,
  COSE_ALG_ES256,
  COSE_ALG_ES384,
  COSE_ALG_ES512,
} from "../../../src/crypto/index.js";
import { authenticateMemberCose, signGovernanceRequest, type MemberCoseAuthOptions } from "../../../src/governance/cose-auth.js";
import { CocoError } from "../../../src/util/errors.js";

const P384_ORDER = p384.Point.CURVE().n;
const cbor = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });
const encode = (value: unknown): Buffer => Buffer.from(cbor.encode(value));

const keys = generateEcP384KeyPair();
const cert = await createIdentityCertificate(keys, "member0");
const memberId = certificateFingerprint(cert);
const options: MemberCoseAuthOptions = { lookupMemberCert: (id) => (id === memberId ? cert : undefined), expectedMsgType: "proposal" };

function sign(createdAt: number, payload: string): Buffer {
  return signGovernanceRequest({ memberCertPem: cert, memberKeyPem: keys.privateKeyPem, msgType: "proposal", createdAt, payload });
}

/** The same COSE_Sign1 with s replaced by n - s (the other valid signature). */
function flipS(body: Buffer): Buffer {
  const parsed = parseCoseSign1(body);
  const half = parsed.signature.length / 2;
  const s = BigInt(`0x${parsed.signature.subarray(half).toString("hex")}`);
  const flipped = Buffer.concat([parsed.signature.subarray(0, half), Buffer.from((P384_ORDER - s).toString(16).padStart(half * 2, "0"), "hex")]);
  return encode(new Tag([parsed.protectedRaw, parsed.unprotectedHeaders, parsed.payload, flipped], 18));
}

/** Re-encodings that keep protected header, payload and signature: another unprotected header, and a non-minimal CBOR length. */
function withUnprotectedHeader(body: Buffer, label: string, value: string): Buffer {
  const parsed = parseCoseSign1(body);
  return encode(new Tag([parsed.protectedRaw, new Map([[label, value]]), parsed.payload, parsed.signature], 18));
}

function withLongSignatureLength(body: Buffer): Buffer {
  // The signature bstr's length written with a 2-byte argument (0x59 0x00 0x60) instead of 1 (0x58 0x60): valid, non-canonical CBOR.
  const parsed = parseCoseSign1(body);
  const canonical = Buffer.concat([Buffer.of(0x58, parsed.signature.length), parsed.signature]);
  const at = body.lastIndexOf(canonical);
  assert.ok(at > 0, "the signature is the envelope's last item");
  return Buffer.concat([body.subarray(0, at), Buffer.of(0x59, 0x00, parsed.signature.length), parsed.signature]);
}

function rejectsHighS(body: Buffer): void {
  assert.throws(() => authenticateMemberCose(body, options), (e: unknown) => {
    assert.ok(e instanceof CocoError, String(e));
    assert.equal(e.status, 401);
    assert.equal(e.code, "InvalidAuthenticationInfo");
    assert.match(e.message, /not in low-S form/);
    return true;
  });
}

test("Coco's signer always produces low-S signatures", () => {
  for (let i = 0; i < 64; i++) assert.ok(isLowSCoseSignature(parseCoseSign1(sign(1_720_000_000, `{"n":${i}}`))), `signature ${i} is low-S`);
});

test("a high-S twin of a member's signature verifies cryptographically but is refused, naming low-S", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 9_999_999_999 }), fc.string({ maxLength: 64 }), (createdAt, text) => {
    const body = sign(createdAt, JSON.stringify({ actions: [], text }));
    const twin = flipS(body);
    // The twin is a valid ECDSA signature over the same bytes: only the low-S rule stops it.
    assert.ok(verifyCoseSign1(parseCoseSign1(twin), cert));
    assert.ok(!isLowSCoseSignature(parseCoseSign1(twin)));
    rejectsHighS(twin);
    // Normalising the twin gives back the original signature exactly.
    assert.deepEqual(lowSSignature(parseCoseSign1(twin).signature, COSE_ALG_ES384), parseCoseSign1(body).signature);
  }), { numRuns: 25 });
});

test("the replay key does not change under any re-encoding of the envelope", () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 9_999_999_999 }), fc.string({ maxLength: 64 }), fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 32 }),
    (createdAt, text, label, value) => {
      const body = sign(createdAt, JSON.stringify({ actions: [], text }));
      const key = authenticateMemberCose(body, options).replayKey;
      for (const variant of [withUnprotectedHeader(body, label, value), withLongSignatureLength(body)]) {
        assert.notDeepEqual(variant, body);
        assert.equal(authenticateMemberCose(variant, options).replayKey, key);
      }
      // A fresh signature of the same request (another random nonce) is the same request too.
      assert.equal(authenticateMemberCose(sign(createdAt, JSON.stringify({ actions: [], text })), options).replayKey, key);
    },
  ), { numRuns: 25 });
});

test("lowSSignature maps s above n/2 to n - s on every COSE curve and leaves low-S alone", () => {
  const curves = [[COSE_ALG_ES256, p256, 32], [COSE_ALG_ES384, p384, 48], [COSE_ALG_ES512, p521, 66]] as const;
  for (const [alg, curve, width] of curves) {
    const n = curve.Point.CURVE().n;
    const hex = (v: bigint) => Buffer.from(v.toString(16).padStart(width * 2, "0"), "hex");
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: n - 1n }), fc.bigInt({ min: 1n, max: n - 1n }), (r, s) => {
      const signature = Buffer.concat([hex(r), hex(s)]);
      const normalised = lowSSignature(signature, alg);
      const expectedS = s > n / 2n ? n - s : s;
      assert.deepEqual(normalised, Buffer.concat([hex(r), hex(expectedS)]));
      assert.deepEqual(lowSSignature(normalised, alg), normalised, "idempotent");
    }), { numRuns: 50 });
    // The boundary: s = floor(n/2) is low, s = floor(n/2) + 1 is high.
    assert.deepEqual(lowSSignature(Buffer.concat([hex(1n), hex(n / 2n)]), alg), Buffer.concat([hex(1n), hex(n / 2n)]));
    assert.deepEqual(lowSSignature(Buffer.concat([hex(1n), hex(n / 2n + 1n)]), alg), Buffer.concat([hex(1n), hex(n - n / 2n - 1n)]));
  }
});
