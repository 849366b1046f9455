// End-to-end attacks on governance request signatures, against a real node: a proposal
// re-sent with its ECDSA signature malleated (s -> n - s) or its envelope re-encoded must not
// become a second proposal, and a proposal signed far from the node's clock is refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Encoder, Tag } from "cbor-x";
import { p384 } from "@noble/curves/nist.js";
import { Network } from "../helpers/network.js";
import { tempWorkspace, type NodeProcess } from "../helpers/node-process.js";
import { parseCoseSign1 } from "../../src/crypto/index.js";
import { signGovernanceRequest } from "../../src/governance/cose-auth.js";

const ws = tempWorkspace("coco-gov-replay-");
const CREATE = "/gov/members/proposals:create?api-version=2024-07-01";
const cbor = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });
let network: Network;
let node: NodeProcess;
let member: { cert: string; key: string };

before(async () => {
  network = await Network.start(ws.dir, 1, { coco: { durability: "none", governance: { created_at_max_age: "300s", created_at_max_future: "60s" } } });
  node = network.nodes[0]!.process!;
  const m = network.member(network.nodes[0]!);
  member = { cert: m.memberCertPem, key: m.memberKeyPem };
});

after(async () => {
  await network?.stop();
  ws.cleanup();
});

function signProposal(createdAt: number, marker: string): Buffer {
  // Stays Open (the member must still vote); the marker tells the test's proposals apart.
  const payload = JSON.stringify({ actions: [{ name: "trigger_snapshot" }], marker });
  return signGovernanceRequest({ memberCertPem: member.cert, memberKeyPem: member.key, msgType: "proposal", createdAt, payload });
}

function malleateS(body: Buffer): Buffer {
  const parsed = parseCoseSign1(body);
  const half = parsed.signature.length / 2;
  const s = BigInt(`0x${parsed.signature.subarray(half).toString("hex")}`);
  const twin = (p384.Point.CURVE().n - s).toString(16).padStart(half * 2, "0");
  const signature = Buffer.concat([parsed.signature.subarray(0, half), Buffer.from(twin, "hex")]);
  return Buffer.from(cbor.encode(new Tag([parsed.protectedRaw, parsed.unprotectedHeaders, parsed.payload, signature], 18)));
}

function withUnprotectedHeader(body: Buffer): Buffer {
  const parsed = parseCoseSign1(body);
  return Buffer.from(cbor.encode(new Tag([parsed.protectedRaw, new Map([["x-attacker", "again"]]), parsed.payload, parsed.signature], 18)));
}

async function proposalsWith(marker: string): Promise<string[]> {
  const r = await node.request("GET", "/gov/members/proposals?api-version=2024-07-01", { identity: "none" });
  assert.equal(r.status, 200, r.text);
  const ids: string[] = [];
  for (const p of r.json().value as { proposalId: string }[]) {
    const actions = await node.request("GET", `/gov/members/proposals/${p.proposalId}/actions?api-version=2024-07-01`, { identity: "none" });
    if (actions.text.includes(marker)) ids.push(p.proposalId);
  }
  return ids;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

test("a proposal re-sent with its signature malleated (s := n - s) is refused and creates no second proposal", async () => {
  const body = signProposal(nowSeconds(), "malleated");
  const first = await node.postCose(CREATE, body);
  assert.equal(first.status, 200, first.text);
  const twin = malleateS(body);
  assert.notDeepEqual(twin, body);
  const second = await node.postCose(CREATE, twin);
  assert.ok(second.status >= 400 && second.status < 500, `the malleated copy must be refused: ${second.status} ${second.text}`);
  assert.equal(second.json().error.code, "InvalidAuthenticationInfo");
  assert.match(second.json().error.message, /low-S/);
  assert.deepEqual(await proposalsWith("malleated"), [first.json().proposalId]);
});

test("a proposal re-sent with an extra unprotected header is a replay, not a new proposal", async () => {
  const body = signProposal(nowSeconds(), "reencoded");
  const first = await node.postCose(CREATE, body);
  assert.equal(first.status, 200, first.text);
  const again = await node.postCose(CREATE, withUnprotectedHeader(body));
  assert.equal(again.status, 400, again.text);
  assert.equal(again.json().error.code, "ProposalReplay");
  assert.deepEqual(await proposalsWith("reencoded"), [first.json().proposalId]);
});

test("a proposal signed again by the member with the same created_at (another ECDSA nonce) is a replay", async () => {
  const createdAt = nowSeconds();
  const first = await node.postCose(CREATE, signProposal(createdAt, "resigned"));
  assert.equal(first.status, 200, first.text);
  const again = await node.postCose(CREATE, signProposal(createdAt, "resigned"));
  assert.equal(again.status, 400, again.text);
  assert.equal(again.json().error.code, "ProposalReplay");
  assert.deepEqual(await proposalsWith("resigned"), [first.json().proposalId]);
});

test("proposals whose created_at is far in the past or the future are refused with InvalidCreatedAt", async () => {
  for (const [offset, wording] of [[-3_600, /in the past/], [+3_600, /in the future/]] as const) {
    const r = await node.postCose(CREATE, signProposal(nowSeconds() + offset, `clock${offset}`));
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().error.code, "InvalidCreatedAt");
    assert.match(r.json().error.message, wording);
    assert.deepEqual(await proposalsWith(`clock${offset}`), []);
  }
  // Inside the window is accepted: a signer whose clock runs a little ahead. (A little behind
  // runs into CCF's median rule once newer proposals exist: ProposalCreatedTooLongAgo.)
  for (const offset of [0, +30]) {
    const r = await node.postCose(CREATE, signProposal(nowSeconds() + offset, `skew${offset}`));
    assert.equal(r.status, 200, r.text);
  }
});
