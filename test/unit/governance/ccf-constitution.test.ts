// CCF's own default constitution (6.0 LTS, vendored unchanged in test/fixtures/ccf-constitution-6.x)
// set through the governance layer with `set_constitution`, then every action it defines proposed,
// voted and applied through /gov, with its effect on CCF's tables checked. The list of actions
// is read from the vendored file, so an action this test does not exercise fails it.
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import {
  createCertificateSigningRequest, createIdentityCertificate, createServiceCertificate, endorseCertificateSigningRequestSync,
  generateEcP384KeyPair, isCertificateIssuedBy, nodeIdFromPublicKey, renewServiceCertificateSync, type KeyPairPem,
} from "../../../src/crypto/index.js";
import { defaultConstitutionSource, loadConstitutionFiles } from "../../../src/governance/constitution.js";
import { SINGLETON_KEY, TABLES } from "../../../src/governance/index.js";
import type { NodeHooks } from "../../../src/js/index.js";
import { GovHarness, makeIdentity, NODE_ID, YES, type Identity } from "./harness.js";

const FIXTURE = join(process.cwd(), "test", "fixtures", "ccf-constitution-6.x");
/** CCF's order (actions first); any order works, the module's functions only run later. */
const CCF_CONSTITUTION = loadConstitutionFiles(["actions.js", "validate.js", "resolve.js", "apply.js"].map((f) => join(FIXTURE, f)));

/** The action names in CCF's `actions` map, in file order. */
function ccfActionNames(): string[] {
  const source = readFileSync(join(FIXTURE, "actions.js"), "utf8");
  return [...source.matchAll(/^ {2}\[\n {4}"([a-z0-9_]+)",\n {4}new Action\(/gm)].map((m) => m[1]!);
}

const text = (b: Buffer | undefined) => b?.toString("utf8");
const json = (b: Buffer | undefined): any => (b === undefined ? undefined : JSON.parse(b.toString("utf8")));

interface Fixture {
  gov: GovHarness;
  member: Identity;
  calls: Array<[string, unknown[]]>;
  serviceKeys: KeyPairPem;
  serviceCert: string;
  pendingNodeId: string;
}

let fx: Fixture;
let userCert = "";
let newMemberCert = "";
let caBundle = "";
const encryptionKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }) as string;

/** Runs one action through proposals:create and a yes ballot; returns the final proposal state. */
function pass(name: string, args?: unknown): { state: string; failure?: string } {
  const action = args === undefined ? { name } : { name, args };
  const created = fx.gov.propose(fx.member, [action]);
  assert.equal(created.status, 200, `${name}: ${created.text}`);
  const id = created.json.proposalId as string;
  const voted = fx.gov.vote(fx.member, id, YES);
  assert.equal(voted.status, 200, `${name}: ${voted.text}`);
  const state = voted.json.proposalState as string;
  return { state, ...(voted.json.failure ? { failure: voted.json.failure.reason as string } : {}) };
}

function accepted(name: string, args?: unknown): void {
  const result = pass(name, args);
  assert.equal(result.state, "Accepted", `${name}: ${result.failure ?? result.state}`);
}

function table(name: string, key: string | Buffer): Buffer | undefined {
  return fx.gov.store.begin().get(name, typeof key === "string" ? Buffer.from(key) : key);
}

function seed(name: string, key: string | Buffer, value: unknown): void {
  const tx = fx.gov.store.begin();
  tx.set(name, typeof key === "string" ? Buffer.from(key) : key, Buffer.from(typeof value === "string" ? value : JSON.stringify(value)));
  fx.gov.store.commit(tx, fx.gov.store.currentVersion + 1);
}

function callsOf(name: string): unknown[][] {
  return fx.calls.filter(([n]) => n === name).map(([, args]) => args);
}

before(async () => {
  const serviceKeys = generateEcP384KeyPair();
  const serviceCert = await createServiceCertificate(serviceKeys, {});
  const calls: Array<[string, unknown[]]> = [];
  const record = (name: string) => (...args: unknown[]) => { calls.push([name, args]); };
  // The node's hooks as the node wires them (src/node/node.ts), recorded; certificates are real.
  const hooks: Partial<NodeHooks> = {
    triggerLedgerRekey: record("triggerLedgerRekey"),
    triggerRecoverySharesRefresh: record("triggerRecoverySharesRefresh"),
    triggerLedgerChunk: record("triggerLedgerChunk"),
    triggerSnapshot: record("triggerSnapshot"),
    triggerAcmeRefresh: record("triggerAcmeRefresh"),
    getLatestLedgerSecretSeqno: () => 7,
    generateEndorsedCertificate: (csrPem, validFrom, validityPeriodDays) => {
      calls.push(["generateEndorsedCertificate", [validFrom, validityPeriodDays]]);
      return endorseCertificateSigningRequestSync({ csrPem, serviceKeys, serviceCertPem: serviceCert, validFrom, validityPeriodDays });
    },
    generateNetworkCertificate: (validFrom, validityPeriodDays) => {
      calls.push(["generateNetworkCertificate", [validFrom, validityPeriodDays]]);
      return renewServiceCertificateSync({ serviceKeys, serviceCertPem: serviceCert, validFrom, validityPeriodDays });
    },
  };
  // Genesis as the node writes it: Coco's default constitution, one Active member, the service
  // Opening with CCF's service configuration, this node Trusted and a second node Pending.
  const gov = new GovHarness(defaultConstitutionSource(), { hooks });
  const member = await makeIdentity("member0");
  gov.addMember(member);
  const nodeKeys = generateEcP384KeyPair();
  const pendingNodeId = nodeIdFromPublicKey(nodeKeys.publicKeyPem);
  const csr = await createCertificateSigningRequest(nodeKeys, { commonName: "node1" });
  fx = { gov, member, calls, serviceKeys, serviceCert, pendingNodeId };
  seed(TABLES.serviceInfo, SINGLETON_KEY, { cert: serviceCert, status: "Opening", recovery_count: 0, service_data: null, current_service_create_txid: "2.1" });
  seed(TABLES.serviceConfig, SINGLETON_KEY, { recovery_threshold: 1, reconfiguration_type: "OneTransaction", maximum_node_certificate_validity_days: 365, maximum_service_certificate_validity_days: 365, recent_cose_proposals_window_size: 100 });
  // This node as genesis writes it (Trusted, with its CSR), and a second node Pending.
  const firstCsr = await createCertificateSigningRequest(generateEcP384KeyPair(), { commonName: "node0" });
  seed(TABLES.nodesInfo, NODE_ID, { ...json(gov.store.begin().get(TABLES.nodesInfo, Buffer.from(NODE_ID))), certificate_signing_request: firstCsr });
  seed(TABLES.nodesInfo, pendingNodeId, { status: "Pending", certificate_signing_request: csr, quote_info: { format: "Insecure_Virtual" }, node_data: null });
  userCert = await createIdentityCertificate(generateEcP384KeyPair(), "user0");
  newMemberCert = await createIdentityCertificate(generateEcP384KeyPair(), "member1");
  caBundle = await createIdentityCertificate(generateEcP384KeyPair(), "idp-ca");
});

/** A public JWK of a fresh key, as an identity provider publishes it. */
function jwk(kind: "rsa" | "ec"): Record<string, unknown> {
  const { publicKey } = kind === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : generateKeyPairSync("ec", { namedCurve: "P-256" });
  return publicKey.export({ format: "jwk" }) as Record<string, unknown>;
}

/** A JS app bundle as CCF's set_js_app takes it. */
function jsBundle() {
  return {
    metadata: {
      endpoints: {
        "/hello": { get: { js_module: "app.js", js_function: "hello", forwarding_required: "sometimes", authn_policies: ["user_cert"], mode: "readonly", openapi: {} } },
      },
    },
    modules: [{ name: "app.js", module: "export function hello() { return { body: 'hi' }; }" }],
  };
}

describe("CCF's default constitution (6.0 LTS), set unchanged and exercised through /gov", () => {
  it("set_constitution with CCF's files is accepted and stores them byte for byte", () => {
    accepted("set_constitution", { constitution: CCF_CONSTITUTION });
    assert.equal(json(table(TABLES.constitution, SINGLETON_KEY)), CCF_CONSTITUTION);
  });

  // Every action of the vendored file, in its order: args, then what CCF's apply must have done.
  const cases: Record<string, () => void> = {
    set_constitution: () => {
      // Its validate calls ccf.gov.validateConstitution: a broken constitution is refused at once.
      const refused = fx.gov.propose(fx.member, [{ name: "set_constitution", args: { constitution: "export function validate(input) {}" } }]);
      assert.equal(refused.status, 400, refused.text);
      assert.equal(refused.json.error.code, "ProposalFailedToValidate");
      assert.match(refused.json.error.message, /does not export a function named apply/);
      const arity = fx.gov.propose(fx.member, [{ name: "set_constitution", args: { constitution: "export function validate() {}\nexport function resolve(p, q, v) {}\nexport function apply(p, q) {}" } }]);
      assert.equal(arity.status, 400);
      assert.match(arity.json.error.message, /exports function validate with 0 args, expected 1 arg \(input\)/);
      // An Open proposal is dropped when the constitution changes (invalidateOtherOpenProposals).
      const open = fx.gov.propose(fx.member, [{ name: "trigger_snapshot" }]).json.proposalId as string;
      accepted("set_constitution", { constitution: CCF_CONSTITUTION });
      assert.equal(fx.gov.proposal(open).json.proposalState, "Dropped");
    },
    set_member: () => {
      accepted("set_member", { cert: newMemberCert, encryption_pub_key: encryptionKey, member_data: { name: "m1" }, recovery_role: "Participant" });
      const id = createHash("sha256").update(Buffer.from(newMemberCert.replace(/-----[^-]+-----|\s/g, ""), "base64")).digest("hex");
      assert.deepEqual(json(table(TABLES.membersInfo, id)), { status: "Accepted", member_data: { name: "m1" }, recovery_role: "Participant" });
      assert.equal(text(table(TABLES.membersCerts, id)), newMemberCert);
      assert.equal(text(table(TABLES.membersEncryptionPublicKeys, id)), encryptionKey);
    },
    remove_member: () => {
      const id = memberIdOf(newMemberCert);
      accepted("remove_member", { member_id: id });
      assert.equal(table(TABLES.membersInfo, id), undefined);
      assert.equal(table(TABLES.membersCerts, id), undefined);
      assert.equal(table(TABLES.membersEncryptionPublicKeys, id), undefined);
    },
    set_member_data: () => {
      accepted("set_member_data", { member_id: fx.member.id, member_data: { role: "chair" } });
      assert.deepEqual(json(table(TABLES.membersInfo, fx.member.id)).member_data, { role: "chair" });
    },
    set_user: () => {
      accepted("set_user", { cert: userCert, user_data: { role: "reader" } });
      assert.equal(text(table(TABLES.usersCerts, memberIdOf(userCert))), userCert);
      assert.deepEqual(json(table(TABLES.usersInfo, memberIdOf(userCert))), { user_data: { role: "reader" } });
    },
    remove_user: () => {
      accepted("remove_user", { user_id: memberIdOf(userCert) });
      assert.equal(table(TABLES.usersCerts, memberIdOf(userCert)), undefined);
    },
    set_user_data: () => {
      accepted("set_user", { cert: userCert });
      accepted("set_user_data", { user_id: memberIdOf(userCert), user_data: { level: 2 } });
      assert.deepEqual(json(table(TABLES.usersInfo, memberIdOf(userCert))), { user_data: { level: 2 } });
    },
    set_recovery_threshold: () => {
      accepted("set_recovery_threshold", { recovery_threshold: 1 });
      assert.equal(json(table(TABLES.serviceConfig, SINGLETON_KEY)).recovery_threshold, 1);
    },
    trigger_recovery_shares_refresh: () => {
      const before = callsOf("triggerRecoverySharesRefresh").length;
      accepted("trigger_recovery_shares_refresh");
      assert.equal(callsOf("triggerRecoverySharesRefresh").length, before + 1);
    },
    trigger_ledger_rekey: () => {
      accepted("trigger_ledger_rekey");
      assert.equal(callsOf("triggerLedgerRekey").length, 1);
    },
    transition_service_to_open: () => {
      accepted("transition_service_to_open", { next_service_identity: fx.serviceCert });
      assert.equal(json(table(TABLES.serviceInfo, SINGLETON_KEY)).status, "Open");
      // Once Open, threshold changes are checked against the Active recovery members (none here).
      const result = pass("set_recovery_threshold", { recovery_threshold: 2 });
      assert.equal(result.state, "Failed");
      assert.match(result.failure ?? "", /greater than the number of recovery members 0/);
    },
    set_js_app: () => {
      accepted("set_js_app", { bundle: jsBundle() });
      assert.equal(text(table(TABLES.jsModules, "/app.js")), jsBundle().modules[0]!.module);
      const stored = json(table(TABLES.jsEndpoints, "GET /hello"));
      assert.equal(stored.js_module, "/app.js");
      assert.equal(stored.js_function, "hello");
    },
    remove_js_app: () => {
      accepted("remove_js_app");
      assert.equal(table(TABLES.jsModules, "/app.js"), undefined);
      assert.equal(table(TABLES.jsEndpoints, "GET /hello"), undefined);
    },
    set_js_runtime_options: () => {
      accepted("set_js_runtime_options", { max_heap_bytes: 100 * 1024 * 1024, max_stack_bytes: 1024 * 1024, max_execution_time_ms: 1000, log_exception_details: true, return_exception_details: false, max_cached_interpreters: 10 });
      assert.equal(json(table("public:ccf.gov.js_runtime_options", SINGLETON_KEY)).max_execution_time_ms, 1000);
    },
    refresh_js_app_bytecode_cache: () => accepted("refresh_js_app_bytecode_cache"),
    set_ca_cert_bundle: () => {
      accepted("set_ca_cert_bundle", { name: "idp", cert_bundle: caBundle });
      assert.equal(json(table("public:ccf.gov.tls.ca_cert_bundles", "idp")), caBundle);
    },
    remove_ca_cert_bundle: () => {
      accepted("remove_ca_cert_bundle", { name: "idp" });
      assert.equal(table("public:ccf.gov.tls.ca_cert_bundles", "idp"), undefined);
    },
    set_jwt_issuer: () => {
      accepted("set_ca_cert_bundle", { name: "idp", cert_bundle: caBundle });
      accepted("set_jwt_issuer", { issuer: "https://idp.example", auto_refresh: true, ca_cert_bundle_name: "idp", jwks: { keys: [{ kid: "k1", ...jwk("rsa") }] } });
      assert.deepEqual(json(table("public:ccf.gov.jwt.issuers", "https://idp.example")), { issuer: "https://idp.example", auto_refresh: true, ca_cert_bundle_name: "idp" });
    },
    set_jwt_public_signing_keys: () => {
      accepted("set_jwt_public_signing_keys", { issuer: "https://idp.example", jwks: { keys: [{ kid: "k2", ...jwk("ec") }] } });
    },
    remove_jwt_issuer: () => {
      accepted("remove_jwt_issuer", { issuer: "https://idp.example" });
      assert.equal(table("public:ccf.gov.jwt.issuers", "https://idp.example"), undefined);
    },
    add_node_code: () => {
      accepted("add_node_code", { code_id: "ab".repeat(32) });
      assert.equal(json(table("public:ccf.gov.nodes.code_ids", "ab".repeat(32))), "AllowedToJoin");
    },
    add_snp_measurement: () => {
      accepted("add_snp_measurement", { measurement: "cd".repeat(48) });
      assert.equal(json(table("public:ccf.gov.nodes.snp.measurements", "cd".repeat(48))), "AllowedToJoin");
    },
    add_snp_uvm_endorsement: () => {
      accepted("add_snp_uvm_endorsement", { did: "did:x509:0:sha256:abc::eku:1", feed: "ContainerPlat-AMD-UVM", svn: "101" });
      assert.deepEqual(json(table("public:ccf.gov.nodes.snp.uvm_endorsements", "did:x509:0:sha256:abc::eku:1")), { "ContainerPlat-AMD-UVM": { svn: "101" } });
    },
    add_snp_host_data: () => {
      const policy = "package policy";
      const hostData = createHash("sha256").update(policy).digest("hex");
      accepted("add_snp_host_data", { host_data: hostData, security_policy: policy });
      assert.equal(json(table("public:ccf.gov.nodes.snp.host_data", hostData)), policy);
    },
    set_snp_minimum_tcb_version: () => {
      accepted("set_snp_minimum_tcb_version", { cpuid: "00a00f11", tcb_version: { boot_loader: 3, tee: 0, snp: 8, microcode: 115 } });
      assert.deepEqual(json(table("public:ccf.gov.nodes.snp.tcb_versions", "00a00f11")), { boot_loader: 3, tee: 0, snp: 8, microcode: 115 });
    },
    set_snp_minimum_tcb_version_hex: () => {
      accepted("set_snp_minimum_tcb_version_hex", { cpuid: "00a00f11", tcb_version: "d315000000000004" });
      const stored = json(table("public:ccf.gov.nodes.snp.tcb_versions", "00a00f11"));
      assert.deepEqual(stored, { boot_loader: 4, tee: 0, snp: 0x15, microcode: 0xd3, hexstring: "d315000000000004" });
    },
    remove_snp_host_data: () => {
      const hostData = createHash("sha256").update("package policy").digest("hex");
      accepted("remove_snp_host_data", { host_data: hostData });
      assert.equal(table("public:ccf.gov.nodes.snp.host_data", hostData), undefined);
    },
    remove_snp_measurement: () => {
      accepted("remove_snp_measurement", { measurement: "cd".repeat(48) });
      assert.equal(table("public:ccf.gov.nodes.snp.measurements", "cd".repeat(48)), undefined);
    },
    remove_snp_uvm_endorsement: () => {
      accepted("remove_snp_uvm_endorsement", { did: "did:x509:0:sha256:abc::eku:1", feed: "ContainerPlat-AMD-UVM" });
      assert.equal(table("public:ccf.gov.nodes.snp.uvm_endorsements", "did:x509:0:sha256:abc::eku:1"), undefined);
    },
    remove_snp_minimum_tcb_version: () => {
      accepted("remove_snp_minimum_tcb_version", { cpuid: "00a00f11" });
      assert.equal(table("public:ccf.gov.nodes.snp.tcb_versions", "00a00f11"), undefined);
    },
    set_node_data: () => {
      accepted("set_node_data", { node_id: fx.pendingNodeId, node_data: { zone: "b" } });
      assert.deepEqual(json(table(TABLES.nodesInfo, fx.pendingNodeId)).node_data, { zone: "b" });
    },
    transition_node_to_trusted: () => {
      accepted("transition_node_to_trusted", { node_id: fx.pendingNodeId, valid_from: "20250101000000Z", validity_period_days: 30 });
      const info = json(table(TABLES.nodesInfo, fx.pendingNodeId));
      assert.equal(info.status, "Trusted");
      assert.equal(info.ledger_secret_seqno, 7);
      const endorsed = text(table(TABLES.nodesEndorsedCertificates, fx.pendingNodeId))!;
      assert.ok(isCertificateIssuedBy(endorsed, fx.serviceCert), "the node certificate is endorsed by the service");
    },
    remove_node_code: () => {
      accepted("remove_node_code", { code_id: "ab".repeat(32) });
      assert.equal(table("public:ccf.gov.nodes.code_ids", "ab".repeat(32)), undefined);
    },
    remove_node: () => {
      accepted("remove_node", { node_id: fx.pendingNodeId });
      assert.equal(json(table(TABLES.nodesInfo, fx.pendingNodeId)).status, "Retired");
    },
    set_node_certificate_validity: () => {
      seed(TABLES.nodesInfo, fx.pendingNodeId, { ...json(table(TABLES.nodesInfo, fx.pendingNodeId)), status: "Trusted" });
      const before = callsOf("generateEndorsedCertificate").length;
      accepted("set_node_certificate_validity", { node_id: fx.pendingNodeId, valid_from: "20250601000000Z", validity_period_days: 10 });
      assert.deepEqual(callsOf("generateEndorsedCertificate")[before], ["20250601000000Z", 10]);
      const tooLong = pass("set_node_certificate_validity", { node_id: fx.pendingNodeId, valid_from: "20250601000000Z", validity_period_days: 400 });
      assert.equal(tooLong.state, "Failed");
      assert.match(tooLong.failure ?? "", /Validity period 400 \(days\) is not allowed/);
    },
    set_all_nodes_certificate_validity: () => {
      const before = callsOf("generateEndorsedCertificate").length;
      accepted("set_all_nodes_certificate_validity", { valid_from: "20250701000000Z" });
      // Every Trusted node is renewed from its CSR (this one's genesis CSR and the joiner's).
      assert.deepEqual(callsOf("generateEndorsedCertificate").slice(before), [["20250701000000Z", 365], ["20250701000000Z", 365]]);
      assert.ok(isCertificateIssuedBy(text(table(TABLES.nodesEndorsedCertificates, NODE_ID))!, fx.serviceCert));
    },
    set_service_certificate_validity: () => {
      accepted("set_service_certificate_validity", { valid_from: "20250801000000Z", validity_period_days: 100 });
      assert.deepEqual(callsOf("generateNetworkCertificate"), [["20250801000000Z", 100]]);
      const renewed = json(table(TABLES.serviceInfo, SINGLETON_KEY)).cert as string;
      assert.notEqual(renewed, fx.serviceCert);
      const validity = new X509Certificate(renewed);
      assert.equal(new Date(validity.validFrom).toISOString(), "2025-08-01T00:00:00.000Z");
      assert.equal(new Date(validity.validTo).toISOString(), "2025-11-08T23:59:59.000Z");
      assert.ok(isCertificateIssuedBy(text(table(TABLES.nodesEndorsedCertificates, NODE_ID))!, renewed), "node certificates stay valid under the renewed certificate");
    },
    set_service_configuration: () => {
      accepted("set_service_configuration", { reconfiguration_type: "TwoTransaction", recent_cose_proposals_window_size: 50 });
      const config = json(table(TABLES.serviceConfig, SINGLETON_KEY));
      assert.equal(config.reconfiguration_type, "TwoTransaction");
      assert.equal(config.recent_cose_proposals_window_size, 50);
    },
    trigger_ledger_chunk: () => {
      accepted("trigger_ledger_chunk");
      assert.equal(callsOf("triggerLedgerChunk").length, 1);
    },
    trigger_snapshot: () => {
      accepted("trigger_snapshot");
      assert.equal(callsOf("triggerSnapshot").length, 1);
    },
    trigger_acme_refresh: () => {
      accepted("trigger_acme_refresh", { interfaces: ["primary_rpc_interface"] });
      assert.deepEqual(callsOf("triggerAcmeRefresh"), [[["primary_rpc_interface"]]]);
    },
    assert_service_identity: () => {
      accepted("assert_service_identity", { service_identity: json(table(TABLES.serviceInfo, SINGLETON_KEY)).cert });
      const wrong = fx.gov.propose(fx.member, [{ name: "assert_service_identity", args: { service_identity: userCert } }]);
      assert.equal(wrong.status, 400);
      assert.match(wrong.json.error.message, /Service identity certificate mismatch/);
    },
  };

  it("this test has a case for every action the vendored constitution defines", () => {
    const names = ccfActionNames();
    assert.ok(names.length >= 40, `found ${names.length} actions`);
    assert.deepEqual(names.filter((n) => !(n in cases)), []);
    assert.deepEqual(Object.keys(cases).filter((n) => !names.includes(n)), []);
  });

  for (const name of ccfActionNames()) {
    it(`${name} validates and applies as CCF's`, () => cases[name]!());
  }

  it("rejects unknown actions and bad arguments with CCF's validation messages", () => {
    const unknown = fx.gov.propose(fx.member, [{ name: "no_such_action" }]);
    assert.equal(unknown.status, 400);
    assert.match(unknown.json.error.message, /no_such_action: no such action/);
    const bad = fx.gov.propose(fx.member, [{ name: "set_recovery_threshold", args: { recovery_threshold: 0 } }]);
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /threshold must be greater than 1/);
  });

  it("setting Coco's default constitution back passes ccf.gov.validateConstitution", () => {
    accepted("set_constitution", { constitution: defaultConstitutionSource() });
    assert.equal(json(table(TABLES.constitution, SINGLETON_KEY)), defaultConstitutionSource());
  });
});

function memberIdOf(pem: string): string {
  return createHash("sha256").update(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64")).digest("hex");
}
