// The page's governance signing (src/explorer/static/cose.js, WebCrypto): what it signs the node
// accepts as the member's, with the same protected header bytes as the node's own signer, always
// low-S, from PKCS#8 and SEC1 keys; a key that is not the certificate's is refused before signing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import fc from "fast-check";
import { Encoder } from "cbor-x";
import { certificateFingerprint, createIdentityCertificate, generateEcP384KeyPair, isLowSCoseSignature, parseCoseSign1 } from "../../../src/crypto/index.js";
import { authenticateMemberCose, signGovernanceRequest } from "../../../src/governance/cose-auth.js";
import { staticModule } from "./static-modules.js";

const cose = await staticModule("cose.js");
const cbor = await staticModule("cbor.js");

const keys = generateEcP384KeyPair();
const certPem = await createIdentityCertificate(keys, "member0");
const memberId = certificateFingerprint(certPem);
const NOW = 1_765_000_000;
const PROPOSAL_ID = "b".repeat(64);

function authenticate(body: Uint8Array, msgType: string, proposalId?: string) {
  return authenticateMemberCose(body, {
    lookupMemberCert: (id) => (id === memberId ? certPem : undefined),
    expectedMsgType: msgType,
    ...(proposalId === undefined ? {} : { expectedProposalId: proposalId }),
    nowSeconds: NOW,
  });
}

test("a proposal signed in the page is authenticated by the node as the member's", async () => {
  const identity = await cose.importMemberIdentity(certPem, keys.privateKeyPem);
  assert.equal(identity.memberId, memberId);
  const payload = '{"actions":[{"name":"set_member_data","args":{}}]}';
  const body = await cose.signGovernanceRequest(identity, { msgType: "proposal", createdAt: NOW, payload });
  const verified = authenticate(body, "proposal");
  assert.equal(verified.memberId, memberId);
  assert.equal(verified.createdAt, NOW);
  assert.equal(verified.payload.toString("utf8"), payload);
});

test("a ballot signed in the page carries the proposal id the node checks against the URL", async () => {
  const identity = await cose.importMemberIdentity(certPem, keys.privateKeyPem);
  const body = await cose.signGovernanceRequest(identity, { msgType: "ballot", createdAt: NOW, proposalId: PROPOSAL_ID, payload: '{"ballot":"export function vote() { return true; }"}' });
  assert.equal(authenticate(body, "ballot", PROPOSAL_ID).proposalId, PROPOSAL_ID);
  assert.throws(() => authenticate(body, "ballot", "c".repeat(64)), /Authenticated proposal id does not match URL/);
  await assert.rejects(cose.signGovernanceRequest(identity, { msgType: "ballot", createdAt: NOW, payload: "{}" }), /must name its proposal/);
});

test("the page's protected headers are byte for byte the node signer's", async () => {
  const identity = await cose.importMemberIdentity(certPem, keys.privateKeyPem);
  for (const [msgType, proposalId] of [["proposal", undefined], ["ballot", PROPOSAL_ID], ["withdrawal", PROPOSAL_ID]] as const) {
    const args = { msgType, createdAt: NOW, payload: "{}", ...(proposalId === undefined ? {} : { proposalId }) };
    const fromPage = parseCoseSign1(await cose.signGovernanceRequest(identity, args));
    const fromNode = parseCoseSign1(signGovernanceRequest({ ...args, memberCertPem: certPem, memberKeyPem: keys.privateKeyPem }));
    assert.deepEqual(fromPage.protectedRaw, fromNode.protectedRaw, msgType);
    assert.deepEqual(fromPage.unprotectedHeaders, fromNode.unprotectedHeaders);
  }
});

test("every signature the page sends is low-S (WebCrypto returns high-S about half the time)", async () => {
  const identity = await cose.importMemberIdentity(certPem, keys.privateKeyPem);
  // 24 signatures: without normalisation, all low-S by chance has probability 2^-24.
  for (let i = 0; i < 24; i++) {
    const body = await cose.signGovernanceRequest(identity, { msgType: "proposal", createdAt: NOW + i, payload: `{"n":${i}}` });
    assert.ok(isLowSCoseSignature(parseCoseSign1(body)), `signature ${i} is high-S`);
    authenticate(body, "proposal");
  }
});

test("lowS replaces s by n - s only when s is above n/2", async () => {
  const n = 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n;
  const raw = (r: bigint, s: bigint) => Buffer.from(r.toString(16).padStart(96, "0") + s.toString(16).padStart(96, "0"), "hex");
  assert.deepEqual(Buffer.from(cose.lowS(raw(5n, n / 2n), n)), raw(5n, n / 2n));
  assert.deepEqual(Buffer.from(cose.lowS(raw(5n, n / 2n + 1n), n)), raw(5n, n - (n / 2n + 1n)));
  assert.deepEqual(Buffer.from(cose.lowS(raw(5n, n - 1n), n)), raw(5n, 1n));
});

test("a SEC1 'EC PRIVATE KEY' (openssl ecparam, CCF's keygenerator.sh) signs as well as PKCS#8", async () => {
  const sec1Pem = createPrivateKey(keys.privateKeyPem).export({ type: "sec1", format: "pem" }).toString();
  assert.match(sec1Pem, /BEGIN EC PRIVATE KEY/);
  const identity = await cose.importMemberIdentity(certPem, sec1Pem);
  authenticate(await cose.signGovernanceRequest(identity, { msgType: "proposal", createdAt: NOW, payload: "{}" }), "proposal");
});

test("a private key that is not the certificate's is refused before anything is signed", async () => {
  const other = generateEcP384KeyPair();
  await assert.rejects(cose.importMemberIdentity(certPem, other.privateKeyPem), /does not belong to the certificate/);
  await assert.rejects(cose.importMemberIdentity(certPem, "not a key"), /expected a PEM private key/);
});

// Integers up to 32 bits: beyond, cbor-x writes floats; a created_at fits until the year 2106.
test("the page's CBOR encoder writes what cbor-x writes for the values a request holds", () => {
  const reference = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false, pack: false });
  const value = fc.letrec((tie) => ({
    item: fc.oneof({ depthSize: "small" },
      fc.bigInt({ min: -(2n ** 32n), max: 2n ** 32n - 1n }).map(Number), fc.integer({ min: -30, max: 30 }), fc.string(), fc.uint8Array({ maxLength: 300 }),
      fc.constant(null), fc.array(tie("item"), { maxLength: 4 }),
      fc.uniqueArray(fc.tuple(fc.oneof(fc.integer({ min: -100, max: 100 }), fc.string()), tie("item")), { maxLength: 4, selector: ([k]) => k })
        .map((entries) => new Map(entries))),
  })).item;
  fc.assert(fc.property(value, (v) => {
    assert.deepEqual(Buffer.from(cbor.encodeCbor(v)), Buffer.from(reference.encode(v)));
  }), { numRuns: 500 });
});
