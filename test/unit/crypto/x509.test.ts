// Certificates: the service CA, node certificates it endorses (accepted by Node's TLS and by
// openssl verify), self-signed member/user identities usable as TLS client certificates.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  certificateDer,
  certificateFingerprint,
  createIdentityCertificate,
  createNodeCertificate,
  createServiceCertificate,
  generateEcP384KeyPair,
  isCertificateIssuedBy,
  isValidCertificatePem,
  nodeIdFromPublicKey,
  publicKeyDer,
  publicKeyPemFromCertificate,
  splitPemBundle,
} from "../../../src/crypto/index.js";

const serviceKeys = generateEcP384KeyPair();
const nodeKeys = generateEcP384KeyPair();
const memberKeys = generateEcP384KeyPair();
const serviceCertPem = await createServiceCertificate(serviceKeys);
const nodeCertPem = await createNodeCertificate({
  nodePublicKeyPem: nodeKeys.publicKeyPem,
  serviceKeys,
  serviceCertPem,
  ipAddresses: ["127.0.0.1"],
  dnsNames: ["localhost"],
});
const memberCertPem = await createIdentityCertificate(memberKeys, "member0");

test("the service certificate is a self-signed P-384 CA named CN=CCF Service", () => {
  const cert = new X509Certificate(serviceCertPem);
  assert.equal(cert.subject, "CN=CCF Service");
  assert.equal(cert.issuer, "CN=CCF Service");
  assert.equal(cert.ca, true);
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, "secp384r1");
  assert.ok(cert.verify(cert.publicKey));
  assert.ok(isCertificateIssuedBy(serviceCertPem, serviceCertPem));
  const text = openssl(["x509", "-noout", "-text"], serviceCertPem);
  assert.match(text, /ecdsa-with-SHA384/);
  assert.match(text, /CA:TRUE/);
  assert.match(text, /Certificate Sign/);
});

test("custom common name and validity are honoured", async () => {
  const pem = await createServiceCertificate(serviceKeys, { commonName: "CN=My Service", validityDays: 2 });
  const cert = new X509Certificate(pem);
  assert.equal(cert.subject, "CN=My Service");
  const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
  assert.ok(Math.abs(days - 2) < 0.01, `validity ${days} days`);
});

test("node certificates are issued by the service and carry SANs and extended key usage", () => {
  const cert = new X509Certificate(nodeCertPem);
  assert.equal(cert.subject, "CN=CCF Node");
  assert.equal(cert.issuer, "CN=CCF Service");
  assert.equal(cert.ca, false);
  assert.match(cert.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
  assert.match(cert.subjectAltName ?? "", /DNS:localhost/);
  assert.deepEqual([...(cert.keyUsage ?? [])].sort(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
  assert.ok(isCertificateIssuedBy(nodeCertPem, serviceCertPem));
  assert.deepEqual(publicKeyDer(publicKeyPemFromCertificate(nodeCertPem)), publicKeyDer(nodeKeys.publicKeyPem));
  assert.match(openssl(["x509", "-noout", "-text"], nodeCertPem), /Authority Key Identifier/);
});

test("openssl verify accepts the node certificate against the service certificate", () => {
  withTempDir((dir) => {
    writeFileSync(join(dir, "service.pem"), serviceCertPem);
    writeFileSync(join(dir, "node.pem"), nodeCertPem);
    const out = execFileSync("openssl", ["verify", "-CAfile", "service.pem", "-purpose", "sslserver", "node.pem"], { cwd: dir }).toString();
    assert.match(out, /node.pem: OK/);
  });
});

test("isCertificateIssuedBy rejects other issuers, self-issued identities and garbage", async () => {
  const otherService = await createServiceCertificate(generateEcP384KeyPair());
  assert.equal(isCertificateIssuedBy(nodeCertPem, otherService), false);
  assert.equal(isCertificateIssuedBy(memberCertPem, serviceCertPem), false);
  assert.equal(isCertificateIssuedBy("junk", serviceCertPem), false);
});

test("createNodeCertificate refuses service keys that do not match the service certificate", async () => {
  await assert.rejects(
    createNodeCertificate({ nodePublicKeyPem: nodeKeys.publicKeyPem, serviceKeys: generateEcP384KeyPair(), serviceCertPem }),
    /do not match/,
  );
});

test("identity certificates are self-signed with the given common name", () => {
  const cert = new X509Certificate(memberCertPem);
  assert.equal(cert.subject, "CN=member0");
  assert.ok(isCertificateIssuedBy(memberCertPem, memberCertPem));
});

test("fingerprints and node ids are lowercase hex SHA-256 of the DER", () => {
  const expected = createHash("sha256").update(new X509Certificate(memberCertPem).raw).digest("hex");
  assert.equal(certificateFingerprint(memberCertPem), expected);
  assert.deepEqual(certificateDer(memberCertPem), new X509Certificate(memberCertPem).raw);
  const opensslFingerprint = openssl(["x509", "-noout", "-fingerprint", "-sha256"], memberCertPem);
  assert.equal(opensslFingerprint.split("=")[1]!.trim().replaceAll(":", "").toLowerCase(), expected);
  const nodeId = nodeIdFromPublicKey(nodeKeys.publicKeyPem);
  assert.match(nodeId, /^[0-9a-f]{64}$/);
  assert.equal(nodeId, createHash("sha256").update(publicKeyDer(nodeKeys.publicKeyPem)).digest("hex"));
});

test("PEM helpers split bundles and validate single certificates", () => {
  const bundle = serviceCertPem + nodeCertPem + memberCertPem;
  const parts = splitPemBundle(bundle);
  assert.equal(parts.length, 3);
  assert.deepEqual(parts.map(certificateFingerprint), [serviceCertPem, nodeCertPem, memberCertPem].map(certificateFingerprint));
  assert.equal(isValidCertificatePem(serviceCertPem), true);
  assert.equal(isValidCertificatePem(bundle), false);
  assert.equal(isValidCertificatePem("hello"), false);
  assert.equal(isValidCertificatePem(serviceCertPem.replace(/[A-Za-z]{8}\n/, "AAAAAAAA\n")), false);
  assert.deepEqual(splitPemBundle("no certs here"), []);
});

test("node TLS 1.3 accepts the node certificate when the client trusts only the service certificate", async () => {
  const server = https.createServer(
    { key: nodeKeys.privateKeyPem, cert: nodeCertPem, minVersion: "TLSv1.3", requestCert: true, rejectUnauthorized: true, ca: memberCertPem },
    (request, response) => {
      const peer = (request.socket as import("node:tls").TLSSocket).getPeerCertificate();
      response.end(`hello ${peer.subject?.CN}`);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    // The member authenticates with its self-signed identity (mutual TLS), as CCF clients do.
    const body = await get({ port, ca: serviceCertPem, key: memberKeys.privateKeyPem, cert: memberCertPem });
    assert.equal(body, "hello member0");
    // A client trusting a different service refuses the node.
    const otherService = await createServiceCertificate(generateEcP384KeyPair());
    await assert.rejects(get({ port, ca: otherService, key: memberKeys.privateKeyPem, cert: memberCertPem }), /self[- ]signed|unable to verify|certificate/i);
  } finally {
    server.close();
  }
});

function get(options: { port: number; ca: string; key: string; cert: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      { host: "127.0.0.1", port: options.port, path: "/", ca: options.ca, key: options.key, cert: options.cert, minVersion: "TLSv1.3", maxVersion: "TLSv1.3", agent: false },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (body += chunk));
        response.on("end", () => resolve(body));
      },
    );
    request.on("error", reject);
    request.end();
  });
}

function openssl(args: string[], input: string): string {
  return execFileSync("openssl", args, { input }).toString();
}

function withTempDir<T>(body: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "coco-x509-"));
  try {
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
