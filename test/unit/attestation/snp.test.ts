// SEV-SNP verification over real reports (CCF's Milan and Genoa test vectors) and their
// corruptions: each verifies; each single-field change is refused for the check it breaks.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AttestationError, SNP_FIELD_OFFSETS as O, clearSnpChainCache, verifySnpReport, type AttestationCheck, type SnpVerifyOptions,
} from "../../../src/attestation/index.js";
import { splitPemBundle } from "../../../src/crypto/index.js";
import {
  FIXTURE_TIME_MS, GENOA_ENDORSEMENTS, GENOA_REPORT, MILAN_ENDORSEMENTS, MILAN_REPORT, flipBit, makeTestChain, milanLikeChain, withBytes,
} from "../../helpers/snp-fixtures.js";

const AT = { nowMs: FIXTURE_TIME_MS };

function refusedFor(check: AttestationCheck, run: () => unknown, message?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof AttestationError, `expected an AttestationError, got ${String(error)}`);
    assert.equal(error.check, check, `refused for ${error.check} (${error.message}), expected ${check}`);
    assert.equal(error.code, "InvalidAttestation");
    if (message) assert.match(error.message, message);
    return true;
  });
}

test("the real Milan report verifies and yields its measurement, host data, report data and TCB", () => {
  const v = verifySnpReport(MILAN_REPORT, MILAN_ENDORSEMENTS, AT);
  assert.equal(v.product, "Milan");
  assert.equal(v.signingKey, "VCEK");
  assert.equal(v.measurementHex, "5feee30d6d7e1a29f403d70a4198237ddfb13051a2d6976439487c609388ed7f98189887920ab2fa0096903a0c23fca1");
  assert.equal(v.hostDataHex, "4f4448c67f3c8dfc8de8a5e37125d807dadcc41f06cf23f615dbd52eec777d10");
  assert.equal(v.reportDataHex, "00".repeat(64));
  // CCF's own test ("Parsing tcb versions from attestation") reads the same values from this report.
  assert.deepEqual(v.reportedTcb, { boot_loader: 4, tee: 0, snp: 0x18, microcode: 0xdb, hexstring: "db18000000000004" });
  assert.equal(v.report.policy.debug, 0);
});

test("the real Genoa report verifies", () => {
  const v = verifySnpReport(GENOA_REPORT, GENOA_ENDORSEMENTS, AT);
  assert.equal(v.product, "Genoa");
  assert.equal(v.reportedTcb.hexstring, "541700000000000a");
});

test("every signed field of a real report, changed by one bit, breaks the VCEK signature", () => {
  const fields: [string, number][] = [
    ["measurement", O.measurement], ["report data", O.reportData], ["host data", O.hostData], ["reported TCB", O.reportedTcb],
    ["chip id", O.chipId], ["guest policy (debug bit)", O.policy + 2], ["vmpl", O.vmpl], ["guest svn", O.guestSvn],
  ];
  for (const [, offset] of fields) {
    const bit = offset === O.policy + 2 ? 3 : 0; // bit 19 of the policy is debug
    refusedFor("signature", () => verifySnpReport(flipBit(MILAN_REPORT, offset, bit), MILAN_ENDORSEMENTS, AT), /not signed by the VCEK/);
  }
});

test("a changed signature byte is refused", () => {
  refusedFor("signature", () => verifySnpReport(flipBit(MILAN_REPORT, O.signature + 5), MILAN_ENDORSEMENTS, AT));
  refusedFor("signature", () => verifySnpReport(flipBit(MILAN_REPORT, O.signature + 72 + 20), MILAN_ENDORSEMENTS, AT));
});

test("a truncated or extended report is refused as malformed", () => {
  refusedFor("format", () => verifySnpReport(MILAN_REPORT.subarray(0, 1183), MILAN_ENDORSEMENTS, AT), /1184 bytes, got 1183/);
  refusedFor("format", () => verifySnpReport(Buffer.concat([MILAN_REPORT, Buffer.alloc(1)]), MILAN_ENDORSEMENTS, AT));
  refusedFor("format", () => verifySnpReport(withBytes(MILAN_REPORT, O.version, [2, 0, 0, 0]), MILAN_ENDORSEMENTS, AT), /version 2/);
});

test("a chain of another processor family is refused at the root", () => {
  refusedFor("root", () => verifySnpReport(MILAN_REPORT, GENOA_ENDORSEMENTS, AT), /not AMD's Milan root key/);
  refusedFor("root", () => verifySnpReport(GENOA_REPORT, MILAN_ENDORSEMENTS, AT), /not AMD's Genoa root key/);
  // The report claims Genoa (CPUID model 0x11), so the Milan chain that signed it does not lead to the pinned root.
  refusedFor("root", () => verifySnpReport(withBytes(MILAN_REPORT, O.cpuidModelId, [0x11]), MILAN_ENDORSEMENTS, AT));
  refusedFor("format", () => verifySnpReport(withBytes(MILAN_REPORT, O.cpuidFamilyId, [0x17]), MILAN_ENDORSEMENTS, AT), /unsupported SEV-SNP processor/);
});

test("a swapped certificate breaks the chain", () => {
  const [milanVcek, milanAsk, milanArk] = splitPemBundle(MILAN_ENDORSEMENTS) as [string, string, string];
  const [genoaVcek, genoaAsk] = splitPemBundle(GENOA_ENDORSEMENTS) as [string, string, string];
  refusedFor("chain", () => verifySnpReport(MILAN_REPORT, genoaVcek + milanAsk + milanArk, AT), /not signed by the second/);
  refusedFor("chain", () => verifySnpReport(MILAN_REPORT, milanVcek + genoaAsk + milanArk, AT), /not signed by AMD's Milan root/);
  refusedFor("endorsements", () => verifySnpReport(MILAN_REPORT, milanVcek + milanAsk, AT), /expected 3 certificates .*got 2/);
  refusedFor("chain", () => verifySnpReport(MILAN_REPORT, milanAsk + milanAsk + milanArk, AT));
});

test("certificates are checked at the verification time", () => {
  refusedFor("chain", () => verifySnpReport(MILAN_REPORT, MILAN_ENDORSEMENTS, { nowMs: Date.parse("2033-01-01T00:00:00Z") }), /not valid at 2033/);
  refusedFor("chain", () => verifySnpReport(MILAN_REPORT, MILAN_ENDORSEMENTS, { nowMs: Date.parse("2024-01-01T00:00:00Z") }));
});

test("the chain cache gives the same answers as a cold verification", () => {
  clearSnpChainCache();
  const cold = verifySnpReport(MILAN_REPORT, MILAN_ENDORSEMENTS, { ...AT, chainCache: false });
  const warm1 = verifySnpReport(MILAN_REPORT, MILAN_ENDORSEMENTS, AT);
  const warm2 = verifySnpReport(MILAN_REPORT, MILAN_ENDORSEMENTS, AT);
  assert.equal(warm1.measurementHex, cold.measurementHex);
  assert.equal(warm2.measurementHex, cold.measurementHex);
  // A cached chain is still bound to its family's root and to the signature of each report.
  refusedFor("signature", () => verifySnpReport(flipBit(MILAN_REPORT, O.measurement), MILAN_ENDORSEMENTS, AT));
  refusedFor("root", () => verifySnpReport(GENOA_REPORT, MILAN_ENDORSEMENTS, AT));
});

test("CCF's endorsed_tcb must equal the reported TCB", () => {
  assert.equal(verifySnpReport(MILAN_REPORT, MILAN_ENDORSEMENTS, { ...AT, endorsedTcbHex: "db18000000000004" }).product, "Milan");
  refusedFor("tcb", () => verifySnpReport(MILAN_REPORT, MILAN_ENDORSEMENTS, { ...AT, endorsedTcbHex: "db19000000000004" }), /does not match the reported TCB/);
});

// Field checks that a real report cannot show (its signature would break first): the real Milan
// report with one field changed, re-signed by a test VCEK under a test root.
async function resigned(change: (report: Buffer) => Buffer, options: Partial<SnpVerifyOptions> = {}, chain?: Awaited<ReturnType<typeof milanLikeChain>>) {
  const c = chain ?? await milanLikeChain();
  const report = c.sign(change(MILAN_REPORT));
  return () => verifySnpReport(report, c.endorsementsPem, { ...AT, rootKeysForTests: c.rootKeys, ...options });
}

test("the unchanged real report re-signed by the test chain verifies (the field tests below start from a valid report)", async () => {
  assert.equal((await resigned((r) => r))().measurementHex.slice(0, 8), "5feee30d");
});

test("the same report is refused under the real AMD roots when signed by another chain", async () => {
  const c = await milanLikeChain();
  refusedFor("root", () => verifySnpReport(c.sign(MILAN_REPORT), c.endorsementsPem, AT));
});

test("the debug bit of the guest policy is refused", async () => {
  refusedFor("policy", await resigned((r) => flipBit(r, O.policy + 2, 3)), /allows debugging/);
});

test("a migration agent is refused unless allowed", async () => {
  const chain = await milanLikeChain();
  refusedFor("policy", await resigned((r) => flipBit(r, O.policy + 2, 2), {}, chain), /migration agent/);
  assert.equal((await resigned((r) => flipBit(r, O.policy + 2, 2), { allowMigrationAgent: true }, chain))().report.policy.migrate_ma, 1);
});

test("a host-generated report (VMPL > 3) and a masked chip key are refused", async () => {
  refusedFor("policy", await resigned((r) => withBytes(r, O.vmpl, [4, 0, 0, 0])), /host/);
  refusedFor("policy", await resigned((r) => flipBit(r, O.flags, 1)), /MASK_CHIP_KEY/);
});

test("a reported TCB above or below the VCEK's TCB is refused", async () => {
  const chain = await milanLikeChain();
  refusedFor("tcb", await resigned((r) => withBytes(r, O.reportedTcb + 6, [0x19]), {}, chain), /reported TCB db19000000000004 is not the TCB db18000000000004/);
  refusedFor("tcb", await resigned((r) => withBytes(r, O.reportedTcb + 7, [0xda]), {}, chain), /not the TCB/);
});

test("a chip id that is not the VCEK's is refused", async () => {
  refusedFor("chip_id", await resigned((r) => flipBit(r, O.chipId + 10)), /not the chip the VCEK was issued for/);
});

test("a report that says VLEK is refused when the endorsements are a VCEK, and the other way round", async () => {
  refusedFor("signing_key", await resigned((r) => withBytes(r, O.flags, [0b100, 0, 0, 0])), /signed by the VLEK but the endorsements certify a VCEK/);
  const vlek = await makeTestChain({ tcb: { boot_loader: 4, tee: 0, snp: 0x18, microcode: 0xdb }, chipId: Buffer.alloc(64), leafName: "SEV-VLEK" });
  refusedFor("signing_key", await resigned((r) => r, {}, vlek), /signed by the VCEK but the endorsements certify a VLEK/);
  const signedByVlek = await resigned((r) => withBytes(r, O.flags, [0b100, 0, 0, 0]), {}, vlek);
  refusedFor("chip_id", signedByVlek); // this test VLEK carries a chip id (all zeros) the report does not have
});

test("a signature algorithm other than ECDSA P-384 is refused", async () => {
  refusedFor("signature", await resigned((r) => withBytes(r, O.signatureAlgorithm, [2, 0, 0, 0])), /not ECDSA P-384/);
});
