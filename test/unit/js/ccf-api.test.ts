// The `ccf` global beyond KV and governance: `ccf.crypto` (checked against node:crypto), the
// deprecated top-level aliases, and the functions Coco declares but does not support.
import assert from "node:assert/strict";
import {
  constants, createHash, createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, privateDecrypt,
  publicEncrypt, randomBytes, sign as nodeSign, verify as nodeVerify,
} from "node:crypto";
import { after, before, describe, it } from "node:test";
import { createNodeCertificate, createServiceCertificate, generateEcP384KeyPair } from "../../../src/crypto/index.js";
import { JsRuntime } from "../../../src/js/index.js";
import { CocoError } from "../../../src/util/errors.js";

// RSA key generation takes a few hundred ms: a generous limit keeps the tests from flaking.
const runtime = new JsRuntime({ timeLimitMs: 20_000, memoryLimitMiB: 64 });
after(() => runtime.dispose());

let counter = 0;
/** Runs `body` as the body of an exported function `f(arg)` in the sandbox. */
function run(body: string, arg: unknown = null): unknown {
  const name = `/api${counter++}.js`;
  runtime.loadModules([{ name, source: `export function f(arg) { ${body} }` }]);
  return runtime.call(name, "f", [arg]);
}

const buf = (b: Uint8Array): ArrayBuffer => Uint8Array.from(b).buffer;
const bytes = (x: unknown): Buffer => Buffer.from(x as ArrayBuffer);
const jsError = (pattern: RegExp) => (e: unknown) => e instanceof CocoError && e.code === "JsError" && pattern.test(e.message);

describe("ccf.crypto.digest", () => {
  it("computes SHA-256, SHA-384 and SHA-512 as node:crypto does", () => {
    const out = run(`return ["SHA-256", "SHA-384", "SHA-512"].map((a) => ccf.crypto.digest(a, ccf.strToBuf(arg)));`, "abc") as ArrayBuffer[];
    assert.deepEqual(out.map((d) => bytes(d).toString("hex")), ["sha256", "sha384", "sha512"].map((h) => createHash(h).update("abc").digest("hex")));
  });

  it("is also reachable as the deprecated ccf.digest", () => {
    assert.equal(bytes(run(`return ccf.digest("SHA-256", ccf.strToBuf("x"));`)).toString("hex"), createHash("sha256").update("x").digest("hex"));
  });

  it("refuses an unknown algorithm", () => {
    assert.throws(() => run(`return ccf.crypto.digest("MD5", new ArrayBuffer(1));`), jsError(/unsupported hash algorithm MD5/));
  });
});

describe("ccf.crypto.sign and verifySignature", () => {
  const data = Buffer.from("the message");

  it("signs with ECDSA in IEEE P1363 form that node:crypto verifies, and verifies node's signatures", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const privatePem = privateKey.export({ type: "pkcs8", format: "pem" });
    const publicPem = publicKey.export({ type: "spki", format: "pem" });
    const sig = bytes(run(`return ccf.crypto.sign({ name: "ECDSA", hash: "SHA-256" }, arg[0], arg[1]);`, [privatePem, buf(data)]));
    assert.equal(sig.length, 64);
    assert.ok(nodeVerify("sha256", data, { key: publicKey, dsaEncoding: "ieee-p1363" }, sig));
    const nodeSig = nodeSign("sha256", data, { key: privateKey, dsaEncoding: "ieee-p1363" });
    const verified = run(
      `const a = { name: "ECDSA", hash: "SHA-256" };
       return [ccf.crypto.verifySignature(a, arg[0], arg[1], arg[2]), ccf.crypto.verifySignature(a, arg[0], arg[1], ccf.strToBuf("other"))];`,
      [publicPem, buf(nodeSig), buf(data)],
    );
    assert.deepEqual(verified, [true, false]);
  });

  it("signs with RSA-PSS using the requested salt length", () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const sig = bytes(run(`return ccf.crypto.sign({ name: "RSA-PSS", hash: "SHA-384", saltLength: 32 }, arg[0], arg[1]);`,
      [privateKey.export({ type: "pkcs8", format: "pem" }), buf(data)]));
    assert.ok(nodeVerify("sha384", data, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig));
    const nodeSig = nodeSign("sha256", data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 20 });
    assert.equal(run(`return ccf.crypto.verifySignature({ name: "RSA-PSS", hash: "SHA-256", saltLength: 20 }, arg[0], arg[1], arg[2]);`,
      [publicKey.export({ type: "spki", format: "pem" }), buf(nodeSig), buf(data)]), true);
  });

  it("signs and verifies with EdDSA (Ed25519) over the message itself", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const sig = bytes(run(`return ccf.crypto.sign({ name: "EdDSA" }, arg[0], arg[1]);`, [privateKey.export({ type: "pkcs8", format: "pem" }), buf(data)]));
    assert.ok(nodeVerify(null, data, publicKey, sig));
    assert.equal(run(`return ccf.crypto.verifySignature({ name: "EdDSA" }, arg[0], arg[1], arg[2]);`,
      [publicKey.export({ type: "spki", format: "pem" }), buf(sig), buf(data)]), true);
  });

  it("computes HMAC with the key string's bytes and verifies it", () => {
    const mac = bytes(run(`return ccf.crypto.sign({ name: "HMAC", hash: "SHA-256" }, "secret", arg);`, buf(data)));
    assert.equal(mac.toString("hex"), createHmac("sha256", "secret").update(data).digest("hex"));
    assert.equal(run(`return ccf.crypto.verifySignature({ name: "HMAC", hash: "SHA-256" }, "secret", arg[0], arg[1]);`, [buf(mac), buf(data)]), true);
  });

  it("verifies against a certificate's public key", async () => {
    const keys = generateEcP384KeyPair();
    const cert = await createServiceCertificate(keys);
    const sig = nodeSign("sha256", data, { key: keys.privateKeyPem, dsaEncoding: "ieee-p1363" });
    assert.equal(run(`return ccf.crypto.verifySignature({ name: "ECDSA", hash: "SHA-256" }, arg[0], arg[1], arg[2]);`, [cert, buf(sig), buf(data)]), true);
  });

  it("refuses a key of the wrong type and an unknown algorithm", () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const pem = privateKey.export({ type: "pkcs8", format: "pem" });
    assert.throws(() => run(`return ccf.crypto.sign({ name: "ECDSA", hash: "SHA-256" }, arg, new ArrayBuffer(1));`, pem), jsError(/ed25519 key cannot be used with ECDSA/));
    assert.throws(() => run(`return ccf.crypto.sign({ name: "RSA-PKCS1" }, arg, new ArrayBuffer(1));`, pem), jsError(/unsupported signing algorithm RSA-PKCS1/));
  });
});

describe("ccf.crypto key generation", () => {
  it("generates AES keys of 128, 192 and 256 bits and refuses other sizes", () => {
    assert.deepEqual(run(`return [128, 192, 256].map((n) => ccf.crypto.generateAesKey(n).byteLength);`), [16, 24, 32]);
    assert.throws(() => run(`return ccf.generateAesKey(100);`), jsError(/invalid key size/));
  });

  it("generates RSA key pairs as PKCS#8 / SPKI PEM with the requested exponent", () => {
    const pair = run(`return ccf.crypto.generateRsaKeyPair(2048, 3);`) as { privateKey: string; publicKey: string };
    assert.match(pair.privateKey, /^-----BEGIN PRIVATE KEY-----/);
    const details = createPublicKey(pair.publicKey).asymmetricKeyDetails!;
    assert.equal(details.modulusLength, 2048);
    assert.equal(details.publicExponent, 3n);
    assert.throws(() => run(`return ccf.crypto.generateRsaKeyPair(1024);`), jsError(/size must be/));
  });

  it("generates ECDSA key pairs on secp256r1, secp384r1 and secp521r1 that sign and verify", () => {
    const curves = run(`return ["secp256r1", "secp384r1", "secp521r1"].map((c) => ccf.generateEcdsaKeyPair(c));`) as Array<{ privateKey: string; publicKey: string }>;
    assert.deepEqual(curves.map((p) => createPublicKey(p.publicKey).asymmetricKeyDetails!.namedCurve), ["prime256v1", "secp384r1", "secp521r1"]);
    const sig = nodeSign("sha256", Buffer.from("m"), curves[0]!.privateKey);
    assert.ok(nodeVerify("sha256", Buffer.from("m"), curves[0]!.publicKey, sig));
    assert.throws(() => run(`return ccf.crypto.generateEcdsaKeyPair("secp256k1");`), jsError(/unsupported curve id/));
  });

  it("generates EdDSA (curve25519) and X25519 key pairs", () => {
    const [ed, x] = run(`return [ccf.crypto.generateEddsaKeyPair("curve25519"), ccf.crypto.generateEddsaKeyPair("x25519")];`) as Array<{ privateKey: string; publicKey: string }>;
    assert.equal(createPrivateKey(ed!.privateKey).asymmetricKeyType, "ed25519");
    assert.equal(createPublicKey(x!.publicKey).asymmetricKeyType, "x25519");
  });
});

describe("ccf.crypto.wrapKey and unwrapKey", () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const privatePem = Buffer.from(privateKey.export({ type: "pkcs8", format: "pem" }) as string);
  const publicPem = Buffer.from(publicKey.export({ type: "spki", format: "pem" }) as string);
  const secret = randomBytes(32);

  it("wraps with RSA-OAEP (SHA-256, optional label) so that node:crypto unwraps it", () => {
    const wrapped = bytes(run(`return ccf.crypto.wrapKey(arg[0], arg[1], { name: "RSA-OAEP", label: ccf.strToBuf("lbl") });`, [buf(secret), buf(publicPem)]));
    const plain = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: Buffer.from("lbl") }, wrapped);
    assert.ok(plain.equals(secret));
    const nodeWrapped = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, secret);
    assert.ok(bytes(run(`return ccf.crypto.unwrapKey(arg[0], arg[1], { name: "RSA-OAEP" });`, [buf(nodeWrapped), buf(privatePem)])).equals(secret));
  });

  it("wraps with AES-KWP (RFC 5649) and round-trips keys of any length", () => {
    const kek = randomBytes(32);
    const odd = randomBytes(13);
    const out = run(
      `const w = ccf.crypto.wrapKey(arg[0], arg[1], { name: "AES-KWP" });
       return [w, ccf.crypto.unwrapKey(w, arg[1], { name: "AES-KWP" })];`,
      [buf(odd), buf(kek)],
    ) as ArrayBuffer[];
    assert.equal(out[0]!.byteLength, 24);
    assert.ok(bytes(out[1]).equals(odd));
  });

  it("matches the RFC 5649 test vector for AES-KWP", () => {
    // RFC 5649 section 6, 20-octet key data.
    const kek = Buffer.from("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", "hex");
    const key = Buffer.from("c37b7e6492584340bed12207808941155068f738", "hex");
    const wrapped = bytes(run(`return ccf.crypto.wrapKey(arg[0], arg[1], { name: "AES-KWP" });`, [buf(key), buf(kek)]));
    assert.equal(wrapped.toString("hex"), "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a");
  });

  it("wraps with RSA-OAEP-AES-KWP: an RSA-wrapped ephemeral AES key followed by the AES-KWP-wrapped key", () => {
    const wrapped = bytes(run(`return ccf.crypto.wrapKey(arg[0], arg[1], { name: "RSA-OAEP-AES-KWP", aesKeySize: 256 });`, [buf(secret), buf(publicPem)]));
    assert.equal(wrapped.length, 256 + 40);
    const ephemeral = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, wrapped.subarray(0, 256));
    assert.equal(ephemeral.length, 32);
    const unwrapped = bytes(run(`return ccf.crypto.unwrapKey(arg[0], arg[1], { name: "RSA-OAEP-AES-KWP", aesKeySize: 256 });`, [buf(wrapped), buf(privatePem)]));
    assert.ok(unwrapped.equals(secret));
  });

  it("refuses an unknown algorithm and a wrong AES key size", () => {
    assert.throws(() => run(`return ccf.wrapKey(new ArrayBuffer(8), new ArrayBuffer(16), { name: "AES-GCM" });`), jsError(/unsupported key wrapping algorithm/));
    assert.throws(() => run(`return ccf.wrapKey(new ArrayBuffer(8), new ArrayBuffer(15), { name: "AES-KWP" });`), jsError(/128, 192 or 256/));
  });
});

describe("ccf.crypto X.509 checks", () => {
  let serviceCert = "";
  let otherServiceCert = "";
  let nodeCert = "";
  before(async () => {
    const serviceKeys = generateEcP384KeyPair();
    serviceCert = await createServiceCertificate(serviceKeys);
    otherServiceCert = await createServiceCertificate(generateEcP384KeyPair());
    nodeCert = await createNodeCertificate({ nodePublicKeyPem: generateEcP384KeyPair().publicKeyPem, serviceKeys, serviceCertPem: serviceCert });
  });

  it("accepts a chain that leads to a trusted certificate and refuses one that does not", () => {
    const out = run(
      `return [ccf.crypto.isValidX509CertChain(arg[0], arg[1]), ccf.crypto.isValidX509CertChain(arg[0], arg[2]),
               ccf.isValidX509CertChain(arg[0], arg[2] + arg[1]), ccf.crypto.isValidX509CertChain(arg[1], arg[1]),
               ccf.crypto.isValidX509CertChain("junk", arg[1])];`,
      [nodeCert, serviceCert, otherServiceCert],
    );
    assert.deepEqual(out, [true, false, true, true, false]);
  });

  it("validates bundles syntactically", () => {
    assert.deepEqual(run(`return [ccf.crypto.isValidX509CertBundle(arg), ccf.crypto.isValidX509CertBundle("-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----")];`, nodeCert + serviceCert), [true, false]);
  });
});

describe("ccf.crypto JWK conversions", () => {
  it("round-trips EC keys through pubPemToJwk / pemToJwk and back, with a kid", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
    const out = run(
      `const pub = ccf.crypto.pubPemToJwk(arg[0], "k1"); const prv = ccf.crypto.pemToJwk(arg[1]);
       return [pub, prv, ccf.crypto.pubJwkToPem(pub), ccf.crypto.jwkToPem(prv)];`,
      [publicKey.export({ type: "spki", format: "pem" }), privateKey.export({ type: "pkcs8", format: "pem" })],
    ) as [Record<string, string>, Record<string, string>, string, string];
    assert.deepEqual(out[0], { ...publicKey.export({ format: "jwk" }), kid: "k1" });
    assert.equal(out[0].crv, "P-384");
    assert.deepEqual(out[1], privateKey.export({ format: "jwk" }));
    assert.equal(out[2], publicKey.export({ type: "spki", format: "pem" }));
    assert.equal(out[3], privateKey.export({ type: "pkcs8", format: "pem" }));
  });

  it("round-trips RSA and EdDSA keys", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const ed = generateKeyPairSync("ed25519");
    const out = run(
      `return [ccf.crypto.pubRsaJwkToPem(ccf.crypto.pubRsaPemToJwk(arg[0])), ccf.crypto.rsaJwkToPem(ccf.crypto.rsaPemToJwk(arg[1])),
               ccf.crypto.pubEddsaJwkToPem(ccf.crypto.pubEddsaPemToJwk(arg[2])), ccf.crypto.eddsaJwkToPem(ccf.crypto.eddsaPemToJwk(arg[3], "e")),
               ccf.crypto.pubEddsaPemToJwk(arg[2]).crv, ccf.crypto.rsaPemToJwk(arg[1]).qi.length > 0];`,
      [rsa.publicKey.export({ type: "spki", format: "pem" }), rsa.privateKey.export({ type: "pkcs8", format: "pem" }),
        ed.publicKey.export({ type: "spki", format: "pem" }), ed.privateKey.export({ type: "pkcs8", format: "pem" })],
    ) as unknown[];
    assert.deepEqual(out, [rsa.publicKey.export({ type: "spki", format: "pem" }), rsa.privateKey.export({ type: "pkcs8", format: "pem" }),
      ed.publicKey.export({ type: "spki", format: "pem" }), ed.privateKey.export({ type: "pkcs8", format: "pem" }), "Ed25519", true]);
  });

  it("refuses a key of another family", () => {
    const { publicKey } = generateKeyPairSync("ed25519");
    assert.throws(() => run(`return ccf.crypto.pubPemToJwk(arg);`, publicKey.export({ type: "spki", format: "pem" })), jsError(/expected a EC key, got ed25519/));
  });
});

describe("ccf runtime switches and unsupported functions", () => {
  it("enableMetricsLogging returns the previous value and resets per call", () => {
    assert.deepEqual(run(`return [ccf.enableMetricsLogging(false), ccf.enableMetricsLogging(true), ccf.enableMetricsLogging(false)];`), [true, false, true]);
    assert.equal(run(`return ccf.enableMetricsLogging(true);`), true);
  });

  it("ccf.historical throws unless the endpoint provides historical state, and historicalState is undefined", () => {
    assert.throws(() => run(`return ccf.historical.getStateRange(1, 1, 2, 60);`), jsError(/getStateRange is not available/));
    assert.equal(run(`return ccf.historicalState === undefined && "historicalState" in ccf;`), true);
  });

  it("ccf.host.triggerSubprocess says it is not supported", () => {
    assert.throws(() => run(`return ccf.host.triggerSubprocess(["ls"]);`), jsError(/triggerSubprocess is not supported by Coco/));
  });

  it("snp_attestation.verifySnpAttestation throws a RangeError naming the check on evidence that is not a report", () => {
    assert.equal(run(`try { snp_attestation.verifySnpAttestation(new ArrayBuffer(1), new ArrayBuffer(1)); } catch (e) { return e.constructor.name + ": " + e.message; }`),
      "RangeError: Attestation refused (format): an SEV-SNP attestation report is 1184 bytes, got 1.");
  });
});
