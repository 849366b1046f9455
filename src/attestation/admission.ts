// Admission of a node by its SEV-SNP evidence: the hardware checks of snp-verify.ts, then what
// governance allows, in the order an operator fixes them: the code (measurement), the host
// configuration (host data), the firmware (minimum TCB for the CPU), and last that the report
// binds the key the node presents. (CCF checks host data before the measurement; Coco checks
// the code first, so a refused operator learns first that the code itself is not approved.)
// UVM endorsements, when present, stand in for the measurement allow list, as in CCF.
import { refuse } from "./errors.js";
import { verifySnpReport, type SnpVerified, type SnpVerifyOptions } from "./snp-verify.js";
import { cpuidHex, tcbComponentsBelow, type SnpTcbPolicy } from "./snp-tcb.js";
import { matchUvmRootsOfTrust, verifyUvmEndorsements, UVM_ENDORSEMENTS_BYTES_MAX, type UvmEndorsementsDescriptor, type UvmRootOfTrust } from "./uvm-endorsements.js";

/** CCF's QuoteFormat::amd_sev_snp_v1 as it appears in quote_info.format. */
export const SNP_FORMAT = "AMD_SEV_SNP_v1";
/** A report is 1184 bytes; its base64 (1580 characters) with room to spare. */
const SNP_QUOTE_BASE64_CHARS_MAX = 4096;

/** What governance allows: CCF's public:ccf.gov.nodes.snp.{measurements,host_data,tcb_versions}. */
export interface SnpAllowLists {
  hasMeasurement(measurementHex: string): boolean;
  hasHostData(hostDataHex: string): boolean;
  /** The minimum TCB set for a CPUID (lowercase hex), if any. */
  minimumTcb(cpuidHex: string): SnpTcbPolicy | undefined;
  /** public:ccf.gov.nodes.snp.uvm_endorsements as (did, feed, minimum svn) roots of trust. */
  uvmRootsOfTrust(): readonly UvmRootOfTrust[];
}

/** What admission verified: the report, and who endorsed its measurement when UVM endorsements were given. */
export interface SnpAdmitted extends SnpVerified {
  uvmEndorsements?: UvmEndorsementsDescriptor;
}

/** quote_info as CCF serialises it: bytes as base64. */
export interface SnpQuoteInfo {
  format: string;
  quote: string;
  endorsements?: string;
  uvm_endorsements?: string;
  endorsed_tcb?: string;
}

function base64Field(value: unknown, field: string, charsMax: number): Buffer {
  if (typeof value !== "string" || value.length === 0 || value.length > charsMax || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw refuse("format", `quote_info.${field} must be base64 of at most ${charsMax} characters.`);
  }
  return Buffer.from(value, "base64");
}

/** Decodes CCF's quote_info for SEV-SNP: the report bytes and the endorsements PEM text. */
export function decodeSnpQuoteInfo(quoteInfo: SnpQuoteInfo): { report: Buffer; endorsementsPem: string } {
  const report = base64Field(quoteInfo.quote, "quote", SNP_QUOTE_BASE64_CHARS_MAX);
  const endorsements = base64Field(quoteInfo.endorsements, "endorsements", 4 * 64 * 1024);
  return { report, endorsementsPem: endorsements.toString("utf8") };
}

/**
 * Verifies SEV-SNP evidence and checks it against governance; answers what was verified.
 * `expectedKeyDigestHex` is the SHA-256 of the DER public key of the node's certificate (its node id).
 */
export function admitSnpEvidence(quoteInfo: SnpQuoteInfo, allow: SnpAllowLists, expectedKeyDigestHex: string, options: SnpVerifyOptions = {}): SnpAdmitted {
  const { report, endorsementsPem } = decodeSnpQuoteInfo(quoteInfo);
  const verified: SnpAdmitted = verifySnpReport(report, endorsementsPem, { ...options, ...(quoteInfo.endorsed_tcb !== undefined ? { endorsedTcbHex: quoteInfo.endorsed_tcb } : {}) });
  if (quoteInfo.uvm_endorsements !== undefined && quoteInfo.uvm_endorsements !== "") {
    // As CCF (verify_enclave_measurement_against_store): UVM endorsements, when given, replace
    // the measurement allow list: the measurement is trusted because an allowed issuer and feed
    // signed it at an SVN at or above the governed minimum. They are never silently ignored.
    const raw = base64Field(quoteInfo.uvm_endorsements, "uvm_endorsements", Math.ceil(UVM_ENDORSEMENTS_BYTES_MAX / 3) * 4);
    const endorsed = verifyUvmEndorsements(raw, verified.measurementHex);
    matchUvmRootsOfTrust(endorsed, allow.uvmRootsOfTrust());
    verified.uvmEndorsements = endorsed;
  } else if (!allow.hasMeasurement(verified.measurementHex)) {
    throw refuse("measurement", `measurement ${verified.measurementHex} is not trusted by this service: members must first accept add_snp_measurement for it (or the node must present UVM endorsements from an issuer trusted with add_snp_uvm_endorsement).`);
  }
  if (!allow.hasHostData(verified.hostDataHex)) {
    throw refuse("host_data", `host data ${verified.hostDataHex} is not trusted by this service: members must first accept add_snp_host_data for it.`);
  }
  const r = verified.report;
  const cpuid = cpuidHex(r.cpuid_fam_id, r.cpuid_mod_id, r.cpuid_step);
  const minimum = allow.minimumTcb(cpuid);
  if (minimum === undefined) {
    throw refuse("tcb", `no minimum TCB is set for CPUID ${cpuid} (${verified.product}): members must first accept set_snp_minimum_tcb_version_hex for it.`);
  }
  const below = tcbComponentsBelow(verified.product, minimum, verified.reportedTcb);
  if (below.length > 0) {
    throw refuse("tcb", `the reported TCB ${verified.reportedTcb.hexstring} is below the minimum governance set for CPUID ${cpuid}: ${below.join(", ")}.`);
  }
  const bound = r.report_data.subarray(0, 32).toString("hex");
  if (bound !== expectedKeyDigestHex) {
    throw refuse("report_data", `the report binds key digest ${bound}, not the key of the TLS certificate the node presented (${expectedKeyDigestHex}).`);
  }
  return verified;
}
