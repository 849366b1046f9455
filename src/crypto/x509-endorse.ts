// Certificate signing requests (PKCS#10) and the service's endorsement of a node's CSR.
//
// The endorsement is SYNCHRONOUS on purpose: the governance constitution runs in an isolate
// whose host hooks are synchronous, and `ccf.network.generateEndorsedCertificate(csr,
// validFrom, validityPeriodDays)` must hand the certificate back in the same call. WebCrypto
// (and so @peculiar/x509's generators) is async, so the certificate is composed here from
// @peculiar/asn1-x509 structures, and signed and checked with node:crypto's sync sign/verify.
import "reflect-metadata"; // @peculiar/x509 depends on tsyringe, which needs the Reflect polyfill
import { createHash, createPublicKey, randomBytes, sign, verify, webcrypto, type KeyObject } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import { CertificationRequest } from "@peculiar/asn1-csr";
import {
  AlgorithmIdentifier,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  SubjectKeyIdentifier,
  TBSCertificate,
  Validity,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  id_kp_serverAuth,
} from "@peculiar/asn1-x509";
import { CocoError } from "../util/errors.js";
import { parseCertificate, privateKeyObject, publicKeyDer, type KeyPairPem } from "./keys.js";

// Same provider setting as x509.ts (idempotent), so this module also works imported on its own.
x509.cryptoProvider.set(webcrypto as never);

const EC_P384 = { name: "ECDSA", namedCurve: "P-384" } as const;
const ECDSA_WITH_SHA384 = "1.2.840.10045.4.3.3"; // RFC 5758 3.2: parameters absent
const PKCS9_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"; // RFC 2985 5.4.2
const DAY_MS = 24 * 60 * 60 * 1000;
const LATEST_NOT_AFTER = Date.UTC(9999, 11, 31, 23, 59, 59); // GeneralizedTime has 4-digit years

function invalid(message: string, cause?: unknown): CocoError {
  return new CocoError("InvalidInput", message, 400, cause === undefined ? undefined : { cause });
}

/** "node0" -> "CN=node0"; a full distinguished name ("CN=x, O=y") is kept as is. */
function distinguishedName(name: string): string {
  return name.includes("=") ? name : `CN=${name}`;
}

// ---------------------------------------------------------------------------------------------
// Certificate signing requests

/**
 * A PKCS#10 CSR (PEM) for `keys` (EC P-384), self-signed with ecdsa-with-SHA384. When IP
 * addresses or DNS names are given they are requested as a subjectAltName extension, which
 * `endorseCertificateSigningRequestSync` copies into the certificate.
 */
export async function createCertificateSigningRequest(
  keys: KeyPairPem,
  opts: { commonName?: string; ipAddresses?: string[]; dnsNames?: string[] } = {},
): Promise<string> {
  const privateKey = privateKeyObject(keys.privateKeyPem);
  if (privateKey.asymmetricKeyDetails?.namedCurve !== "secp384r1") {
    throw invalid("createCertificateSigningRequest needs an EC P-384 key pair.");
  }
  const pkcs8 = privateKey.export({ type: "pkcs8", format: "der" });
  const signingKey = await webcrypto.subtle.importKey("pkcs8", pkcs8, EC_P384, false, ["sign"]);
  const publicKey = await webcrypto.subtle.importKey("spki", publicKeyDer(keys.publicKeyPem), EC_P384, true, ["verify"]);
  const altNames: x509.JsonGeneralName[] = [
    ...(opts.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
    ...(opts.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: distinguishedName(opts.commonName ?? "CN=CCF Node"),
    keys: { privateKey: signingKey, publicKey } as never, // node's webcrypto CryptoKey is the standard one
    signingAlgorithm: { name: "ECDSA", hash: "SHA-384" },
    extensions: altNames.length > 0 ? [new x509.SubjectAlternativeNameExtension(altNames)] : [],
  });
  return csr.toString("pem") + "\n";
}

// ---------------------------------------------------------------------------------------------
// CCF time strings

function utcMs(y: number, mo: number, d: number, h: number, mi: number, s: number): number | undefined {
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return undefined;
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const check = new Date(ms);
  // Reject 31 February and the like (Date.UTC silently rolls them over).
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return undefined;
  return ms;
}

/**
 * Parses a validity start time the way CCF's `ccf::ds::time_point_from_string`
 * (include/ccf/ds/x509_time_fmt.h) does, for the formats used in practice:
 * - "YYYYMMDDHHMMSSZ"  ASN.1 GeneralizedTime, CCF's canonical form (e.g. "20261125120000Z")
 * - "YYMMDDHHMMSSZ"    ASN.1 UTCTime (YY >= 50 means 19YY, otherwise 20YY)
 * - "YYYY-MM-DD HH:MM:SS" or "YYYY-MM-DDTHH:MM:SS", optional fraction, UTC unless followed by
 *   "Z" or an offset such as "+01:00" / " +01:00" / "+0100"
 * - "YYYYMMDDHHMMSS+HHMM" (GeneralizedTime with an offset)
 * Returns the instant in ms since the epoch (fractions of a second are dropped: X.509 times
 * have whole seconds). Throws CocoError InvalidInput on anything else.
 */
export function parseCcfTimeString(text: string): number {
  const bad = () => invalid(`valid_from "${text}" is not a time CCF accepts (expected e.g. "20261125120000Z", ASN.1 GeneralizedTime in UTC).`);
  if (typeof text !== "string") throw bad();
  let m = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:Z|([+-])(\d{2})(\d{2}))$/.exec(text);
  if (m === null) {
    m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:Z| ?([+-])(\d{2}):?(\d{2}))?$/.exec(text);
  }
  if (m === null) throw bad();
  let year = Number(m[1]);
  if (m[1]!.length === 2) year += year >= 50 ? 1900 : 2000;
  const ms = utcMs(year, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (ms === undefined) throw bad();
  if (m[7] === undefined) return ms;
  const offsetHours = Number(m[8]);
  const offsetMinutes = Number(m[9]);
  if (offsetHours > 23 || offsetMinutes > 59) throw bad();
  const offsetMs = (offsetHours * 60 + offsetMinutes) * 60_000;
  return m[7] === "+" ? ms - offsetMs : ms + offsetMs;
}

// ---------------------------------------------------------------------------------------------
// Endorsement

export interface EndorseCsrArgs {
  /** The node's PKCS#10 CSR (PEM), as stored in public:ccf.gov.nodes.info. */
  csrPem: string;
  /** The service identity key pair; its public key must be the one in `serviceCertPem`. */
  serviceKeys: KeyPairPem;
  serviceCertPem: string;
  /** CCF time string (see parseCcfTimeString); undefined means now minus one minute. */
  validFrom?: string;
  /** notAfter = validFrom + days - 1 second (RFC 5280 notAfter is inclusive; as CCF does). */
  validityPeriodDays: number;
}

/** Parses and checks a CSR: well-formed, EC P-384, ecdsa-with-SHA384, valid self-signature. */
function parseCsr(csrPem: string): { request: CertificationRequest; publicKey: KeyObject } {
  let request: CertificationRequest;
  try {
    const der = new x509.Pkcs10CertificateRequest(csrPem).rawData;
    request = AsnConvert.parse(der, CertificationRequest);
  } catch (cause) {
    throw invalid("The certificate signing request is not a valid PEM PKCS#10 CSR.", cause);
  }
  const info = request.certificationRequestInfo;
  let publicKey: KeyObject;
  try {
    const spki = Buffer.from(AsnConvert.serialize(info.subjectPKInfo));
    publicKey = createPublicKey({ key: spki, format: "der", type: "spki" });
  } catch (cause) {
    throw invalid("The certificate signing request carries an unreadable public key.", cause);
  }
  if (publicKey.asymmetricKeyType !== "ec" || publicKey.asymmetricKeyDetails?.namedCurve !== "secp384r1") {
    const curve = publicKey.asymmetricKeyDetails?.namedCurve ?? publicKey.asymmetricKeyType;
    throw invalid(`The certificate signing request's key must be EC P-384 (secp384r1), not ${curve}.`);
  }
  if (request.signatureAlgorithm.algorithm !== ECDSA_WITH_SHA384) {
    throw invalid(`The certificate signing request must be signed with ecdsa-with-SHA384, not ${request.signatureAlgorithm.algorithm}.`);
  }
  const signedBytes = request.certificationRequestInfoRaw ?? AsnConvert.serialize(info);
  let ok = false;
  try {
    ok = verify("sha384", Buffer.from(signedBytes), publicKey, Buffer.from(request.signature));
  } catch {
    ok = false; // a malformed DER signature is just a bad signature
  }
  if (!ok) {
    throw invalid("The certificate signing request's signature does not verify with its own public key (tampered or corrupt CSR).");
  }
  return { request, publicKey };
}

/** The public key (SPKI PEM) of a well-formed, validly self-signed P-384 CSR; CocoError otherwise. */
export function certificateSigningRequestPublicKeyPem(csrPem: string): string {
  return parseCsr(csrPem).publicKey.export({ type: "spki", format: "pem" }).toString();
}

/** The subjectAltName extension the CSR requests (PKCS#9 extensionRequest), if any. */
function requestedSubjectAltName(request: CertificationRequest): Extension | undefined {
  for (const attribute of request.certificationRequestInfo.attributes ?? []) {
    if (attribute.type !== PKCS9_EXTENSION_REQUEST) continue;
    for (const value of attribute.values) {
      let extensions: Extensions;
      try {
        extensions = AsnConvert.parse(value, Extensions);
      } catch (cause) {
        throw invalid("The certificate signing request has a malformed extension request.", cause);
      }
      const san = extensions.find((e) => e.extnID === id_ce_subjectAltName);
      if (san !== undefined) return san;
    }
  }
  return undefined;
}

function extension(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING bytes. */
function keyIdentifier(subjectPublicKey: ArrayBuffer): KeyIdentifier {
  return new KeyIdentifier(createHash("sha1").update(Buffer.from(subjectPublicKey)).digest());
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** 16 random bytes with the top bit clear, so the DER INTEGER stays positive (RFC 5280 4.1.2.2). */
function randomSerial(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes;
}

/**
 * Issues, synchronously, the service-endorsed certificate for the key in a node's CSR (CCF's
 * `generateEndorsedCertificate`): issuer = service certificate subject, subject and SAN from
 * the CSR, the node-certificate extensions of `createNodeCertificate`, ecdsa-with-SHA384 by
 * the service key. Returns the certificate PEM. Throws CocoError InvalidInput (400) on a bad
 * CSR (malformed, not P-384, signature does not verify), bad validity or mismatched service keys.
 */
export function endorseCertificateSigningRequestSync(args: EndorseCsrArgs): string {
  const days = args.validityPeriodDays;
  if (!Number.isSafeInteger(days) || days < 1) {
    throw invalid(`validity_period_days must be a positive integer, got ${String(days)}.`);
  }
  const notBeforeMs = args.validFrom === undefined ? Date.now() - 60_000 : parseCcfTimeString(args.validFrom);
  const notAfterMs = notBeforeMs + days * DAY_MS - 1000;
  if (notAfterMs > LATEST_NOT_AFTER) throw invalid("The certificate validity would end after the year 9999.");

  const { request } = parseCsr(args.csrPem);
  const info = request.certificationRequestInfo;

  const serviceCert = parseCertificate(args.serviceCertPem);
  const servicePrivateKey = privateKeyObject(args.serviceKeys.privateKeyPem);
  const serviceSpki = serviceCert.publicKey.export({ type: "spki", format: "der" });
  if (!serviceSpki.equals(createPublicKey(servicePrivateKey).export({ type: "spki", format: "der" }))) {
    throw invalid("serviceKeys do not match the public key of serviceCertPem.");
  }
  const issuerAsn = AsnConvert.parse(serviceCert.raw, Certificate).tbsCertificate;
  const issuerSki = issuerAsn.extensions?.find((e) => e.extnID === id_ce_subjectKeyIdentifier);
  const authorityKeyId = issuerSki
    ? AsnConvert.parse(issuerSki.extnValue, SubjectKeyIdentifier)
    : keyIdentifier(issuerAsn.subjectPublicKeyInfo.subjectPublicKey);

  const extensions = new Extensions([
    extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })),
    extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyAgreement)),
    extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage([id_kp_serverAuth, id_kp_clientAuth])),
    extension(id_ce_subjectKeyIdentifier, false, keyIdentifier(info.subjectPKInfo.subjectPublicKey)),
    extension(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: authorityKeyId })),
  ]);
  const san = requestedSubjectAltName(request);
  if (san !== undefined) extensions.push(san);

  return signCertificate({
    issuer: issuerAsn.subject, subject: info.subject, subjectPublicKeyInfo: info.subjectPKInfo, notBeforeMs, notAfterMs, extensions,
  }, servicePrivateKey);
}

/** A v3 certificate with a fresh serial, signed ECDSA-SHA384 by `issuerKey`, as PEM. */
function signCertificate(fields: {
  issuer: TBSCertificate["issuer"]; subject: TBSCertificate["subject"]; subjectPublicKeyInfo: TBSCertificate["subjectPublicKeyInfo"];
  notBeforeMs: number; notAfterMs: number; extensions: Extensions;
}, issuerKey: KeyObject): string {
  const signatureAlgorithm = new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA384 });
  const tbsCertificate = new TBSCertificate({
    version: Version.v3,
    serialNumber: new Uint8Array(randomSerial()).buffer,
    signature: signatureAlgorithm,
    issuer: fields.issuer,
    validity: new Validity({ notBefore: new Date(fields.notBeforeMs), notAfter: new Date(fields.notAfterMs) }),
    subject: fields.subject,
    subjectPublicKeyInfo: fields.subjectPublicKeyInfo,
    extensions: fields.extensions,
  });
  // node:crypto's default dsaEncoding is "der": the ECDSA-Sig-Value X.509 expects.
  const signature = sign("sha384", Buffer.from(AsnConvert.serialize(tbsCertificate)), issuerKey);
  const certificate = new Certificate({ tbsCertificate, signatureAlgorithm, signatureValue: new Uint8Array(signature).buffer });
  return toPem("CERTIFICATE", Buffer.from(AsnConvert.serialize(certificate)));
}

export interface RenewServiceCertificateArgs {
  serviceKeys: KeyPairPem;
  /** The current service certificate: its subject is kept. */
  serviceCertPem: string;
  /** CCF time string (see parseCcfTimeString); undefined means now minus one minute. */
  validFrom?: string;
  validityPeriodDays: number;
}

/**
 * Re-issues, synchronously, the self-signed service certificate with a new validity period
 * (CCF's `ccf.network.generateNetworkCertificate`, used by `set_service_certificate_validity`):
 * same subject and key, the CA extensions of `createServiceCertificate`, a fresh serial.
 * Certificates the old one endorsed stay valid under the new one (same subject and key).
 */
export function renewServiceCertificateSync(args: RenewServiceCertificateArgs): string {
  const days = args.validityPeriodDays;
  if (!Number.isSafeInteger(days) || days < 1) {
    throw invalid(`validity_period_days must be a positive integer, got ${String(days)}.`);
  }
  const notBeforeMs = args.validFrom === undefined ? Date.now() - 60_000 : parseCcfTimeString(args.validFrom);
  const notAfterMs = notBeforeMs + days * DAY_MS - 1000;
  if (notAfterMs > LATEST_NOT_AFTER) throw invalid("The certificate validity would end after the year 9999.");
  const current = parseCertificate(args.serviceCertPem);
  const privateKey = privateKeyObject(args.serviceKeys.privateKeyPem);
  if (!current.publicKey.export({ type: "spki", format: "der" }).equals(createPublicKey(privateKey).export({ type: "spki", format: "der" }))) {
    throw invalid("serviceKeys do not match the public key of serviceCertPem.");
  }
  const tbs = AsnConvert.parse(current.raw, Certificate).tbsCertificate;
  const keyId = keyIdentifier(tbs.subjectPublicKeyInfo.subjectPublicKey);
  const usages = KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature;
  return signCertificate({
    issuer: tbs.subject, subject: tbs.subject, subjectPublicKeyInfo: tbs.subjectPublicKeyInfo, notBeforeMs, notAfterMs,
    extensions: new Extensions([
      extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: true })),
      extension(id_ce_keyUsage, true, new KeyUsage(usages)),
      extension(id_ce_subjectKeyIdentifier, false, keyId),
      extension(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: keyId })),
    ]),
  }, privateKey);
}
