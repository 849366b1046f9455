// `coco attestation verify` and `verify-dcap` as an operator runs them: exit 0 only for valid
// evidence, the fields printed, the failed check named otherwise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "../../helpers/node-process.js";
import { SNP_FIELD_OFFSETS as O } from "../../../src/attestation/index.js";
import { MILAN_REPORT, flipBit } from "../../helpers/snp-fixtures.js";

const F = fileURLToPath(new URL("../../../../test/fixtures/attestation/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "coco-attestation-cli-"));

test("a valid report exits 0 and prints measurement, report data, host data and TCB (also as JSON, also from base64)", async () => {
  const text = await runCli(["attestation", "verify", "--report", join(F, "snp/milan-report.bin"), "--endorsements", join(F, "snp/milan-endorsements.pem")]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /measurement: 5feee30d6d7e1a29/);
  assert.match(text.stdout, /report_data: 0{128}/);
  assert.match(text.stdout, /host_data: 4f4448c67f3c8dfc/);
  assert.match(text.stdout, /reported_tcb: .*"hexstring":"db18000000000004"/);
  const base64 = join(dir, "report.b64");
  writeFileSync(base64, MILAN_REPORT.toString("base64"));
  const json = await runCli(["attestation", "verify", "--report", base64, "--endorsements", join(F, "snp/milan-endorsements.pem"), "--json"]);
  assert.equal(json.code, 0, json.stderr);
  const out = JSON.parse(json.stdout);
  assert.equal(out.valid, true);
  assert.equal(out.product, "Milan");
  assert.equal(out.reported_tcb.hexstring, "db18000000000004");
});

test("a corrupted report, another family's chain or expired certificates exit 1 naming the check", async () => {
  const corrupted = join(dir, "corrupted.bin");
  writeFileSync(corrupted, flipBit(MILAN_REPORT, O.hostData));
  const signature = await runCli(["attestation", "verify", "--report", corrupted, "--endorsements", join(F, "snp/milan-endorsements.pem"), "--json"]);
  assert.equal(signature.code, 1);
  assert.equal(JSON.parse(signature.stdout).check, "signature");
  const root = await runCli(["attestation", "verify", "--report", join(F, "snp/milan-report.bin"), "--endorsements", join(F, "snp/genoa-endorsements.pem")]);
  assert.equal(root.code, 1);
  assert.match(root.stderr, /NOT valid \(root check failed\)/);
  const expired = await runCli(["attestation", "verify", "--report", join(F, "snp/milan-report.bin"), "--endorsements", join(F, "snp/milan-endorsements.pem"), "--time", "2033-01-01T00:00:00Z", "--json"]);
  assert.equal(expired.code, 1);
  assert.equal(JSON.parse(expired.stdout).check, "chain");
});

test("verify-dcap verifies the real TDX quote at a time inside its collateral's validity, and refuses it after", async () => {
  const args = ["attestation", "verify-dcap", "--quote", join(F, "tdx/tdx-quote.bin"), "--collateral", join(F, "tdx/tdx-quote-collateral.json"), "--json"];
  const ok = await runCli([...args, "--time", "2025-06-20T12:00:00Z"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).platform, "Intel TDX");
  const late = await runCli([...args, "--time", "2026-01-01T00:00:00Z"]);
  assert.equal(late.code, 1);
  assert.match(JSON.parse(late.stdout).error, /expired/);
});
