// The `ccf` global as CCF's default constitution uses it, and a tiny constitution + ballot.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { certificateFingerprint, createIdentityCertificate, generateEcP384KeyPair } from "../../../src/crypto/index.js";
import { JsRuntime } from "../../../src/js/index.js";
import { CocoError } from "../../../src/util/errors.js";
import { MemoryKv, recordingHooks } from "./helpers.js";

const runtime = new JsRuntime({ timeLimitMs: 1000, memoryLimitMiB: 32 });
after(() => runtime.dispose());
let certPem = "";
before(async () => {
  certPem = await createIdentityCertificate(generateEcP384KeyPair(), "member0");
});

/** Runs `body` as the body of an exported function `f(arg)`. */
function run(body: string, arg: unknown = null, context: Parameters<JsRuntime["call"]>[3] = {}): unknown {
  const name = `/t${Math.random().toString(36).slice(2)}.js`;
  runtime.loadModules([{ name, source: `export function f(arg) { ${body} }` }]);
  return runtime.call(name, "f", [arg], context);
}

describe("ccf buffer helpers", () => {
  it("round-trips UTF-8 through strToBuf and bufToStr", () => {
    const s = "héllo, 世界 🎉";
    assert.deepEqual(run("const b = ccf.strToBuf(arg); return [b.byteLength, ccf.bufToStr(b)];", s), [Buffer.byteLength(s), s]);
  });

  it("decodes bytes that are not UTF-8 (e.g. a digest) with U+FFFD instead of throwing", () => {
    // Lone continuation, invalid lead, truncated sequence, encoded surrogate, above U+10FFFF, overlong.
    const bytes = [0x80, 0x41, 0xff, 0xe2, 0x82, 0x42, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0xc0, 0xaf];
    assert.equal(run("return ccf.bufToStr(new Uint8Array(arg).buffer);", bytes), new TextDecoder().decode(Uint8Array.from(bytes)));
    const digest = createHash("sha256").update("some policy").digest();
    assert.equal(run("return ccf.bufToStr(ccf.crypto.digest('SHA-256', ccf.strToBuf(arg)));", "some policy"), new TextDecoder().decode(digest));
  });

  it("round-trips JSON through jsonCompatibleToBuf and bufToJsonCompatible", () => {
    const v = { a: [1, "x", null], b: { c: true } };
    assert.deepEqual(run("return ccf.bufToJsonCompatible(ccf.jsonCompatibleToBuf(arg));", v), v);
  });
});

describe("ccf.kv", () => {
  it("gets, sets, has, deletes, sizes and clears through the host KV", () => {
    const kv = new MemoryKv();
    kv.setJson("public:m", "a", 1);
    const out = run(
      `const m = ccf.kv["public:m"];
       const got = ccf.bufToJsonCompatible(m.get(ccf.strToBuf("a")));
       m.set(ccf.strToBuf("b"), ccf.jsonCompatibleToBuf({ x: 2 }));
       const r = [got, m.has(ccf.strToBuf("b")), m.has(ccf.strToBuf("zz")), m.size, m.get(ccf.strToBuf("zz")) === undefined];
       r.push(m.delete(ccf.strToBuf("a")), m.size);
       ccf.kv["public:other"].set(ccf.strToBuf("k"), new Uint8Array([1, 2]));
       ccf.kv["public:gone"].set(ccf.strToBuf("k"), ccf.strToBuf("v"));
       ccf.kv["public:gone"].clear();
       ccf.kv["public:acks"].set(ccf.strToBuf("member"));
       return r;`,
      null,
      { kv },
    );
    assert.deepEqual(out, [1, true, false, 2, true, true, 1]);
    assert.deepEqual(kv.getJson("public:m", "b"), { x: 2 });
    assert.deepEqual([...kv.get("public:other", Buffer.from("k"))!], [1, 2]);
    assert.equal(kv.size("public:gone"), 0);
    assert.equal(kv.get("public:acks", Buffer.from("member"))!.length, 0);
  });

  it("iterates with forEach(value, key) and allows writes during iteration", () => {
    const kv = new MemoryKv();
    kv.setJson("public:p", "p1", { state: "Open" });
    kv.setJson("public:p", "p2", { state: "Open" });
    const seen = run(
      `const m = ccf.kv["public:p"]; const seen = [];
       m.forEach((v, k) => { seen.push(ccf.bufToStr(k)); const info = ccf.bufToJsonCompatible(v); info.state = "Dropped"; m.set(k, ccf.jsonCompatibleToBuf(info)); });
       return seen.sort();`,
      null,
      { kv },
    );
    assert.deepEqual(seen, ["p1", "p2"]);
    assert.deepEqual(kv.getJson("public:p", "p1"), { state: "Dropped" });
  });

  it("throws JsError when the call has no KV", () => {
    assert.throws(() => run(`return ccf.kv["x"].get(new ArrayBuffer(1));`), (e: unknown) => e instanceof CocoError && e.code === "JsError" && /not available/.test(e.message));
  });

  it("rejects non-buffer keys", () => {
    assert.throws(() => run(`return ccf.kv["x"].get("a string");`, null, { kv: new MemoryKv() }), (e: unknown) => e instanceof CocoError && /ArrayBuffer/.test(e.message));
  });
});

describe("ccf crypto", () => {
  it("validates X.509 certificate bundles", () => {
    assert.deepEqual(run("return [ccf.crypto.isValidX509CertBundle(arg), ccf.isValidX509CertBundle(arg + arg), ccf.crypto.isValidX509CertBundle('nope')];", certPem), [true, true, false]);
  });

  it("computes pemToId as the SHA-256 of the certificate DER", () => {
    assert.equal(run("return ccf.pemToId(arg);", certPem), certificateFingerprint(certPem));
    assert.equal(run("return ccf.crypto.pemToId(arg);", certPem), certificateFingerprint(certPem));
  });

  it("computes SHA-256 digests", () => {
    const hex = run("return Array.from(new Uint8Array(ccf.crypto.digest('SHA-256', ccf.strToBuf(arg)))).map((b) => b.toString(16).padStart(2, '0')).join('');", "abc");
    assert.equal(hex, createHash("sha256").update("abc").digest("hex"));
  });
});

describe("ccf node and network hooks", () => {
  it("forwards every node action to the injected hooks", () => {
    const { hooks, calls } = recordingHooks();
    const out = run(
      `ccf.node.triggerLedgerRekey(); ccf.node.triggerRecoverySharesRefresh();
       ccf.node.transitionServiceToOpen(undefined, ccf.strToBuf("NEXT"));
       ccf.node.triggerLedgerChunk(); ccf.node.triggerSnapshot(); ccf.node.triggerACMERefresh(["i1"]);
       ccf.setJwtPublicSigningKeys("iss", { a: 1 }, { keys: [] }); ccf.removeJwtPublicSigningKeys("iss"); ccf.refreshAppBytecodeCache();
       return [ccf.network.getLatestLedgerSecretSeqno(), ccf.network.generateEndorsedCertificate("CSR", "20240101", 30), ccf.network.generateNetworkCertificate("20240101", 30)];`,
      null,
      { hooks },
    );
    assert.deepEqual(out, [42, "ENDORSED PEM", "SERVICE PEM"]);
    assert.deepEqual(
      calls.map(([name]) => name),
      [
        "triggerLedgerRekey",
        "triggerRecoverySharesRefresh",
        "transitionServiceToOpen",
        "triggerLedgerChunk",
        "triggerSnapshot",
        "triggerAcmeRefresh",
        "setJwtPublicSigningKeys",
        "removeJwtPublicSigningKeys",
        "refreshAppBytecodeCache",
        "getLatestLedgerSecretSeqno",
        "generateEndorsedCertificate",
        "generateNetworkCertificate",
      ],
    );
    const [previous, next] = calls[2]![1] as [unknown, Uint8Array];
    assert.equal(previous, undefined);
    assert.equal(Buffer.from(next).toString(), "NEXT");
    assert.deepEqual(calls[6]![1], ["iss", { a: 1 }, { keys: [] }]);
  });

  it("reports a hook the node did not provide as JsError", () => {
    assert.throws(() => run("ccf.node.triggerSnapshot();"), (e: unknown) => e instanceof CocoError && e.code === "JsError" && /triggerSnapshot is not available/.test(e.message));
  });

  it("keeps ccf read-only", () => {
    assert.deepEqual(run("'use strict'; const r = []; try { ccf.kv = 1; } catch (e) { r.push('kv'); } try { globalThis.ccf = 1; } catch (e) { r.push('ccf'); } return r;"), ["kv", "ccf"]);
  });
});

// A constitution in CCF's shape (validate / resolve / apply in one module, actions in a Map).
const CONSTITUTION = `
const singletonKey = () => new ArrayBuffer(8);
const actions = new Map([
  ["set_member", {
    validate(args) { if (!ccf.crypto.isValidX509CertBundle(args.cert)) throw new Error("cert must be a PEM certificate"); },
    apply(args) {
      const id = ccf.strToBuf(ccf.pemToId(args.cert));
      ccf.kv["public:ccf.gov.members.certs"].set(id, ccf.strToBuf(args.cert));
      ccf.kv["public:ccf.gov.members.info"].set(id, ccf.jsonCompatibleToBuf({ status: "Accepted" }));
    },
  }],
  ["trigger_ledger_rekey", { validate() {}, apply() { ccf.node.triggerLedgerRekey(); } }],
]);
export function validate(input) {
  const proposal = JSON.parse(input);
  const errors = [];
  for (const [i, action] of proposal.actions.entries()) {
    const definition = actions.get(action.name);
    if (!definition) { errors.push(action.name + ": no such action"); continue; }
    try { definition.validate(action.args); } catch (e) { errors.push(action.name + " at position " + i + " failed validation: " + e.message); }
  }
  return { valid: errors.length === 0, description: errors.join(", ") };
}
export function resolve(proposal, proposerId, votes) {
  let active = 0;
  ccf.kv["public:ccf.gov.members.info"].forEach((v) => { if (ccf.bufToJsonCompatible(v).status === "Active") active++; });
  return votes.filter((v) => v.vote).length > Math.floor(active / 2) ? "Accepted" : "Open";
}
export function apply(proposal, proposalId) {
  for (const action of JSON.parse(proposal).actions) actions.get(action.name).apply(action.args, proposalId);
}
`;
const BALLOT = `export function vote (rawProposal, proposerId) { const p = JSON.parse(rawProposal); return p.actions.every((a) => a.name !== "remove_member"); }`;

describe("a constitution and a ballot", () => {
  it("validates, votes, resolves and applies a proposal", () => {
    const kv = new MemoryKv();
    for (const id of ["m1", "m2", "m3"]) kv.setJson("public:ccf.gov.members.info", id, { status: "Active" });
    const { hooks, calls } = recordingHooks();
    runtime.loadModules([{ name: "/constitution.js", source: CONSTITUTION }]);
    const proposal = JSON.stringify({ actions: [{ name: "set_member", args: { cert: certPem } }, { name: "trigger_ledger_rekey" }] });

    assert.deepEqual(runtime.call("/constitution.js", "validate", [proposal], { kv }), { valid: true, description: "" });
    const invalid = runtime.call("/constitution.js", "validate", [JSON.stringify({ actions: [{ name: "set_member", args: { cert: "x" } }, { name: "nope" }] })], { kv });
    assert.deepEqual(invalid, { valid: false, description: "set_member at position 0 failed validation: cert must be a PEM certificate, nope: no such action" });

    runtime.loadModules([{ name: "/ballot/m1.js", source: BALLOT }]);
    const vote = runtime.call("/ballot/m1.js", "vote", [proposal, "m1"], { kv });
    assert.equal(vote, true);
    assert.equal(runtime.call("/constitution.js", "resolve", [proposal, "m1", [{ member_id: "m1", vote }]], { kv }), "Open");
    const votes = [{ member_id: "m1", vote: true }, { member_id: "m2", vote: true }];
    assert.equal(runtime.call("/constitution.js", "resolve", [proposal, "m1", votes], { kv }), "Accepted");

    runtime.call("/constitution.js", "apply", [proposal, "proposal-1"], { kv, hooks });
    assert.deepEqual(kv.getJson("public:ccf.gov.members.info", certificateFingerprint(certPem)), { status: "Accepted" });
    assert.deepEqual(calls.map(([name]) => name), ["triggerLedgerRekey"]);
  });
});
