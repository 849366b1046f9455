// X.509 certificates for the service (self-signed CA), nodes (endorsed by the service key,
// used for TLS and receipts) and members/users (self-signed identities). All EC P-384 with
// ecdsa-with-SHA384. Creation uses @peculiar/x509 over WebCrypto; checks use node:crypto.
import "reflect-metadata"; // @peculiar/x509 depends on tsyringe, which needs the Reflect polyfill
import { createHash, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { CocoError } from "../util/errors.js";
import { privateKeyObject, publicKeyDer, parseCertificate, type KeyPairPem } from "./keys.js";

// Typed loosely: the project's lib has no DOM types, and node's webcrypto is the standard API.
x509.cryptoProvider.set(webcrypto as never);

type CryptoKey = webcrypto.CryptoKey;

const EC_P384 = { name: "ECDSA", namedCurve: "P-384" } as const;
const SIGNING_ALGORITHM = { name: "ECDSA", hash: "SHA-384" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
const DEFAULT_VALIDITY_DAYS = 365;

/** "member0" -> "CN=member0"; a full distinguished name ("CN=x, O=y") is kept as is. */
function distinguishedName(name: string): string {
  return name.includes("=") ? name : `CN=${name}`;
}

/** 16 random bytes with the top bit clear, so the DER INTEGER stays positive (RFC 5280 4.1.2.2). */
function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString("hex");
}

function validity(validityDays: number | undefined): { notBefore: Date; notAfter: Date } {
  const days = validityDays ?? DEFAULT_VALIDITY_DAYS;
  if (!(days > 0)) throw new CocoError("InvalidInput", `validityDays must be positive, got ${days}.`, 400);
  // Back-date by a minute so a peer with a slightly slow clock accepts a fresh certificate.
  const notBefore = new Date(Date.now() - 60_000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * DAY_MS) };
}

async function importPrivateKey(privateKeyPem: string): Promise<CryptoKey> {
  // Go through node:crypto so SEC1 ("BEGIN EC PRIVATE KEY", as openssl ecparam writes) works too.
  const der = privateKeyObject(privateKeyPem).export({ type: "pkcs8", format: "der" });
  return (await webcrypto.subtle.importKey("pkcs8", der, EC_P384, false, ["sign"])) as CryptoKey;
}

async function importPublicKey(publicKeyPem: string): Promise<CryptoKey> {
  return (await webcrypto.subtle.importKey("spki", publicKeyDer(publicKeyPem), EC_P384, true, [
    "verify",
  ])) as CryptoKey;
}

/** Self-signed certificate: subject = issuer = `name`, with SKI/AKI plus `extensions`. */
async function selfSigned(keys: KeyPairPem, name: string, validityDays: number | undefined, extensions: x509.Extension[]): Promise<string> {
  const publicKey = await importPublicKey(keys.publicKeyPem);
  const signingKey = await importPrivateKey(keys.privateKeyPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: distinguishedName(name),
    issuer: distinguishedName(name),
    ...validity(validityDays),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey,
    signingKey,
    extensions: [
      ...extensions,
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(publicKey),
    ],
  });
  return cert.toString("pem") + "\n";
}

/** Self-signed service certificate (the CA that clients trust). */
export async function createServiceCertificate(
  keys: KeyPairPem,
  opts: { commonName?: string; validityDays?: number } = {},
): Promise<string> {
  const usages = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature;
  return selfSigned(keys, opts.commonName ?? "CN=CCF Service", opts.validityDays, [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(usages, true),
  ]);
}

/**
 * Self-signed member or user identity (like CCF's keygenerator.sh "member0"). Marked CA:TRUE
 * without key usage, as `openssl req -x509` does: a TLS peer can then pin it as its own
 * trust anchor, and OpenSSL recognises it as self-issued.
 */
export async function createIdentityCertificate(keys: KeyPairPem, commonName: string, validityDays?: number): Promise<string> {
  return selfSigned(keys, commonName, validityDays, [new x509.BasicConstraintsExtension(true, undefined, false)]);
}

export interface NodeCertificateArgs {
  nodePublicKeyPem: string;
  serviceKeys: KeyPairPem;
  serviceCertPem: string;
  commonName?: string;
  ipAddresses?: string[];
  dnsNames?: string[];
  validityDays?: number;
}

/** A node's TLS/receipt certificate, endorsed (issued) by the service key. */
export async function createNodeCertificate(args: NodeCertificateArgs): Promise<string> {
  const serviceCert = new x509.X509Certificate(args.serviceCertPem);
  const publicKey = await importPublicKey(args.nodePublicKeyPem);
  const signingKey = await importPrivateKey(args.serviceKeys.privateKeyPem);
  const serviceKeyInCert = parseCertificate(args.serviceCertPem).publicKey.export({ type: "spki", format: "der" });
  if (!serviceKeyInCert.equals(publicKeyDer(args.serviceKeys.privateKeyPem))) {
    throw new CocoError("InvalidInput", "serviceKeys do not match the public key of serviceCertPem.", 400);
  }
  const altNames: x509.JsonGeneralName[] = [
    ...(args.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
    ...(args.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(await serviceCert.publicKey.export(EC_P384, ["verify"])),
  ];
  if (altNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(altNames));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: distinguishedName(args.commonName ?? "CN=CCF Node"),
    issuer: serviceCert.subject,
    ...validity(args.validityDays),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey,
    signingKey,
    extensions,
  });
  return cert.toString("pem") + "\n";
}

export function certificateDer(pem: string): Buffer {
  return parseCertificate(pem).raw;
}

/** Lowercase hex SHA-256 of the certificate DER: CCF's member id and user id. */
export function certificateFingerprint(pem: string): string {
  return createHash("sha256").update(certificateDer(pem)).digest("hex");
}

/** Lowercase hex SHA-256 of the SPKI DER: CCF's node id. */
export function nodeIdFromPublicKey(publicKeyPem: string): string {
  return createHash("sha256").update(publicKeyDer(publicKeyPem)).digest("hex");
}

/** True when `issuerCertPem` names and signed `certPem`. Never throws on malformed input. */
export function isCertificateIssuedBy(certPem: string, issuerCertPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const issuer = new X509Certificate(issuerCertPem);
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** True when `text` is exactly one parseable PEM certificate (surrounding whitespace allowed). */
export function isValidCertificatePem(text: string): boolean {
  if (typeof text !== "string" || splitPemBundle(text).length !== 1) return false;
  if (text.replace(PEM_CERTIFICATE, "").trim() !== "") return false;
  try {
    new X509Certificate(text);
    return true;
  } catch {
    return false;
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Splits a concatenation of PEM certificates into one PEM string each (newline-terminated). */
export function splitPemBundle(text: string): string[] {
  return (text.match(PEM_CERTIFICATE) ?? []).map((pem) => pem + "\n");
}
