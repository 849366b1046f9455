// CCF 6's COSE signatures and COSE receipts (draft-ietf-cose-merkle-tree-proofs with CCF's
// tree algorithm, vds = 2 "CCF_LEDGER_SHA256", as CCF's cddl/ccf-receipt.cddl describes):
// - a signature transaction carries, besides the node's ECDSA signature, a COSE_Sign1 by the
//   service key over the Merkle root (detached payload), with kid, CWT claims and the txid;
// - a receipt is that COSE_Sign1 with an inclusion proof (leaf components and path) in its
//   unprotected header (396 → -1 → [bstr .cbor proof]); a verifier recomputes the root from
//   the proof and checks the signature over it.
// Lives beside the tree so the node (which signs and builds) and the client (which verifies)
// share one codec.
import { createHash, type KeyObject } from "node:crypto";
import { Decoder, Encoder } from "cbor-x";
// The crypto modules themselves, not crypto/index.js: the entry encoder's worker signs roots with
// this module and need not load the X.509 code.
import {
  COSE_HEADER_ALG, COSE_HEADER_KID, parseCoseSign1, signCoseSign1, verifyCoseSign1, withUnprotectedHeaders, type CoseHeaderMap, type CoseSign1,
} from "../crypto/cose.js";
import { publicKeyObject, publicKeyPemFromCertificate } from "../crypto/keys.js";
import { CocoError } from "../util/errors.js";
import { computeRootFromPath, HASH_BYTES, type ProofStep } from "./proof.js";

/** Protected header labels and values CCF uses (RFC 8392 CWT claims; the COSE receipts draft). */
export const COSE_HEADER_CWT_CLAIMS = 15;
export const COSE_HEADER_VDS = 395;
export const COSE_HEADER_VDP = 396;
export const COSE_VDS_CCF_LEDGER_SHA256 = 2;
export const COSE_VDP_INCLUSION_PROOFS = -1;
export const CWT_ISS = 1;
export const CWT_SUB = 2;
export const CWT_IAT = 6;
/** CCF's own protected header: a map with the signature transaction's id. */
export const CCF_COSE_HEADER = "ccf.v1";
export const CCF_COSE_HEADER_TXID = "txid";
const PROOF_LEAF = 1;
const PROOF_PATH = 2;
/** CCF's cap on a leaf's commit evidence (cddl: tstr .size (1..1024)). */
const COMMIT_EVIDENCE_BYTES_MAX = 1024;
/** A path longer than this cannot come from a ledger of fewer than 2^64 transactions. */
const PROOF_STEPS_MAX = 64;

/** The KV table CCF 6 keeps the latest COSE signature in (JSON: base64 of the COSE_Sign1). */
export const COSE_SIGNATURES_MAP = "public:ccf.internal.cose_signatures";

const encoder = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false, pack: false });
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });

function invalid(message: string): CocoError {
  return new CocoError("InvalidCoseReceipt", message, 400);
}

/** CCF's kid: the hex SHA-256 of the service public key's DER (SPKI), as UTF-8 bytes. */
export function serviceKeyId(publicKeyPem: string): string {
  const der = Buffer.from(publicKeyPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
  return createHash("sha256").update(der).digest("hex");
}

/** The service key that signs roots, and CCF's `cose_signatures` configuration (CWT iss and sub; empty by default, as CCF's). */
export interface CoseSignatureKeys {
  servicePrivateKeyPem: string;
  servicePublicKeyPem: string;
  issuer?: string;
  subject?: string;
}

export interface CoseRootSignatureArgs extends CoseSignatureKeys {
  /** The Merkle root of every transaction before the signature transaction. */
  root: Uint8Array;
  /** The signature transaction's own id, `view.seqno`. */
  txid: string;
  /** CWT `iat`: seconds since the epoch. */
  issuedAtSeconds: number;
}

/** The COSE_Sign1 a signature transaction stores in `public:ccf.internal.cose_signatures`. */
export function signRootCose(args: CoseRootSignatureArgs): Buffer {
  if (args.root.length !== HASH_BYTES) throw new CocoError("InvalidInput", `a Merkle root is ${HASH_BYTES} bytes, got ${args.root.length}`, 400);
  const cwt = new Map<number, unknown>([[CWT_ISS, args.issuer ?? ""], [CWT_SUB, args.subject ?? ""], [CWT_IAT, Math.floor(args.issuedAtSeconds)]]);
  const headers: CoseHeaderMap = new Map<number | string, unknown>([
    [COSE_HEADER_VDS, COSE_VDS_CCF_LEDGER_SHA256],
    [COSE_HEADER_CWT_CLAIMS, cwt],
    [CCF_COSE_HEADER, new Map([[CCF_COSE_HEADER_TXID, args.txid]])],
  ]);
  return signCoseSign1({
    privateKeyPem: args.servicePrivateKeyPem,
    protectedHeaders: headers,
    kid: serviceKeyId(args.servicePublicKeyPem),
    payload: args.root,
    detachedPayload: true,
  });
}

/** A service key parsed once for checking many root signatures: the key and its CCF kid. */
export interface ServiceCoseKey {
  readonly key: KeyObject;
  readonly kid: string;
}

/** The service key of a certificate or public key PEM, ready for checkRootCoseSignature. */
export function serviceCoseKey(serviceIdentityPem: string): ServiceCoseKey {
  const publicKeyPem = serviceIdentityPem.includes("CERTIFICATE") ? publicKeyPemFromCertificate(serviceIdentityPem) : serviceIdentityPem;
  return { key: publicKeyObject(publicKeyPem), kid: serviceKeyId(publicKeyPem) };
}

/** The COSE_Sign1 bytes of a `public:ccf.internal.cose_signatures` value (CCF: a JSON string of base64). */
export function decodeCoseSignatureValue(value: Uint8Array): Buffer {
  let text: unknown;
  try {
    text = JSON.parse(Buffer.from(value).toString("utf8"));
  } catch { /* reported below */ }
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new CocoError("InvalidCoseSignature", `a ${COSE_SIGNATURES_MAP} value must be a JSON string holding base64`, 400);
  }
  return Buffer.from(text, "base64");
}

/** Why a signature transaction's COSE signature does not hold: a stable code and a reason for people. */
export interface RootCoseProblem {
  code: "InvalidCoseSignature" | "CoseSignatureKeyMismatch" | "CoseSignatureTxIdMismatch" | "BadCoseSignature";
  reason: string;
}

/**
 * Checks the COSE signature a signature transaction carries (what CCF's backups check in
 * verify_root_signatures, and what every COSE receipt built from it relies on): a tagged
 * COSE_Sign1 with a detached payload, vds CCF_LEDGER_SHA256, the kid of `serviceKey`, the
 * signature transaction's own txid in `ccf.v1`, and a valid signature by `serviceKey` over
 * `root` (the Merkle root of every transaction before it, as the checker computed it).
 * Returns null when all hold, else the first that does not. Never throws for bad input.
 */
export function checkRootCoseSignature(coseSignature: Uint8Array, expected: { root: Uint8Array; txid: string; serviceKey: ServiceCoseKey }): RootCoseProblem | null {
  let message: CoseSign1;
  try {
    message = parseCoseSign1(coseSignature);
  } catch (error) {
    return { code: "InvalidCoseSignature", reason: (error as Error).message };
  }
  const headers = message.protectedHeaders;
  if (headers.get(COSE_HEADER_VDS) !== COSE_VDS_CCF_LEDGER_SHA256) {
    return { code: "InvalidCoseSignature", reason: `its protected vds (${COSE_HEADER_VDS}) is not ${COSE_VDS_CCF_LEDGER_SHA256} (CCF_LEDGER_SHA256)` };
  }
  if (message.payload !== null) return { code: "InvalidCoseSignature", reason: "its payload is not detached (a root signature signs the root without carrying it)" };
  const kid = headers.get(COSE_HEADER_KID);
  if (!(kid instanceof Uint8Array) || Buffer.from(kid).toString("utf8") !== expected.serviceKey.kid) {
    const found = kid instanceof Uint8Array ? Buffer.from(kid).toString("utf8") : "none";
    return { code: "CoseSignatureKeyMismatch", reason: `its kid (${found}) does not name the service key in force (${expected.serviceKey.kid})` };
  }
  const ccf = headers.get(CCF_COSE_HEADER);
  const txid = ccf instanceof Map ? ccf.get(CCF_COSE_HEADER_TXID) : undefined;
  if (txid !== expected.txid) {
    return { code: "CoseSignatureTxIdMismatch", reason: `it names transaction ${typeof txid === "string" ? txid : "none"} in ${CCF_COSE_HEADER}, not ${expected.txid} (a COSE signature moved from another signature transaction)` };
  }
  let valid: boolean;
  try {
    valid = verifyCoseSign1(message, expected.serviceKey.key, { detachedPayload: expected.root });
  } catch (error) {
    return { code: "InvalidCoseSignature", reason: (error as Error).message };
  }
  if (!valid) {
    return { code: "BadCoseSignature", reason: `the service key's signature does not verify over the Merkle root ${Buffer.from(expected.root).toString("hex")} (signed by another key, or over another root)` };
  }
  return null;
}

export interface CoseLeaf {
  /** SHA-256 of the ledger entry (CCF: the write set digest). */
  writeSetDigest: Uint8Array;
  /** `ce:<view>.<seqno>:<hex>`. */
  commitEvidence: string;
  claimsDigest: Uint8Array;
}

/** CCF's ccf-inclusion-proof: {1: [write set digest, commit evidence, claims digest], 2: [[left, hash], ...]}. */
export function encodeInclusionProof(leaf: CoseLeaf, path: readonly ProofStep[]): Buffer {
  const steps = path.map((step) => ("left" in step ? [true, Buffer.from(step.left)] : [false, Buffer.from(step.right)]));
  const proof = new Map<number, unknown>([
    [PROOF_LEAF, [Buffer.from(leaf.writeSetDigest), leaf.commitEvidence, Buffer.from(leaf.claimsDigest)]],
    [PROOF_PATH, steps],
  ]);
  return Buffer.from(encoder.encode(proof));
}

/** A COSE receipt: the signature transaction's COSE_Sign1 with the inclusion proof in its unprotected header. */
export function buildCoseReceipt(coseSignature: Uint8Array, inclusionProof: Uint8Array): Buffer {
  const message = parseCoseSign1(coseSignature);
  const proofs = new Map<number, unknown>([[COSE_VDP_INCLUSION_PROOFS, [Buffer.from(inclusionProof)]]]);
  return withUnprotectedHeaders(message, new Map([[COSE_HEADER_VDP, proofs]]));
}

/** CCF's leaf: SHA-256(write set digest ‖ SHA-256(commit evidence) ‖ claims digest). */
export function coseLeafHash(leaf: CoseLeaf): Buffer {
  const evidenceDigest = createHash("sha256").update(leaf.commitEvidence, "utf8").digest();
  return createHash("sha256").update(leaf.writeSetDigest).update(evidenceDigest).update(leaf.claimsDigest).digest();
}

function bytes32(value: unknown, what: string): Buffer {
  if (!(value instanceof Uint8Array) || value.length !== HASH_BYTES) throw invalid(`${what} must be a ${HASH_BYTES}-byte string`);
  return Buffer.from(value);
}

function decodeProof(raw: unknown): { leaf: CoseLeaf; path: ProofStep[] } {
  if (!(raw instanceof Uint8Array)) throw invalid("each inclusion proof must be a byte string (bstr .cbor ccf-inclusion-proof)");
  let proof: unknown;
  try {
    proof = decoder.decode(Buffer.from(raw));
  } catch (cause) {
    throw invalid(`an inclusion proof is not well-formed CBOR (${(cause as Error).message})`);
  }
  if (!(proof instanceof Map)) throw invalid("an inclusion proof must be a CBOR map");
  const leaf = proof.get(PROOF_LEAF) as unknown;
  const path = proof.get(PROOF_PATH) as unknown;
  if (!Array.isArray(leaf) || leaf.length !== 3) throw invalid("the proof's leaf (label 1) must be [write set digest, commit evidence, claims digest]");
  const [writeSetDigest, commitEvidence, claimsDigest] = leaf as [unknown, unknown, unknown];
  if (typeof commitEvidence !== "string" || commitEvidence.length === 0 || Buffer.byteLength(commitEvidence) > COMMIT_EVIDENCE_BYTES_MAX) {
    throw invalid(`the leaf's commit evidence must be a text string of 1 to ${COMMIT_EVIDENCE_BYTES_MAX} bytes`);
  }
  if (!Array.isArray(path) || path.length > PROOF_STEPS_MAX) throw invalid(`the proof's path (label 2) must be an array of at most ${PROOF_STEPS_MAX} steps`);
  const steps = path.map((step: unknown, i: number): ProofStep => {
    if (!Array.isArray(step) || step.length !== 2 || typeof step[0] !== "boolean") throw invalid(`path step ${i} must be [left: bool, hash: bstr]`);
    const hash = bytes32(step[1], `path step ${i}'s hash`);
    return step[0] ? { left: hash } : { right: hash };
  });
  return {
    leaf: { writeSetDigest: bytes32(writeSetDigest, "the leaf's write set digest"), commitEvidence, claimsDigest: bytes32(claimsDigest, "the leaf's claims digest") },
    path: steps,
  };
}

export interface VerifiedCoseReceipt {
  /** The signature transaction's id (protected `ccf.v1` → `txid`). */
  signedTxId: string;
  /** The Merkle root the service signed, recomputed from the proof. */
  root: Buffer;
  leaf: CoseLeaf;
  /** CWT claims of the signature. */
  issuer: string | undefined;
  subject: string | undefined;
  issuedAtSeconds: number | undefined;
}

/**
 * Verifies a COSE receipt against the service identity (certificate or public key PEM): the
 * kid names that key, vds is CCF_LEDGER_SHA256, the one inclusion proof rebuilds a root, and
 * the service's signature over that root holds. Throws CocoError "InvalidCoseReceipt" saying
 * which check failed. What it returns is what the receipt proves; check the leaf's claims
 * digest or commit evidence against what you expect.
 */
export function verifyCoseReceipt(receipt: Uint8Array, serviceIdentityPem: string): VerifiedCoseReceipt {
  const publicKeyPem = serviceIdentityPem.includes("CERTIFICATE") ? publicKeyPemFromCertificate(serviceIdentityPem) : serviceIdentityPem;
  let message;
  try {
    message = parseCoseSign1(receipt);
  } catch (error) {
    throw invalid(`the receipt is not a COSE_Sign1: ${(error as Error).message}`);
  }
  const headers = message.protectedHeaders;
  if (headers.get(COSE_HEADER_ALG) === undefined) throw invalid("the protected header has no alg");
  const kid = headers.get(COSE_HEADER_KID);
  const expectedKid = serviceKeyId(publicKeyPem);
  if (!(kid instanceof Uint8Array) || Buffer.from(kid).toString("utf8") !== expectedKid) {
    throw invalid(`the receipt's kid does not name this service key (expected ${expectedKid})`);
  }
  if (headers.get(COSE_HEADER_VDS) !== COSE_VDS_CCF_LEDGER_SHA256) {
    throw invalid(`the protected header's vds (${COSE_HEADER_VDS}) must be ${COSE_VDS_CCF_LEDGER_SHA256} (CCF_LEDGER_SHA256)`);
  }
  if (message.payload !== null) throw invalid("a receipt's payload must be detached (nil): the signed root is recomputed from the proof");
  const vdp = message.unprotectedHeaders.get(COSE_HEADER_VDP);
  const proofs = vdp instanceof Map ? (vdp.get(COSE_VDP_INCLUSION_PROOFS) as unknown) : undefined;
  if (!Array.isArray(proofs) || proofs.length !== 1) throw invalid(`the unprotected header must hold exactly one inclusion proof at ${COSE_HEADER_VDP} → ${COSE_VDP_INCLUSION_PROOFS}`);
  const { leaf, path } = decodeProof(proofs[0]);
  const root = computeRootFromPath(coseLeafHash(leaf), path);
  if (!verifyCoseSign1(message, publicKeyPem, { detachedPayload: root })) {
    throw invalid("the service's signature does not verify over the Merkle root the proof rebuilds (wrong service, or a changed leaf or path)");
  }
  const ccf = headers.get(CCF_COSE_HEADER);
  const signedTxId = ccf instanceof Map ? ccf.get(CCF_COSE_HEADER_TXID) : undefined;
  if (typeof signedTxId !== "string") throw invalid(`the protected header has no ${CCF_COSE_HEADER} → ${CCF_COSE_HEADER_TXID}`);
  const cwt = headers.get(COSE_HEADER_CWT_CLAIMS);
  const claim = (label: number) => (cwt instanceof Map ? cwt.get(label) : undefined);
  const iss = claim(CWT_ISS);
  const sub = claim(CWT_SUB);
  const iat = claim(CWT_IAT);
  return {
    signedTxId, root, leaf,
    issuer: typeof iss === "string" ? iss : undefined,
    subject: typeof sub === "string" ? sub : undefined,
    issuedAtSeconds: typeof iat === "number" ? iat : undefined,
  };
}
