// Processor families and TCB versions of SEV-SNP. A TCB version is 8 bytes whose meaning
// depends on the family (Milan and Genoa: boot loader, TEE, 4 reserved, SNP, microcode; Turin:
// FMC, boot loader, TEE, SNP, 3 reserved, microcode). CCF shows it as the hex of the bytes in
// reverse order ("d315000000000004": microcode 0xd3, SNP 0x15, boot loader 4) and governs a
// minimum per CPUID as a TcbVersionPolicy; Coco keeps both representations.
import { refuse } from "./errors.js";

export type SnpProduct = "Milan" | "Genoa" | "Turin";

export const SNP_TCB_BYTES = 8;

/** CPUID Fn0000_0001_EAX of each family, as CCF's get_cpuid_of_snp_sev_product writes it. */
export const SNP_PRODUCT_CPUID_HEX: Readonly<Record<SnpProduct, string>> = { Milan: "00a00f11", Genoa: "00a10f11", Turin: "00b00f11" };

/** The family a report's CPUID fields name (AMD family 19h model 01h Milan, 11h Genoa; 1Ah 01h Turin). */
export function snpProduct(familyId: number, modelId: number): SnpProduct {
  if (familyId === 0x19 && modelId === 0x01) return "Milan";
  if (familyId === 0x19 && modelId === 0x11) return "Genoa";
  if (familyId === 0x1a && modelId === 0x01) return "Turin";
  throw refuse("format", `unsupported SEV-SNP processor: CPUID family 0x${familyId.toString(16)} model 0x${modelId.toString(16)} (supported: Milan, Genoa, Turin).`);
}

/** CCF's TcbVersionPolicy: each component, and the hex it came from. `fmc` only on Turin. */
export interface SnpTcbPolicy {
  boot_loader?: number;
  tee?: number;
  snp?: number;
  microcode?: number;
  fmc?: number;
  hexstring?: string;
}

const COMPONENTS = ["boot_loader", "tee", "snp", "microcode", "fmc"] as const;
type Component = (typeof COMPONENTS)[number];

/** Byte offset of each component in the raw 8 bytes. */
const LAYOUT: Readonly<Record<SnpProduct, Partial<Record<Component, number>>>> = {
  Milan: { boot_loader: 0, tee: 1, snp: 6, microcode: 7 },
  Genoa: { boot_loader: 0, tee: 1, snp: 6, microcode: 7 },
  Turin: { fmc: 0, boot_loader: 1, tee: 2, snp: 3, microcode: 7 },
};

/** CCF's TcbVersionRaw::to_hex: the 8 bytes reversed, as lowercase hex. */
export function tcbHex(raw: Uint8Array): string {
  return Buffer.from(raw).reverse().toString("hex");
}

export function tcbFromHex(hex: string, what: string): Buffer {
  if (!/^[0-9a-f]{16}$/.test(hex)) throw refuse("tcb", `${what} must be ${SNP_TCB_BYTES} bytes as 16 lowercase hex characters, got ${JSON.stringify(hex)}.`);
  return Buffer.from(hex, "hex").reverse();
}

export function tcbPolicy(product: SnpProduct, raw: Uint8Array): SnpTcbPolicy {
  const out: SnpTcbPolicy = {};
  for (const [component, offset] of Object.entries(LAYOUT[product]) as [Component, number][]) out[component] = raw[offset]!;
  out.hexstring = tcbHex(raw);
  return out;
}

/** The raw bytes of a policy's components (for VCEK extensions, which give components). */
export function tcbRaw(product: SnpProduct, policy: SnpTcbPolicy): Buffer {
  const raw = Buffer.alloc(SNP_TCB_BYTES);
  for (const [component, offset] of Object.entries(LAYOUT[product]) as [Component, number][]) raw[offset] = policy[component] ?? 0;
  return raw;
}

/** The components of `tested` that are below `minimum` (CCF's TcbVersionPolicy::is_valid, with names). */
export function tcbComponentsBelow(product: SnpProduct, minimum: SnpTcbPolicy, tested: SnpTcbPolicy): string[] {
  const below: string[] = [];
  for (const component of Object.keys(LAYOUT[product]) as Component[]) {
    const min = minimum[component];
    const value = tested[component];
    if (min === undefined) {
      below.push(`${component} (the minimum does not set it)`);
    } else if (value === undefined || value < min) {
      below.push(`${component} ${String(value)} < ${min}`);
    }
  }
  return below;
}

/** Decodes a CPUID hex as CCF's cpuid_from_hex: family = base + extended, model = extended << 4 | base. */
export function cpuidFromHex(hex: string): { familyId: number; modelId: number; stepping: number } {
  if (!/^[0-9a-f]{8}$/.test(hex)) throw refuse("tcb", `a CPUID is 4 bytes as 8 lowercase hex characters, got ${JSON.stringify(hex)}.`);
  const eax = Number.parseInt(hex, 16);
  const stepping = eax & 0xf;
  const baseModel = (eax >> 4) & 0xf;
  const baseFamily = (eax >> 8) & 0xf;
  const extendedModel = (eax >> 16) & 0xf;
  const extendedFamily = (eax >> 20) & 0xff;
  return { familyId: baseFamily + extendedFamily, modelId: (extendedModel << 4) | baseModel, stepping };
}

/** The CPUID hex of a report's family, model and stepping (the key of public:ccf.gov.nodes.snp.tcb_versions). */
export function cpuidHex(familyId: number, modelId: number, stepping: number): string {
  const baseFamily = Math.min(familyId, 0xf);
  const extendedFamily = familyId - baseFamily;
  const eax = (extendedFamily << 20) | ((modelId >> 4) << 16) | (baseFamily << 8) | ((modelId & 0xf) << 4) | (stepping & 0xf);
  return eax.toString(16).padStart(8, "0");
}
