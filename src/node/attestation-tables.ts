// Governance's SEV-SNP allow lists as the attestation layer reads them (CCF's tables; the
// constitution's add_snp_measurement, add_snp_host_data and set_snp_minimum_tcb_version*
// actions write them). Keys are lowercase hex, as CCF writes them.
import type { SnpAllowLists, SnpTcbPolicy } from "../attestation/index.js";
import type { Transaction } from "../kv/index.js";

export const SNP_MEASUREMENTS_MAP = "public:ccf.gov.nodes.snp.measurements";
export const SNP_HOST_DATA_MAP = "public:ccf.gov.nodes.snp.host_data";
export const SNP_TCB_VERSIONS_MAP = "public:ccf.gov.nodes.snp.tcb_versions";
export const SNP_UVM_ENDORSEMENTS_MAP = "public:ccf.gov.nodes.snp.uvm_endorsements";

function parseTcbPolicy(raw: Buffer, cpuid: string): SnpTcbPolicy {
  const value = JSON.parse(raw.toString("utf8")) as unknown;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${SNP_TCB_VERSIONS_MAP}[${cpuid}] is not a TCB version policy object`);
  }
  const out: SnpTcbPolicy = {};
  for (const component of ["boot_loader", "tee", "snp", "microcode", "fmc"] as const) {
    const v = (value as Record<string, unknown>)[component];
    if (typeof v === "number") out[component] = v;
  }
  return out;
}

export function snpAllowListsOf(tx: Transaction): SnpAllowLists {
  return {
    hasMeasurement: (hex) => tx.get(SNP_MEASUREMENTS_MAP, Buffer.from(hex)) !== undefined,
    hasHostData: (hex) => tx.get(SNP_HOST_DATA_MAP, Buffer.from(hex)) !== undefined,
    minimumTcb: (cpuid) => {
      const raw = tx.get(SNP_TCB_VERSIONS_MAP, Buffer.from(cpuid));
      return raw === undefined ? undefined : parseTcbPolicy(raw, cpuid);
    },
  };
}
