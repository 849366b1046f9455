// COSE_Sign1: round trips, the RFC 9052 working group's ES384 example as an official vector, and
// an independent check with the openssl CLI over a Sig_structure encoded by hand here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { Encoder, Tag } from "cbor-x";
import {
  coseSign1ToBeSigned,
  generateEcP384KeyPair,
  parseCoseSign1,
  signCoseSign1,
  verifyCoseSign1,
  type CoseSign1,
} from "../../../src/crypto/index.js";
import { CocoError } from "../../../src/util/errors.js";

const cbor = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });
const encode = (value: unknown): Buffer => Buffer.from(cbor.encode(value));
const keys = generateEcP384KeyPair();
const other = generateEcP384KeyPair();
const payload = Buffer.from('{"actions":[]}');

function signed(extra: Partial<Parameters<typeof signCoseSign1>[0]> = {}): Buffer {
  return signCoseSign1({ privateKeyPem: keys.privateKeyPem, protectedHeaders: new Map([["x.y", "z"]]), payload, ...extra });
}

function rebuild(parsed: CoseSign1, change: Partial<{ protectedRaw: Buffer; payload: Buffer; signature: Buffer; unprotected: Map<unknown, unknown> }>): Buffer {
  return encode(new Tag([
    change.protectedRaw ?? parsed.protectedRaw,
    change.unprotected ?? parsed.unprotectedHeaders,
    change.payload ?? parsed.payload,
    change.signature ?? parsed.signature,
  ], 18));
}

function assertInvalid(bytes: Uint8Array, reason: RegExp): void {
  assert.throws(() => parseCoseSign1(bytes), (e: unknown) => {
    assert.ok(e instanceof CocoError);
    assert.equal(e.code, "InvalidCoseSign1");
    assert.equal(e.status, 400);
    assert.match(e.message, reason);
    return true;
  });
}

test("a signed message parses back to its headers and payload and verifies", () => {
  const message = signed({ kid: "abc", unprotectedHeaders: new Map([[33, "u"]]) });
  assert.equal(message[0], 0xd2, "tag 18 prefix");
  const parsed = parseCoseSign1(message);
  assert.equal(parsed.protectedHeaders.get(1), -35);
  assert.deepEqual(parsed.protectedHeaders.get(4), Buffer.from("abc"));
  assert.equal(parsed.protectedHeaders.get("x.y"), "z");
  assert.equal(parsed.unprotectedHeaders.get(33), "u");
  assert.deepEqual(parsed.payload, payload);
  assert.equal(parsed.signature.length, 96);
  assert.equal(verifyCoseSign1(parsed, keys.publicKeyPem), true);
  assert.equal(verifyCoseSign1(parsed, keys.privateKeyPem), true, "a private key PEM stands for its public half");
});

test("protected headers are encoded in deterministic order whatever the insertion order", () => {
  const a = parseCoseSign1(signCoseSign1({ privateKeyPem: keys.privateKeyPem, payload, protectedHeaders: new Map<number | string, unknown>([["b", 1], [4, Buffer.of(1)], ["a", 2]]) }));
  const b = parseCoseSign1(signCoseSign1({ privateKeyPem: keys.privateKeyPem, payload, protectedHeaders: new Map<number | string, unknown>([["a", 2], ["b", 1], [4, Buffer.of(1)]]) }));
  assert.deepEqual(a.protectedRaw, b.protectedRaw);
  assert.deepEqual([...a.protectedHeaders.keys()], [1, 4, "a", "b"]);
});

test("an explicit alg that does not match the key is refused at signing", () => {
  assert.throws(() => signed({ protectedHeaders: new Map([[1, -7]]) }), /does not match the signing key/);
});

test("the COSE working group's ES384 Sign1 example (ecdsa-sig-02) verifies, and its Sig_structure matches", () => {
  // https://github.com/cose-wg/Examples/blob/master/ecdsa-examples/ecdsa-sig-02.json
  const jwk = {
    kty: "EC",
    crv: "P-384",
    x: "kTJyP2KSsBBhnb4kjWmMF7WHVsY55xUPgb7k64rDcjatChoZ1nvjKmYmPh5STRKc",
    y: "mM0weMVU2DKsYDxDJkEP9hZiRZtB8fPfXbzINZj_fF7YQRynNWedHEyzAJOX2e8s",
  };
  const publicKeyPem = createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" }).toString();
  const message = Buffer.from(
    "D28444A1013822A104445033383454546869732069732074686520636F6E74656E742E5860B8F85EFF78C88F5351CED2F1887B79B2964907" +
      "95594B62E41E22529BB90208B7D8CDDD4A46D0E9C986464D83D0A5D1EDF39B3E2C5750364230D0E8D76460D8808E76C83830FBBD1978CC1740" +
      "66EB437F17887979ECF027DCC9D51BAF6C4FD8C0",
    "hex",
  );
  const parsed = parseCoseSign1(message);
  assert.equal(parsed.payload!.toString(), "This is the content.");
  assert.deepEqual(parsed.unprotectedHeaders.get(4), Buffer.from("P384"));
  assert.equal(
    coseSign1ToBeSigned(parsed.protectedRaw, parsed.payload!).toString("hex").toUpperCase(),
    "846A5369676E61747572653144A10138224054546869732069732074686520636F6E74656E742E",
  );
  assert.equal(verifyCoseSign1(parsed, publicKeyPem), true);
  assert.equal(verifyCoseSign1({ ...parsed, payload: Buffer.from("This is the content!") }, publicKeyPem), false);
});

// --- independent cross-check: hand-written CBOR and DER, verified by the openssl CLI ---

function cborHead(major: number, length: number): Buffer {
  if (length < 24) return Buffer.of((major << 5) | length);
  if (length < 0x100) return Buffer.of((major << 5) | 24, length);
  if (length < 0x10000) return Buffer.of((major << 5) | 25, length >> 8, length & 0xff);
  const head = Buffer.alloc(5);
  head[0] = (major << 5) | 26;
  head.writeUInt32BE(length, 1);
  return head;
}
const bstr = (b: Buffer): Buffer => Buffer.concat([cborHead(2, b.length), b]);

function derInteger(unsigned: Buffer): Buffer {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  let body = unsigned.subarray(i);
  if (body[0]! & 0x80) body = Buffer.concat([Buffer.of(0), body]);
  return Buffer.concat([Buffer.of(0x02, body.length), body]);
}

function rawToDer(raw: Buffer): Buffer {
  const half = raw.length / 2;
  const seq = Buffer.concat([derInteger(raw.subarray(0, half)), derInteger(raw.subarray(half))]);
  assert.ok(seq.length < 128);
  return Buffer.concat([Buffer.of(0x30, seq.length), seq]);
}

function opensslVerifies(publicKeyPem: string, data: Buffer, derSignature: Buffer): boolean {
  const dir = mkdtempSync(join(tmpdir(), "coco-cose-"));
  try {
    writeFileSync(join(dir, "pub.pem"), publicKeyPem);
    writeFileSync(join(dir, "tbs.bin"), data);
    writeFileSync(join(dir, "sig.der"), derSignature);
    execFileSync("openssl", ["dgst", "-sha384", "-verify", "pub.pem", "-signature", "sig.der", "tbs.bin"], { cwd: dir, stdio: "pipe" });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("openssl verifies our signature over a Sig_structure encoded by hand", () => {
  const bigPayload = randomBytes(300); // a two-byte bstr length
  const parsed = parseCoseSign1(signed({ payload: bigPayload }));
  const handMade = Buffer.concat([
    Buffer.of(0x84), // array(4)
    Buffer.of(0x6a), Buffer.from("Signature1"), // tstr(10)
    bstr(parsed.protectedRaw),
    Buffer.of(0x40), // empty external_aad
    bstr(bigPayload),
  ]);
  assert.deepEqual(coseSign1ToBeSigned(parsed.protectedRaw, bigPayload), handMade);
  assert.equal(opensslVerifies(keys.publicKeyPem, handMade, rawToDer(parsed.signature)), true);
  const flipped = Buffer.from(handMade);
  flipped[flipped.length - 1]! ^= 1;
  assert.equal(opensslVerifies(keys.publicKeyPem, flipped, rawToDer(parsed.signature)), false);
});

// --- tampering ---

test("a changed payload, protected header or signature does not verify", () => {
  const parsed = parseCoseSign1(signed());
  const tamperedPayload = parseCoseSign1(rebuild(parsed, { payload: Buffer.from('{"actions":[1]}') }));
  assert.equal(verifyCoseSign1(tamperedPayload, keys.publicKeyPem), false);
  const protectedRaw = encode(new Map<number | string, unknown>([[1, -35], ["x.y", "w"]]));
  assert.equal(verifyCoseSign1(parseCoseSign1(rebuild(parsed, { protectedRaw })), keys.publicKeyPem), false);
  const signature = Buffer.from(parsed.signature);
  signature[10]! ^= 0x40;
  assert.equal(verifyCoseSign1(parseCoseSign1(rebuild(parsed, { signature })), keys.publicKeyPem), false);
  assert.equal(verifyCoseSign1(parseCoseSign1(rebuild(parsed, { signature: parsed.signature.subarray(1) })), keys.publicKeyPem), false);
});

test("a signature does not verify under another key or a key on another curve", () => {
  const parsed = parseCoseSign1(signed());
  assert.equal(verifyCoseSign1(parsed, other.publicKeyPem), false);
  const p256 = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString();
  assert.equal(verifyCoseSign1(parsed, p256), false);
});

test("ES256 with a P-256 key round-trips", () => {
  const p256 = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const priv = p256.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const pub = p256.publicKey.export({ type: "spki", format: "pem" }).toString();
  const parsed = parseCoseSign1(signCoseSign1({ privateKeyPem: priv, payload }));
  assert.equal(parsed.protectedHeaders.get(1), -7);
  assert.equal(verifyCoseSign1(parsed, pub), true);
});

test("a detached payload verifies only when given", () => {
  const parsed = parseCoseSign1(signed());
  const detached = parseCoseSign1(encode(new Tag([parsed.protectedRaw, new Map(), null, parsed.signature], 18)));
  assert.equal(detached.payload, null);
  assert.equal(verifyCoseSign1(detached, keys.publicKeyPem, { detachedPayload: payload }), true);
  assert.throws(() => verifyCoseSign1(detached, keys.publicKeyPem), /detached/);
});

// --- malformed input ---

test("malformed messages are rejected with a precise reason", () => {
  const parsed = parseCoseSign1(signed());
  const parts = [parsed.protectedRaw, new Map(), payload, parsed.signature];
  assertInvalid(encode(parts), /tagged 18/);
  assertInvalid(encode(new Tag(parts, 98)), /tagged 18/);
  assertInvalid(encode(new Tag(parts.slice(0, 3), 18)), /4 elements/);
  assertInvalid(encode(new Tag([new Map([[1, -35]]), new Map(), payload, parsed.signature], 18)), /protected header must be a byte string/);
  assertInvalid(encode(new Tag([parsed.protectedRaw, [], payload, parsed.signature], 18)), /unprotected header must be a CBOR map/);
  assertInvalid(encode(new Tag([parsed.protectedRaw, new Map(), "text", parsed.signature], 18)), /payload must be a byte string or nil/);
  assertInvalid(encode(new Tag([parsed.protectedRaw, new Map(), payload, 7], 18)), /signature must be a byte string/);
  assertInvalid(encode(new Tag([encode([1, 2]), new Map(), payload, parsed.signature], 18)), /definite-length CBOR map/);
  assertInvalid(Buffer.concat([signed(), Buffer.of(0)]), /not well-formed CBOR/);
  assertInvalid(signed().subarray(0, 50), /not well-formed CBOR/);
  assertInvalid(Buffer.alloc(0), /not well-formed CBOR/);
});

test("duplicate or indefinite-length protected header maps are rejected", () => {
  const parsed = parseCoseSign1(signed());
  const duplicate = Buffer.from("a20138220126", "hex"); // {1: -35, 1: -7}
  assertInvalid(rebuild(parsed, { protectedRaw: duplicate }), /duplicate labels/);
  const indefinite = Buffer.from("bf013822ff", "hex"); // {_ 1: -35}
  assertInvalid(rebuild(parsed, { protectedRaw: indefinite }), /definite-length/);
});

test("an empty protected header parses as an empty map, and verifying it reports the missing alg", () => {
  const parsed = parseCoseSign1(encode(new Tag([Buffer.alloc(0), new Map(), payload, Buffer.alloc(96)], 18)));
  assert.equal(parsed.protectedHeaders.size, 0);
  assert.throws(() => verifyCoseSign1(parsed, keys.publicKeyPem), (e: unknown) => e instanceof CocoError && e.code === "InvalidCoseSign1" && /no alg/.test(e.message));
});

test("an unsupported alg is reported, not treated as a bad signature", () => {
  const protectedRaw = encode(new Map([[1, -37]])); // PS256
  const parsed = parseCoseSign1(encode(new Tag([protectedRaw, new Map(), payload, Buffer.alloc(96)], 18)));
  assert.throws(() => verifyCoseSign1(parsed, keys.publicKeyPem), /unsupported alg -37/);
});

test("random bytes only ever produce InvalidCoseSign1", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        parseCoseSign1(bytes);
      } catch (e) {
        assert.ok(e instanceof CocoError && e.code === "InvalidCoseSign1", String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

test("single-byte corruptions of a signed message never verify and only throw InvalidCoseSign1", () => {
  const message = signed();
  fc.assert(
    fc.property(fc.nat({ max: message.length - 1 }), fc.integer({ min: 1, max: 255 }), (index, mask) => {
      const corrupted = Buffer.from(message);
      corrupted[index]! ^= mask;
      let parsed: CoseSign1;
      try {
        parsed = parseCoseSign1(corrupted);
      } catch (e) {
        assert.ok(e instanceof CocoError && e.code === "InvalidCoseSign1", String(e));
        return;
      }
      try {
        assert.equal(verifyCoseSign1(parsed, keys.publicKeyPem), false);
      } catch (e) {
        assert.ok(e instanceof CocoError && e.code === "InvalidCoseSign1", String(e));
      }
    }),
    { numRuns: 1000 },
  );
});
