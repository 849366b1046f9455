// The snp platform of a node: the configfs-tsm report source (against a fake kernel: this
// machine is not an SEV-SNP guest), the evidence it builds (report_data binding the node key,
// verified before use), the endorsements file or directory, and the configuration that selects it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SNP_FIELD_OFFSETS as O, admitSnpEvidence } from "../../../src/attestation/index.js";
import { generateEcP384KeyPair, nodeIdFromPublicKey, splitPemBundle } from "../../../src/crypto/index.js";
import { resolveConfig, type NodeConfigFile } from "../../../src/node/config.js";
import { configfsTsmReportSource, readSnpEndorsements, snpEvidence, snpReportDataFor, type TsmFileSystem } from "../../../src/node/platform.js";
import { FIXTURE_TIME_MS, MILAN_ENDORSEMENTS, MILAN_REPORT, milanLikeChain, withBytes } from "../../helpers/snp-fixtures.js";

/** A fake configfs-tsm: entries are directories; writing inblob makes outblob and counts a generation. */
function fakeTsm(firmware: (reportData: Buffer) => Buffer, provider = "sev_guest"): TsmFileSystem & { calls: string[] } {
  const entries = new Map<string, { generation: number; outblob?: Buffer }>();
  const calls: string[] = [];
  const split = (path: string) => ({ entry: path.slice(0, path.lastIndexOf("/")), file: path.slice(path.lastIndexOf("/") + 1) });
  return {
    calls,
    mkdirSync(path) { calls.push("mkdir"); entries.set(path, { generation: 0 }); },
    rmdirSync(path) { calls.push("rmdir"); entries.delete(path); },
    writeFileSync(path, data) {
      const { entry, file } = split(path);
      calls.push(`write ${file}`);
      const e = entries.get(entry)!;
      assert.equal(file, "inblob");
      e.generation++;
      e.outblob = firmware(Buffer.from(data));
    },
    readFileSync(path) {
      const { entry, file } = split(path);
      calls.push(`read ${file}`);
      const e = entries.get(entry)!;
      if (file === "provider") return Buffer.from(`${provider}\n`);
      if (file === "generation") return Buffer.from(`${e.generation}\n`);
      if (file === "outblob") return e.outblob!;
      throw new Error(`no file ${file}`);
    },
  };
}

test("configfs-tsm: an entry is made, report data written, the report read, the generation checked, the entry removed", () => {
  let asked: Buffer | undefined;
  const fs = fakeTsm((data) => { asked = data; return MILAN_REPORT; });
  const data = Buffer.alloc(64, 7);
  assert.ok(configfsTsmReportSource("/sys/kernel/config/tsm/report", fs)(data).equals(MILAN_REPORT));
  assert.ok(asked?.equals(data));
  assert.deepEqual(fs.calls, ["mkdir", "read provider", "read generation", "write inblob", "read outblob", "read generation", "rmdir"]);
});

test("configfs-tsm: another provider (e.g. TDX) or a missing configfs is refused with what to check", () => {
  assert.throws(() => configfsTsmReportSource("/x", fakeTsm(() => MILAN_REPORT, "tdx_guest"))(Buffer.alloc(64)), /provider is 'tdx_guest', not sev_guest/);
  const missing = mkdtempSync(join(tmpdir(), "coco-tsm-")) + "/absent/report";
  assert.throws(() => configfsTsmReportSource(missing)(Buffer.alloc(64)), /not an SEV-SNP guest with configfs-tsm/);
});

test("the node's evidence is refused before use when the report does not carry its key (the real report carries zeros)", () => {
  const keys = generateEcP384KeyPair();
  assert.throws(() => snpEvidence(keys.publicKeyPem, () => MILAN_REPORT, MILAN_ENDORSEMENTS, { nowMs: FIXTURE_TIME_MS }), /does not carry the report data this node asked for/);
});

test("evidence from a firmware that binds the requested data is admitted for this node's key only", async () => {
  const chain = await milanLikeChain();
  const keys = generateEcP384KeyPair();
  const firmware = (data: Buffer) => chain.sign(withBytes(MILAN_REPORT, O.reportData, data));
  const options = { nowMs: FIXTURE_TIME_MS, rootKeysForTests: chain.rootKeys };
  const { quoteInfo, verified } = snpEvidence(keys.publicKeyPem, configfsTsmReportSource("/tsm", fakeTsm(firmware)), chain.endorsementsPem, options);
  assert.equal(verified.reportDataHex, snpReportDataFor(keys.publicKeyPem).toString("hex"));
  assert.equal(verified.reportDataHex, nodeIdFromPublicKey(keys.publicKeyPem) + "00".repeat(32));
  const allow = { hasMeasurement: () => true, hasHostData: () => true, minimumTcb: () => ({ boot_loader: 0, tee: 0, snp: 0, microcode: 0 }), uvmRootsOfTrust: () => [] };
  assert.equal(admitSnpEvidence(quoteInfo, allow, nodeIdFromPublicKey(keys.publicKeyPem), options).measurementHex, verified.measurementHex);
  assert.throws(() => admitSnpEvidence(quoteInfo, allow, nodeIdFromPublicKey(generateEcP384KeyPair().publicKeyPem), options), /\(report_data\)/);
});

test("endorsements are read from a PEM bundle or from a snpguest-style directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-endorsements-"));
  const [vcek, ask, ark] = splitPemBundle(MILAN_ENDORSEMENTS) as [string, string, string];
  writeFileSync(join(dir, "vcek.pem"), vcek);
  writeFileSync(join(dir, "ask.pem"), ask);
  writeFileSync(join(dir, "ark.pem"), ark);
  writeFileSync(join(dir, "bundle.pem"), MILAN_ENDORSEMENTS);
  assert.deepEqual(splitPemBundle(readSnpEndorsements(dir)), splitPemBundle(MILAN_ENDORSEMENTS));
  assert.equal(readSnpEndorsements(join(dir, "bundle.pem")), MILAN_ENDORSEMENTS);
  assert.throws(() => readSnpEndorsements(join(dir, "absent.pem")), /cannot be read/);
});

test("enclave.platform selects the platform; SNP needs an endorsements file, TDX a collateral file, and what Coco cannot honour is refused", () => {
  const base = (extra: Partial<NodeConfigFile>): NodeConfigFile => ({
    network: { rpc_interfaces: { primary: { bind_address: "127.0.0.1:8000" } } },
    command: { type: "Start", start: { members: [{ certificate_file: "m.pem" }] } },
    ...extra,
  } as NodeConfigFile);
  assert.deepEqual(resolveConfig(base({}), "/srv").platform, { kind: "virtual" });
  assert.deepEqual(resolveConfig(base({ enclave: { platform: "SNP" }, attestation: { snp_endorsements_file: "endorsements" } }), "/srv").platform,
    { kind: "snp", endorsementsPath: "/srv/endorsements", tsmReportDirectory: "/sys/kernel/config/tsm/report" });
  assert.throws(() => resolveConfig(base({ enclave: { platform: "SNP" } }), "/srv"), /snp_endorsements_file/);
  assert.deepEqual(resolveConfig(base({ enclave: { platform: "SNP" }, attestation: { snp_endorsements_file: "e", snp_uvm_endorsements_file: "u" } }), "/srv").platform,
    { kind: "snp", endorsementsPath: "/srv/e", tsmReportDirectory: "/sys/kernel/config/tsm/report", uvmEndorsementsPath: "/srv/u" });
  assert.throws(() => resolveConfig(base({ enclave: { platform: "SNP" }, attestation: { snp_endorsements_file: "e", snp_security_policy_file: "p" } }), "/srv"), /snp_security_policy_file is not supported/);
  assert.deepEqual(resolveConfig(base({ enclave: { platform: "TDX" }, attestation: { tdx_collateral_file: "c.json" } }), "/srv").platform,
    { kind: "tdx", collateralPath: "/srv/c.json", tsmReportDirectory: "/sys/kernel/config/tsm/report" });
  assert.deepEqual(resolveConfig(base({ enclave: { platform: "TDX" }, attestation: { tdx_collateral_file: "c.json", tdx_quote_file: "q.bin" } }), "/srv").platform,
    { kind: "tdx", collateralPath: "/srv/c.json", tsmReportDirectory: "/sys/kernel/config/tsm/report", quoteFile: "/srv/q.bin" });
  assert.throws(() => resolveConfig(base({ enclave: { platform: "TDX" } }), "/srv"), /tdx_collateral_file/);
  assert.throws(() => resolveConfig(base({ enclave: { platform: "SGX" } }), "/srv"), /expected "Virtual", "SNP" or "TDX"/);
});
