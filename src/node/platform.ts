// The node's attestation platform: what evidence it presents when it starts a service or joins
// one. `virtual` (development: the node describes itself, nothing is proven) or `snp` (an AMD
// SEV-SNP guest: the report comes from the kernel through configfs-tsm, with report_data
// binding the node's key as CCF binds it: SHA-256 of the DER public key, then 32 zero bytes).
// The VCEK/VLEK chain comes from a file or directory the operator fills (Coco never contacts
// AMD's key server). The report source is injectable: tests run it over real fixture reports.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import { CocoError } from "../util/index.js";
import { nodeIdFromPublicKey } from "../crypto/index.js";
import {
  SNP_FORMAT, SNP_REPORT_BYTES, verifySnpReport, verifyUvmEndorsements, type DcapVerified, type SnpVerified, type SnpVerifyOptions,
} from "../attestation/index.js";

export const TSM_REPORT_DIRECTORY_DEFAULT = "/sys/kernel/config/tsm/report";
/** SNP report_data is 64 bytes; CCF puts the key digest in the first 32. */
const SNP_REPORT_DATA_BYTES = 64;

export type PlatformConfig =
  | { kind: "virtual" }
  | { kind: "snp"; endorsementsPath: string; tsmReportDirectory: string; uvmEndorsementsPath?: string }
  | { kind: "tdx"; collateralPath: string; tsmReportDirectory: string; quoteFile?: string };

/** Given 64 bytes of report data, answers an SEV-SNP attestation report that carries them. */
export type SnpReportSource = (reportData: Buffer) => Buffer;

/** The file operations configfs-tsm needs (node:fs by default; tests pass a fake kernel). */
export interface TsmFileSystem {
  mkdirSync(path: string): unknown;
  rmdirSync(path: string): void;
  writeFileSync(path: string, data: Buffer): void;
  readFileSync(path: string): Buffer;
}

/**
 * Linux configfs-tsm (Documentation/ABI/testing/configfs-tsm): create an entry, write inblob,
 * read outblob, check that generation counted exactly our one write (another writer to the same
 * entry would change it), remove the entry.
 */
export function configfsTsmReportSource(directory: string, fileSystem: TsmFileSystem = fs, provider: "sev_guest" | "tdx_guest" = "sev_guest"): SnpReportSource {
  return (reportData) => {
    if (reportData.length !== SNP_REPORT_DATA_BYTES) throw new Error(`report data must be ${SNP_REPORT_DATA_BYTES} bytes`);
    const entry = join(directory, `coco-${process.pid}-${randomBytes(4).toString("hex")}`);
    try {
      fileSystem.mkdirSync(entry);
    } catch (error) {
      throw new CocoError("PlatformUnavailable", `Cannot create a configfs-tsm report entry under ${directory} (${(error as Error).message}): `
        + `this machine is not ${provider === "sev_guest" ? "an SEV-SNP" : "a TDX"} guest with configfs-tsm (Linux 6.7+), or the node lacks permission.`, 500);
    }
    try {
      const found = fileSystem.readFileSync(join(entry, "provider")).toString("utf8").trim();
      if (found !== provider) throw new CocoError("PlatformUnavailable", `configfs-tsm provider is '${found}', not ${provider}: this is not ${provider === "sev_guest" ? "an SEV-SNP" : "a TDX"} guest.`, 500);
      const before = Number(fileSystem.readFileSync(join(entry, "generation")).toString("utf8").trim());
      fileSystem.writeFileSync(join(entry, "inblob"), reportData);
      const report = fileSystem.readFileSync(join(entry, "outblob"));
      const after = Number(fileSystem.readFileSync(join(entry, "generation")).toString("utf8").trim());
      if (after !== before + 1) throw new CocoError("PlatformUnavailable", "configfs-tsm report entry was written by another process while this node used it.", 500);
      return report;
    } finally {
      try {
        fileSystem.rmdirSync(entry);
      } catch {
        // The kernel removes nothing by itself, but a failed cleanup must not hide the answer.
      }
    }
  };
}

/**
 * The endorsements: a PEM bundle file (VCEK or VLEK, ASK or ASVK, ARK), or a directory as
 * `snpguest fetch ca` / `snpguest fetch vcek` leave it (vcek.pem or vlek.pem, ask.pem or asvk.pem, ark.pem).
 */
export function readSnpEndorsements(path: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(path);
  } catch (error) {
    throw new CocoError("InvalidConfiguration", `attestation.snp_endorsements_file '${path}' cannot be read: ${(error as Error).message}.`, 400);
  }
  if (!stat.isDirectory()) return fs.readFileSync(path, "utf8");
  const first = (names: string[]): string => {
    for (const name of names) {
      if (fs.existsSync(join(path, name))) return fs.readFileSync(join(path, name), "utf8");
    }
    throw new CocoError("InvalidConfiguration", `The endorsements directory '${path}' has none of ${names.join(", ")}.`, 400);
  };
  return [first(["vcek.pem", "vlek.pem"]), first(["ask.pem", "asvk.pem"]), first(["ark.pem"])].join("\n");
}

/** SHA-256 of the node's DER public key, then zeros: what the report must carry. */
export function snpReportDataFor(nodePublicKeyPem: string): Buffer {
  const out = Buffer.alloc(SNP_REPORT_DATA_BYTES);
  Buffer.from(nodeIdFromPublicKey(nodePublicKeyPem), "hex").copy(out, 0);
  return out;
}

/**
 * This node's SEV-SNP evidence in CCF's quote_info shape. It is verified here first, so an
 * operator with the wrong endorsements learns it at start, not from a refused join.
 */
export function snpEvidence(nodePublicKeyPem: string, source: SnpReportSource, endorsementsPem: string, options: SnpVerifyOptions = {}): { quoteInfo: { format: string; quote: string; endorsements: string }; verified: SnpVerified } {
  const reportData = snpReportDataFor(nodePublicKeyPem);
  const report = source(reportData);
  if (report.length !== SNP_REPORT_BYTES) throw new CocoError("PlatformUnavailable", `The SEV-SNP report source answered ${report.length} bytes, not a ${SNP_REPORT_BYTES}-byte report.`, 500);
  const verified = verifySnpReport(report, endorsementsPem, options);
  if (!verified.report.report_data.equals(reportData)) {
    throw new CocoError("PlatformUnavailable", "The SEV-SNP report does not carry the report data this node asked for: the report source is not this guest's firmware.", 500);
  }
  return {
    quoteInfo: { format: SNP_FORMAT, quote: report.toString("base64"), endorsements: Buffer.from(endorsementsPem).toString("base64") },
    verified,
  };
}

export type NodeEvidence =
  | { kind: "virtual"; quoteInfo: { format: string; quote: string } }
  | { kind: "snp"; quoteInfo: { format: string; quote: string; endorsements: string; uvm_endorsements?: string }; verified: SnpVerified }
  | { kind: "tdx"; quoteInfo: { format: string; quote: string; endorsements: string }; verified: DcapVerified };

/**
 * UVM endorsements as CCF's snp_uvm_endorsements_file holds them (base64 of the COSE Sign1, as
 * Azure's security context provides reference-info-base64) or the raw COSE bytes.
 */
export function readUvmEndorsements(path: string): Buffer {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(path);
  } catch (error) {
    throw new CocoError("InvalidConfiguration", `attestation.snp_uvm_endorsements_file '${path}' cannot be read: ${(error as Error).message}.`, 400);
  }
  const COSE_SIGN1_TAG_BYTE = 0xd2; // CBOR tag 18
  return raw[0] === COSE_SIGN1_TAG_BYTE ? raw : Buffer.from(raw.toString("utf8").trim(), "base64");
}

/**
 * The evidence this node presents, on its configured platform. `virtual` is built by the
 * caller (join.ts's virtualEvidence); `snp` asks the report source (configfs-tsm by default).
 */
export function snpNodeEvidence(platform: Extract<PlatformConfig, { kind: "snp" }>, nodePublicKeyPem: string, source?: SnpReportSource, options: SnpVerifyOptions = {}): Extract<NodeEvidence, { kind: "snp" }> {
  const { quoteInfo, verified } = snpEvidence(nodePublicKeyPem, source ?? configfsTsmReportSource(platform.tsmReportDirectory), readSnpEndorsements(platform.endorsementsPath), options);
  if (platform.uvmEndorsementsPath === undefined) return { kind: "snp", quoteInfo, verified };
  // Checked against this node's own measurement at start (not against governance, which the
  // service judges): a file for another UVM fails here rather than at join.
  const uvm = readUvmEndorsements(platform.uvmEndorsementsPath);
  verifyUvmEndorsements(uvm, verified.measurementHex);
  return { kind: "snp", quoteInfo: { ...quoteInfo, uvm_endorsements: uvm.toString("base64") }, verified };
}
