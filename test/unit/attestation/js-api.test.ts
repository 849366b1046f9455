// The JS API apps see (@microsoft/ccf-app's snp_attestation and ccf.tcbHexToPolicy), run in the
// real sandbox over the real Milan report: CCF's result shape, and a RangeError on corruption.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { JsRuntime } from "../../../src/js/index.js";
import { SNP_FIELD_OFFSETS as O } from "../../../src/attestation/index.js";
import { MILAN_ENDORSEMENTS, MILAN_REPORT, fixture, flipBit } from "../../helpers/snp-fixtures.js";

const runtime = new JsRuntime({ timeLimitMs: 20_000, memoryLimitMiB: 64 });
after(() => runtime.dispose());
let counter = 0;
function run(body: string, arg: unknown): unknown {
  const name = `/snp${counter++}.js`;
  runtime.loadModules([{ name, source: `export function f(arg) { ${body} }` }]);
  return runtime.call(name, "f", [arg]);
}
const hex = `const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");`;
const verifyBody = `${hex}
  const [report, endorsements] = arg;
  const r = snp_attestation.verifySnpAttestation(new Uint8Array(report).buffer, ccf.strToBuf(endorsements));
  const a = r.attestation;
  return { measurement: hex(a.measurement), host_data: hex(a.host_data), report_data: hex(a.report_data), reported_tcb: a.reported_tcb,
    debug: a.policy.debug, version: a.version, cpuid: [a.cpuid_fam_id, a.cpuid_mod_id, a.cpuid_step], chip_id_bytes: a.chip_id.byteLength,
    signature_r_bytes: a.signature.r.byteLength, measurementIsArrayBuffer: a.measurement instanceof ArrayBuffer };`;

test("verifySnpAttestation in the sandbox returns the real report's fields in CCF's shape", () => {
  const out = run(verifyBody, [[...MILAN_REPORT], MILAN_ENDORSEMENTS]) as Record<string, unknown>;
  assert.equal(out.measurement, "5feee30d6d7e1a29f403d70a4198237ddfb13051a2d6976439487c609388ed7f98189887920ab2fa0096903a0c23fca1");
  assert.equal(out.host_data, "4f4448c67f3c8dfc8de8a5e37125d807dadcc41f06cf23f615dbd52eec777d10");
  assert.equal(out.report_data, "00".repeat(64));
  assert.equal(out.reported_tcb, "db18000000000004");
  assert.deepEqual(out.cpuid, [0x19, 1, 1]);
  assert.equal(out.version, 3);
  assert.equal(out.debug, 0);
  assert.equal(out.chip_id_bytes, 64);
  assert.equal(out.signature_r_bytes, 72);
  assert.equal(out.measurementIsArrayBuffer, true);
});

test("verifySnpAttestation in the sandbox throws a RangeError naming the failed check on a corrupted report", () => {
  const body = `try { snp_attestation.verifySnpAttestation(new Uint8Array(arg[0]).buffer, ccf.strToBuf(arg[1])); return "verified"; }
    catch (e) { return (e instanceof RangeError ? "RangeError: " : "other: ") + e.message; }`;
  assert.match(run(body, [[...flipBit(MILAN_REPORT, O.measurement)], MILAN_ENDORSEMENTS]) as string, /^RangeError: Attestation refused \(signature\)/);
  assert.match(run(body, [[...MILAN_REPORT], MILAN_ENDORSEMENTS.slice(0, 1000)]) as string, /^RangeError: Attestation refused \(endorsements\)/);
  assert.match(run(`try { snp_attestation.verifySnpAttestation(new Uint8Array(arg[0]).buffer, ccf.strToBuf(arg[1]), undefined, "db19000000000004"); return "verified"; }
    catch (e) { return e.message; }`, [[...MILAN_REPORT], MILAN_ENDORSEMENTS]) as string, /\(tcb\): the endorsed TCB db19000000000004/);
});

test("verifySnpAttestation in the sandbox verifies UVM endorsements and refuses a real one that endorses another measurement", () => {
  // No real SEV-SNP report with a UVM endorsement of its own measurement is public; the real
  // endorsement is authenticated, then refused for exactly the measurement binding.
  const body = `try { snp_attestation.verifySnpAttestation(new Uint8Array(arg[0]).buffer, ccf.strToBuf(arg[1]), new Uint8Array(arg[2]).buffer); return "verified"; }
    catch (e) { return (e instanceof RangeError ? "RangeError: " : "other: ") + e.message; }`;
  const uvm = fixture("uvm/uvm_0.2.9.cose");
  assert.match(run(body, [[...MILAN_REPORT], MILAN_ENDORSEMENTS, [...uvm]]) as string,
    /^RangeError: Attestation refused \(uvm_endorsements\): the endorsed launch measurement d0c9e2be.* is not the report's measurement 5feee30d/);
  const corrupted = Buffer.from(uvm);
  corrupted[corrupted.length - 10] ^= 1;
  assert.match(run(body, [[...MILAN_REPORT], MILAN_ENDORSEMENTS, [...corrupted]]) as string, /^RangeError: .*COSE signature is not by the key of issuer/);
});

test("ccf.tcbHexToPolicy decodes a TCB version as CCF does for Milan and Turin", () => {
  assert.deepEqual(run(`return ccf.tcbHexToPolicy("00a00f11", "d315000000000004");`, null), { boot_loader: 4, tee: 0, snp: 0x15, microcode: 0xd3, hexstring: "d315000000000004" });
  assert.deepEqual(run(`return ccf.tcbHexToPolicy("00b00f11", "1100000022334455");`, null), { fmc: 0x55, boot_loader: 0x44, tee: 0x33, snp: 0x22, microcode: 0x11, hexstring: "1100000022334455" });
});
