// The page's receipt check (src/explorer/static/receipt.js: WebCrypto, and @noble/curves for
// the prehashed root signature) agrees with the client SDK's (src/client/receipt.ts): genuine
// receipts verify with the same root, and each kind of tampering is refused by both.
import { test } from "node:test";
import assert from "node:assert/strict";
import { p384 } from "@noble/curves/nist.js";
import fc from "fast-check";
import {
  createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey, sha256, signDigest, type KeyPairPem,
} from "../../../src/crypto/index.js";
import { MerkleTree } from "../../../src/merkle/index.js";
import { computeLeaf, verifyReceipt as verifyInNode, type CcfReceipt } from "../../../src/client/index.js";
import { staticModule } from "./static-modules.js";

const { verifyReceipt: verifyInPage } = await staticModule("receipt.js");
/** What transactions.js passes in the browser. */
const verifyPrehashed = (point: Uint8Array, digest: Uint8Array, der: Uint8Array) =>
  p384.verify(der, digest, point, { prehash: false, format: "der", lowS: false });

const serviceKeys = generateEcP384KeyPair();
const serviceCertPem = await createServiceCertificate(serviceKeys);
const nodeKeys = generateEcP384KeyPair();
const nodeCertPem = await createNodeCertificate({ nodePublicKeyPem: nodeKeys.publicKeyPem, serviceKeys, serviceCertPem });

function components(seqno: number) {
  return {
    write_set_digest: sha256(Buffer.from(`write set ${seqno}`)).toString("hex"),
    commit_evidence: `ce:3.${seqno}:${sha256(Buffer.from(`secret ${seqno}`)).toString("hex")}`,
    claims_digest: sha256(Buffer.from(`claims ${seqno}`)).toString("hex"),
  };
}

function makeReceipt(seqno: number, keys: KeyPairPem = nodeKeys, certPem = nodeCertPem): CcfReceipt {
  const tree = new MerkleTree();
  const all = Array.from({ length: 13 }, (_, i) => components(i + 1));
  for (const c of all) tree.append(computeLeaf(c));
  const root = tree.root();
  return JSON.parse(JSON.stringify({
    cert: certPem,
    node_id: nodeIdFromPublicKey(keys.publicKeyPem),
    signature: signDigest(keys.privateKeyPem, root).toString("base64"),
    proof: tree.path(seqno - 1).map((step) => ("left" in step ? { left: step.left.toString("hex") } : { right: step.right.toString("hex") })),
    leaf_components: all[seqno - 1]!,
  })) as CcfReceipt;
}

async function pageVerdict(receipt: unknown, service = serviceCertPem): Promise<string> {
  try {
    const result = await verifyInPage(receipt, service, verifyPrehashed);
    return `ok ${result.root}`;
  } catch (error) {
    assert.equal((error as Error).name, "InvalidReceipt");
    return `invalid: ${(error as Error).message}`;
  }
}

function nodeVerdict(receipt: unknown, service = serviceCertPem): string {
  try {
    return `ok ${verifyInNode(receipt as CcfReceipt, service).root.toString("hex")}`;
  } catch {
    return "invalid";
  }
}

test("a genuine receipt verifies in the page with the root and transaction id the SDK finds", async () => {
  for (const seqno of [1, 6, 13]) {
    const receipt = makeReceipt(seqno);
    const result = await verifyInPage(receipt, serviceCertPem, verifyPrehashed);
    assert.equal(result.transactionId, `3.${seqno}`);
    assert.equal(`ok ${result.root}`, nodeVerdict(receipt));
    assert.equal(result.nodeId, receipt.node_id);
  }
});

test("a receipt signed by a node the service did not endorse is refused", async () => {
  const strangerKeys = generateEcP384KeyPair();
  const strangerServiceKeys = generateEcP384KeyPair();
  const strangerService = await createServiceCertificate(strangerServiceKeys);
  const strangerCert = await createNodeCertificate({ nodePublicKeyPem: strangerKeys.publicKeyPem, serviceKeys: strangerServiceKeys, serviceCertPem: strangerService });
  assert.match(await pageVerdict(makeReceipt(4, strangerKeys, strangerCert)), /the node certificate \(cert\) is not endorsed by the service certificate/);
  // ...and against the wrong service certificate, a genuine receipt is refused too.
  assert.match(await pageVerdict(makeReceipt(4), strangerService), /not endorsed by the service certificate/);
});

test("a signature over another root is refused", async () => {
  const receipt = makeReceipt(5);
  receipt.signature = signDigest(nodeKeys.privateKeyPem, sha256(Buffer.from("another root"))).toString("base64");
  assert.match(await pageVerdict(receipt), /signature does not verify over the root/);
});

test("any one changed character of a receipt is refused by the page exactly when the SDK refuses it", async () => {
  const genuine = makeReceipt(9);
  const fields = [
    (r: any) => ["leaf_components", "write_set_digest", r.leaf_components.write_set_digest],
    (r: any) => ["leaf_components", "claims_digest", r.leaf_components.claims_digest],
    (r: any) => ["leaf_components", "commit_evidence", r.leaf_components.commit_evidence],
    (r: any) => ["node_id", undefined, r.node_id],
    (r: any) => ["signature", undefined, r.signature],
  ] as const;
  await fc.assert(fc.asyncProperty(fc.nat({ max: fields.length + genuine.proof.length - 1 }), fc.nat(), fc.constantFrom(..."0123456789abcdefAZ+/"), async (which, position, replacement) => {
    const receipt = JSON.parse(JSON.stringify(genuine));
    let target: any;
    let key: string;
    if (which < fields.length) {
      const [outer, inner] = fields[which]!(receipt);
      target = inner === undefined ? receipt : receipt[outer];
      key = inner ?? outer;
    } else {
      target = receipt.proof[which - fields.length];
      key = Object.keys(target)[0]!;
    }
    const value = target[key] as string;
    const at = position % value.length;
    target[key] = value.slice(0, at) + replacement + value.slice(at + 1);
    const page = await pageVerdict(receipt);
    const node = nodeVerdict(receipt);
    assert.equal(page.startsWith("ok"), node.startsWith("ok"), `page: ${page}; sdk: ${node}`);
    if (target[key] !== value && key !== "signature") assert.ok(!page.startsWith("ok") || value.toLowerCase() === target[key].toLowerCase(), `a change of ${key} was accepted`);
  }), { numRuns: 60 });
});

test("malformed receipts are refused with the field that is wrong", async () => {
  const genuine = makeReceipt(2);
  assert.match(await pageVerdict(null), /must be a JSON object/);
  assert.match(await pageVerdict({ ...genuine, cert: "nope" }), /cert must be a PEM certificate/);
  assert.match(await pageVerdict({ ...genuine, proof: [{ up: "00" }] }), /proof\[0\] must be an object with exactly one of/);
  assert.match(await pageVerdict({ ...genuine, signature: "***" }), /signature must be non-empty standard base64/);
  assert.match(await pageVerdict({ ...genuine, leaf_components: { ...genuine.leaf_components, commit_evidence: "2.3" } }), /commit_evidence must look like/);
});
