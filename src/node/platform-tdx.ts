// The tdx platform of a node: its Intel TDX quote with report_data binding its key (SHA-256 of
// the DER public key, then zeros, as for SEV-SNP) from Linux configfs-tsm (provider tdx_guest),
// and Intel's collateral from a file the operator fetched from Intel's PCS or a PCCS (no node
// contacts Intel). `attestation.tdx_quote_file` presents a quote made beforehand instead: for
// development on machines without TDX; such a quote cannot bind a key this node generated, so a
// service refuses it (report_data), as it must.
import * as fs from "node:fs";
import { CocoError } from "../util/index.js";
import { TDX_FORMAT, parseDcapCollateral, verifyDcapQuote, type DcapVerified } from "../attestation/index.js";
import { configfsTsmReportSource, snpReportDataFor, type PlatformConfig, type TsmFileSystem } from "./platform.js";

export type TdxPlatformConfig = Extract<PlatformConfig, { kind: "tdx" }>;

function readFile(path: string, field: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (error) {
    throw new CocoError("InvalidConfiguration", `attestation.${field} '${path}' cannot be read: ${(error as Error).message}.`, 400);
  }
}

/**
 * This node's TDX evidence in quote_info form: format Intel_TDX_v1, quote, endorsements = the
 * collateral JSON. Verified here first (signature chain, TCB, collateral validity at `nowMs`),
 * so stale collateral is found at start. A quote from configfs-tsm must carry this node's report
 * data; a quote from a file is presented as it is (`bindsNodeKey` says whether it does).
 */
export function tdxNodeEvidence(platform: TdxPlatformConfig, nodePublicKeyPem: string, options: { nowMs: number; fileSystem?: TsmFileSystem }): {
  quoteInfo: { format: string; quote: string; endorsements: string }; verified: DcapVerified; bindsNodeKey: boolean;
} {
  const reportData = snpReportDataFor(nodePublicKeyPem);
  const quote = platform.quoteFile !== undefined
    ? readFile(platform.quoteFile, "tdx_quote_file")
    : configfsTsmReportSource(platform.tsmReportDirectory, options.fileSystem, "tdx_guest")(reportData);
  const collateralJson = readFile(platform.collateralPath, "tdx_collateral_file").toString("utf8");
  let verified: DcapVerified;
  try {
    verified = verifyDcapQuote(quote, parseDcapCollateral(collateralJson), { nowMs: options.nowMs });
  } catch (error) {
    throw new CocoError("PlatformUnavailable", `This node's TDX quote does not verify with attestation.tdx_collateral_file (refresh the collateral from Intel's PCS or your PCCS): ${(error as Error).message}`, 500);
  }
  if (verified.tee !== "TDX") throw new CocoError("PlatformUnavailable", `enclave.platform is TDX but the quote is an ${verified.tee} quote.`, 500);
  const bindsNodeKey = verified.reportDataHex === reportData.toString("hex");
  if (!bindsNodeKey && platform.quoteFile === undefined) {
    throw new CocoError("PlatformUnavailable", "The TDX quote does not carry the report data this node asked for: the report source is not this TD's.", 500);
  }
  return {
    quoteInfo: { format: TDX_FORMAT, quote: quote.toString("base64"), endorsements: Buffer.from(collateralJson).toString("base64") },
    verified,
    bindsNodeKey,
  };
}
