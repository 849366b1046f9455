// The SEV-SNP attestation report: AMD's fixed 1184-byte little-endian layout (SEV Secure Nested
// Paging Firmware ABI Specification, publication 56860, table "ATTESTATION_REPORT Structure";
// CCF: include/ccf/pal/attestation_sev_snp.h). Parsing only: nothing here is trusted until
// snp-verify.ts has checked the signature over bytes [0, SIGNATURE_OFFSET).
import { assert } from "../util/errors.js";
import { refuse } from "./errors.js";

export const SNP_REPORT_BYTES = 1184;
/** The signature covers every byte before it. */
export const SNP_SIGNATURE_OFFSET = 0x2a0;
/** Version 3 added the CPUID fields, which select the processor family and so AMD's root key (as CCF). */
export const SNP_REPORT_VERSION_MIN = 3;
/** ECDSA P-384 with SHA-384: the only algorithm the ABI defines. */
export const SNP_SIGNATURE_ALGORITHM_ECDSA_P384_SHA384 = 1;
/** Bytes of each of r and s in the report (little-endian, zero-padded); P-384 uses 48. */
const SIGNATURE_COMPONENT_BYTES = 72;
const P384_SCALAR_BYTES = 48;

export const SNP_FIELD_OFFSETS = {
  version: 0x000, guestSvn: 0x004, policy: 0x008, familyId: 0x010, imageId: 0x020, vmpl: 0x030,
  signatureAlgorithm: 0x034, platformVersion: 0x038, platformInfo: 0x040, flags: 0x048,
  reportData: 0x050, measurement: 0x090, hostData: 0x0c0, idKeyDigest: 0x0e0, authorKeyDigest: 0x110,
  reportId: 0x140, reportIdMa: 0x160, reportedTcb: 0x180, cpuidFamilyId: 0x188, cpuidModelId: 0x189,
  cpuidStepping: 0x18a, chipId: 0x1a0, committedTcb: 0x1e0, currentMinor: 0x1e8, currentBuild: 0x1e9,
  currentMajor: 0x1ea, committedBuild: 0x1ec, committedMinor: 0x1ed, committedMajor: 0x1ee, launchTcb: 0x1f0,
  signature: SNP_SIGNATURE_OFFSET,
} as const;

export interface SnpGuestPolicy {
  abi_minor: number;
  abi_major: number;
  smt: number;
  migrate_ma: number;
  debug: number;
  single_socket: number;
}

/** The report's fields, named as CCF's snp_attestation.verifySnpAttestation names them. */
export interface SnpReport {
  raw: Buffer;
  version: number;
  guest_svn: number;
  policy: SnpGuestPolicy;
  family_id: Buffer;
  image_id: Buffer;
  vmpl: number;
  signature_algo: number;
  /** TCB values are 8 raw bytes; see snp-tcb.ts for their meaning per processor family. */
  platform_version: Buffer;
  platform_info: { smt_en: number; tsme_en: number };
  flags: { author_key_en: number; mask_chip_key: number; signing_key: number };
  report_data: Buffer;
  measurement: Buffer;
  host_data: Buffer;
  id_key_digest: Buffer;
  author_key_digest: Buffer;
  report_id: Buffer;
  report_id_ma: Buffer;
  reported_tcb: Buffer;
  cpuid_fam_id: number;
  cpuid_mod_id: number;
  cpuid_step: number;
  chip_id: Buffer;
  committed_tcb: Buffer;
  current_minor: number;
  current_build: number;
  current_major: number;
  committed_build: number;
  committed_minor: number;
  committed_major: number;
  launch_tcb: Buffer;
  /** r and s as the report stores them (72 bytes each, little-endian). */
  signature: { r: Buffer; s: Buffer };
}

/** Parses a report; refuses (check "format") anything but a version ≥ 3 report of exactly 1184 bytes. */
export function parseSnpReport(bytes: Uint8Array): SnpReport {
  if (bytes.length !== SNP_REPORT_BYTES) {
    throw refuse("format", `an SEV-SNP attestation report is ${SNP_REPORT_BYTES} bytes, got ${bytes.length}.`);
  }
  const raw = Buffer.from(bytes);
  const o = SNP_FIELD_OFFSETS;
  assert(o.signature + 2 * SIGNATURE_COMPONENT_BYTES <= SNP_REPORT_BYTES, "the signature's r and s lie inside the report");
  const slice = (offset: number, length: number): Buffer => Buffer.from(raw.subarray(offset, offset + length));
  const version = raw.readUInt32LE(o.version);
  if (version < SNP_REPORT_VERSION_MIN) {
    throw refuse("format", `report version ${version} is below ${SNP_REPORT_VERSION_MIN}, the first that names its processor family.`);
  }
  const policy = raw.readBigUInt64LE(o.policy);
  const bit = (value: bigint, index: number): number => Number((value >> BigInt(index)) & 1n);
  const platformInfo = raw.readBigUInt64LE(o.platformInfo);
  const flags = raw.readUInt32LE(o.flags);
  return {
    raw,
    version,
    guest_svn: raw.readUInt32LE(o.guestSvn),
    policy: {
      abi_minor: Number(policy & 0xffn), abi_major: Number((policy >> 8n) & 0xffn),
      smt: bit(policy, 16), migrate_ma: bit(policy, 18), debug: bit(policy, 19), single_socket: bit(policy, 20),
    },
    family_id: slice(o.familyId, 16),
    image_id: slice(o.imageId, 16),
    vmpl: raw.readUInt32LE(o.vmpl),
    signature_algo: raw.readUInt32LE(o.signatureAlgorithm),
    platform_version: slice(o.platformVersion, 8),
    platform_info: { smt_en: bit(platformInfo, 0), tsme_en: bit(platformInfo, 1) },
    flags: { author_key_en: flags & 1, mask_chip_key: (flags >> 1) & 1, signing_key: (flags >> 2) & 0b111 },
    report_data: slice(o.reportData, 64),
    measurement: slice(o.measurement, 48),
    host_data: slice(o.hostData, 32),
    id_key_digest: slice(o.idKeyDigest, 48),
    author_key_digest: slice(o.authorKeyDigest, 48),
    report_id: slice(o.reportId, 32),
    report_id_ma: slice(o.reportIdMa, 32),
    reported_tcb: slice(o.reportedTcb, 8),
    cpuid_fam_id: raw[o.cpuidFamilyId]!,
    cpuid_mod_id: raw[o.cpuidModelId]!,
    cpuid_step: raw[o.cpuidStepping]!,
    chip_id: slice(o.chipId, 64),
    committed_tcb: slice(o.committedTcb, 8),
    current_minor: raw[o.currentMinor]!,
    current_build: raw[o.currentBuild]!,
    current_major: raw[o.currentMajor]!,
    committed_build: raw[o.committedBuild]!,
    committed_minor: raw[o.committedMinor]!,
    committed_major: raw[o.committedMajor]!,
    launch_tcb: slice(o.launchTcb, 8),
    signature: { r: slice(o.signature, SIGNATURE_COMPONENT_BYTES), s: slice(o.signature + SIGNATURE_COMPONENT_BYTES, SIGNATURE_COMPONENT_BYTES) },
  };
}

/** The signature as IEEE P1363 r ‖ s (big-endian, 48 bytes each), which node:crypto verifies. */
export function snpSignatureP1363(report: SnpReport): Buffer {
  const bigEndian = (littleEndian: Buffer): Buffer => {
    const padding = littleEndian.subarray(P384_SCALAR_BYTES);
    if (padding.some((b) => b !== 0)) throw refuse("signature", "the signature's r or s does not fit a P-384 scalar.");
    return Buffer.from(littleEndian.subarray(0, P384_SCALAR_BYTES)).reverse();
  };
  const p1363 = Buffer.concat([bigEndian(report.signature.r), bigEndian(report.signature.s)]);
  assert(p1363.length === 2 * P384_SCALAR_BYTES, "a P-384 signature is 96 bytes in IEEE P1363 form");
  return p1363;
}

/** The bytes the signature covers. */
export function snpSignedBytes(report: SnpReport): Buffer {
  return report.raw.subarray(0, SNP_SIGNATURE_OFFSET);
}
