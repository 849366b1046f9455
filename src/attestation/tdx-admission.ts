// Admission of a node by its Intel TDX quote. CCF has no TDX platform (its QuoteFormat is
// OE_SGX_v1, Insecure_Virtual or AMD_SEV_SNP_v1), so the format name and the allow list are
// Coco's own: quote_info.format "Intel_TDX_v1", quote = the DCAP quote, endorsements = the PCCS
// collateral JSON (signed by Intel, so whoever carries it cannot forge it; its validity window is
// checked at the verifying node's time). Order as for SEV-SNP: the hardware's claims
// (dcap.ts), then the code (MRTD, and the RTMRs members pinned with it), then the key binding.
import { refuse } from "./errors.js";
import { parseDcapCollateral, verifyDcapQuote, DCAP_QUOTE_BYTES_MAX, type DcapVerified } from "./dcap.js";

export const TDX_FORMAT = "Intel_TDX_v1";
/** PCCS collateral (CRLs, TCB info, QE identity with their issuer chains) is ~20 KB as JSON. */
export const TDX_COLLATERAL_BYTES_MAX = 256 * 1024;
const TDX_RTMR_COUNT = 4;

/** What members allow for one MRTD: optionally the RTMRs that must match too (absent: any). */
export interface TdxMeasurementEntry {
  rtmr0?: string;
  rtmr1?: string;
  rtmr2?: string;
  rtmr3?: string;
}

/** Governance's TDX allow list (Coco's public:ccf.gov.nodes.tdx.measurements, set by add_tdx_measurement). */
export interface TdxAllowLists {
  measurement(mrtdHex: string): TdxMeasurementEntry | undefined;
}

export interface TdxQuoteInfo {
  format: string;
  quote: string;
  endorsements?: string;
}

function base64Field(value: unknown, field: string, bytesMax: number): Buffer {
  const charsMax = Math.ceil(bytesMax / 3) * 4;
  if (typeof value !== "string" || value.length === 0 || value.length > charsMax || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw refuse("format", `quote_info.${field} must be base64 of at most ${charsMax} characters.`);
  }
  return Buffer.from(value, "base64");
}

/**
 * Verifies a TDX quote and its collateral at `nowMs`, then checks governance's allow list and
 * that report_data starts with `expectedKeyDigestHex` (SHA-256 of the node's DER public key, as
 * for SEV-SNP). Throws an AttestationError naming the failed check.
 */
export function admitTdxEvidence(quoteInfo: TdxQuoteInfo, allow: TdxAllowLists, expectedKeyDigestHex: string, options: { nowMs: number }): DcapVerified {
  const quote = base64Field(quoteInfo.quote, "quote", DCAP_QUOTE_BYTES_MAX);
  const collateral = parseDcapCollateral(base64Field(quoteInfo.endorsements, "endorsements", TDX_COLLATERAL_BYTES_MAX).toString("utf8"));
  const verified = verifyDcapQuote(quote, collateral, options);
  if (verified.tee !== "TDX" || verified.rtmrHex === undefined) throw refuse("format", `quote_info.format is ${TDX_FORMAT} but the quote is an ${verified.tee} quote.`);
  const entry = allow.measurement(verified.measurementHex);
  if (entry === undefined) {
    throw refuse("measurement", `MRTD ${verified.measurementHex} is not trusted by this service: members must first accept add_tdx_measurement for it.`);
  }
  for (let i = 0; i < TDX_RTMR_COUNT; i++) {
    const required = entry[`rtmr${i}` as keyof TdxMeasurementEntry];
    if (required !== undefined && required !== verified.rtmrHex[i]) {
      throw refuse("measurement", `RTMR${i} ${verified.rtmrHex[i]} is not the ${required} members allowed with MRTD ${verified.measurementHex.slice(0, 16)}… (add_tdx_measurement).`);
    }
  }
  const bound = verified.reportDataHex.slice(0, 64);
  if (bound !== expectedKeyDigestHex) {
    throw refuse("report_data", `the quote binds key digest ${bound}, not the key of the TLS certificate the node presented (${expectedKeyDigestHex}).`);
  }
  return verified;
}
