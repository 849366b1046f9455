// Intel TDX and SGX DCAP quotes, verified by @phala/dcap-qvl (Apache-2.0) against Intel's SGX
// root CA (pinned inside the library) with collateral (PCK CRLs, TCB info, QE identity) that the
// operator fetched from Intel's PCS or a PCCS and stores in a file: no node reaches Intel.
// Collateral is signed with a validity window of about a month, so the verification time is an
// input, never read here.
import { createRequire } from "node:module";
import type { Collateral, VerifiedReport } from "@phala/dcap-qvl";
import { refuse } from "./errors.js";

const require = createRequire(import.meta.url);
const dcap = require("@phala/dcap-qvl") as typeof import("@phala/dcap-qvl");

/** A TDX quote with its certification data is ~5 KB; refuse far larger input unread. */
export const DCAP_QUOTE_BYTES_MAX = 64 * 1024;
/**
 * TCB statuses accepted by default: the platform is patched; "configuration" and "SW hardening"
 * statuses say the enclave or BIOS settings should be reviewed (returned for the caller to judge).
 * OutOfDate and Revoked platforms are refused.
 */
export const DCAP_TCB_STATUSES_ACCEPTED_DEFAULT: readonly string[] = ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"];

export interface DcapVerified {
  tee: "TDX" | "SGX";
  tcbStatus: string;
  advisoryIds: string[];
  /** TDX: MRTD (the TD's initial contents); SGX: MRENCLAVE. */
  measurementHex: string;
  /** SGX: MRSIGNER; TDX: MRSIGNERSEAM. */
  signerHex: string;
  reportDataHex: string;
  /** TDX only: RTMR0..3 (runtime measurements the TD extends: firmware config, kernel, command line, app). */
  rtmrHex?: [string, string, string, string];
}

export function parseDcapCollateral(json: string): Collateral {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw refuse("quote", `the collateral is not JSON: ${(error as Error).message}.`);
  }
  const fields = ["pck_crl_issuer_chain", "root_ca_crl", "pck_crl", "tcb_info_issuer_chain", "tcb_info", "tcb_info_signature", "qe_identity_issuer_chain", "qe_identity", "qe_identity_signature"];
  const missing = fields.filter((f) => typeof value !== "object" || value === null || !(f in value));
  if (missing.length > 0) throw refuse("quote", `the collateral lacks ${missing.join(", ")} (expected PCCS v4 collateral as JSON).`);
  return value as Collateral;
}

/** Verifies a TDX or SGX quote; throws an AttestationError (check "quote") naming what failed. */
export function verifyDcapQuote(quote: Uint8Array, collateral: Collateral, options: { nowMs: number; tcbStatusesAccepted?: readonly string[] }): DcapVerified {
  if (quote.length > DCAP_QUOTE_BYTES_MAX) throw refuse("quote", `the quote is ${quote.length} bytes, above the ${DCAP_QUOTE_BYTES_MAX}-byte limit.`);
  let result: VerifiedReport;
  try {
    result = dcap.verify(Buffer.from(quote), collateral, Math.floor(options.nowMs / 1000));
  } catch (error) {
    throw refuse("quote", `DCAP verification failed: ${(error as Error).message}.`);
  }
  const accepted = options.tcbStatusesAccepted ?? DCAP_TCB_STATUSES_ACCEPTED_DEFAULT;
  if (!accepted.includes(result.status)) {
    throw refuse("tcb", `the platform's TCB status is ${result.status} (accepted: ${accepted.join(", ")}).`);
  }
  const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
  const sgx = result.report.asSgx();
  if (sgx !== null) {
    return { tee: "SGX", tcbStatus: result.status, advisoryIds: [...result.advisory_ids], measurementHex: hex(sgx.mrEnclave), signerHex: hex(sgx.mrSigner), reportDataHex: hex(sgx.reportData) };
  }
  const td = result.report.asTd10() ?? result.report.asTd15()?.base ?? null;
  if (td === null) throw refuse("quote", "the quote's report is neither an SGX enclave report nor a TD report.");
  return {
    tee: "TDX", tcbStatus: result.status, advisoryIds: [...result.advisory_ids], measurementHex: hex(td.mrTd), signerHex: hex(td.mrSignerSeam), reportDataHex: hex(td.reportData),
    rtmrHex: [hex(td.rtMr0), hex(td.rtMr1), hex(td.rtMr2), hex(td.rtMr3)],
  };
}
