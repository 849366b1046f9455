// Host side of the `snp_attestation` global and of `ccf.tcbHexToPolicy` (CCF's JS API for
// SEV-SNP): the same verifier that admits nodes (src/attestation), with CCF's result shape.
import { DEFAULT_UVM_ROOTS_OF_TRUST, matchUvmRootsOfTrust, verifyUvmEndorsements, snpAttestationForJs, snpProduct, tcbFromHex, tcbPolicy, cpuidFromHex, verifySnpReport, type SnpTcbPolicy } from "../attestation/index.js";

function bytesOf(value: unknown, what: string): Buffer {
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  throw new TypeError(`snp_attestation.verifySnpAttestation: ${what} must be an ArrayBuffer`);
}

/**
 * CCF's snp_attestation.verifySnpAttestation: throws (the prelude rethrows as RangeError, as
 * CCF does) when the evidence fails any check; otherwise answers `{ attestation }`.
 * Certificates are checked at the host's time, as CCF checks them at the node's.
 */
export function verifySnpAttestation(evidence: unknown, endorsements: unknown, uvmEndorsements: unknown, endorsedTcb: unknown, nowMs: number): Record<string, unknown> {
  const report = bytesOf(evidence, "evidence");
  const endorsementsPem = bytesOf(endorsements, "endorsements").toString("utf8");
  if (endorsedTcb !== undefined && endorsedTcb !== null && typeof endorsedTcb !== "string") {
    throw new TypeError("snp_attestation.verifySnpAttestation: endorsed_tcb must be a hex string");
  }
  const verified = verifySnpReport(report, endorsementsPem, { nowMs, ...(typeof endorsedTcb === "string" ? { endorsedTcbHex: endorsedTcb } : {}) });
  const result: Record<string, unknown> = { attestation: snpAttestationForJs(verified.report) };
  if (uvmEndorsements !== undefined && uvmEndorsements !== null) {
    // As CCF's extension: authenticated, bound to the measurement, and matched against CCF's
    // built-in roots of trust (Confidential AKS and ACI), not governance's: the app decides.
    const endorsed = verifyUvmEndorsements(bytesOf(uvmEndorsements, "uvm_endorsements"), verified.measurementHex);
    matchUvmRootsOfTrust(endorsed, DEFAULT_UVM_ROOTS_OF_TRUST);
    result["uvm_endorsements"] = endorsed;
  }
  return result;
}

/** CCF's ccf.tcbHexToPolicy(cpuid, tcbHex): the TCB policy of a hex TCB version on that CPUID's family. */
export function tcbHexToPolicy(cpuid: unknown, hex: unknown): SnpTcbPolicy {
  if (typeof cpuid !== "string" || typeof hex !== "string") throw new TypeError("ccf.tcbHexToPolicy: expected (cpuid hex string, TCB hex string)");
  const { familyId, modelId } = cpuidFromHex(cpuid);
  const product = snpProduct(familyId, modelId);
  return tcbPolicy(product, tcbFromHex(hex, "tcb_version"));
}
