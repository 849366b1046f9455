// Receipt verification: a real tree, real certificates and a real root signature verify;
// every kind of tampering is rejected with an InvalidReceipt error naming the failed check.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createNodeCertificate,
  createServiceCertificate,
  generateEcP384KeyPair,
  nodeIdFromPublicKey,
  sha256,
  signDigest,
  type KeyPairPem,
} from "../../../src/crypto/index.js";
import { MerkleTree } from "../../../src/merkle/index.js";
import { computeLeaf, parseCommitEvidence, verifyReceipt, type CcfReceipt } from "../../../src/client/index.js";

const serviceKeys = generateEcP384KeyPair();
const serviceCertPem = await createServiceCertificate(serviceKeys);
const nodeKeys = generateEcP384KeyPair();
const nodeCertPem = await nodeCertificate(nodeKeys, serviceKeys, serviceCertPem);

async function nodeCertificate(keys: KeyPairPem, issuerKeys: KeyPairPem, issuerCertPem: string): Promise<string> {
  return createNodeCertificate({ nodePublicKeyPem: keys.publicKeyPem, serviceKeys: issuerKeys, serviceCertPem: issuerCertPem });
}

function components(seqno: number) {
  return {
    write_set_digest: sha256(Buffer.from(`write set ${seqno}`)).toString("hex"),
    commit_evidence: `ce:2.${seqno}:${sha256(Buffer.from(`secret ${seqno}`)).toString("hex")}`,
    claims_digest: sha256(Buffer.from(`claims ${seqno}`)).toString("hex"),
  };
}

/** Builds a 11-transaction ledger, signs its root as the node, and returns the receipt for `seqno`. */
function makeReceipt(seqno = 7, keys = nodeKeys, certPem = nodeCertPem): CcfReceipt {
  const tree = new MerkleTree();
  const all = Array.from({ length: 11 }, (_, i) => components(i + 1));
  for (const leafComponents of all) tree.append(computeLeaf(leafComponents));
  const root = tree.root();
  const proof = tree.path(seqno - 1).map((step) => ("left" in step ? { left: step.left.toString("hex") } : { right: step.right.toString("hex") }));
  return {
    cert: certPem,
    node_id: nodeIdFromPublicKey(keys.publicKeyPem),
    signature: signDigest(keys.privateKeyPem, root).toString("base64"),
    proof,
    leaf_components: all[seqno - 1]!,
  };
}

function rejects(receipt: unknown, pattern: RegExp, service = serviceCertPem): void {
  assert.throws(
    () => verifyReceipt(receipt as CcfReceipt, service),
    (error: unknown) => {
      assert.equal((error as { code?: string }).code, "InvalidReceipt");
      assert.match((error as Error).message, pattern);
      return true;
    },
  );
}

test("a genuine receipt verifies and yields the signed root and transaction id", () => {
  for (const seqno of [1, 7, 11]) {
    const receipt = JSON.parse(JSON.stringify(makeReceipt(seqno))) as CcfReceipt; // as received over HTTP
    const verified = verifyReceipt(receipt, serviceCertPem);
    assert.deepEqual(verified.txId, { view: 2, seqno });
    assert.equal(verified.root.length, 32);
    assert.deepEqual(verified.leaf, computeLeaf(receipt.leaf_components));
  }
});

test("computeLeaf hashes write set digest, the commit evidence's hash and the claims digest", () => {
  const c = components(3);
  const expected = sha256(
    Buffer.from(c.write_set_digest, "hex"),
    sha256(Buffer.from(c.commit_evidence, "utf8")),
    Buffer.from(c.claims_digest, "hex"),
  );
  assert.deepEqual(computeLeaf(c), expected);
});

test("parseCommitEvidence reads the transaction id and rejects other shapes", () => {
  assert.deepEqual(parseCommitEvidence("ce:4.1234:abcdef"), { view: 4, seqno: 1234 });
  for (const bad of ["4.1234:abcdef", "ce:4:abcdef", "ce:4.1234:", "ce:4.1234:xyz", "ce:a.b:00"]) {
    assert.throws(() => parseCommitEvidence(bad), /commit_evidence must look like/);
  }
});

test("flipping one bit of a proof hash breaks the signature check", () => {
  const receipt = makeReceipt();
  const step = receipt.proof[1]!;
  const side = "left" in step ? "left" : "right";
  const hash = Buffer.from((step as Record<string, string>)[side]!, "hex");
  hash[5]! ^= 0x10;
  receipt.proof[1] = side === "left" ? { left: hash.toString("hex") } : { right: hash.toString("hex") };
  rejects(receipt, /signature does not verify over the root/);
});

test("swapping a proof step's side, dropping or adding a step is rejected", () => {
  const swapped = makeReceipt();
  const first = swapped.proof[0]!;
  swapped.proof[0] = "left" in first ? { right: first.left } : { left: (first as { right: string }).right };
  rejects(swapped, /signature does not verify/);
  const shorter = makeReceipt();
  shorter.proof.pop();
  rejects(shorter, /signature does not verify/);
});

test("a different claims digest, write set digest or commit evidence is rejected", () => {
  const claims = makeReceipt();
  claims.leaf_components.claims_digest = sha256(Buffer.from("other claims")).toString("hex");
  rejects(claims, /signature does not verify/);
  const writeSet = makeReceipt();
  writeSet.leaf_components.write_set_digest = "00".repeat(32);
  rejects(writeSet, /signature does not verify/);
  const evidence = makeReceipt();
  evidence.leaf_components.commit_evidence = evidence.leaf_components.commit_evidence.replace("ce:2.7:", "ce:2.8:");
  rejects(evidence, /signature does not verify/);
});

test("a tampered signature is rejected", () => {
  const receipt = makeReceipt();
  const signature = Buffer.from(receipt.signature, "base64");
  signature[signature.length - 3]! ^= 1;
  receipt.signature = signature.toString("base64");
  rejects(receipt, /signature does not verify/);
});

test("a node_id that does not match the certificate's key is rejected", () => {
  const receipt = makeReceipt();
  receipt.node_id = nodeIdFromPublicKey(generateEcP384KeyPair().publicKeyPem);
  rejects(receipt, /node_id .* does not match the public key of cert/);
});

test("a certificate not endorsed by the trusted service is rejected", async () => {
  // A rogue service endorses its own node, which signs a well-formed receipt.
  const rogueKeys = generateEcP384KeyPair();
  const rogueServicePem = await createServiceCertificate(rogueKeys);
  const rogueNodeKeys = generateEcP384KeyPair();
  const rogueNodePem = await nodeCertificate(rogueNodeKeys, rogueKeys, rogueServicePem);
  rejects(makeReceipt(7, rogueNodeKeys, rogueNodePem), /cert\) is not endorsed by the service certificate/);
  // The genuine receipt checked against the wrong service certificate.
  rejects(makeReceipt(), /not endorsed by the service certificate/, rogueServicePem);
});

test("a swapped certificate with a matching node_id still fails the signature check", async () => {
  const otherNodeKeys = generateEcP384KeyPair();
  const receipt = makeReceipt();
  receipt.cert = await nodeCertificate(otherNodeKeys, serviceKeys, serviceCertPem);
  receipt.node_id = nodeIdFromPublicKey(otherNodeKeys.publicKeyPem);
  rejects(receipt, /signature does not verify/);
});

test("an endorsement chain through earlier service identities is accepted, a broken one rejected", async () => {
  // Previous service identity, endorsed by the current one (as after a disaster recovery).
  const previousKeys = generateEcP384KeyPair();
  const previousServiceCert = await createServiceCertificate(previousKeys);
  const endorsement = await createNodeCertificate({
    nodePublicKeyPem: previousKeys.publicKeyPem,
    serviceKeys,
    serviceCertPem,
    commonName: "CN=CCF Service",
  });
  const oldNodePem = await nodeCertificate(nodeKeys, previousKeys, previousServiceCert);
  const receipt = makeReceipt(7, nodeKeys, oldNodePem);
  rejects(receipt, /not endorsed by the service certificate/);
  receipt.service_endorsements = [endorsement];
  assert.deepEqual(verifyReceipt(receipt, serviceCertPem).txId, { view: 2, seqno: 7 });
  receipt.service_endorsements = [previousServiceCert];
  rejects(receipt, /service_endorsements\[0\] is not endorsed by the service certificate/);
});

test("malformed receipts are rejected with the offending field named", () => {
  const good = makeReceipt();
  const cases: Array<[unknown, RegExp]> = [
    [null, /must be a JSON object/],
    [{ ...good, cert: undefined }, /cert must be a PEM certificate/],
    [{ ...good, cert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }, /cert is not a parseable/],
    [{ ...good, node_id: "abc" }, /node_id must be a 64-character hex digest/],
    [{ ...good, signature: "not base64!" }, /signature must be non-empty standard base64/],
    [{ ...good, signature: "" }, /signature must be non-empty/],
    [{ ...good, proof: "[]" }, /proof must be an array/],
    [{ ...good, proof: [{ up: "00".repeat(32) }] }, /proof\[0\] must be an object with exactly one of/],
    [{ ...good, proof: [{ left: "00".repeat(32), right: "00".repeat(32) }] }, /proof\[0\] must be an object with exactly one/],
    [{ ...good, proof: [{ left: "00".repeat(31) }] }, /proof\[0\]\.left must be a 64-character hex/],
    [{ ...good, leaf_components: undefined }, /leaf_components must be an object/],
    [{ ...good, leaf_components: { ...good.leaf_components, write_set_digest: "zz".repeat(32) } }, /write_set_digest must be/],
    [{ ...good, leaf_components: { ...good.leaf_components, claims_digest: undefined } }, /claims_digest must be/],
    [{ ...good, leaf_components: { ...good.leaf_components, commit_evidence: "2.7" } }, /commit_evidence must look like/],
    [{ ...good, service_endorsements: "pem" }, /service_endorsements must be an array/],
    [{ ...good, service_endorsements: [42] }, /service_endorsements\[0\] must be a PEM certificate/],
  ];
  for (const [receipt, pattern] of cases) rejects(receipt, pattern);
  rejects(good, /the service certificate must be a PEM certificate/, "not a cert");
});
