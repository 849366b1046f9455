// CSRs and the synchronous service endorsement of a node's CSR (the constitution's
// ccf.network.generateEndorsedCertificate): the certificate chains to the service CA, keeps
// the CSR's key and SANs, has the requested validity, and works for real TLS 1.3 (server
// authentication and mutual authentication).
import "reflect-metadata"; // before @peculiar/x509 (tsyringe needs the Reflect polyfill)
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPublicKey, webcrypto, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import * as x509 from "@peculiar/x509";
import {
  createCertificateSigningRequest,
  createServiceCertificate,
  endorseCertificateSigningRequestSync,
  generateEcP384KeyPair,
  parseCcfTimeString,
  publicKeyDer,
} from "../../../src/crypto/index.js";
import { CocoError } from "../../../src/util/errors.js";

const serviceKeys = generateEcP384KeyPair();
const nodeKeys = generateEcP384KeyPair();
const clientKeys = generateEcP384KeyPair();
const serviceCertPem = await createServiceCertificate(serviceKeys);
const nodeCsrPem = await createCertificateSigningRequest(nodeKeys, {
  commonName: "CCF Node",
  ipAddresses: ["127.0.0.1"],
  dnsNames: ["localhost", "node0.example"],
});

function endorse(csrPem: string, validFrom: string | undefined, validityPeriodDays: number): string {
  return endorseCertificateSigningRequestSync({ csrPem, serviceKeys, serviceCertPem, validFrom, validityPeriodDays });
}

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
}

function derToPem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString("base64").match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

function isInvalidInput(pattern: RegExp) {
  return (e: unknown) => e instanceof CocoError && e.code === "InvalidInput" && e.status === 400 && pattern.test(e.message);
}

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

test("a CSR round-trips: P-384 key, ecdsa-with-SHA384, subject, SAN request, valid self-signature", async () => {
  assert.match(nodeCsrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
  assert.ok(nodeCsrPem.endsWith("-----END CERTIFICATE REQUEST-----\n"));
  const csr = new x509.Pkcs10CertificateRequest(nodeCsrPem);
  assert.equal(csr.subject, "CN=CCF Node");
  const { name, hash } = csr.signatureAlgorithm as unknown as { name: string; hash: { name: string } };
  assert.equal(name, "ECDSA");
  assert.equal(hash.name, "SHA-384");
  assert.ok(Buffer.from(csr.publicKey.rawData).equals(publicKeyDer(nodeKeys.publicKeyPem)));
  assert.equal(await csr.verify(), true);
  const san = csr.getExtension("2.5.29.17") as x509.SubjectAlternativeNameExtension | null;
  assert.ok(san instanceof x509.SubjectAlternativeNameExtension);
  assert.deepEqual(
    san.names.toJSON().map((n: x509.JsonGeneralName) => `${n.type}:${n.value}`).sort(),
    ["dns:localhost", "dns:node0.example", "ip:127.0.0.1"],
  );
  // Without names there is no extension request; a full DN is kept as given.
  const plain = new x509.Pkcs10CertificateRequest(await createCertificateSigningRequest(nodeKeys, { commonName: "CN=n1, O=Coco" }));
  assert.equal(plain.subject, "CN=n1, O=Coco");
  assert.equal(plain.getExtension("2.5.29.17"), null);
  if (hasOpenssl()) {
    const dir = mkdtempSync(join(tmpdir(), "coco-csr-"));
    try {
      writeFileSync(join(dir, "node.csr"), nodeCsrPem);
      // Throws (non-zero exit) unless OpenSSL verifies the CSR's self-signature.
      execFileSync("openssl", ["req", "-in", join(dir, "node.csr"), "-noout", "-verify"], { stdio: "pipe" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test("the endorsed certificate is issued by the service for the CSR's key, SANs and validity", () => {
  const certPem = endorse(nodeCsrPem, "20261125120000Z", 30);
  assert.match(certPem, /^-----BEGIN CERTIFICATE-----\n/);
  assert.ok(certPem.endsWith("-----END CERTIFICATE-----\n"));
  for (const line of certPem.trim().split("\n").slice(1, -1)) assert.ok(line.length <= 64);
  const cert = new X509Certificate(certPem);
  const service = new X509Certificate(serviceCertPem);
  assert.equal(cert.checkIssued(service), true);
  assert.equal(cert.verify(service.publicKey), true);
  assert.equal(cert.ca, false);
  assert.equal(cert.subject, "CN=CCF Node");
  assert.equal(cert.issuer, service.subject);
  assert.ok(cert.publicKey.export({ type: "spki", format: "der" }).equals(publicKeyDer(nodeKeys.publicKeyPem)));
  assert.deepEqual(
    cert.subjectAltName?.split(", ").sort(),
    ["DNS:localhost", "DNS:node0.example", "IP Address:127.0.0.1"],
  );
  // CCF: notAfter = valid_from + validity_period_days - 1 second (RFC 5280 notAfter is inclusive).
  assert.equal(new Date(cert.validFrom).toISOString(), "2026-11-25T12:00:00.000Z");
  assert.equal(new Date(cert.validTo).toISOString(), "2026-12-25T11:59:59.000Z");
  assert.deepEqual(cert.keyUsage?.sort(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
  assert.ok(BigInt(`0x${cert.serialNumber}`) > 0n);

  // Extensions as createNodeCertificate sets them; AKI is the service certificate's SKI.
  const parsed = new x509.X509Certificate(certPem);
  const serviceParsed = new x509.X509Certificate(serviceCertPem);
  const bc = parsed.getExtension(x509.BasicConstraintsExtension)!;
  assert.equal(bc.ca, false);
  assert.equal(bc.critical, true);
  const ku = parsed.getExtension(x509.KeyUsagesExtension)!;
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement);
  const aki = parsed.getExtension(x509.AuthorityKeyIdentifierExtension)!;
  const serviceSki = serviceParsed.getExtension(x509.SubjectKeyIdentifierExtension)!;
  assert.equal(aki.keyId, serviceSki.keyId);
  assert.ok(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
  assert.equal((parsed.signatureAlgorithm as unknown as { name: string }).name, "ECDSA");

  if (hasOpenssl()) {
    const dir = mkdtempSync(join(tmpdir(), "coco-endorse-"));
    try {
      writeFileSync(join(dir, "ca.pem"), serviceCertPem);
      const now = endorse(nodeCsrPem, undefined, 1);
      writeFileSync(join(dir, "node.pem"), now);
      const out = execFileSync("openssl", ["verify", "-CAfile", join(dir, "ca.pem"), join(dir, "node.pem")]).toString();
      assert.match(out, /OK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test("validFrom: CCF time formats; undefined means now minus a minute", () => {
  assert.equal(parseCcfTimeString("20261125120000Z"), Date.UTC(2026, 10, 25, 12, 0, 0));
  assert.equal(parseCcfTimeString("261125120000Z"), Date.UTC(2026, 10, 25, 12, 0, 0));
  assert.equal(parseCcfTimeString("991231235959Z"), Date.UTC(1999, 11, 31, 23, 59, 59));
  assert.equal(parseCcfTimeString("2026-11-25 12:00:00"), Date.UTC(2026, 10, 25, 12, 0, 0));
  assert.equal(parseCcfTimeString("2026-11-25T12:00:00.5Z"), Date.UTC(2026, 10, 25, 12, 0, 0));
  assert.equal(parseCcfTimeString("2026-11-25 13:00:00 +01:00"), Date.UTC(2026, 10, 25, 12, 0, 0));
  assert.equal(parseCcfTimeString("20261125100000-0200"), Date.UTC(2026, 10, 25, 12, 0, 0));
  for (const bad of ["", "2026-11-25", "20261325120000Z", "20260230120000Z", "20261125246000Z", "yesterday", "1732536000"]) {
    assert.throws(() => parseCcfTimeString(bad), isInvalidInput(/valid_from/), bad);
    assert.throws(() => endorse(nodeCsrPem, bad, 1), isInvalidInput(/valid_from/), bad);
  }
  const before = Date.now();
  const cert = new X509Certificate(endorse(nodeCsrPem, undefined, 2));
  const after = Date.now();
  const notBefore = new Date(cert.validFrom).getTime();
  assert.ok(notBefore >= Math.floor((before - 60_000) / 1000) * 1000 && notBefore <= after - 60_000, cert.validFrom);
  assert.equal(new Date(cert.validTo).getTime(), notBefore + 2 * 86_400_000 - 1000);
  // Dates from 2050 on are GeneralizedTime (RFC 5280 4.1.2.5); both parse back.
  const far = new X509Certificate(endorse(nodeCsrPem, "20491231000000Z", 2));
  assert.equal(new Date(far.validTo).toISOString(), "2050-01-01T23:59:59.000Z");
  for (const days of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => endorse(nodeCsrPem, undefined, days), isInvalidInput(/validity_period_days/));
  }
});

test("a CSR whose signature does not match its content is refused", () => {
  const der = pemToDer(nodeCsrPem);
  const at = der.indexOf(Buffer.from("CCF Node"));
  assert.ok(at > 0);
  const tampered = Buffer.from(der);
  tampered[at + 7] = "f".charCodeAt(0); // "CCF Nodf": still well-formed, signature no longer matches
  assert.throws(() => endorse(derToPem("CERTIFICATE REQUEST", tampered), undefined, 1), isInvalidInput(/signature does not verify/));
  // The CSR of another key with this CSR's signature.
  const sigFlip = Buffer.from(der);
  sigFlip[sigFlip.length - 3]! ^= 0x01;
  assert.throws(() => endorse(derToPem("CERTIFICATE REQUEST", sigFlip), undefined, 1), isInvalidInput(/signature|CSR/));
  assert.throws(() => endorse("not a csr", undefined, 1), isInvalidInput(/PKCS#10/));
  assert.throws(() => endorse(serviceCertPem, undefined, 1), isInvalidInput(/PKCS#10|CSR/));
});

test("a CSR for a P-256 key is refused", async () => {
  const alg = { name: "ECDSA", namedCurve: "P-256" } as const;
  const keys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "CN=p256",
    keys: keys as never,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
  });
  assert.throws(() => endorse(csr.toString("pem"), undefined, 1), isInvalidInput(/P-384.*prime256v1/));
});

test("the service keys must match the service certificate", () => {
  assert.throws(
    () => endorseCertificateSigningRequestSync({ csrPem: nodeCsrPem, serviceKeys: nodeKeys, serviceCertPem, validityPeriodDays: 1 }),
    isInvalidInput(/serviceKeys/),
  );
});

test("endorsement is synchronous: it returns the certificate itself, not a promise", (t) => {
  const start = process.hrtime.bigint();
  const pem: unknown = endorseCertificateSigningRequestSync({ csrPem: nodeCsrPem, serviceKeys, serviceCertPem, validFrom: "20261125120000Z", validityPeriodDays: 365 });
  // Its cost is reported, not asserted: speed belongs in benchmarks, and this machine is shared.
  t.diagnostic(`endorseCertificateSigningRequestSync: ${(Number(process.hrtime.bigint() - start) / 1e6).toFixed(2)} ms`);
  assert.equal(typeof pem, "string");
  assert.match(pem as string, /^-----BEGIN CERTIFICATE-----/);
});

/** Runs a TLS 1.3 handshake on loopback; resolves with what each side saw. */
async function handshake(
  serverOptions: tls.TlsOptions,
  clientOptions: tls.ConnectionOptions,
): Promise<{ protocol: string | null; serverAuthorized: boolean; clientCertFingerprint?: string; reply: string }> {
  let serverAuthorized = false;
  let clientCertFingerprint: string | undefined;
  const server = tls.createServer({ minVersion: "TLSv1.3", ...serverOptions }, (socket) => {
    serverAuthorized = socket.authorized;
    const peer = socket.getPeerCertificate();
    clientCertFingerprint = peer && "fingerprint256" in peer ? peer.fingerprint256 : undefined;
    socket.end("hello");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port, minVersion: "TLSv1.3", ...clientOptions }, () => {
        const protocol = socket.getProtocol();
        let reply = "";
        socket.on("data", (d: Buffer) => (reply += d.toString()));
        socket.on("end", () => resolve({ protocol, serverAuthorized, clientCertFingerprint, reply }));
      });
      socket.on("error", reject);
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

test("TLS 1.3: a client trusting the service certificate accepts a node presenting its endorsed certificate", async () => {
  const nodeCertPem = endorse(nodeCsrPem, undefined, 1);
  const result = await handshake(
    { key: nodeKeys.privateKeyPem, cert: nodeCertPem },
    { ca: serviceCertPem, checkServerIdentity: () => undefined },
  );
  assert.equal(result.protocol, "TLSv1.3");
  assert.equal(result.reply, "hello");
  // And a client that trusts another CA refuses it.
  const otherKeys = generateEcP384KeyPair();
  const otherCa = await createServiceCertificate(otherKeys);
  await assert.rejects(
    handshake({ key: nodeKeys.privateKeyPem, cert: nodeCertPem }, { ca: otherCa, checkServerIdentity: () => undefined }),
  );
});

test("TLS 1.3 mutual authentication with endorsed certificates on both sides", async () => {
  const nodeCertPem = endorse(nodeCsrPem, undefined, 1);
  const clientCertPem = endorse(await createCertificateSigningRequest(clientKeys, { commonName: "CCF Node 1" }), undefined, 1);
  const result = await handshake(
    { key: nodeKeys.privateKeyPem, cert: nodeCertPem, requestCert: true, rejectUnauthorized: true, ca: serviceCertPem },
    { key: clientKeys.privateKeyPem, cert: clientCertPem, ca: serviceCertPem, checkServerIdentity: () => undefined },
  );
  assert.equal(result.protocol, "TLSv1.3");
  assert.equal(result.serverAuthorized, true);
  assert.equal(result.clientCertFingerprint, new X509Certificate(clientCertPem).fingerprint256);
  assert.equal(result.reply, "hello");
  assert.ok(createPublicKey(clientKeys.publicKeyPem).equals(new X509Certificate(clientCertPem).publicKey));
});
