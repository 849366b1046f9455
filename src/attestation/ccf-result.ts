// CCF's result shape of snp_attestation.verifySnpAttestation (src/js/extensions/snp_attestation.cpp;
// SnpAttestationResult in @microsoft/ccf-app's global.d.ts): the report's fields with byte
// fields as ArrayBuffers and TCB versions as CCF's hex. Also the JSON form for /node/attestations.
import type { SnpReport } from "./snp-report.js";
import { tcbHex } from "./snp-tcb.js";

const toArrayBuffer = (bytes: Buffer): ArrayBuffer => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;

/** The `attestation` member of SnpAttestationResult (CCF spells plaform_info so; kept for compatibility). */
export function snpAttestationForJs(r: SnpReport): Record<string, unknown> {
  return {
    version: r.version,
    guest_svn: r.guest_svn,
    policy: { ...r.policy },
    family_id: toArrayBuffer(r.family_id),
    image_id: toArrayBuffer(r.image_id),
    vmpl: r.vmpl,
    signature_algo: r.signature_algo,
    platform_version: tcbHex(r.platform_version),
    plaform_info: { ...r.platform_info },
    flags: { ...r.flags },
    report_data: toArrayBuffer(r.report_data),
    measurement: toArrayBuffer(r.measurement),
    host_data: toArrayBuffer(r.host_data),
    id_key_digest: toArrayBuffer(r.id_key_digest),
    author_key_digest: toArrayBuffer(r.author_key_digest),
    report_id: toArrayBuffer(r.report_id),
    report_id_ma: toArrayBuffer(r.report_id_ma),
    reported_tcb: tcbHex(r.reported_tcb),
    cpuid_fam_id: r.cpuid_fam_id,
    cpuid_mod_id: r.cpuid_mod_id,
    cpuid_step: r.cpuid_step,
    chip_id: toArrayBuffer(r.chip_id),
    committed_tcb: tcbHex(r.committed_tcb),
    current_minor: r.current_minor,
    current_build: r.current_build,
    current_major: r.current_major,
    committed_build: r.committed_build,
    committed_minor: r.committed_minor,
    committed_major: r.committed_major,
    launch_tcb: tcbHex(r.launch_tcb),
    signature: { r: toArrayBuffer(r.signature.r), s: toArrayBuffer(r.signature.s) },
  };
}
