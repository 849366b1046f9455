// CCF 6 COSE receipts: built from a real Merkle tree and a service-signed root, verified by
// Coco's verifier, by an independent one written from the specifications (test/helpers), and
// by the client's leaf checks; every tampering is refused with the check that caught it.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, it } from "node:test";
import { Decoder, Encoder, Tag } from "cbor-x";
import { createServiceCertificate, generateEcP384KeyPair, type KeyPairPem } from "../../../src/crypto/index.js";
import {
  buildCoseReceipt, coseLeafHash, encodeInclusionProof, MerkleTree, signRootCose, verifyCoseReceipt, type CoseLeaf,
} from "../../../src/merkle/index.js";
import { verifyTransactionCoseReceipt } from "../../../src/client/index.js";
import { independentlyVerifyCoseReceipt } from "../../helpers/independent-cose-receipt.js";

const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });
const encoder = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });

let service: KeyPairPem;
let serviceCert = "";
let otherCert = "";
let otherService: KeyPairPem;

/** Transaction 2.`seqno` (leaf index seqno - 1) of a ledger of 12, signed by signature transaction 2.13. */
function leafOf(seqno: number): CoseLeaf {
  return { writeSetDigest: randomBytes(32), commitEvidence: `ce:2.${seqno}:${randomBytes(32).toString("hex")}`, claimsDigest: Buffer.alloc(32, seqno) };
}

function receiptFor(seqno: number, keys = service, mutateLeaf?: (leaf: CoseLeaf) => CoseLeaf): Buffer {
  const tree = new MerkleTree();
  const leaves = Array.from({ length: 12 }, (_, i) => leafOf(i + 1));
  for (const leaf of leaves) tree.append(coseLeafHash(leaf));
  const signature = signRootCose({ servicePrivateKeyPem: keys.privateKeyPem, servicePublicKeyPem: keys.publicKeyPem, root: tree.root(), txid: "2.13", issuedAtSeconds: 1_760_000_000 });
  const leaf = leaves[seqno - 1]!;
  return buildCoseReceipt(signature, encodeInclusionProof(mutateLeaf ? mutateLeaf(leaf) : leaf, tree.path(seqno - 1, 12)));
}

/** Decodes a receipt, lets `edit` change its parts, re-encodes it (the signature is kept). */
function tamper(receipt: Buffer, edit: (parts: { protectedHeaders: Map<unknown, unknown>; unprotected: Map<unknown, unknown>; proof: Map<number, any>; payload: unknown }) => void, reencodeProtected = false): Buffer {
  const tagged = decoder.decode(receipt) as Tag;
  const [protectedBytes, unprotected, payload, signature] = tagged.value as [Uint8Array, Map<unknown, unknown>, unknown, Uint8Array];
  const protectedHeaders = decoder.decode(Buffer.from(protectedBytes)) as Map<unknown, unknown>;
  const vdp = unprotected.get(396) as Map<unknown, unknown>;
  const proof = decoder.decode(Buffer.from((vdp.get(-1) as Uint8Array[])[0]!)) as Map<number, any>;
  const parts = { protectedHeaders, unprotected, proof, payload };
  edit(parts);
  // The (edited) first proof, then whatever else the edit left in the list.
  vdp.set(-1, [Buffer.from(encoder.encode(parts.proof)), ...(vdp.get(-1) as Uint8Array[]).slice(1)]);
  const newProtected = reencodeProtected ? Buffer.from(encoder.encode(parts.protectedHeaders)) : Buffer.from(protectedBytes);
  return Buffer.from(encoder.encode(new Tag([newProtected, parts.unprotected, parts.payload, Buffer.from(signature)], 18)));
}

before(async () => {
  service = generateEcP384KeyPair();
  serviceCert = await createServiceCertificate(service, {});
  otherService = generateEcP384KeyPair();
  otherCert = await createServiceCertificate(otherService, {});
});

describe("COSE receipts (CCF 6)", () => {
  it("verify with Coco's verifier and with an independent implementation, for every leaf position", () => {
    for (let seqno = 1; seqno <= 12; seqno++) {
      const receipt = receiptFor(seqno);
      const ours = verifyCoseReceipt(receipt, serviceCert);
      const theirs = independentlyVerifyCoseReceipt(receipt, serviceCert);
      assert.equal(ours.signedTxId, "2.13");
      assert.equal(theirs.txid, "2.13");
      assert.ok(ours.root.equals(theirs.root));
      assert.equal(ours.leaf.commitEvidence, theirs.commitEvidence);
      assert.match(theirs.commitEvidence, new RegExp(`^ce:2\\.${seqno}:`));
    }
  });

  it("carry CCF's protected headers: alg ES384, kid, vds 2, CWT claims and ccf.v1 txid; payload detached", () => {
    const tagged = decoder.decode(receiptFor(3)) as Tag;
    const [protectedBytes, , payload] = tagged.value as [Uint8Array, unknown, unknown];
    const headers = decoder.decode(Buffer.from(protectedBytes)) as Map<unknown, unknown>;
    assert.equal(headers.get(1), -35);
    assert.equal(Buffer.from(headers.get(4) as Uint8Array).toString().length, 64);
    assert.equal(headers.get(395), 2);
    assert.deepEqual([...(headers.get(15) as Map<number, unknown>).entries()], [[1, ""], [2, ""], [6, 1_760_000_000]]);
    assert.equal((headers.get("ccf.v1") as Map<string, unknown>).get("txid"), "2.13");
    assert.equal(payload, null);
  });

  it("the client checks the claimed transaction and claims digest", () => {
    const receipt = receiptFor(5);
    const ok = verifyTransactionCoseReceipt(receipt, serviceCert, { transactionId: "2.5", claimsDigest: "05".repeat(32) });
    assert.deepEqual(ok.txId, { view: 2, seqno: 5 });
    assert.throws(() => verifyTransactionCoseReceipt(receipt, serviceCert, { transactionId: "2.6" }), /proves transaction 2\.5, not 2\.6/);
    assert.throws(() => verifyTransactionCoseReceipt(receipt, serviceCert, { claimsDigest: "06".repeat(32) }), /claims digest/);
  });

  const refusals: Array<[string, () => Buffer, RegExp]> = [
    ["another service's receipt", () => receiptFor(4, undefined), /kid does not name this service key/],
    ["a changed write set digest", () => tamper(receiptFor(4), (p) => { p.proof.get(1)[0] = Buffer.alloc(32, 7); }), /signature does not verify/],
    ["a changed commit evidence (another transaction id)", () => tamper(receiptFor(4), (p) => { p.proof.get(1)[1] = p.proof.get(1)[1].replace("ce:2.4:", "ce:2.5:"); }), /signature does not verify/],
    ["a changed claims digest", () => tamper(receiptFor(4), (p) => { p.proof.get(1)[2] = Buffer.alloc(32, 9); }), /signature does not verify/],
    ["a flipped path direction", () => tamper(receiptFor(4), (p) => { p.proof.get(2)[0][0] = !p.proof.get(2)[0][0]; }), /signature does not verify/],
    ["a dropped path step", () => tamper(receiptFor(4), (p) => { p.proof.get(2).pop(); }), /signature does not verify/],
    ["an embedded payload", () => tamper(receiptFor(4), (p) => { p.payload = Buffer.alloc(32); }), /payload must be detached/],
    ["a second inclusion proof", () => tamper(receiptFor(4), (p) => { const v = p.unprotected.get(396) as Map<unknown, unknown>; v.set(-1, [...(v.get(-1) as unknown[]), ...(v.get(-1) as unknown[])]); }), /exactly one inclusion proof/],
    ["a vds other than CCF's", () => tamper(receiptFor(4), (p) => { p.protectedHeaders.set(395, 1); }, true), /vds/],
    ["a short hash in the path", () => tamper(receiptFor(4), (p) => { p.proof.get(2)[0][1] = Buffer.alloc(31); }), /32-byte/],
  ];
  for (const [what, make, message] of refusals) {
    it(`refuses ${what}`, () => {
      const receipt = what === "another service's receipt" ? receiptFor(4, otherService) : make();
      assert.throws(() => verifyCoseReceipt(receipt, serviceCert), (error: Error) => message.test(error.message));
      assert.throws(() => independentlyVerifyCoseReceipt(receipt, serviceCert));
    });
  }

  it("another service's receipt verifies against that service's certificate", () => {
    assert.equal(verifyCoseReceipt(receiptFor(4, otherService), otherCert).signedTxId, "2.13");
  });
});
