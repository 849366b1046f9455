// UVM endorsements (confidential containers on Azure: AKS, ACI): a COSE Sign1 document in which
// Microsoft, identified by a DID:x509 issuer and a feed, states "launch measurement M is our
// utility VM at security version N". With it a node is admitted for who signed its measurement
// rather than for the measurement itself, so members approve an issuer and feed once instead of
// each UVM release. Verified as CCF does (src/node/uvm_endorsements.cpp): signature by the key
// the DID resolves to over the x5chain, JSON payload, launch measurement equal to the report's,
// then the (did, feed, minimum svn) roots of trust governance keeps (add_snp_uvm_endorsement).
import { constants, verify as verifySignature, type KeyObject } from "node:crypto";
import { coseSign1ToBeSigned, parseCoseSign1, type CoseSign1 } from "../crypto/index.js";
import { refuse } from "./errors.js";
import { resolveDidX509 } from "./did-x509.js";

/** CCF's real endorsements are ~11 KB (most of it an RFC 3161 timestamp); refuse far more unread. */
export const UVM_ENDORSEMENTS_BYTES_MAX = 64 * 1024;

const HEADER_ALG = 1;
const HEADER_CONTENT_TYPE = 3;
const HEADER_X5CHAIN = 33;
const HEADER_ISSUER = "iss";
const HEADER_FEED = "feed";
const PAYLOAD_MEASUREMENT = "x-ms-sevsnpvm-launchmeasurement";
const PAYLOAD_SVN = "x-ms-sevsnpvm-guestsvn";

/** RFC 9053 / RFC 8230: the algorithms CCF accepts for UVM endorsements (RSA-PSS and ECDSA). */
const ALGORITHMS: ReadonlyMap<number, { hash: string; kind: "rsa-pss" | "ecdsa"; curve?: string }> = new Map([
  [-37, { hash: "sha256", kind: "rsa-pss" }],
  [-38, { hash: "sha384", kind: "rsa-pss" }],
  [-39, { hash: "sha512", kind: "rsa-pss" }],
  [-7, { hash: "sha256", kind: "ecdsa", curve: "prime256v1" }],
  [-35, { hash: "sha384", kind: "ecdsa", curve: "secp384r1" }],
  [-36, { hash: "sha512", kind: "ecdsa", curve: "secp521r1" }],
]);

/** What a UVM endorsement says: CCF's pal::UVMEndorsements (svn as the decimal string CCF keeps). */
export interface UvmEndorsementsDescriptor {
  did: string;
  feed: string;
  svn: string;
}

/** One entry of public:ccf.gov.nodes.snp.uvm_endorsements: endorsements from `did` on `feed` with SVN at least `svn`. */
export type UvmRootOfTrust = UvmEndorsementsDescriptor;

/** CCF's default_uvm_roots_of_trust (src/node/uvm_endorsements.h), used by the JS API as CCF uses it. */
export const DEFAULT_UVM_ROOTS_OF_TRUST: readonly UvmRootOfTrust[] = [
  // Confidential AKS
  { did: "did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.2", feed: "ContainerPlat-AMD-UVM", svn: "100" },
  // Confidential ACI
  { did: "did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.5", feed: "ConfAKS-AMD-UVM", svn: "1" },
];

function bad(message: string): never {
  throw refuse("uvm_endorsements", message);
}

function parseSvn(value: unknown, what: string): bigint {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === "string" && /^[0-9]{1,20}$/.test(value)) return BigInt(value);
  return bad(`${what} must be an unsigned integer or a string of decimal digits, got ${JSON.stringify(value)}.`);
}

function x5chainOf(parsed: CoseSign1): Uint8Array[] {
  const value = parsed.protectedHeaders.get(HEADER_X5CHAIN);
  if (value instanceof Uint8Array) return [value];
  if (Array.isArray(value) && value.length > 0 && value.every((c) => c instanceof Uint8Array)) return value as Uint8Array[];
  return bad("the protected header's x5chain (33) must be a certificate or a non-empty array of certificates.");
}

function signatureVerifies(parsed: CoseSign1, key: KeyObject, alg: number): boolean {
  const algorithm = ALGORITHMS.get(alg);
  if (algorithm === undefined) bad(`signature algorithm ${alg} is not RSA-PSS (PS256/384/512) or ECDSA (ES256/384/512).`);
  const toBeSigned = coseSign1ToBeSigned(parsed.protectedRaw, parsed.payload!);
  try {
    if (algorithm.kind === "rsa-pss") {
      if (key.asymmetricKeyType !== "rsa") return false;
      return verifySignature(algorithm.hash, toBeSigned, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, parsed.signature);
    }
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== algorithm.curve) return false;
    return verifySignature(algorithm.hash, toBeSigned, { key, dsaEncoding: "ieee-p1363" }, parsed.signature);
  } catch {
    return false;
  }
}

/**
 * Authenticates UVM endorsements for a report's measurement (CCF's verify_uvm_endorsements_descriptor):
 * the issuer DID resolves over the x5chain, the signature is that key's, and the payload's launch
 * measurement is `measurementHex`. Answers who endorsed it; whether that is enough is matchUvmRootsOfTrust.
 */
export function verifyUvmEndorsements(raw: Uint8Array, measurementHex: string): UvmEndorsementsDescriptor {
  if (raw.length > UVM_ENDORSEMENTS_BYTES_MAX) bad(`they are ${raw.length} bytes, above the ${UVM_ENDORSEMENTS_BYTES_MAX}-byte limit.`);
  let parsed: CoseSign1;
  try {
    parsed = parseCoseSign1(raw);
  } catch (error) {
    return bad(`they are not a COSE Sign1 document: ${(error as Error).message}`);
  }
  const alg = parsed.protectedHeaders.get(HEADER_ALG);
  const did = parsed.protectedHeaders.get(HEADER_ISSUER);
  const feed = parsed.protectedHeaders.get(HEADER_FEED);
  if (typeof alg !== "number") bad("the protected header has no integer alg (1).");
  if (typeof did !== "string") bad("the protected header has no issuer (iss).");
  if (typeof feed !== "string") bad("the protected header has no feed.");
  if (parsed.payload === null) bad("the payload is detached; UVM endorsements carry it.");
  const key = resolveDidX509(did, x5chainOf(parsed));
  if (!signatureVerifies(parsed, key, alg)) bad(`the COSE signature is not by the key of issuer ${did}.`);
  // Checked after the signature, as CCF: only signed content is interpreted.
  const contentType = parsed.protectedHeaders.get(HEADER_CONTENT_TYPE);
  if (contentType !== "application/json") bad(`the payload's content type is ${JSON.stringify(contentType)}, not application/json.`);
  let payload: Record<string, unknown>;
  try {
    payload = JSON.parse(parsed.payload.toString("utf8")) as Record<string, unknown>;
  } catch {
    return bad("the payload is not JSON.");
  }
  if (typeof payload !== "object" || payload === null) bad("the payload is not a JSON object.");
  const launchMeasurement = payload[PAYLOAD_MEASUREMENT];
  if (typeof launchMeasurement !== "string") bad(`the payload has no ${PAYLOAD_MEASUREMENT} string.`);
  const svn = parseSvn(payload[PAYLOAD_SVN], `the payload's ${PAYLOAD_SVN}`).toString();
  if (launchMeasurement !== measurementHex) {
    bad(`the endorsed launch measurement ${launchMeasurement} is not the report's measurement ${measurementHex}.`);
  }
  return { did, feed, svn };
}

/** CCF's matches_uvm_roots_of_trust: some root names the same DID and feed with an SVN at or below the endorsement's. */
export function matchUvmRootsOfTrust(endorsed: UvmEndorsementsDescriptor, roots: readonly UvmRootOfTrust[]): void {
  const svn = parseSvn(endorsed.svn, "the endorsement's SVN");
  const sameIssuer = roots.filter((r) => r.did === endorsed.did);
  if (sameIssuer.length === 0) bad(`issuer ${endorsed.did} is not trusted by this service: members must first accept add_snp_uvm_endorsement for it.`);
  const sameFeed = sameIssuer.filter((r) => r.feed === endorsed.feed);
  if (sameFeed.length === 0) bad(`feed ${endorsed.feed} of issuer ${endorsed.did} is not trusted by this service: members must first accept add_snp_uvm_endorsement for it.`);
  if (!sameFeed.some((r) => parseSvn(r.svn, "a trusted SVN") <= svn)) {
    bad(`SVN ${endorsed.svn} of feed ${endorsed.feed} is below the minimum ${sameFeed.map((r) => r.svn).join(", ")} governance set (add_snp_uvm_endorsement).`);
  }
}
