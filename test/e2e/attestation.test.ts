// End-to-end: governance controls which platforms may join a real node. A join presenting real
// SEV-SNP evidence (CCF's Milan test vector) is refused for exactly the check members have not
// yet satisfied: the measurement (until add_snp_measurement), the host data (add_snp_host_data),
// the minimum TCB (set_snp_minimum_tcb_version_hex), and finally the key binding, which a real
// report made on someone else's machine can never satisfy for a key made here. The virtual
// platform can be disallowed; a deployed JS app verifies the real report with
// snp_attestation.verifySnpAttestation. GET /node/quotes and /node/attestations show evidence.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NodeProcess, tempWorkspace, type Response } from "../helpers/node-process.js";
import { GovernanceClient } from "../../src/client/index.js";
import {
  createCertificateSigningRequest, createIdentityCertificate, generateEcP384KeyPair, generateRsaEncryptionKeyPair, type KeyPairPem,
} from "../../src/crypto/index.js";
import { virtualEvidence } from "../../src/node/join.js";
import { MILAN_ENDORSEMENTS, MILAN_REPORT, fixture, flipBit } from "../helpers/snp-fixtures.js";
import { SNP_FIELD_OFFSETS } from "../../src/attestation/index.js";

const MEASUREMENT = "5feee30d6d7e1a29f403d70a4198237ddfb13051a2d6976439487c609388ed7f98189887920ab2fa0096903a0c23fca1";
const HOST_DATA = "4f4448c67f3c8dfc8de8a5e37125d807dadcc41f06cf23f615dbd52eec777d10";
const SANDBOX_HOST_DATA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const ws = tempWorkspace("coco-attestation-test-");
let node: NodeProcess;
let gov: GovernanceClient;

const APP_SOURCE = `
function fromHex(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out.buffer;
}
const toHex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
export function verify(request) {
  const { report, endorsements } = request.body.json();
  const result = snp_attestation.verifySnpAttestation(fromHex(report), ccf.strToBuf(endorsements));
  const a = result.attestation;
  return { body: { measurement: toHex(a.measurement), host_data: toHex(a.host_data), reported_tcb: a.reported_tcb, debug: a.policy.debug } };
}
`;

async function passProposal(actions: { name: string; args?: unknown }[]): Promise<void> {
  let proposal = await gov.propose({ actions });
  if (proposal.proposalState === "Open") proposal = await gov.accept(proposal.proposalId);
  assert.equal(proposal.proposalState, "Accepted", JSON.stringify(proposal));
  if (proposal.transactionId) await gov.waitForCommit(proposal.transactionId);
}

interface Joiner { keys: KeyPairPem; cert: string; body: (quoteInfo: unknown) => string }

async function newJoiner(): Promise<Joiner> {
  const keys = generateEcP384KeyPair();
  const cert = await createIdentityCertificate(keys, "CCF Node");
  const csr = await createCertificateSigningRequest(keys, {});
  const encryption = generateRsaEncryptionKeyPair();
  return {
    keys, cert,
    body: (quoteInfo) => JSON.stringify({
      node_info_network: { rpc_interfaces: { primary_rpc_interface: { bind_address: "127.0.0.1:1" } }, node_to_node_interface: { bind_address: "127.0.0.1:2" } },
      quote_info: quoteInfo, public_encryption_key: encryption.publicKeyPem, consensus_type: "CFT", certificate_signing_request: csr,
    }),
  };
}

/** Posts a join as a real joining node does: waiting out 429s (the node rate-limits joins per address). */
async function postJoin(joiner: Joiner, quoteInfo: unknown): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const response = await node.request("POST", "/node/join", { body: joiner.body(quoteInfo), identity: { cert: joiner.cert, key: joiner.keys.privateKeyPem } });
    if (response.status !== 429 || attempt === 20) return response;
    const retryAfterSeconds = Number(response.headers["retry-after"] ?? 1);
    await new Promise((resolve) => setTimeout(resolve, Math.max(1, retryAfterSeconds) * 1000));
  }
}

function assertRefused(r: Response, check: string, message: RegExp): void {
  assert.equal(r.status, 403, r.text);
  const error = r.json().error;
  assert.equal(error.code, "InvalidAttestation", r.text);
  assert.ok(error.message.startsWith(`Attestation refused (${check}):`), `expected the ${check} check to fail, got: ${error.message}`);
  assert.match(error.message, message);
}

const SNP_QUOTE_INFO = {
  format: "AMD_SEV_SNP_v1",
  quote: MILAN_REPORT.toString("base64"),
  endorsements: Buffer.from(MILAN_ENDORSEMENTS).toString("base64"),
};

before(async () => {
  node = await NodeProcess.sandbox(ws.dir);
  gov = new GovernanceClient({
    url: `https://127.0.0.1:${node.port}`,
    serviceCertPem: readFileSync(join(ws.dir, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8"),
  });
  await passProposal([{
    name: "set_js_app",
    args: {
      bundle: {
        metadata: { endpoints: { "/snp/verify": { post: { js_module: "snp.js", js_function: "verify", authn_policies: ["user_cert"], mode: "readonly", forwarding_required: "never", openapi: {} } } } },
        modules: [{ name: "snp.js", module: APP_SOURCE }],
      },
      disable_bytecode_cache: false,
    },
  }]);
});

after(async () => {
  await gov?.close();
  node?.closeAgents();
  await node?.stop();
  ws.cleanup();
});

test("GET /node/quotes, /node/attestations and their /self forms show the node's evidence and measurement", async () => {
  const virtualMeasurementHex = Buffer.from("coco-virtual-platform-v1").toString("hex");
  const quotes = (await node.request("GET", "/node/quotes", { identity: "none" })).json().quotes;
  assert.equal(quotes.length, 1);
  assert.equal(quotes[0].format, "Insecure_Virtual");
  assert.equal(quotes[0].measurement, virtualMeasurementHex);
  const attestations = (await node.request("GET", "/node/attestations", { identity: "none" })).json().attestations;
  assert.deepEqual(attestations, quotes);
  const self = await node.request("GET", "/node/attestations/self", { identity: "none" });
  assert.equal(self.status, 200, self.text);
  assert.deepEqual(self.json(), quotes[0]);
  assert.deepEqual((await node.request("GET", "/node/quotes/self", { identity: "none" })).json(), quotes[0]);
});

test("a join with real SEV-SNP evidence is refused for each check governance has not yet satisfied, in turn", async () => {
  const joiner = await newJoiner();
  assertRefused(await postJoin(joiner, SNP_QUOTE_INFO), "measurement", new RegExp(`measurement ${MEASUREMENT} .*add_snp_measurement`));
  await passProposal([{ name: "add_snp_measurement", args: { measurement: MEASUREMENT } }]);
  assertRefused(await postJoin(joiner, SNP_QUOTE_INFO), "host_data", new RegExp(`host data ${HOST_DATA} .*add_snp_host_data`));
  await passProposal([{ name: "add_snp_host_data", args: { host_data: HOST_DATA, security_policy: "" } }]);
  assertRefused(await postJoin(joiner, SNP_QUOTE_INFO), "tcb", /no minimum TCB is set for CPUID 00a00f11/);
  await passProposal([{ name: "set_snp_minimum_tcb_version_hex", args: { cpuid: "00a00f11", tcb_version: "db18000000000004" } }]);
  // The expected end state: the real report binds a key of the machine that made it, not ours.
  assertRefused(await postJoin(joiner, SNP_QUOTE_INFO), "report_data", /not the key of the TLS certificate the node presented/);
  // The corrupted report fails the hardware check before any allow list is consulted.
  const corrupted = { ...SNP_QUOTE_INFO, quote: flipBit(MILAN_REPORT, SNP_FIELD_OFFSETS.measurement).toString("base64") };
  assertRefused(await postJoin(joiner, corrupted), "signature", /not signed by the VCEK/);
  // Nothing was recorded for the refused node.
  const nodes = (await node.request("GET", "/node/network/nodes", { identity: "none" })).json().nodes as { node_id: string }[];
  assert.equal(nodes.length, 1);
});

test("a join with a real UVM endorsement is judged on it, not on the measurement allow list, and refused for the measurement it endorses", async () => {
  // No public SEV-SNP report pairs with a public UVM endorsement: CCF's real endorsement is
  // authenticated (DID:x509 issuer, signature) and refused for exactly the measurement binding,
  // even once members trust its issuer and feed.
  const joiner = await newJoiner();
  const withUvm = { ...SNP_QUOTE_INFO, uvm_endorsements: fixture("uvm/uvm_0.2.9.cose").toString("base64") };
  await passProposal([{
    name: "add_snp_uvm_endorsement",
    args: { did: "did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.2", feed: "ContainerPlat-AMD-UVM", svn: "100" },
  }]);
  assertRefused(await postJoin(joiner, withUvm), "uvm_endorsements", /endorsed launch measurement d0c9e2be.* is not the report's measurement 5feee30d/);
  const corrupted = Buffer.from(fixture("uvm/uvm_0.2.9.cose"));
  corrupted[corrupted.length - 10] ^= 1;
  assertRefused(await postJoin(joiner, { ...withUvm, uvm_endorsements: corrupted.toString("base64") }), "uvm_endorsements", /COSE signature is not by the key of issuer/);
});

test("a TDX join is verified with its collateral at the node's clock: the real sample's collateral (valid to 2025-07-19) is refused as expired", async () => {
  // The closest honest substitute for a TDX join that reaches governance: Intel's collateral for
  // the only public TDX quote expired in 2025, and the node judges it at its own clock. The
  // allow-list and key-binding stages are shown at the same handleJoin with the clock at
  // 2025-06-20 in test/unit/node/join-tdx.test.ts.
  const joiner = await newJoiner();
  const tdx = { format: "Intel_TDX_v1", quote: fixture("tdx/tdx-quote.bin").toString("base64"), endorsements: fixture("tdx/tdx-quote-collateral.json").toString("base64") };
  assertRefused(await postJoin(joiner, tdx), "quote", /expired/);
  await passProposal([{ name: "add_tdx_measurement", args: { measurement: "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7" } }]);
  // Allowing the MRTD does not let unverifiable evidence in: verification comes first.
  assertRefused(await postJoin(joiner, tdx), "quote", /expired/);
});

test("members can disallow the virtual platform: a virtual node is accepted as Pending before, refused after", async () => {
  const before = await newJoiner();
  const pending = await postJoin(before, virtualEvidence(before.keys.publicKeyPem, SANDBOX_HOST_DATA));
  assert.equal(pending.status, 200, pending.text);
  assert.equal(pending.json().node_status, "Pending");
  await passProposal([{ name: "remove_virtual_measurement", args: { measurement: "coco-virtual-platform-v1" } }]);
  const after = await newJoiner();
  const refused = await postJoin(after, virtualEvidence(after.keys.publicKeyPem, SANDBOX_HOST_DATA));
  assert.equal(refused.status, 403, refused.text);
  assert.match(refused.json().error.message, /Measurement 'coco-virtual-platform-v1' is not trusted/);
});

test("snp_attestation.verifySnpAttestation in a deployed JS app returns the real report's measurement, and throws on a corrupted one", async () => {
  const ok = await node.request("POST", "/app/snp/verify", { body: JSON.stringify({ report: MILAN_REPORT.toString("hex"), endorsements: MILAN_ENDORSEMENTS }) });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.json(), { measurement: MEASUREMENT, host_data: HOST_DATA, reported_tcb: "db18000000000004", debug: 0 });
  const corrupted = flipBit(MILAN_REPORT, SNP_FIELD_OFFSETS.reportData);
  const bad = await node.request("POST", "/app/snp/verify", { body: JSON.stringify({ report: corrupted.toString("hex"), endorsements: MILAN_ENDORSEMENTS }) });
  assert.equal(bad.status, 500, bad.text);
  assert.match(bad.json().error.message, /RangeError: Attestation refused \(signature\)|Attestation refused \(signature\)/);
});
