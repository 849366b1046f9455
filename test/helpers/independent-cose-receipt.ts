// An independent verifier of CCF COSE receipts, written from the specifications only (RFC 9052
// COSE_Sign1 and Sig_structure, RFC 9053 ES384, draft-ietf-cose-merkle-tree-proofs vdp/vds,
// draft-birkholz-cose-receipts-ccf-profile's leaf and path), with cbor-x and node:crypto. It
// shares no code with src/ on purpose: a receipt that passes here verifies with any COSE stack.
import { createHash, createPublicKey, verify, X509Certificate } from "node:crypto";
import { Decoder, Encoder, Tag } from "cbor-x";

const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });
const encoder = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });
const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};

export interface IndependentResult {
  txid: string;
  commitEvidence: string;
  claimsDigest: Buffer;
  root: Buffer;
}

/** Returns what the receipt proves, or throws an Error naming the failed check. */
export function independentlyVerifyCoseReceipt(receipt: Uint8Array, serviceCertPem: string): IndependentResult {
  const tagged = decoder.decode(Buffer.from(receipt)) as Tag;
  if (!(tagged instanceof Tag) || tagged.tag !== 18) throw new Error("not a tagged COSE_Sign1 (tag 18)");
  const [protectedBytes, unprotected, payload, signature] = tagged.value as [Uint8Array, Map<unknown, unknown>, unknown, Uint8Array];
  const header = decoder.decode(Buffer.from(protectedBytes)) as Map<unknown, unknown>;
  if (header.get(1) !== -35) throw new Error("alg must be ES384 (-35)");
  const spki = new X509Certificate(serviceCertPem).publicKey.export({ type: "spki", format: "der" });
  if (Buffer.from(header.get(4) as Uint8Array).toString() !== sha256(spki).toString("hex")) throw new Error("kid is not the service key's SHA-256");
  if (header.get(395) !== 2) throw new Error("vds must be 2 (CCF_LEDGER_SHA256)");
  if (payload !== null && payload !== undefined) throw new Error("payload must be detached");
  const proofs = (unprotected.get(396) as Map<unknown, unknown>).get(-1) as Uint8Array[];
  if (proofs.length !== 1) throw new Error("expected one inclusion proof");
  const proof = decoder.decode(Buffer.from(proofs[0]!)) as Map<number, unknown>;
  const [writeSetDigest, commitEvidence, claimsDigest] = proof.get(1) as [Uint8Array, string, Uint8Array];
  let accumulator = sha256(writeSetDigest, sha256(Buffer.from(commitEvidence, "utf8")), claimsDigest);
  for (const [left, hash] of proof.get(2) as Array<[boolean, Uint8Array]>) {
    accumulator = left ? sha256(hash, accumulator) : sha256(accumulator, hash);
  }
  const toBeSigned = encoder.encode(["Signature1", Buffer.from(protectedBytes), Buffer.alloc(0), accumulator]);
  const key = createPublicKey(serviceCertPem);
  if (!verify("sha384", toBeSigned, { key, dsaEncoding: "ieee-p1363" }, Buffer.from(signature))) throw new Error("signature does not verify over the recomputed root");
  const ccf = header.get("ccf.v1") as Map<string, unknown>;
  return { txid: ccf.get("txid") as string, commitEvidence, claimsDigest: Buffer.from(claimsDigest), root: accumulator };
}
