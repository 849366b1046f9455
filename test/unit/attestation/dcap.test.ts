// Intel TDX and SGX DCAP quotes (real samples from Phala-Network/dcap-qvl, provenance in
// test/fixtures/attestation/README.md) verified with collateral read from files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AttestationError, parseDcapCollateral, verifyDcapQuote } from "../../../src/attestation/index.js";
import { fixture } from "../../helpers/snp-fixtures.js";

const TDX_QUOTE = fixture("tdx/tdx-quote.bin");
const TDX_COLLATERAL = parseDcapCollateral(fixture("tdx/tdx-quote-collateral.json").toString("utf8"));
const SGX_QUOTE = fixture("tdx/sgx-quote.bin");
const SGX_COLLATERAL = parseDcapCollateral(fixture("tdx/sgx-quote-collateral.json").toString("utf8"));
/** Inside the collateral's validity (TCB info issued 2025-06-19, next update 2025-07-19). */
const AT = { nowMs: Date.parse("2025-06-20T12:00:00Z") };

function refused(run: () => unknown, check: string, message?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof AttestationError, String(error));
    assert.equal(error.check, check, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

test("the real TDX quote verifies and yields its MRTD and report data", () => {
  const v = verifyDcapQuote(TDX_QUOTE, TDX_COLLATERAL, AT);
  assert.equal(v.tee, "TDX");
  assert.equal(v.tcbStatus, "UpToDate");
  assert.equal(v.measurementHex, "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7");
  assert.equal(v.reportDataHex.slice(0, 16), "9a9d48e7f6799642");
});

test("the real SGX quote verifies and yields its MRENCLAVE", () => {
  const v = verifyDcapQuote(SGX_QUOTE, SGX_COLLATERAL, AT);
  assert.equal(v.tee, "SGX");
  assert.equal(v.measurementHex, "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
  assert.equal(v.reportDataHex.slice(0, 26), Buffer.from("Hello, world!").toString("hex"));
});

test("a changed byte of the TD report (MRTD) or of its signature is refused", () => {
  // Header 48 bytes, then the TD report: MRTD at offset 136 of the report.
  const mrtd = Buffer.from(TDX_QUOTE);
  mrtd[48 + 136] = mrtd[48 + 136]! ^ 1;
  refused(() => verifyDcapQuote(mrtd, TDX_COLLATERAL, AT), "quote");
  const reportData = Buffer.from(TDX_QUOTE);
  reportData[48 + 520] = reportData[48 + 520]! ^ 1;
  refused(() => verifyDcapQuote(reportData, TDX_COLLATERAL, AT), "quote");
  const signature = Buffer.from(TDX_QUOTE);
  signature[48 + 584 + 4 + 10] = signature[48 + 584 + 4 + 10]! ^ 1; // inside the ECDSA signature after the body
  refused(() => verifyDcapQuote(signature, TDX_COLLATERAL, AT), "quote");
});

test("a truncated quote, another platform's collateral and expired collateral are refused", () => {
  refused(() => verifyDcapQuote(TDX_QUOTE.subarray(0, 600), TDX_COLLATERAL, AT), "quote");
  refused(() => verifyDcapQuote(TDX_QUOTE, SGX_COLLATERAL, AT), "quote");
  refused(() => verifyDcapQuote(TDX_QUOTE, TDX_COLLATERAL, { nowMs: Date.parse("2026-01-01T00:00:00Z") }), "quote", /expired/);
});

test("a TCB status outside the accepted list is refused", () => {
  refused(() => verifyDcapQuote(SGX_QUOTE, SGX_COLLATERAL, { ...AT, tcbStatusesAccepted: ["UpToDate"] }), "tcb", /ConfigurationAndSWHardeningNeeded/);
});

test("collateral without its fields is refused", () => {
  refused(() => parseDcapCollateral("{}"), "quote", /lacks pck_crl_issuer_chain/);
  refused(() => parseDcapCollateral("not json"), "quote");
});
