// DID:x509 resolution (https://github.com/microsoft/did-x509, method version 0): a DID names a CA
// by the hash of its certificate plus policies on the leaf (its EKU, its subject), so a signer's
// identity survives the rotation of its leaf certificate. UVM endorsements name their issuer so;
// CCF resolves it with didx509cpp over the COSE x5chain (ignoring validity dates, as here: a UVM
// endorsement stays meaningful after its signing certificate expires). Answers the leaf's key.
import "reflect-metadata"; // @peculiar/x509 depends on tsyringe, which needs the Reflect polyfill
import { createHash, X509Certificate, type KeyObject } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { refuse } from "./errors.js";

/** A DID names a CA and a few policies; longer strings are not DIDs a consortium would allow. */
export const DID_X509_CHARS_MAX = 2048;
/** A chain deeper than this is not a code-signing PKI (Microsoft's is 3). */
export const DID_X509_CHAIN_CERTIFICATES_MAX = 8;

const FINGERPRINT_HASHES: Readonly<Record<string, string>> = { sha256: "sha256", sha384: "sha384", sha512: "sha512" };
const KEY_USAGE_DIGITAL_SIGNATURE = 1; // RFC 5280 KeyUsage bit 0, as @peculiar/x509 numbers it

function unresolved(message: string): never {
  throw refuse("uvm_endorsements", `the issuer DID does not resolve: ${message}`);
}

/** Percent-decoding of a policy value, as the DID:x509 spec defines (RFC 3986 pct-encoded). */
function percentDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return unresolved(`policy value ${JSON.stringify(value)} is not valid percent-encoding.`);
  }
}

/** Each certificate is signed by the next; the last is the trust anchor (self-signed, checked). */
function verifyChain(chain: readonly X509Certificate[]): void {
  if (chain.length < 2) unresolved("the x5chain must hold the signing certificate and at least one CA certificate.");
  if (chain.length > DID_X509_CHAIN_CERTIFICATES_MAX) unresolved(`the x5chain holds ${chain.length} certificates, above the limit of ${DID_X509_CHAIN_CERTIFICATES_MAX}.`);
  for (let i = 0; i + 1 < chain.length; i++) {
    const issuer = chain[i + 1]!;
    if (!issuer.ca) unresolved(`certificate ${i + 1} of the x5chain (${issuer.subject.replace(/\n/g, ", ")}) is not a CA.`);
    if (!chain[i]!.checkIssued(issuer) || !chain[i]!.verify(issuer.publicKey)) {
      unresolved(`certificate ${i} of the x5chain (${chain[i]!.subject.replace(/\n/g, ", ")}) is not signed by certificate ${i + 1}.`);
    }
  }
  const anchor = chain[chain.length - 1]!;
  if (anchor.checkIssued(anchor) && !anchor.verify(anchor.publicKey)) unresolved("the last certificate of the x5chain has a bad self-signature.");
}

function checkFingerprint(chain: readonly X509Certificate[], algorithm: string, fingerprint: string): void {
  const hash = FINGERPRINT_HASHES[algorithm];
  if (hash === undefined) unresolved(`unsupported fingerprint algorithm '${algorithm}' (sha256, sha384, sha512).`);
  // A CA certificate, never the leaf: the DID names who may issue, not one key.
  const found = chain.slice(1).some((c) => createHash(hash).update(c.raw).digest("base64url") === fingerprint);
  if (!found) unresolved(`no CA certificate of the x5chain has the ${algorithm} fingerprint ${fingerprint}.`);
}

function checkPolicy(leaf: x509.X509Certificate, name: string, args: string[]): void {
  if (name === "eku") {
    if (args.length !== 1) unresolved("the eku policy takes exactly one OID.");
    const extension = leaf.getExtension(x509.ExtendedKeyUsageExtension);
    const usages = (extension?.usages ?? []).map(String);
    if (!usages.includes(args[0]!)) unresolved(`the signing certificate has no extended key usage ${args[0]} (it has: ${usages.join(", ") || "none"}).`);
    return;
  }
  if (name === "subject") {
    if (args.length < 2 || args.length % 2 !== 0) unresolved("the subject policy takes key:value pairs.");
    const subject = new Map<string, string[]>();
    for (const rdn of leaf.subjectName.toJSON()) for (const [key, values] of Object.entries(rdn)) subject.set(key, [...(subject.get(key) ?? []), ...values]);
    const seen = new Set<string>();
    for (let i = 0; i < args.length; i += 2) {
      const key = args[i] === "S" ? "ST" : args[i]!; // some issuers write S for State (RFC 4519 says ST)
      if (seen.has(key)) unresolved(`the subject policy names ${key} twice.`);
      seen.add(key);
      const value = percentDecode(args[i + 1]!);
      if (!(subject.get(key) ?? []).includes(value)) unresolved(`the signing certificate's subject has no ${key}=${value}.`);
    }
    return;
  }
  // san and fulcio-issuer exist in the spec; no UVM issuer uses them, so they are refused, not ignored.
  unresolved(`policy '${name}' is not supported by Coco (eku, subject).`);
}

/**
 * Resolves `did` against `chainDer` (leaf first) and answers the leaf's public key, or throws an
 * AttestationError (check "uvm_endorsements") naming what does not hold. Validity dates are not
 * checked, as CCF (didx509::resolve_jwk with ignore_time).
 */
export function resolveDidX509(did: string, chainDer: readonly Uint8Array[]): KeyObject {
  if (did.length > DID_X509_CHARS_MAX) unresolved(`the DID is ${did.length} characters, above the limit of ${DID_X509_CHARS_MAX}.`);
  const [prefix, ...policies] = did.split("::");
  const parts = prefix!.split(":");
  if (parts.length !== 5 || parts[0] !== "did" || parts[1] !== "x509") unresolved(`${JSON.stringify(did)} is not did:x509:0:<hash>:<CA fingerprint>::<policy>.`);
  if (parts[2] !== "0") unresolved(`unsupported did:x509 version '${parts[2]}'.`);
  if (policies.length === 0) unresolved("the DID has no policy (at least one is required).");
  let chain: X509Certificate[];
  try {
    chain = chainDer.map((der) => new X509Certificate(der));
  } catch (error) {
    return unresolved(`a certificate of the x5chain does not parse: ${(error as Error).message}.`);
  }
  verifyChain(chain);
  checkFingerprint(chain, parts[3]!, parts[4]!);
  const leaf = new x509.X509Certificate(chain[0]!.raw);
  for (const policy of policies) {
    const [name, ...args] = policy.split(":");
    checkPolicy(leaf, name!, args);
  }
  const keyUsage = leaf.getExtension(x509.KeyUsagesExtension);
  if (keyUsage !== null && (keyUsage.usages & KEY_USAGE_DIGITAL_SIGNATURE) === 0) unresolved("the signing certificate's key usage does not include digitalSignature.");
  return chain[0]!.publicKey;
}
