// The evidence a node presents on the tdx platform (quote from a fake configfs-tsm with the
// tdx_guest provider, or from a file; real collateral from a file) and on snp with UVM
// endorsements from a file, and what the first node of a service trusts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SNP_FIELD_OFFSETS as O, TDX_FORMAT } from "../../../src/attestation/index.js";
import { generateEcP384KeyPair } from "../../../src/crypto/index.js";
import { Store } from "../../../src/kv/index.js";
import { readUvmEndorsements, snpNodeEvidence, type TsmFileSystem } from "../../../src/node/platform.js";
import { tdxNodeEvidence } from "../../../src/node/platform-tdx.js";
import { nodeEvidence, trustGenesisPlatform } from "../../../src/node/node-evidence.js";
import { SNP_MEASUREMENTS_MAP, TDX_MEASUREMENTS_MAP } from "../../../src/node/attestation-tables.js";
import { VIRTUAL_MEASUREMENT, VIRTUAL_MEASUREMENTS_MAP } from "../../../src/node/join.js";
import { FIXTURE_TIME_MS, MILAN_REPORT, fixture, milanLikeChain, withBytes } from "../../helpers/snp-fixtures.js";

const MRTD = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";
const COLLATERAL_VALID_MS = Date.parse("2025-06-20T12:00:00Z");
const dir = mkdtempSync(join(tmpdir(), "coco-tdx-platform-"));
const quoteFile = join(dir, "quote.bin");
const collateralPath = join(dir, "collateral.json");
writeFileSync(quoteFile, fixture("tdx/tdx-quote.bin"));
writeFileSync(collateralPath, fixture("tdx/tdx-quote-collateral.json"));

/** One configfs-tsm entry whose outblob is `quote` whatever is written to inblob. */
function fakeTsm(quote: Buffer, provider: string): TsmFileSystem {
  let generation = 0;
  return {
    mkdirSync: () => undefined,
    rmdirSync: () => undefined,
    writeFileSync: () => void generation++,
    readFileSync: (path: string) => {
      if (path.endsWith("/provider")) return Buffer.from(`${provider}\n`);
      if (path.endsWith("/generation")) return Buffer.from(`${generation}\n`);
      return quote;
    },
  };
}

test("a TDX quote file is verified with the collateral file and presented; it cannot start a service since it does not bind the node key", () => {
  const keys = generateEcP384KeyPair();
  const platform = { kind: "tdx" as const, collateralPath, tsmReportDirectory: "/tsm", quoteFile };
  const { quoteInfo, verified, bindsNodeKey } = tdxNodeEvidence(platform, keys.publicKeyPem, { nowMs: COLLATERAL_VALID_MS });
  assert.equal(quoteInfo.format, TDX_FORMAT);
  assert.equal(verified.measurementHex, MRTD);
  assert.equal(bindsNodeKey, false);
  assert.deepEqual(Buffer.from(quoteInfo.endorsements, "base64"), fixture("tdx/tdx-quote-collateral.json"));
  assert.throws(() => tdxNodeEvidence(platform, keys.publicKeyPem, { nowMs: Date.parse("2026-01-01T00:00:00Z") }), /does not verify with attestation\.tdx_collateral_file .*expired/);
  const config = { platform, virtualHostData: "h" };
  assert.throws(() => nodeEvidence(config, keys.publicKeyPem, "start", COLLATERAL_VALID_MS), /does not bind this node's key: a service cannot be started on it/);
  assert.equal(nodeEvidence(config, keys.publicKeyPem, "join", COLLATERAL_VALID_MS).kind, "tdx");
});

test("a TDX quote from configfs-tsm must come from the tdx_guest provider and carry the node's report data", () => {
  const keys = generateEcP384KeyPair();
  const platform = { kind: "tdx" as const, collateralPath, tsmReportDirectory: "/tsm" };
  const quote = fixture("tdx/tdx-quote.bin");
  assert.throws(() => tdxNodeEvidence(platform, keys.publicKeyPem, { nowMs: COLLATERAL_VALID_MS, fileSystem: fakeTsm(quote, "sev_guest") }), /provider is 'sev_guest', not tdx_guest/);
  assert.throws(() => tdxNodeEvidence(platform, keys.publicKeyPem, { nowMs: COLLATERAL_VALID_MS, fileSystem: fakeTsm(quote, "tdx_guest") }), /does not carry the report data this node asked for/);
});

test("the first node trusts its own platform's measurement only", () => {
  const store = new Store();
  const tx = store.begin();
  const keys = generateEcP384KeyPair();
  const evidence = nodeEvidence({ platform: { kind: "tdx", collateralPath, tsmReportDirectory: "/tsm", quoteFile }, virtualHostData: "h" }, keys.publicKeyPem, "join", COLLATERAL_VALID_MS);
  trustGenesisPlatform(tx, evidence, "h");
  assert.deepEqual(JSON.parse(tx.get(TDX_MEASUREMENTS_MAP, Buffer.from(MRTD))!.toString()), {});
  assert.equal(tx.get(VIRTUAL_MEASUREMENTS_MAP, Buffer.from(VIRTUAL_MEASUREMENT)), undefined);
  assert.equal(tx.size(SNP_MEASUREMENTS_MAP), 0);
});

test("an SNP node presents UVM endorsements from its file (base64 or raw), checked against its own measurement first", async () => {
  const uvmMeasurement = "d0c9e2be22046e60779be88868cff64c2aa22047c15d3127ba495cee3fbc2854c5633f9da2096e6c64ae2b69bbff8082";
  // A real report cannot carry the UVM's measurement and our key: the test chain re-signs it.
  const chain = await milanLikeChain();
  const endorsementsPath = join(dir, "chain.pem");
  writeFileSync(endorsementsPath, chain.endorsementsPem);
  const uvm = fixture("uvm/uvm_0.2.9.cose");
  writeFileSync(join(dir, "uvm.b64"), uvm.toString("base64") + "\n");
  writeFileSync(join(dir, "uvm.cose"), uvm);
  const keys = generateEcP384KeyPair();
  const firmware = (measurement: Buffer) => (data: Buffer) => chain.sign(withBytes(withBytes(MILAN_REPORT, O.measurement, measurement), O.reportData, data));
  const options = { nowMs: FIXTURE_TIME_MS, rootKeysForTests: chain.rootKeys };
  for (const file of ["uvm.b64", "uvm.cose"]) {
    const platform = { kind: "snp" as const, endorsementsPath, tsmReportDirectory: "/tsm", uvmEndorsementsPath: join(dir, file) };
    const evidence = snpNodeEvidence(platform, keys.publicKeyPem, firmware(Buffer.from(uvmMeasurement, "hex")), options);
    assert.equal(evidence.quoteInfo.uvm_endorsements, uvm.toString("base64"), file);
    assert.deepEqual(readUvmEndorsements(platform.uvmEndorsementsPath), uvm);
  }
  // The same file on a node whose measurement it does not endorse fails at start, not at join.
  const platform = { kind: "snp" as const, endorsementsPath, tsmReportDirectory: "/tsm", uvmEndorsementsPath: join(dir, "uvm.cose") };
  const milanMeasurement = MILAN_REPORT.subarray(O.measurement, O.measurement + 48);
  assert.throws(() => snpNodeEvidence(platform, keys.publicKeyPem, firmware(milanMeasurement), options), /\(uvm_endorsements\): the endorsed launch measurement d0c9e2be.* is not the report's measurement 5feee30d/);
});
