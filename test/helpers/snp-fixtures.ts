// Real SEV-SNP evidence (test/fixtures/attestation/, provenance in its README) and a test-only
// AMD-shaped chain (ARK -> ASK -> VCEK, ECDSA P-384) whose VCEK can re-sign a report after a
// test changes one field, so each field check can be shown to fire for its own reason.
import "reflect-metadata";
import { createHash, generateKeyPairSync, sign, webcrypto, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import * as x509 from "@peculiar/x509";
import "../../src/crypto/index.js"; // sets @peculiar/x509's crypto provider
import { SNP_FIELD_OFFSETS, SNP_SIGNATURE_OFFSET, type SnpProduct } from "../../src/attestation/index.js";

const FIXTURES = new URL("../../../test/fixtures/attestation/", import.meta.url);

export function fixture(name: string): Buffer {
  return readFileSync(new URL(name, FIXTURES));
}

export const MILAN_REPORT = fixture("snp/milan-report.bin");
export const MILAN_ENDORSEMENTS = fixture("snp/milan-endorsements.pem").toString("utf8");
export const GENOA_REPORT = fixture("snp/genoa-report.bin");
export const GENOA_ENDORSEMENTS = fixture("snp/genoa-endorsements.pem").toString("utf8");
/** Inside every fixture certificate's validity (the VCEKs are valid 2025-01..2032-01). */
export const FIXTURE_TIME_MS = Date.parse("2026-06-01T00:00:00Z");

/** A copy of `report` with `bytes` written at `offset`. */
export function withBytes(report: Buffer, offset: number, bytes: number[] | Buffer): Buffer {
  const out = Buffer.from(report);
  Buffer.from(bytes).copy(out, offset);
  return out;
}

/** A copy with one bit flipped. */
export function flipBit(report: Buffer, offset: number, bit = 0): Buffer {
  const out = Buffer.from(report);
  out[offset] = out[offset]! ^ (1 << bit);
  return out;
}

export interface TestChain {
  endorsementsPem: string;
  rootKeys: Record<SnpProduct, string>;
  /** Re-signs a report with the test VCEK (the signature AMD's firmware would have made). */
  sign(report: Buffer): Buffer;
}

const P384 = { name: "ECDSA", namedCurve: "P-384" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-384" } as const;

async function cryptoKeys(pair: { publicKey: KeyObject; privateKey: KeyObject }): Promise<{ publicKey: webcrypto.CryptoKey; privateKey: webcrypto.CryptoKey }> {
  const publicKey = await webcrypto.subtle.importKey("spki", pair.publicKey.export({ type: "spki", format: "der" }), P384, true, ["verify"]);
  const privateKey = await webcrypto.subtle.importKey("pkcs8", pair.privateKey.export({ type: "pkcs8", format: "der" }), P384, true, ["sign"]);
  return { publicKey, privateKey };
}

function derInteger(value: number): Uint8Array {
  return value >= 0x80 ? new Uint8Array([0x02, 0x02, 0x00, value]) : new Uint8Array([0x02, 0x01, value]);
}

/**
 * A Milan-shaped chain whose VCEK certifies `tcb` (Milan/Genoa components) and `chipId`.
 * `leafName` lets a test make a VLEK.
 */
export async function makeTestChain(args: { tcb: { boot_loader: number; tee: number; snp: number; microcode: number }; chipId: Buffer; leafName?: string; notAfter?: Date }): Promise<TestChain> {
  const ark = generateKeyPairSync("ec", { namedCurve: "P-384" });
  const ask = generateKeyPairSync("ec", { namedCurve: "P-384" });
  const vcek = generateKeyPairSync("ec", { namedCurve: "P-384" });
  const [arkKeys, askKeys, vcekKeys] = await Promise.all([cryptoKeys(ark), cryptoKeys(ask), cryptoKeys(vcek)]);
  const notBefore = new Date("2025-01-01T00:00:00Z");
  const notAfter = args.notAfter ?? new Date("2030-01-01T00:00:00Z");
  const name = (cn: string): string => `CN=${cn}, O=Coco test, OU=Engineering`;
  const arkCert = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: "01", name: name("ARK-Milan"), notBefore, notAfter, keys: arkKeys, signingAlgorithm: SIGNING });
  const askCert = await x509.X509CertificateGenerator.create({ serialNumber: "02", subject: name("SEV-Milan"), issuer: arkCert.subject, notBefore, notAfter, publicKey: askKeys.publicKey, signingKey: arkKeys.privateKey, signingAlgorithm: SIGNING });
  const tcbOid = (suffix: string): string => `1.3.6.1.4.1.3704.1.3.${suffix}`;
  const vcekCert = await x509.X509CertificateGenerator.create({
    serialNumber: "03", subject: name(args.leafName ?? "SEV-VCEK"), issuer: askCert.subject, notBefore, notAfter,
    publicKey: vcekKeys.publicKey, signingKey: askKeys.privateKey, signingAlgorithm: SIGNING,
    extensions: [
      new x509.Extension(tcbOid("1"), false, derInteger(args.tcb.boot_loader)),
      new x509.Extension(tcbOid("2"), false, derInteger(args.tcb.tee)),
      new x509.Extension(tcbOid("3"), false, derInteger(args.tcb.snp)),
      new x509.Extension(tcbOid("8"), false, derInteger(args.tcb.microcode)),
      new x509.Extension("1.3.6.1.4.1.3704.1.4", false, args.chipId),
    ],
  });
  const spki = createHash("sha256").update(ark.publicKey.export({ type: "spki", format: "der" })).digest("hex");
  return {
    endorsementsPem: [vcekCert, askCert, arkCert].map((c) => c.toString("pem")).join("\n") + "\n",
    rootKeys: { Milan: spki, Genoa: spki, Turin: spki },
    sign(report: Buffer): Buffer {
      const out = Buffer.from(report);
      const signature = sign("sha384", out.subarray(0, SNP_SIGNATURE_OFFSET), { key: vcek.privateKey, dsaEncoding: "ieee-p1363" });
      out.fill(0, SNP_FIELD_OFFSETS.signature);
      Buffer.from(signature.subarray(0, 48)).reverse().copy(out, SNP_FIELD_OFFSETS.signature);
      Buffer.from(signature.subarray(48)).reverse().copy(out, SNP_FIELD_OFFSETS.signature + 72);
      return out;
    },
  };
}

/** A test chain matching the real Milan report's TCB and chip, so the re-signed real report verifies. */
export function milanLikeChain(): Promise<TestChain> {
  return makeTestChain({ tcb: { boot_loader: 4, tee: 0, snp: 0x18, microcode: 0xdb }, chipId: MILAN_REPORT.subarray(SNP_FIELD_OFFSETS.chipId, SNP_FIELD_OFFSETS.chipId + 64) });
}
