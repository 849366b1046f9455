// Admission of SEV-SNP evidence against governance's allow lists, in the order an operator
// fixes them: measurement, host data, minimum TCB, then the key binding.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, createHash } from "node:crypto";
import {
  AttestationError, SNP_FIELD_OFFSETS as O, SNP_FORMAT, admitSnpEvidence, cpuidFromHex, cpuidHex, type AttestationCheck, type SnpAllowLists, type SnpTcbPolicy,
} from "../../../src/attestation/index.js";
import { FIXTURE_TIME_MS, MILAN_ENDORSEMENTS, MILAN_REPORT, milanLikeChain, withBytes } from "../../helpers/snp-fixtures.js";

const MEASUREMENT = "5feee30d6d7e1a29f403d70a4198237ddfb13051a2d6976439487c609388ed7f98189887920ab2fa0096903a0c23fca1";
const HOST_DATA = "4f4448c67f3c8dfc8de8a5e37125d807dadcc41f06cf23f615dbd52eec777d10";
const MILAN_CPUID = "00a00f11";

function allowLists(measurements: string[], hostData: string[], tcb: Record<string, SnpTcbPolicy>): SnpAllowLists {
  return { hasMeasurement: (m) => measurements.includes(m), hasHostData: (h) => hostData.includes(h), minimumTcb: (c) => tcb[c], uvmRootsOfTrust: () => [] };
}

function quoteInfo(report: Buffer, endorsementsPem: string) {
  return { format: SNP_FORMAT, quote: report.toString("base64"), endorsements: Buffer.from(endorsementsPem).toString("base64") };
}

function refusedFor(check: AttestationCheck, run: () => unknown, message?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof AttestationError, String(error));
    assert.equal(error.check, check, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

const KEY_DIGEST = "ab".repeat(32);
const AT = { nowMs: FIXTURE_TIME_MS };

test("the real report is refused at each governance check in turn, until only the key binding fails", () => {
  const q = quoteInfo(MILAN_REPORT, MILAN_ENDORSEMENTS);
  refusedFor("measurement", () => admitSnpEvidence(q, allowLists([], [], {}), KEY_DIGEST, AT), /add_snp_measurement/);
  refusedFor("host_data", () => admitSnpEvidence(q, allowLists([MEASUREMENT], [], {}), KEY_DIGEST, AT), /add_snp_host_data/);
  refusedFor("tcb", () => admitSnpEvidence(q, allowLists([MEASUREMENT], [HOST_DATA], {}), KEY_DIGEST, AT), /no minimum TCB is set for CPUID 00a00f11/);
  refusedFor("tcb", () => admitSnpEvidence(q, allowLists([MEASUREMENT], [HOST_DATA], { [MILAN_CPUID]: { boot_loader: 4, tee: 0, snp: 0x19, microcode: 0xdb } }), KEY_DIGEST, AT),
    /below the minimum .*snp 24 < 25/);
  refusedFor("report_data", () => admitSnpEvidence(q, allowLists([MEASUREMENT], [HOST_DATA], { [MILAN_CPUID]: { boot_loader: 4, tee: 0, snp: 0x18, microcode: 0xdb } }), KEY_DIGEST, AT),
    /not the key of the TLS certificate/);
});

test("a report that binds the node's key in report_data is admitted (test chain: a real report cannot bind our key)", async () => {
  const chain = await milanLikeChain();
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
  const digest = createHash("sha256").update(publicKey.export({ type: "spki", format: "der" })).digest();
  const report = chain.sign(withBytes(MILAN_REPORT, O.reportData, digest));
  const allow = allowLists([MEASUREMENT], [HOST_DATA], { [MILAN_CPUID]: { boot_loader: 0, tee: 0, snp: 0, microcode: 0 } });
  const verified = admitSnpEvidence(quoteInfo(report, chain.endorsementsPem), allow, digest.toString("hex"), { ...AT, rootKeysForTests: chain.rootKeys });
  assert.equal(verified.reportDataHex.slice(0, 64), digest.toString("hex"));
  // The same evidence presented with another key is refused.
  refusedFor("report_data", () => admitSnpEvidence(quoteInfo(report, chain.endorsementsPem), allow, KEY_DIGEST, { ...AT, rootKeysForTests: chain.rootKeys }));
});

test("UVM endorsements that are not a COSE Sign1 document are refused rather than ignored", () => {
  refusedFor("uvm_endorsements", () => admitSnpEvidence({ ...quoteInfo(MILAN_REPORT, MILAN_ENDORSEMENTS), uvm_endorsements: "AAAA" }, allowLists([MEASUREMENT], [HOST_DATA], {}), KEY_DIGEST, AT),
    /not a COSE Sign1 document/);
});

test("quote_info that is not base64 is refused as malformed", () => {
  refusedFor("format", () => admitSnpEvidence({ format: SNP_FORMAT, quote: "not base64!", endorsements: "" }, allowLists([], [], {}), KEY_DIGEST, AT));
  refusedFor("format", () => admitSnpEvidence({ format: SNP_FORMAT, quote: MILAN_REPORT.toString("base64") }, allowLists([], [], {}), KEY_DIGEST, AT), /endorsements/);
});

test("CPUID hex round-trips as CCF encodes it", () => {
  assert.equal(cpuidHex(0x19, 0x01, 1), "00a00f11");
  assert.equal(cpuidHex(0x19, 0x11, 1), "00a10f11");
  assert.equal(cpuidHex(0x1a, 0x01, 1), "00b00f11");
  assert.deepEqual(cpuidFromHex("00a10f11"), { familyId: 0x19, modelId: 0x11, stepping: 1 });
});
