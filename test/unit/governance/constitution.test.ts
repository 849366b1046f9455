// Coco's default constitution (constitution/default/) run in the JS sandbox against an
// in-memory KV: argument validation, the KV writes of every action (CCF's tables and
// encodings), the node hooks they call, and the majority rule of resolve.
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { certificateFingerprint, createIdentityCertificate, generateEcP384KeyPair } from "../../../src/crypto/index.js";
import {
  CONSTITUTION_MAP,
  defaultConstitutionSource,
  loadConstitutionFiles,
} from "../../../src/governance/constitution.js";
import { JsRuntime, type NodeHooks } from "../../../src/js/index.js";
import { CocoError } from "../../../src/util/errors.js";
import { MemoryKv, recordingHooks } from "../js/helpers.js";

const MODULE = "/constitution.js";
const SINGLETON = Buffer.alloc(8);
const runtime = new JsRuntime({ timeLimitMs: 2000, memoryLimitMiB: 64 });
after(() => runtime.dispose());

let memberCert = "";
let userCert = "";
let serviceCert = "";
let previousServiceCert = "";
let memberId = "";
let userId = "";
const encryptionKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }) as string;
const nodeId = "a".repeat(64);
const otherId = "b".repeat(64);

before(async () => {
  runtime.loadModules([{ name: MODULE, source: defaultConstitutionSource() }]);
  memberCert = await createIdentityCertificate(generateEcP384KeyPair(), "member1");
  userCert = await createIdentityCertificate(generateEcP384KeyPair(), "user1");
  serviceCert = await createIdentityCertificate(generateEcP384KeyPair(), "service");
  previousServiceCert = await createIdentityCertificate(generateEcP384KeyPair(), "old service");
  memberId = certificateFingerprint(memberCert);
  userId = certificateFingerprint(userCert);
});

type Action = { name: string; args?: unknown };
const proposalOf = (...actions: Action[]) => JSON.stringify({ actions });

function validate(proposal: string): { valid: boolean; description: string } {
  return runtime.call(MODULE, "validate", [proposal]) as { valid: boolean; description: string };
}

function apply(kv: MemoryKv, hooks: Partial<NodeHooks>, ...actions: Action[]): void {
  runtime.call(MODULE, "apply", [proposalOf(...actions), "proposal1"], { kv, hooks });
}

function resolve(kv: MemoryKv, votes: Array<{ member_id: string; vote: boolean }>): string {
  return runtime.call(MODULE, "resolve", [proposalOf({ name: "trigger_ledger_rekey" }), "m0", votes], { kv }) as string;
}

const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : Buffer.from(value).toString("utf8"));
const json = (value: Uint8Array | undefined) => (value === undefined ? undefined : (JSON.parse(text(value)!) as unknown));

/** A service as genesis leaves it: open, threshold 1, the given members Active. */
function service(status = "Open", activeMembers: string[] = []): MemoryKv {
  const kv = new MemoryKv();
  kv.set("public:ccf.gov.service.info", SINGLETON, Buffer.from(JSON.stringify({ status, cert: serviceCert })));
  kv.set("public:ccf.gov.service.config", SINGLETON, Buffer.from(JSON.stringify({ recovery_threshold: 1 })));
  for (const id of activeMembers) kv.setJson("public:ccf.gov.members.info", id, { status: "Active" });
  return kv;
}

function goodArgs(): Array<[string, unknown]> {
  const policy = "package policy";
  return [
    ["set_constitution", { constitution: "export function validate() {}" }],
    ["set_member", { cert: memberCert, encryption_pub_key: encryptionKey, member_data: { name: "m1" }, recovery_role: "Participant" }],
    ["set_member", { cert: memberCert }],
    ["remove_member", { member_id: memberId }],
    ["set_member_data", { member_id: memberId, member_data: { x: 1 } }],
    ["set_user", { cert: userCert, user_data: { role: "reader" } }],
    ["remove_user", { user_id: userId }],
    ["set_user_data", { user_id: userId, user_data: null }],
    ["set_service_principal", { id: "p", data: { name: "Bob" } }],
    ["remove_service_principal", { id: "p" }],
    ["transition_service_to_open", { next_service_identity: serviceCert }],
    ["transition_node_to_trusted", { node_id: nodeId, valid_from: "20240101000000Z", validity_period_days: 30 }],
    ["remove_node", { node_id: nodeId }],
    ["set_node_data", { node_id: nodeId, node_data: { zone: 1 } }],
    ["set_node_certificate_validity", { node_id: nodeId, valid_from: "20240101000000Z" }],
    ["set_all_nodes_certificate_validity", { valid_from: "20240101000000Z", validity_period_days: 30 }],
    ["set_service_certificate_validity", { valid_from: "20240101000000Z" }],
    ["set_recovery_threshold", { recovery_threshold: 2 }],
    ["trigger_acme_refresh", { interfaces: ["primary"] }],
    ["trigger_acme_refresh", undefined],
    ["set_js_runtime_options", { max_heap_bytes: 1 << 20, max_stack_bytes: 1 << 16, max_execution_time_ms: 1000, log_exception_details: true }],
    ["refresh_js_app_bytecode_cache", undefined],
    ["trigger_ledger_rekey", undefined],
    ["trigger_recovery_shares_refresh", undefined],
    ["trigger_ledger_chunk", {}],
    ["trigger_snapshot", undefined],
    ["set_js_app", { bundle: jsBundle() }],
    ["remove_js_app", undefined],
    ["set_ca_cert_bundle", { name: "idp", cert_bundle: serviceCert }],
    ["remove_ca_cert_bundle", { name: "idp" }],
    ["set_jwt_issuer", { issuer: "https://idp.example", auto_refresh: true, ca_cert_bundle_name: "idp", jwks: { keys: [{ kid: "k", kty: "RSA", n: "AQ", e: "AQAB" }] } }],
    ["set_jwt_public_signing_keys", { issuer: "https://idp.example", jwks: { keys: [{ kid: "k", kty: "EC", x: "x", y: "y", crv: "P-256" }] } }],
    ["remove_jwt_issuer", { issuer: "https://idp.example" }],
    ["add_snp_measurement", { measurement: "ab".repeat(48) }],
    ["remove_snp_measurement", { measurement: "ab".repeat(48) }],
    ["add_snp_host_data", { host_data: createHash("sha256").update(policy).digest("hex"), security_policy: policy }],
    ["add_snp_host_data", { host_data: "cd".repeat(32) }],
    ["remove_snp_host_data", { host_data: "cd".repeat(32) }],
    ["add_virtual_measurement", { measurement: "coco-virtual" }],
    ["remove_virtual_measurement", { measurement: "coco-virtual" }],
    ["add_virtual_host_data", { host_data: "00" }],
    ["remove_virtual_host_data", { host_data: "00" }],
    ["add_snp_uvm_endorsement", { did: "did:x509:0", feed: "feed", svn: "101" }],
    ["remove_snp_uvm_endorsement", { did: "did:x509:0", feed: "feed" }],
    ["add_tdx_measurement", { measurement: "ab".repeat(48) }],
    ["add_tdx_measurement", { measurement: "ab".repeat(48), rtmr1: "cd".repeat(48) }],
    ["remove_tdx_measurement", { measurement: "ab".repeat(48) }],
  ];
}

function jsBundle() {
  return {
    metadata: {
      endpoints: {
        "/log": {
          get: { js_module: "app.js", js_function: "get", mode: "readonly", forwarding_required: "never", authn_policies: ["user_cert"] },
          post: { js_module: "app.js", js_function: "post", mode: "readwrite", forwarding_required: "always", authn_policies: [{ all_of: ["user_cert", "jwt"] }] },
        },
      },
    },
    modules: [{ name: "app.js", module: "export function get() {}" }],
  };
}

describe("loadConstitutionFiles", () => {
  it("concatenates the files in order, separated by newlines", () => {
    const directory = mkdtempSync(join(tmpdir(), "coco-constitution-"));
    writeFileSync(join(directory, "a.js"), "const a = 1;");
    writeFileSync(join(directory, "b.js"), "export const b = a;");
    assert.equal(loadConstitutionFiles([join(directory, "a.js"), join(directory, "b.js")]), "const a = 1;\nexport const b = a;");
  });

  it("names a missing file in a CocoError", () => {
    assert.throws(
      () => loadConstitutionFiles(["/nonexistent/actions.js"]),
      (error: unknown) => error instanceof CocoError && error.code === "InvalidConstitution" && error.message.includes("/nonexistent/actions.js"),
    );
  });

  it("refuses an empty list", () => {
    assert.throws(() => loadConstitutionFiles([]), CocoError);
  });
});

describe("defaultConstitutionSource", () => {
  it("exports validate, resolve and apply exactly once each", () => {
    const source = defaultConstitutionSource();
    for (const name of ["validate", "resolve", "apply"]) {
      assert.equal(source.split(`export function ${name}(`).length, 2, name);
    }
    assert.equal(CONSTITUTION_MAP, "public:ccf.gov.constitution");
  });
});

describe("validate", () => {
  it("accepts well-formed arguments for every action", () => {
    for (const [name, args] of goodArgs()) {
      const result = validate(proposalOf({ name, args }));
      assert.deepEqual(result, { valid: true, description: "OK" }, `${name}: ${result.description}`);
    }
  });

  it("accepts a proposal of several actions", () => {
    assert.equal(validate(proposalOf(...goodArgs().map(([name, args]) => ({ name, args })))).valid, true);
  });

  const badCases: Array<[string, () => unknown, string]> = [
    ["set_constitution", () => ({ constitution: 42 }), "args.constitution must be a string, not a number"],
    ["set_constitution", () => undefined, "args must be an object, not a undefined"],
    ["set_member", () => ({ cert: "not a pem" }), "args.cert must be an X.509 certificate"],
    ["set_member", () => ({ cert: memberCert, recovery_role: "Owner" }), "args.recovery_role needs args.encryption_pub_key"],
    ["set_member", () => ({ cert: memberCert, encryption_pub_key: encryptionKey, recovery_role: "Boss" }), 'args.recovery_role must be one of "NonParticipant", "Participant", "Owner"'],
    ["set_member", () => ({ cert: memberCert, encryption_pub_key: "nope" }), "args.encryption_pub_key must be a public key in PEM format"],
    ["set_member", () => ({ cert: memberCert, member_data: [1] }), "args.member_data must be an object, not an array"],
    ["remove_member", () => ({ member_id: "abc" }), "args.member_id must be 64 hexadecimal characters"],
    ["set_member_data", () => ({ member_id: memberId, member_data: "x" }), "args.member_data must be an object"],
    ["set_user", () => ({ cert: memberCert, user_data: 5 }), "args.user_data must be an object, not a number"],
    ["remove_user", () => ({}), "args.user_id must be a string, not a undefined"],
    ["set_user_data", () => ({ user_id: "z".repeat(64) }), "args.user_id must be 64 hexadecimal characters"],
    ["set_service_principal", () => ({ id: "p" }), "args.data must be an object"],
    ["transition_service_to_open", () => ({}), "args.next_service_identity must be a string"],
    ["transition_service_to_open", () => ({ next_service_identity: serviceCert, previous_service_identity: "x" }), "args.previous_service_identity must be an X.509"],
    ["transition_node_to_trusted", () => ({ node_id: nodeId }), "args.valid_from must be a string"],
    ["transition_node_to_trusted", () => ({ node_id: nodeId, valid_from: "x", validity_period_days: 0 }), "args.validity_period_days must be at least 1, got 0"],
    ["remove_node", () => ({ node_id: 7 }), "args.node_id must be a string, not a number"],
    ["set_node_data", () => ({}), "args.node_id must be a string"],
    ["set_recovery_threshold", () => ({ recovery_threshold: 0 }), "args.recovery_threshold must be at least 1, got 0"],
    ["set_recovery_threshold", () => ({ recovery_threshold: 1.5 }), "args.recovery_threshold must be an integer"],
    ["set_recovery_threshold", () => ({ recovery_threshold: 255 }), "args.recovery_threshold must be at most 254"],
    ["trigger_ledger_rekey", () => ({ now: true }), "this action takes no arguments"],
    ["trigger_acme_refresh", () => ({ interfaces: "primary" }), "args.interfaces must be an array"],
    ["set_js_runtime_options", () => ({ max_heap_bytes: 1, max_stack_bytes: 1 }), "args.max_execution_time_ms must be an integer"],
    ["set_service_certificate_validity", () => ({}), "args.valid_from must be a string"],
    ["set_js_app", () => ({ bundle: { modules: [], metadata: { endpoints: {} } }, disable_bytecode_cache: "yes" }), "args.disable_bytecode_cache must be a boolean"],
    ["set_js_app", () => ({ bundle: { modules: "x" } }), "args.bundle.modules must be an array"],
    [
      "set_js_app",
      () => {
        const bundle = jsBundle();
        bundle.metadata.endpoints["/log"].get.js_module = "missing.js";
        return { bundle };
      },
      'args.bundle.metadata.endpoints["/log"]["get"].js_module names "missing.js", which is not among args.bundle.modules',
    ],
    [
      "set_js_app",
      () => {
        const bundle = jsBundle();
        bundle.metadata.endpoints["/log"].get.mode = "sometimes";
        return { bundle };
      },
      'args.bundle.metadata.endpoints["/log"]["get"].mode must be one of "readwrite", "readonly", "historical"',
    ],
    ["set_ca_cert_bundle", () => ({ name: "idp", cert_bundle: "junk" }), "args.cert_bundle must be an X.509"],
    ["set_jwt_issuer", () => ({ issuer: "https://idp.example", auto_refresh: true }), "args.ca_cert_bundle_name is required"],
    ["set_jwt_issuer", () => ({ issuer: "http://idp.example", auto_refresh: true, ca_cert_bundle_name: "idp" }), "args.issuer must be an https:// URL"],
    ["set_jwt_issuer", () => ({ issuer: "i", jwks: { keys: [{ kid: "k", kty: "RSA" }] } }), "args.jwks.keys[0] must carry x5c, or n and e"],
    ["set_jwt_issuer", () => ({ issuer: "i", jwks: { keys: [{ kid: "k", kty: "RSA", x5c: ["bm90IGEgY2VydA=="] }] } }), "args.jwks.keys[0].x5c[0] must be an X.509"],
    ["set_jwt_public_signing_keys", () => ({ issuer: "i" }), "args.jwks must be an object, not a undefined"],
    ["remove_jwt_issuer", () => ({ issuer: "" }), "args.issuer must not be empty"],
    ["add_snp_measurement", () => ({ measurement: "xyz" }), "args.measurement must be an even-length hexadecimal string"],
    ["remove_snp_measurement", () => ({}), "args.measurement must be a string"],
    ["add_snp_host_data", () => ({ host_data: "00".repeat(32), security_policy: "policy" }), "args.host_data must be the SHA-256 of args.security_policy"],
    ["remove_snp_host_data", () => ({ host_data: 1 }), "args.host_data must be a string"],
    ["add_virtual_measurement", () => ({ measurement: "" }), "args.measurement must not be empty"],
    ["add_snp_uvm_endorsement", () => ({ did: "d", feed: "f" }), "args.svn must be a string"],
    ["remove_snp_uvm_endorsement", () => ({ did: "d" }), "args.feed must be a string"],
    ["add_tdx_measurement", () => ({ measurement: "AB".repeat(48) }), "args.measurement must be 48 bytes as 96 lowercase hex characters"],
    ["add_tdx_measurement", () => ({ measurement: "ab".repeat(48), rtmr4: "ab".repeat(48) }), "args has unknown field(s) rtmr4"],
    ["add_tdx_measurement", () => ({ measurement: "ab".repeat(48), rtmr2: "ab" }), "args.rtmr2 must be 48 bytes"],
  ];
  for (const [name, args, expected] of badCases) {
    it(`rejects ${name} with ${expected}`, () => {
      const result = validate(proposalOf({ name, args: args() }));
      assert.equal(result.valid, false);
      assert.ok(result.description.includes(`${name} at position 0: ${expected}`), result.description);
    });
  }

  it("rejects an unknown action by name and position", () => {
    const result = validate(proposalOf({ name: "trigger_ledger_rekey" }, { name: "make_coffee", args: {} }));
    assert.deepEqual(result, { valid: false, description: 'action at position 1: "make_coffee" is not an action of this constitution' });
  });

  it("reports every bad action, not just the first", () => {
    const result = validate(proposalOf({ name: "remove_user", args: {} }, { name: "nope" }));
    assert.equal(result.description.split("; ").length, 2);
  });

  it("rejects text that is not a proposal", () => {
    assert.match(validate("{oops").description, /not valid JSON/);
    assert.match(validate('{"action": []}').description, /"actions" array/);
    assert.equal(validate('{"actions": []}').description, "the proposal has no actions");
    assert.match(validate('{"actions": [7]}').description, /position 0 must be an object with a string "name"/);
  });
});

describe("apply: members and users", () => {
  it("set_member stores the raw PEM cert and encryption key, Accepted info and an ack", () => {
    const kv = service();
    apply(kv, {}, { name: "set_member", args: { cert: memberCert, encryption_pub_key: encryptionKey, member_data: { name: "m1" }, recovery_role: "Owner" } });
    const key = Buffer.from(memberId);
    assert.equal(text(kv.get("public:ccf.gov.members.certs", key)), memberCert);
    assert.equal(text(kv.get("public:ccf.gov.members.encryption_public_keys", key)), encryptionKey);
    assert.deepEqual(json(kv.get("public:ccf.gov.members.info", key)), { status: "Accepted", member_data: { name: "m1" }, recovery_role: "Owner" });
    assert.equal(kv.get("public:ccf.gov.members.acks", key)!.length, 0);
  });

  it("set_member records the latest signed root as the state digest to acknowledge", () => {
    const kv = service();
    kv.set("public:ccf.internal.signatures", SINGLETON, Buffer.from(JSON.stringify({ root: "ab12" })));
    apply(kv, {}, { name: "set_member", args: { cert: memberCert } });
    assert.deepEqual(json(kv.get("public:ccf.gov.members.acks", Buffer.from(memberId))), { state_digest: "ab12" });
    assert.equal(kv.has("public:ccf.gov.members.encryption_public_keys", Buffer.from(memberId)), false);
  });

  it("set_member_data replaces member_data and keeps the status", () => {
    const kv = service("Open", [memberId]);
    apply(kv, {}, { name: "set_member_data", args: { member_id: memberId, member_data: { team: "b" } } });
    assert.deepEqual(kv.getJson("public:ccf.gov.members.info", memberId), { status: "Active", member_data: { team: "b" } });
  });

  it("set_member_data fails the proposal for an unknown member", () => {
    assert.throws(() => apply(service(), {}, { name: "set_member_data", args: { member_id: otherId, member_data: {} } }), /set_member_data at position 0 failed: member b+ does not exist/);
  });

  it("remove_member deletes every member table and rekeys when a recovery member leaves", () => {
    const { hooks, calls } = recordingHooks();
    const kv = service();
    apply(kv, {}, { name: "set_member", args: { cert: memberCert, encryption_pub_key: encryptionKey } });
    kv.setJson("public:ccf.gov.members.info", memberId, { status: "Active" });
    kv.setJson("public:ccf.gov.members.info", otherId, { status: "Active" });
    kv.set("public:ccf.gov.members.encryption_public_keys", Buffer.from(otherId), Buffer.from(encryptionKey));
    apply(kv, hooks, { name: "remove_member", args: { member_id: memberId } });
    for (const table of ["certs", "info", "encryption_public_keys", "acks"]) {
      assert.equal(kv.has(`public:ccf.gov.members.${table}`, Buffer.from(memberId)), false, table);
    }
    assert.deepEqual(calls.map(([name]) => name), ["triggerLedgerRekey"]);
  });

  it("remove_member refuses to leave fewer recovery members than the threshold", () => {
    const kv = service();
    kv.setJson("public:ccf.gov.members.info", memberId, { status: "Active" });
    kv.set("public:ccf.gov.members.encryption_public_keys", Buffer.from(memberId), Buffer.from(encryptionKey));
    assert.throws(() => apply(kv, {}, { name: "remove_member", args: { member_id: memberId } }), /fewer than the recovery threshold 1/);
  });

  it("remove_member of an unknown member changes nothing", () => {
    const kv = service();
    apply(kv, {}, { name: "remove_member", args: { member_id: otherId } });
    assert.equal(kv.size("public:ccf.gov.members.info"), 0);
  });

  it("set_user, set_user_data and remove_user maintain users.certs and users.info", () => {
    const kv = service();
    const key = Buffer.from(userId);
    apply(kv, {}, { name: "set_user", args: { cert: userCert, user_data: { role: "reader" } } });
    assert.equal(text(kv.get("public:ccf.gov.users.certs", key)), userCert);
    assert.deepEqual(json(kv.get("public:ccf.gov.users.info", key)), { user_data: { role: "reader" } });
    apply(kv, {}, { name: "set_user_data", args: { user_id: userId, user_data: { role: "writer" } } });
    assert.deepEqual(json(kv.get("public:ccf.gov.users.info", key)), { user_data: { role: "writer" } });
    apply(kv, {}, { name: "set_user_data", args: { user_id: userId } });
    assert.equal(kv.has("public:ccf.gov.users.info", key), false);
    apply(kv, {}, { name: "remove_user", args: { user_id: userId } });
    assert.equal(kv.has("public:ccf.gov.users.certs", key), false);
  });

  it("set_service_principal and remove_service_principal maintain service_principals", () => {
    const kv = service();
    apply(kv, {}, { name: "set_service_principal", args: { id: "0xdeadbeef", data: { name: "Bob" } } });
    assert.deepEqual(kv.getJson("public:ccf.gov.service_principals", "0xdeadbeef"), { name: "Bob" });
    apply(kv, {}, { name: "remove_service_principal", args: { id: "0xdeadbeef" } });
    assert.equal(kv.size("public:ccf.gov.service_principals"), 0);
  });
});

describe("apply: service and nodes", () => {
  it("set_constitution replaces the constitution and drops the other open proposals", () => {
    const kv = service();
    kv.set(CONSTITUTION_MAP, SINGLETON, Buffer.from(JSON.stringify("old")));
    kv.setJson("public:ccf.gov.proposals_info", "proposal1", { state: "Open", proposer_id: "m" });
    kv.setJson("public:ccf.gov.proposals_info", "proposal2", { state: "Open", proposer_id: "m" });
    kv.setJson("public:ccf.gov.proposals_info", "proposal3", { state: "Accepted", proposer_id: "m" });
    const source = "export function validate() {}\n// é";
    apply(kv, {}, { name: "set_constitution", args: { constitution: source } });
    assert.equal(json(kv.get(CONSTITUTION_MAP, SINGLETON)), source);
    assert.equal(kv.size(CONSTITUTION_MAP), 1);
    const states = ["proposal1", "proposal2", "proposal3"].map((id) => (kv.getJson("public:ccf.gov.proposals_info", id) as { state: string }).state);
    assert.deepEqual(states, ["Open", "Dropped", "Accepted"]);
  });

  it("transition_service_to_open passes the service identities to the node as PEM bytes", () => {
    const { hooks, calls } = recordingHooks();
    apply(service("Opening"), hooks, { name: "transition_service_to_open", args: { next_service_identity: serviceCert } });
    assert.equal(calls.length, 1);
    const [name, [previous, next]] = calls[0]!;
    assert.equal(name, "transitionServiceToOpen");
    assert.equal(previous, undefined);
    assert.equal(text(next as Uint8Array), serviceCert);
  });

  it("transition_service_to_open of a recovered service needs the previous identity", () => {
    const { hooks, calls } = recordingHooks();
    assert.throws(() => apply(service("Recovering"), hooks, { name: "transition_service_to_open", args: { next_service_identity: serviceCert } }), /previous_service_identity/);
    apply(service("Recovering"), hooks, { name: "transition_service_to_open", args: { next_service_identity: serviceCert, previous_service_identity: previousServiceCert } });
    assert.equal(text(calls[0]![1][0] as Uint8Array), previousServiceCert);
  });

  it("transition_node_to_trusted trusts a pending node and records its endorsed certificate", () => {
    const { hooks, calls } = recordingHooks();
    const kv = service();
    kv.setJson("public:ccf.gov.nodes.info", nodeId, { status: "Pending", certificate_signing_request: "CSR", cert: "C" });
    apply(kv, hooks, { name: "transition_node_to_trusted", args: { node_id: nodeId, valid_from: "20240101000000Z" } });
    assert.deepEqual(kv.getJson("public:ccf.gov.nodes.info", nodeId), { status: "Trusted", certificate_signing_request: "CSR", cert: "C", ledger_secret_seqno: 42 });
    assert.equal(text(kv.get("public:ccf.gov.nodes.endorsed_certificates", Buffer.from(nodeId))), "ENDORSED PEM");
    assert.deepEqual(calls[1], ["generateEndorsedCertificate", ["CSR", "20240101000000Z", 365]]);
  });

  it("transition_node_to_trusted refuses a validity period above the service maximum", () => {
    const { hooks } = recordingHooks();
    const kv = service();
    kv.setJson("public:ccf.gov.nodes.info", nodeId, { status: "Pending", certificate_signing_request: "CSR" });
    assert.throws(
      () => apply(kv, hooks, { name: "transition_node_to_trusted", args: { node_id: nodeId, valid_from: "x", validity_period_days: 400 } }),
      /validity_period_days 400 exceeds the service's maximum of 365/,
    );
  });

  it("transition_node_to_trusted fails for an unknown node", () => {
    assert.throws(() => apply(service(), {}, { name: "transition_node_to_trusted", args: { node_id: otherId, valid_from: "x" } }), /node b+ does not exist/);
  });

  it("set_node_certificate_validity renews a trusted node's endorsed certificate", () => {
    const { hooks, calls } = recordingHooks();
    const kv = service();
    kv.setJson("public:ccf.gov.nodes.info", nodeId, { status: "Trusted", certificate_signing_request: "CSR" });
    apply(kv, hooks, { name: "set_node_certificate_validity", args: { node_id: nodeId, valid_from: "v", validity_period_days: 10 } });
    assert.deepEqual(calls, [["generateEndorsedCertificate", ["CSR", "v", 10]]]);
  });

  it("remove_node retires a trusted node and forgets a pending one", () => {
    const kv = service();
    kv.setJson("public:ccf.gov.nodes.info", nodeId, { status: "Trusted", cert: "C" });
    kv.setJson("public:ccf.gov.nodes.info", otherId, { status: "Pending" });
    apply(kv, {}, { name: "remove_node", args: { node_id: nodeId } }, { name: "remove_node", args: { node_id: otherId } });
    assert.deepEqual(kv.getJson("public:ccf.gov.nodes.info", nodeId), { status: "Retired", cert: "C" });
    assert.equal(kv.getJson("public:ccf.gov.nodes.info", otherId), undefined);
  });

  it("set_node_data replaces node_data", () => {
    const kv = service();
    kv.setJson("public:ccf.gov.nodes.info", nodeId, { status: "Trusted" });
    apply(kv, {}, { name: "set_node_data", args: { node_id: nodeId, node_data: { zone: "eu" } } });
    assert.deepEqual(kv.getJson("public:ccf.gov.nodes.info", nodeId), { status: "Trusted", node_data: { zone: "eu" } });
  });

  it("set_recovery_threshold updates the service config and refreshes the recovery shares", () => {
    const { hooks, calls } = recordingHooks();
    const kv = service("Open", [memberId, otherId]);
    for (const id of [memberId, otherId]) kv.set("public:ccf.gov.members.encryption_public_keys", Buffer.from(id), Buffer.from(encryptionKey));
    apply(kv, hooks, { name: "set_recovery_threshold", args: { recovery_threshold: 2 } });
    assert.deepEqual(json(kv.get("public:ccf.gov.service.config", SINGLETON)), { recovery_threshold: 2 });
    assert.deepEqual(calls.map(([name]) => name), ["triggerRecoverySharesRefresh"]);
  });

  it("set_recovery_threshold refuses more shares than active recovery members", () => {
    const kv = service("Open", [memberId]);
    assert.throws(() => apply(kv, {}, { name: "set_recovery_threshold", args: { recovery_threshold: 2 } }), /exceeds the 0 active recovery member/);
  });

  it("the trigger actions call their node hooks", () => {
    const { hooks, calls } = recordingHooks();
    apply(service(), hooks, { name: "trigger_ledger_rekey" }, { name: "trigger_recovery_shares_refresh" }, { name: "trigger_ledger_chunk" }, { name: "trigger_snapshot" });
    assert.deepEqual(calls.map(([name]) => name), ["triggerLedgerRekey", "triggerRecoverySharesRefresh", "triggerLedgerChunk", "triggerSnapshot"]);
  });

  it("set_all_nodes_certificate_validity re-endorses every trusted node with a CSR", () => {
    const { hooks, calls } = recordingHooks();
    const kv = service();
    kv.setJson("public:ccf.gov.nodes.info", nodeId, { status: "Trusted", certificate_signing_request: "CSR1" });
    kv.setJson("public:ccf.gov.nodes.info", otherId, { status: "Retired", certificate_signing_request: "CSR2" });
    apply(kv, hooks, { name: "set_all_nodes_certificate_validity", args: { valid_from: "v" } });
    assert.deepEqual(calls, [["generateEndorsedCertificate", ["CSR1", "v", 365]]]);
    assert.equal(text(kv.get("public:ccf.gov.nodes.endorsed_certificates", Buffer.from(nodeId))), "ENDORSED PEM");
  });

  it("set_service_certificate_validity renews the service certificate in service.info", () => {
    const { hooks, calls } = recordingHooks();
    const kv = service();
    apply(kv, hooks, { name: "set_service_certificate_validity", args: { valid_from: "v", validity_period_days: 7 } });
    assert.deepEqual(calls, [["generateNetworkCertificate", ["v", 7]]]);
    assert.deepEqual(json(kv.get("public:ccf.gov.service.info", SINGLETON)), { status: "Open", cert: "SERVICE PEM" });
  });

  it("set_js_runtime_options, refresh_js_app_bytecode_cache and trigger_acme_refresh", () => {
    const { hooks, calls } = recordingHooks();
    const kv = service();
    const options = { max_heap_bytes: 1024, max_stack_bytes: 512, max_execution_time_ms: 100 };
    apply(kv, hooks, { name: "set_js_runtime_options", args: options }, { name: "refresh_js_app_bytecode_cache" },
      { name: "trigger_acme_refresh", args: { interfaces: ["primary"] } }, { name: "trigger_acme_refresh" });
    assert.deepEqual(json(kv.get("public:ccf.gov.js_runtime_options", SINGLETON)), options);
    assert.deepEqual(calls, [["refreshAppBytecodeCache", []], ["triggerAcmeRefresh", [["primary"]]], ["triggerAcmeRefresh", [undefined]]]);
  });

  it("a failing action names itself and its position", () => {
    assert.throws(() => apply(new MemoryKv(), recordingHooks().hooks, { name: "trigger_snapshot" }, { name: "set_recovery_threshold", args: { recovery_threshold: 3 } }), (error: unknown) => {
      return error instanceof CocoError && /set_recovery_threshold at position 1 failed: .*service.config.* is missing/.test(error.message);
    });
  });
});

describe("apply: apps, JWT and attestation", () => {
  it("set_js_app writes modules, endpoints and the interpreter flush; remove_js_app clears them", () => {
    const { hooks, calls } = recordingHooks();
    const kv = service();
    kv.set("public:ccf.gov.modules", Buffer.from("/old.js"), Buffer.from("x"));
    apply(kv, hooks, { name: "set_js_app", args: { bundle: jsBundle() } });
    assert.equal(kv.size("public:ccf.gov.modules"), 1);
    assert.equal(text(kv.get("public:ccf.gov.modules", Buffer.from("/app.js"))), "export function get() {}");
    assert.deepEqual(kv.getJson("public:ccf.gov.endpoints", "GET /log"), {
      js_module: "/app.js", js_function: "get", mode: "readonly", forwarding_required: "never", authn_policies: ["user_cert"],
    });
    assert.equal((kv.getJson("public:ccf.gov.endpoints", "POST /log") as { js_function: string }).js_function, "post");
    assert.equal(json(kv.get("public:ccf.gov.interpreter.flush", SINGLETON)), true);
    assert.deepEqual(calls.map(([name]) => name), ["refreshAppBytecodeCache"]);

    apply(kv, hooks, { name: "remove_js_app" });
    for (const table of ["modules", "endpoints", "interpreter.flush"]) assert.equal(kv.size(`public:ccf.gov.${table}`), 0, table);
  });

  it("set_js_app with disable_bytecode_cache clears the cache instead of refreshing it", () => {
    const { hooks, calls } = recordingHooks();
    const kv = service();
    kv.set("public:ccf.gov.modules_quickjs_bytecode", Buffer.from("/app.js"), Buffer.from([1]));
    apply(kv, hooks, { name: "set_js_app", args: { bundle: jsBundle(), disable_bytecode_cache: true } });
    assert.equal(kv.size("public:ccf.gov.modules_quickjs_bytecode"), 0);
    assert.equal(calls.length, 0);
  });

  it("set_jwt_issuer stores the metadata without the keys and hands the keys to the node", () => {
    const { hooks, calls } = recordingHooks();
    const kv = service();
    const jwks = { keys: [{ kid: "k", kty: "RSA", n: "AQ", e: "AQAB" }] };
    assert.throws(
      () => apply(kv, hooks, { name: "set_jwt_issuer", args: { issuer: "https://idp.example", auto_refresh: true, ca_cert_bundle_name: "idp" } }),
      /no CA certificate bundle named "idp"/,
    );
    apply(kv, hooks, { name: "set_ca_cert_bundle", args: { name: "idp", cert_bundle: serviceCert } });
    assert.equal(kv.getJson("public:ccf.gov.tls.ca_cert_bundles", "idp"), serviceCert);
    const args = { issuer: "https://idp.example", auto_refresh: true, ca_cert_bundle_name: "idp", jwks };
    apply(kv, hooks, { name: "set_jwt_issuer", args });
    const metadata = { issuer: "https://idp.example", auto_refresh: true, ca_cert_bundle_name: "idp" };
    assert.deepEqual(kv.getJson("public:ccf.gov.jwt.issuers", "https://idp.example"), metadata);
    assert.deepEqual(calls, [["setJwtPublicSigningKeys", ["https://idp.example", metadata, jwks]]]);

    apply(kv, hooks, { name: "set_jwt_public_signing_keys", args: { issuer: "https://idp.example", jwks } });
    assert.equal(calls.length, 2);
    apply(kv, hooks, { name: "remove_jwt_issuer", args: { issuer: "https://idp.example" } }, { name: "remove_ca_cert_bundle", args: { name: "idp" } });
    assert.equal(kv.size("public:ccf.gov.jwt.issuers"), 0);
    assert.equal(kv.size("public:ccf.gov.tls.ca_cert_bundles"), 0);
    assert.deepEqual(calls[2], ["removeJwtPublicSigningKeys", ["https://idp.example"]]);
  });

  it("set_jwt_public_signing_keys fails for an unknown issuer", () => {
    assert.throws(
      () => apply(service(), {}, { name: "set_jwt_public_signing_keys", args: { issuer: "i", jwks: { keys: [] } } }),
      /JWT issuer i does not exist/,
    );
  });

  it("the SNP and virtual allow lists store CCF's values and drop other open proposals", () => {
    const kv = service();
    kv.setJson("public:ccf.gov.proposals_info", "other", { state: "Open" });
    const policy = "allow all";
    const hostData = createHash("sha256").update(policy).digest("hex");
    const measurement = "ab".repeat(48);
    apply(
      kv,
      {},
      { name: "add_snp_measurement", args: { measurement } },
      { name: "add_snp_host_data", args: { host_data: hostData, security_policy: policy } },
      { name: "add_virtual_measurement", args: { measurement: "v1" } },
      { name: "add_virtual_host_data", args: { host_data: "h1" } },
      { name: "add_snp_uvm_endorsement", args: { did: "did:x509:a", feed: "f1", svn: "1" } },
      { name: "add_snp_uvm_endorsement", args: { did: "did:x509:a", feed: "f2", svn: "2" } },
      { name: "add_tdx_measurement", args: { measurement, rtmr2: "cd".repeat(48) } },
    );
    assert.deepEqual(kv.getJson("public:ccf.gov.nodes.tdx.measurements", measurement), { rtmr2: "cd".repeat(48) });
    assert.equal(kv.getJson("public:ccf.gov.nodes.snp.measurements", measurement), "AllowedToJoin");
    assert.equal(kv.getJson("public:ccf.gov.nodes.snp.host_data", hostData), policy);
    assert.equal(kv.getJson("public:ccf.gov.nodes.virtual.measurements", "v1"), "AllowedToJoin");
    assert.deepEqual([...kv.get("public:ccf.gov.nodes.virtual.host_data", Buffer.from("h1"))!], [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(kv.getJson("public:ccf.gov.nodes.snp.uvm_endorsements", "did:x509:a"), { f1: { svn: "1" }, f2: { svn: "2" } });
    assert.equal((kv.getJson("public:ccf.gov.proposals_info", "other") as { state: string }).state, "Dropped");

    apply(
      kv,
      {},
      { name: "remove_snp_measurement", args: { measurement } },
      { name: "remove_snp_host_data", args: { host_data: hostData } },
      { name: "remove_virtual_measurement", args: { measurement: "v1" } },
      { name: "remove_virtual_host_data", args: { host_data: "h1" } },
      { name: "remove_snp_uvm_endorsement", args: { did: "did:x509:a", feed: "f1" } },
      { name: "remove_tdx_measurement", args: { measurement } },
    );
    for (const table of ["snp.measurements", "snp.host_data", "virtual.measurements", "virtual.host_data", "tdx.measurements"]) {
      assert.equal(kv.size(`public:ccf.gov.nodes.${table}`), 0, table);
    }
    assert.deepEqual(kv.getJson("public:ccf.gov.nodes.snp.uvm_endorsements", "did:x509:a"), { f2: { svn: "2" } });
    apply(kv, {}, { name: "remove_snp_uvm_endorsement", args: { did: "did:x509:a", feed: "f2" } });
    assert.equal(kv.size("public:ccf.gov.nodes.snp.uvm_endorsements"), 0);
  });

  it("add_snp_host_data without a security policy stores an empty policy", () => {
    const kv = service();
    apply(kv, {}, { name: "add_snp_host_data", args: { host_data: "cd".repeat(32) } });
    assert.equal(kv.getJson("public:ccf.gov.nodes.snp.host_data", "cd".repeat(32)), "");
  });
});

describe("resolve", () => {
  const m = ["m0", "m1", "m2"];
  const yes = (id: string) => ({ member_id: id, vote: true });
  const no = (id: string) => ({ member_id: id, vote: false });

  it("with one active member, that member's vote decides", () => {
    const kv = service("Open", ["m0"]);
    assert.equal(resolve(kv, []), "Open");
    assert.equal(resolve(kv, [yes("m0")]), "Accepted");
    assert.equal(resolve(kv, [no("m0")]), "Rejected");
  });

  it("with three active members, two votes either way decide", () => {
    const kv = service("Open", m);
    assert.equal(resolve(kv, [yes("m0")]), "Open");
    assert.equal(resolve(kv, [yes("m0"), no("m1")]), "Open");
    assert.equal(resolve(kv, [yes("m0"), yes("m2")]), "Accepted");
    assert.equal(resolve(kv, [yes("m0"), no("m1"), yes("m2")]), "Accepted");
    assert.equal(resolve(kv, [no("m0"), no("m1")]), "Rejected");
    assert.equal(resolve(kv, [no("m0"), yes("m1"), no("m2")]), "Rejected");
  });

  it("counts only Active members, once each", () => {
    const kv = service("Open", m);
    kv.setJson("public:ccf.gov.members.info", "m3", { status: "Accepted" });
    kv.setJson("public:ccf.gov.members.info", "m4", { status: "Accepted" });
    assert.equal(resolve(kv, [yes("m0"), yes("m3"), yes("m4"), yes("stranger")]), "Open");
    assert.equal(resolve(kv, [yes("m0"), yes("m0")]), "Open");
  });

  it("with two active members, a tie stays open", () => {
    const kv = service("Open", ["m0", "m1"]);
    assert.equal(resolve(kv, [yes("m0"), no("m1")]), "Open");
    assert.equal(resolve(kv, [yes("m0"), yes("m1")]), "Accepted");
  });

  it("with no active members nothing is decided", () => {
    assert.equal(resolve(service(), [yes("m0")]), "Open");
  });
});
