// The endorsements of an SEV-SNP report: the PEM bundle VCEK (or VLEK), ASK (or ASVK), ARK, as
// AMD's key distribution service serves them and CCF carries them in quote_info.endorsements.
// Checks the chain up to AMD's pinned root for the report's family, and reads what the
// VCEK certifies: the TCB it was derived for and the chip it belongs to.
import "reflect-metadata"; // @peculiar/x509 depends on tsyringe, which needs the Reflect polyfill
import { createHash, X509Certificate, type KeyObject } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { splitPemBundle } from "../crypto/index.js";
import { refuse } from "./errors.js";
import { AMD_ARK_SPKI_SHA256 } from "./snp-roots.js";
import { tcbRaw, type SnpProduct, type SnpTcbPolicy } from "./snp-tcb.js";

/** AMD's VCEK extensions (VCEK Certificate and KDS Interface Specification, publication 57230, tables 10-11). */
const AMD_TCB_OID_PREFIX = "1.3.6.1.4.1.3704.1.3.";
const TCB_COMPONENT_OID_SUFFIX = { boot_loader: "1", tee: "2", snp: "3", microcode: "8", fmc: "9" } as const;
const AMD_HWID_OID = "1.3.6.1.4.1.3704.1.4";
/** A bundle is three certificates; a longer text is not an endorsement and is refused unread. */
export const SNP_ENDORSEMENTS_BYTES_MAX = 64 * 1024;

export type SnpSigningKeyKind = "VCEK" | "VLEK";

export interface SnpChain {
  product: SnpProduct;
  leafKind: SnpSigningKeyKind;
  leaf: X509Certificate;
  /** The VCEK/VLEK public key, extracted once (each X509Certificate.publicKey read builds a new KeyObject). */
  leafKey: KeyObject;
  /** The TCB the VCEK/VLEK was issued for, from its extensions (absent: the certificate does not say). */
  endorsedTcb: Buffer | undefined;
  /** The chip the VCEK belongs to (VLEKs are not chip-specific and carry none). */
  endorsedChipId: Buffer | undefined;
  /** Validity window of the whole chain (the intersection), checked per verification. */
  notBeforeMs: number;
  notAfterMs: number;
}

function derInteger(bytes: Uint8Array, what: string): number {
  // A small non-negative DER INTEGER: 02 <len 1..2> <big-endian value>.
  if (bytes.length < 3 || bytes[0] !== 0x02 || bytes[1] !== bytes.length - 2 || bytes.length > 4) {
    throw refuse("endorsements", `${what} is not a small DER INTEGER.`);
  }
  let value = 0;
  for (const b of bytes.subarray(2)) value = value * 256 + b;
  if (value > 0xff) throw refuse("endorsements", `${what} is ${value}, above 255.`);
  return value;
}

function leafExtensions(leaf: X509Certificate, product: SnpProduct): { endorsedTcb: Buffer | undefined; endorsedChipId: Buffer | undefined } {
  const parsed = new x509.X509Certificate(leaf.raw);
  const extension = (oid: string): Uint8Array | undefined => {
    const found = parsed.extensions.find((e) => e.type === oid);
    return found === undefined ? undefined : new Uint8Array(found.value);
  };
  const components = product === "Turin" ? (["fmc", "boot_loader", "tee", "snp", "microcode"] as const) : (["boot_loader", "tee", "snp", "microcode"] as const);
  const policy: SnpTcbPolicy = {};
  let complete = true;
  for (const component of components) {
    const value = extension(AMD_TCB_OID_PREFIX + TCB_COMPONENT_OID_SUFFIX[component]);
    if (value === undefined) complete = false;
    else policy[component] = derInteger(value, `the VCEK's ${component} SPL extension`);
  }
  const hwid = extension(AMD_HWID_OID);
  return { endorsedTcb: complete ? tcbRaw(product, policy) : undefined, endorsedChipId: hwid === undefined ? undefined : Buffer.from(hwid) };
}

function leafKind(leaf: X509Certificate): SnpSigningKeyKind {
  if (/CN=SEV-VCEK(\n|$)/.test(leaf.subject)) return "VCEK";
  if (/CN=SEV-VLEK(\n|$)/.test(leaf.subject)) return "VLEK";
  throw refuse("endorsements", `the first certificate must be a VCEK or VLEK (CN=SEV-VCEK or CN=SEV-VLEK), got subject ${JSON.stringify(leaf.subject)}.`);
}

/** Verifies the chain (no time check: see checkChainValidity) and reads the VCEK's claims. */
export function verifySnpChain(endorsementsPem: string, product: SnpProduct, rootKeys: Readonly<Record<SnpProduct, string>> = AMD_ARK_SPKI_SHA256): SnpChain {
  if (endorsementsPem.length > SNP_ENDORSEMENTS_BYTES_MAX) {
    throw refuse("endorsements", `the endorsements are ${endorsementsPem.length} bytes, above the ${SNP_ENDORSEMENTS_BYTES_MAX}-byte limit.`);
  }
  const pems = splitPemBundle(endorsementsPem);
  if (pems.length !== 3) {
    throw refuse("endorsements", `expected 3 certificates (VCEK or VLEK, ASK or ASVK, ARK), got ${pems.length}.`);
  }
  let certificates: X509Certificate[];
  try {
    certificates = pems.map((pem) => new X509Certificate(pem));
  } catch (error) {
    throw refuse("endorsements", `a certificate does not parse: ${(error as Error).message}.`);
  }
  const [leaf, intermediate, root] = certificates as [X509Certificate, X509Certificate, X509Certificate];
  const rootSpki = createHash("sha256").update(root.publicKey.export({ type: "spki", format: "der" })).digest("hex");
  if (rootSpki !== rootKeys[product]) {
    throw refuse("root", `the chain's root key (SPKI SHA-256 ${rootSpki}) is not AMD's ${product} root key, the processor family the report names.`);
  }
  if (!root.checkIssued(root) || !root.verify(root.publicKey)) {
    throw refuse("root", `AMD's ${product} root certificate is not self-signed by its key.`);
  }
  if (!intermediate.checkIssued(root) || !intermediate.verify(root.publicKey)) {
    throw refuse("chain", `the second certificate (${intermediate.subject.replace(/\n/g, ", ")}) is not signed by AMD's ${product} root.`);
  }
  if (!leaf.checkIssued(intermediate) || !leaf.verify(intermediate.publicKey)) {
    throw refuse("chain", `the first certificate (${leaf.subject.replace(/\n/g, ", ")}) is not signed by the second (${intermediate.subject.replace(/\n/g, ", ")}).`);
  }
  const kind = leafKind(leaf);
  const { endorsedTcb, endorsedChipId } = leafExtensions(leaf, product);
  const notBeforeMs = Math.max(...certificates.map((c) => Date.parse(c.validFrom)));
  const notAfterMs = Math.min(...certificates.map((c) => Date.parse(c.validTo)));
  return { product, leafKind: kind, leaf, leafKey: leaf.publicKey, endorsedTcb, endorsedChipId, notBeforeMs, notAfterMs };
}

/** Certificates are checked against the verification time (CCF also checks them at the current time). */
export function checkChainValidity(chain: SnpChain, nowMs: number): void {
  if (nowMs < chain.notBeforeMs || nowMs > chain.notAfterMs) {
    throw refuse("chain", `a certificate of the endorsements is not valid at ${new Date(nowMs).toISOString()} `
      + `(the chain is valid from ${new Date(chain.notBeforeMs).toISOString()} to ${new Date(chain.notAfterMs).toISOString()}).`);
  }
}
