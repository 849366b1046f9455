// Member COSE Sign1 authentication for governance requests: the shape CCF's ccf_cose_sign1 tool
// produces, and each rejection CCF's member_cose_sign1 policy and proposal endpoints make.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { Encoder, Tag } from "cbor-x";
import {
  certificateFingerprint,
  createIdentityCertificate,
  generateEcP384KeyPair,
  coseSign1ToBeSigned,
  parseCoseSign1,
  signCoseSign1,
} from "../../../src/crypto/index.js";
import {
  authenticateMemberCose,
  coseRecentProposalKey,
  signGovernanceRequest,
  type MemberCoseAuthOptions,
  type SignGovernanceRequestArgs,
} from "../../../src/governance/cose-auth.js";
import { CocoError } from "../../../src/util/errors.js";

const cbor = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });
const encode = (value: unknown): Buffer => Buffer.from(cbor.encode(value));

const member0Keys = generateEcP384KeyPair();
const member0Cert = await createIdentityCertificate(member0Keys, "member0");
const member0 = certificateFingerprint(member0Cert);
const member1Keys = generateEcP384KeyPair();
const member1Cert = await createIdentityCertificate(member1Keys, "member1");
const member1 = certificateFingerprint(member1Cert);
const certs = new Map([[member0, member0Cert], [member1, member1Cert]]);

const NOW = 1_720_000_000;
const PROPOSAL_ID = "a".repeat(64);
const proposal = '{"actions":[{"name":"set_constitution","args":{}}]}';

function request(extra: Partial<SignGovernanceRequestArgs> = {}): Buffer {
  return signGovernanceRequest({ memberCertPem: member0Cert, memberKeyPem: member0Keys.privateKeyPem, msgType: "proposal", createdAt: NOW, payload: proposal, ...extra });
}

function options(extra: Partial<MemberCoseAuthOptions> = {}): MemberCoseAuthOptions {
  return { lookupMemberCert: (id) => certs.get(id), expectedMsgType: "proposal", ...extra };
}

function rejects(body: Buffer, opts: MemberCoseAuthOptions, code: string, status: number, message: RegExp): void {
  assert.throws(() => authenticateMemberCose(body, opts), (e: unknown) => {
    assert.ok(e instanceof CocoError, String(e));
    assert.equal(e.code, code);
    assert.equal(e.status, status);
    assert.match(e.message, message);
    return true;
  });
}

/** A member-signed message with arbitrary protected headers (kid set as CCF does). */
function signedWith(headers: Map<number | string, unknown>, kid: Uint8Array | string | null = member0): Buffer {
  return signCoseSign1({ privateKeyPem: member0Keys.privateKeyPem, protectedHeaders: headers, payload: Buffer.from(proposal), ...(kid === null ? {} : { kid }) });
}

test("a signed proposal authenticates as its member with the signed headers and payload", () => {
  const body = request();
  const identity = authenticateMemberCose(body, options({ contentType: "application/cose" }));
  assert.equal(identity.memberId, member0);
  assert.equal(identity.memberCertPem, member0Cert);
  assert.equal(identity.msgType, "proposal");
  assert.equal(identity.createdAt, NOW);
  assert.equal(identity.proposalId, undefined);
  assert.equal(identity.payload.toString(), proposal);
  assert.deepEqual(identity.envelope, body);
  // What was signed (Sig_structure), not the signature: see cose-malleability.test.ts.
  const parsed = parseCoseSign1(body);
  const digest = createHash("sha256").update(coseSign1ToBeSigned(parsed.protectedRaw, parsed.payload!)).digest();
  assert.deepEqual(identity.requestDigest, digest);
  assert.equal(identity.replayKey, `${NOW}:${digest.toString("hex")}`);
});

test("the request carries CCF's header labels and types: kid is the member id as bytes", () => {
  const parsed = parseCoseSign1(request({ msgType: "ballot", proposalId: PROPOSAL_ID }));
  assert.deepEqual([...parsed.protectedHeaders.keys()], [1, 4, "ccf.gov.msg.type", "ccf.gov.msg.created_at", "ccf.gov.msg.proposal_id"]);
  assert.equal(parsed.protectedHeaders.get(1), -35);
  assert.deepEqual(parsed.protectedHeaders.get(4), Buffer.from(member0, "ascii"));
  assert.equal(parsed.protectedHeaders.get("ccf.gov.msg.type"), "ballot");
  assert.equal(parsed.protectedHeaders.get("ccf.gov.msg.created_at"), NOW);
  assert.equal(parsed.protectedHeaders.get("ccf.gov.msg.proposal_id"), PROPOSAL_ID);
  assert.equal(parsed.unprotectedHeaders.size, 0);
});

test("a ballot authenticates when its signed proposal id matches the URL", () => {
  const identity = authenticateMemberCose(request({ msgType: "ballot", proposalId: PROPOSAL_ID }), options({ expectedMsgType: "ballot", expectedProposalId: PROPOSAL_ID }));
  assert.equal(identity.proposalId, PROPOSAL_ID);
});

test("an endpoint may accept several message types", () => {
  const identity = authenticateMemberCose(request({ msgType: "ack" }), options({ expectedMsgType: ["ack", "state_digest"] }));
  assert.equal(identity.msgType, "ack");
});

test("a tampered payload is rejected as a bad signature", () => {
  const parsed = parseCoseSign1(request());
  const tampered = encode(new Tag([parsed.protectedRaw, new Map(), Buffer.from('{"actions":[]}'), parsed.signature], 18));
  rejects(tampered, options(), "InvalidAuthenticationInfo", 401, /^Failed to validate COSE Sign1$/);
});

test("a tampered protected header is rejected as a bad signature", () => {
  const parsed = parseCoseSign1(request());
  const headers = new Map(parsed.protectedHeaders);
  headers.set("ccf.gov.msg.created_at", NOW + 1);
  const tampered = encode(new Tag([encode(headers), new Map(), parsed.payload, parsed.signature], 18));
  rejects(tampered, options(), "InvalidAuthenticationInfo", 401, /^Failed to validate COSE Sign1$/);
});

test("a tampered signature is rejected", () => {
  const parsed = parseCoseSign1(request());
  const signature = Buffer.from(parsed.signature);
  signature[0]! ^= 1;
  const tampered = encode(new Tag([parsed.protectedRaw, new Map(), parsed.payload, signature], 18));
  rejects(tampered, options(), "InvalidAuthenticationInfo", 401, /^Failed to validate COSE Sign1$/);
});

test("a kid naming another member than the signer is rejected", () => {
  const body = signedWith(new Map<string, unknown>([["ccf.gov.msg.type", "proposal"], ["ccf.gov.msg.created_at", NOW]]), member1);
  rejects(body, options(), "InvalidAuthenticationInfo", 401, /^Failed to validate COSE Sign1$/);
});

test("a signer who is not a member is rejected", () => {
  const strangerKeys = generateEcP384KeyPair();
  const body = signGovernanceRequest({ memberCertPem: member0Cert, memberKeyPem: strangerKeys.privateKeyPem, msgType: "proposal", createdAt: NOW, payload: proposal });
  rejects(body, options({ lookupMemberCert: () => undefined }), "InvalidAuthenticationInfo", 401, /^Signer is not a known member$/);
  rejects(body, options(), "InvalidAuthenticationInfo", 401, /^Failed to validate COSE Sign1$/);
});

test("a wrong or missing message type is rejected with CCF's wording", () => {
  rejects(request({ msgType: "ballot", proposalId: PROPOSAL_ID }), options(), "InvalidAuthenticationInfo", 401,
    /^Found ccf\.gov\.msg\.type set to ballot, expected ccf\.gov\.msg\.type to be proposal$/);
  const untyped = signedWith(new Map([["ccf.gov.msg.created_at", NOW]]));
  rejects(untyped, options(), "InvalidAuthenticationInfo", 401, /^Missing ccf\.gov\.msg\.type, expected ccf\.gov\.msg\.type to be proposal$/);
});

test("a wrong or missing proposal id is rejected", () => {
  const opts = options({ expectedMsgType: "withdrawal", expectedProposalId: PROPOSAL_ID });
  rejects(request({ msgType: "withdrawal", proposalId: "b".repeat(64) }), opts, "InvalidResourceName", 400, /^Authenticated proposal id does not match URL$/);
  const noId = signedWith(new Map<string, unknown>([["ccf.gov.msg.type", "withdrawal"], ["ccf.gov.msg.created_at", NOW]]));
  rejects(noId, opts, "InvalidResourceName", 400, /does not match URL/);
});

test("with a clock, created_at too old or too far in the future is rejected", () => {
  const clock = { nowSeconds: NOW, maxAgeSeconds: 300, maxFutureSeconds: 60 };
  assert.equal(authenticateMemberCose(request({ createdAt: NOW - 300 }), options(clock)).createdAt, NOW - 300);
  assert.equal(authenticateMemberCose(request({ createdAt: NOW + 60 }), options(clock)).createdAt, NOW + 60);
  rejects(request({ createdAt: NOW - 301 }), options(clock), "InvalidCreatedAt", 400, /in the past/);
  rejects(request({ createdAt: NOW + 61 }), options(clock), "InvalidCreatedAt", 400, /in the future/);
});

test("without a clock, as in CCF, any created_at in range is accepted", () => {
  assert.equal(authenticateMemberCose(request({ createdAt: 0 }), options()).createdAt, 0);
});

test("created_at must be present, a non-negative integer and at most 10 digits", () => {
  rejects(signedWith(new Map([["ccf.gov.msg.type", "proposal"]])), options(), "InvalidCoseSign1", 400, /Missing ccf\.gov\.msg\.created_at/);
  const withCreatedAt = (value: unknown) => signedWith(new Map<string, unknown>([["ccf.gov.msg.type", "proposal"], ["ccf.gov.msg.created_at", value]]));
  rejects(withCreatedAt(-1), options(), "InvalidCoseSign1", 400, /non-negative/);
  rejects(withCreatedAt(1.5), options(), "InvalidCoseSign1", 400, /must be an integer/);
  rejects(withCreatedAt("2024-07-01T00:00:00Z"), options(), "InvalidCoseSign1", 400, /must be an integer/);
  rejects(withCreatedAt(10_000_000_000), options(), "InvalidCreatedAt", 400, /^Header parameter created_at value is too large$/);
  rejects(withCreatedAt(2n ** 64n - 1n), options(), "InvalidCreatedAt", 400, /too large/);
});

test("kid must be present and a byte string, as CCF reads it", () => {
  const headers = new Map<string, unknown>([["ccf.gov.msg.type", "proposal"], ["ccf.gov.msg.created_at", NOW]]);
  rejects(signedWith(headers, null), options(), "InvalidCoseSign1", 400, /Missing kid/);
  const textKid = signedWith(new Map<number | string, unknown>([...headers, [4, member0]]), null);
  rejects(textKid, options(), "InvalidCoseSign1", 400, /kid \(label 4\) must be a byte string/);
});

test("message type and proposal id must be text when present", () => {
  rejects(signedWith(new Map<string, unknown>([["ccf.gov.msg.type", 1], ["ccf.gov.msg.created_at", NOW]])), options(), "InvalidCoseSign1", 400, /ccf\.gov\.msg\.type must be a text string/);
});

test("a non-ECDSA algorithm is rejected with CCF's wording", () => {
  const protectedRaw = encode(new Map<number | string, unknown>([[1, -37], [4, Buffer.from(member0)], ["ccf.gov.msg.type", "proposal"], ["ccf.gov.msg.created_at", NOW]]));
  const body = encode(new Tag([protectedRaw, new Map(), Buffer.from(proposal), Buffer.alloc(256)], 18));
  rejects(body, options(), "InvalidAuthenticationInfo", 401, /^Unsupported algorithm: -37$/);
});

test("a wrong content type is rejected", () => {
  rejects(request(), options({ contentType: "application/json" }), "InvalidAuthenticationInfo", 401, /^Content type is not set to application\/cose$/);
});

test("the replay hook sees CCF's recent-proposals key and can reject a resubmission", () => {
  const seen = new Set<string>();
  const opts = options({ isReplay: (key) => seen.has(key) });
  const body = request();
  const first = authenticateMemberCose(body, opts);
  seen.add(first.replayKey);
  rejects(body, opts, "ProposalReplay", 400, /replay/);
  // Signing the same request again (same created_at) gives another signature but the same key:
  // the key hashes what was signed. A later created_at makes it a new request.
  rejects(request(), opts, "ProposalReplay", 400, new RegExp(first.replayKey));
  assert.notEqual(authenticateMemberCose(request({ createdAt: NOW + 1 }), opts).replayKey, first.replayKey);
});

test("recent-proposals keys pad created_at to 10 digits so they sort as text", () => {
  assert.equal(coseRecentProposalKey(42, Buffer.of(0xab, 0x01)), "0000000042:ab01");
  assert.ok(coseRecentProposalKey(999_999_999, Buffer.of(0)) < coseRecentProposalKey(1_000_000_000, Buffer.of(0)));
});

test("signGovernanceRequest refuses requests CCF's tooling would refuse", () => {
  assert.throws(() => request({ msgType: "ballot" }), /requires a proposal id/);
  assert.throws(() => request({ createdAt: 1.5 }), /createdAt/);
  assert.throws(() => request({ createdAt: -1 }), /createdAt/);
  assert.throws(() => request({ msgType: "vote" as never }), /Unknown governance message type/);
});

test("random bodies only ever produce 400 InvalidCoseSign1", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        authenticateMemberCose(Buffer.from(bytes), options());
        assert.fail("random bytes authenticated");
      } catch (e) {
        assert.ok(e instanceof CocoError && e.code === "InvalidCoseSign1" && e.status === 400, String(e));
      }
    }),
    { numRuns: 1000 },
  );
});
