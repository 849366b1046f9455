// Governance's SEV-SNP allow lists as the attestation layer reads them (CCF's tables; the
// constitution's add_snp_measurement, add_snp_host_data and set_snp_minimum_tcb_version*
// actions write them). Keys are lowercase hex, as CCF writes them.
import { cpuidHex, type SnpAllowLists, type SnpTcbPolicy, type SnpVerified, type TdxAllowLists, type TdxMeasurementEntry, type UvmRootOfTrust } from "../attestation/index.js";
import type { Transaction } from "../kv/index.js";

export const SNP_MEASUREMENTS_MAP = "public:ccf.gov.nodes.snp.measurements";
export const SNP_HOST_DATA_MAP = "public:ccf.gov.nodes.snp.host_data";
export const SNP_TCB_VERSIONS_MAP = "public:ccf.gov.nodes.snp.tcb_versions";
export const SNP_UVM_ENDORSEMENTS_MAP = "public:ccf.gov.nodes.snp.uvm_endorsements";
/** Coco's own (CCF has no TDX platform): MRTD hex -> { rtmr0?..rtmr3? } (add_tdx_measurement). */
export const TDX_MEASUREMENTS_MAP = "public:ccf.gov.nodes.tdx.measurements";

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

/** CCF's SNPUVMEndorsements: DID -> { feed: { svn } }, flattened into roots of trust. */
function uvmRootsOfTrustOf(tx: Transaction): UvmRootOfTrust[] {
  const roots: UvmRootOfTrust[] = [];
  tx.forEach(SNP_UVM_ENDORSEMENTS_MAP, (value, key) => {
    const did = key.toString("utf8");
    const feeds = JSON.parse(value.toString("utf8")) as unknown;
    if (typeof feeds !== "object" || feeds === null || Array.isArray(feeds)) throw new Error(`${SNP_UVM_ENDORSEMENTS_MAP}[${did}] is not a feed map`);
    for (const [feed, data] of Object.entries(feeds as Record<string, { svn?: unknown }>)) {
      if (typeof data?.svn === "string") roots.push({ did, feed, svn: data.svn });
    }
  });
  return roots;
}

export function snpAllowListsOf(tx: Transaction): SnpAllowLists {
  return {
    hasMeasurement: (hex) => tx.get(SNP_MEASUREMENTS_MAP, Buffer.from(hex)) !== undefined,
    hasHostData: (hex) => tx.get(SNP_HOST_DATA_MAP, Buffer.from(hex)) !== undefined,
    minimumTcb: (cpuid) => {
      const raw = tx.get(SNP_TCB_VERSIONS_MAP, Buffer.from(cpuid));
      return raw === undefined ? undefined : parseTcbPolicy(raw, cpuid);
    },
    uvmRootsOfTrust: () => uvmRootsOfTrustOf(tx),
  };
}

/**
 * As CCF does for the first node of a service: its own SEV-SNP measurement, host data and TCB
 * are trusted from the start (members add others). The virtual platform is not trusted then:
 * a service started on SEV-SNP accepts virtual nodes only if members add_virtual_measurement.
 */
export function trustGenesisSnpPlatform(tx: Transaction, verified: SnpVerified): void {
  const r = verified.report;
  tx.set(SNP_MEASUREMENTS_MAP, Buffer.from(verified.measurementHex), Buffer.from(JSON.stringify("AllowedToJoin")));
  tx.set(SNP_HOST_DATA_MAP, Buffer.from(verified.hostDataHex), Buffer.from(JSON.stringify("")));
  const { hexstring: _hex, ...components } = verified.reportedTcb;
  tx.set(SNP_TCB_VERSIONS_MAP, Buffer.from(cpuidHex(r.cpuid_fam_id, r.cpuid_mod_id, r.cpuid_step)), Buffer.from(JSON.stringify(components)));
}

export function tdxAllowListsOf(tx: Transaction): TdxAllowLists {
  return {
    measurement: (mrtdHex) => {
      const raw = tx.get(TDX_MEASUREMENTS_MAP, Buffer.from(mrtdHex));
      if (raw === undefined) return undefined;
      const value = JSON.parse(raw.toString("utf8")) as unknown;
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${TDX_MEASUREMENTS_MAP}[${mrtdHex}] is not an object`);
      const entry: TdxMeasurementEntry = {};
      for (const rtmr of ["rtmr0", "rtmr1", "rtmr2", "rtmr3"] as const) {
        const v = (value as Record<string, unknown>)[rtmr];
        if (typeof v === "string") entry[rtmr] = v;
      }
      return entry;
    },
  };
}
