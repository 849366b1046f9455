// ECDSA P-384: prehashed digest signatures (CCF's Merkle root signatures) cross-checked with
// the openssl CLI as an independent implementation, and ordinary SHA-384 data signatures.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  generateEcP384KeyPair,
  publicKeyDer,
  sha256,
  signData,
  signDigest,
  verifyData,
  verifyDigest,
} from "../../../src/crypto/index.js";

function withTempDir<T>(body: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "coco-crypto-"));
  try {
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function opensslVerifies(publicKeyPem: string, digest: Buffer, signature: Buffer): boolean {
  return withTempDir((dir) => {
    writeFileSync(join(dir, "pub.pem"), publicKeyPem);
    writeFileSync(join(dir, "digest.bin"), digest);
    writeFileSync(join(dir, "sig.der"), signature);
    try {
      execFileSync("openssl", ["pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-in", "digest.bin", "-sigfile", "sig.der"], {
        cwd: dir,
        stdio: "pipe",
      });
      return true;
    } catch {
      return false;
    }
  });
}

const keys = generateEcP384KeyPair();
const root = sha256(Buffer.from("merkle root"));

test("generated keys are P-384 PKCS#8 / SPKI PEM", () => {
  assert.match(keys.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
  assert.match(keys.publicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
  assert.equal(publicKeyDer(keys.publicKeyPem).length, 120); // SPKI of an uncompressed P-384 point
  assert.deepEqual(publicKeyDer(keys.privateKeyPem), publicKeyDer(keys.publicKeyPem));
});

test("signDigest signs the digest as a prehash: openssl pkeyutl accepts it", () => {
  const signature = signDigest(keys.privateKeyPem, root);
  assert.equal(signature[0], 0x30); // DER SEQUENCE
  assert.ok(verifyDigest(keys.publicKeyPem, root, signature));
  assert.ok(opensslVerifies(keys.publicKeyPem, root, signature));
});

test("openssl rejects our digest signature over a different digest or from another key", () => {
  const signature = signDigest(keys.privateKeyPem, root);
  const other = Buffer.from(root);
  other[31]! ^= 1;
  assert.equal(opensslVerifies(keys.publicKeyPem, other, signature), false);
  assert.equal(opensslVerifies(generateEcP384KeyPair().publicKeyPem, root, signature), false);
});

test("verifyDigest accepts signatures made by openssl over a prehashed digest", () => {
  withTempDir((dir) => {
    writeFileSync(join(dir, "key.pem"), keys.privateKeyPem);
    writeFileSync(join(dir, "digest.bin"), root);
    // Several runs so both low-S and high-S signatures (OpenSSL does not normalise) are covered.
    for (let run = 0; run < 8; run++) {
      execFileSync("openssl", ["pkeyutl", "-sign", "-inkey", "key.pem", "-in", "digest.bin", "-out", "sig.der"], { cwd: dir });
      assert.ok(verifyDigest(keys.publicKeyPem, root, readFileSync(join(dir, "sig.der"))), `run ${run}`);
    }
  });
});

test("verifyDigest rejects tampered digests, signatures, other keys and garbage", () => {
  const signature = signDigest(keys.privateKeyPem, root);
  const tamperedRoot = Buffer.from(root);
  tamperedRoot[0]! ^= 0x80;
  assert.equal(verifyDigest(keys.publicKeyPem, tamperedRoot, signature), false);
  const tamperedSignature = Buffer.from(signature);
  tamperedSignature[tamperedSignature.length - 1]! ^= 1;
  assert.equal(verifyDigest(keys.publicKeyPem, root, tamperedSignature), false);
  assert.equal(verifyDigest(generateEcP384KeyPair().publicKeyPem, root, signature), false);
  assert.equal(verifyDigest(keys.publicKeyPem, root, Buffer.from("not DER")), false);
  assert.throws(() => signDigest(keys.privateKeyPem, Buffer.alloc(48)), /32 bytes/);
});

test("signDigest accepts SEC1 private keys as written by openssl ecparam", () => {
  withTempDir((dir) => {
    execFileSync("openssl", ["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "sec1.pem"], { cwd: dir });
    const sec1 = readFileSync(join(dir, "sec1.pem"), "utf8");
    assert.match(sec1, /BEGIN EC PRIVATE KEY/);
    const publicPem = execFileSync("openssl", ["ec", "-in", "sec1.pem", "-pubout"], { cwd: dir, stdio: "pipe" }).toString();
    assert.ok(verifyDigest(publicPem, root, signDigest(sec1, root)));
  });
});

test("keys on other curves are refused", () => {
  const p256 = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  assert.throws(() => signDigest(p256, root), /P-384/);
});

test("signData / verifyData use ECDSA with SHA-384 and reject tampering", () => {
  const data = Buffer.from("proposal body");
  const signature = signData(keys.privateKeyPem, data);
  assert.ok(verifyData(keys.publicKeyPem, data, signature));
  assert.equal(verifyData(keys.publicKeyPem, Buffer.from("proposal bodY"), signature), false);
  assert.equal(verifyData(generateEcP384KeyPair().publicKeyPem, data, signature), false);
  withTempDir((dir) => {
    writeFileSync(join(dir, "pub.pem"), keys.publicKeyPem);
    writeFileSync(join(dir, "data.bin"), data);
    writeFileSync(join(dir, "sig.der"), signature);
    execFileSync("openssl", ["dgst", "-sha384", "-verify", "pub.pem", "-signature", "sig.der", "data.bin"], { cwd: dir, stdio: "pipe" });
  });
});

test("with the digest's preimage, signDigest and verifyDigest make and accept the same signatures through OpenSSL", () => {
  const other = generateEcP384KeyPair();
  for (let i = 0; i < 8; i++) {
    const preimage = randomBytes(64); // a Merkle root's two children
    const digest = createHash("sha256").update(preimage).digest();
    const fast = signDigest(keys.privateKeyPem, digest, preimage);
    const slow = signDigest(keys.privateKeyPem, digest);
    // Each path accepts the other's signatures: the same ECDSA over the same digest.
    assert.ok(verifyDigest(keys.publicKeyPem, digest, fast));
    assert.ok(verifyDigest(keys.publicKeyPem, digest, slow, preimage));
    assert.ok(verifyDigest(keys.publicKeyPem, digest, fast, preimage));
    assert.ok(opensslVerifies(keys.publicKeyPem, digest, fast), "openssl pkeyutl accepts it as a prehash signature");
    // And both refuse what they must.
    assert.equal(verifyDigest(other.publicKeyPem, digest, fast, preimage), false, "another key");
    const tampered = Buffer.from(fast);
    tampered[tampered.length - 1]! ^= 0x01;
    assert.equal(verifyDigest(keys.publicKeyPem, digest, tampered, preimage), false, "a tampered signature");
    assert.equal(verifyDigest(keys.publicKeyPem, digest, Buffer.from("garbage"), preimage), false, "not DER");
  }
  // A preimage that does not hash to the digest is a caller's bug: refused, never signed or checked.
  const digest = sha256(Buffer.from("a"));
  assert.throws(() => signDigest(keys.privateKeyPem, digest, randomBytes(64)), /preimage given does not hash to the digest/);
  assert.throws(() => verifyDigest(keys.publicKeyPem, digest, signDigest(keys.privateKeyPem, digest), randomBytes(64)), /does not hash/);
});
