// `coco attestation verify`: checks SEV-SNP evidence (or an Intel TDX/SGX DCAP quote) offline
// with the verifier the node uses. Exit 0 only when valid; otherwise the failed check is named.
import { readFileSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";
import { AttestationError, parseDcapCollateral, verifyDcapQuote, verifySnpReport } from "../attestation/index.js";

function time(value: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`'${value}' is not a date (e.g. 2026-06-01T00:00:00Z).`);
  return ms;
}

function readOrExit(path: string, what: string, json: boolean): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    report(json, { valid: false, check: "input", error: `cannot read ${what} '${path}': ${(error as Error).message}` });
    process.exit(2);
  }
}

function report(json: boolean, result: Record<string, unknown>): void {
  if (json) {
    console.log(JSON.stringify(result));
  } else if (result.valid === true) {
    console.log("Attestation is valid.");
    for (const [key, value] of Object.entries(result)) if (key !== "valid") console.log(`  ${key}: ${typeof value === "object" ? JSON.stringify(value) : String(value)}`);
  } else {
    console.error(`Attestation is NOT valid (${String(result.check)} check failed): ${String(result.error)}`);
  }
}

function refused(json: boolean, error: unknown): never {
  const check = error instanceof AttestationError ? error.check : "internal";
  report(json, { valid: false, check, error: (error as Error).message });
  process.exit(1);
}

/** A report file is raw bytes (as configfs-tsm's outblob or snpguest write it) or their base64 (as CCF's quote_info). */
function reportBytes(file: Buffer): Buffer {
  const text = file.toString("latin1").trim();
  return file.length !== 1184 && /^[A-Za-z0-9+/]+=*$/.test(text) ? Buffer.from(text, "base64") : file;
}

export function registerAttestationCommands(program: Command): void {
  const attestation = program.command("attestation").description("Verify TEE attestation evidence offline");
  attestation.command("verify")
    .description("Verify an AMD SEV-SNP report against its VCEK/VLEK chain (up to AMD's pinned roots); prints measurement, report data, host data and TCB")
    .requiredOption("--report <file>", "the 1184-byte attestation report (raw or base64)")
    .requiredOption("--endorsements <pem>", "the VCEK or VLEK, ASK or ASVK and ARK certificates, concatenated PEM")
    .option("--time <date>", "check certificate validity at this time instead of now (old evidence)", time)
    .option("--endorsed-tcb <hex>", "CCF's endorsed_tcb: the TCB (16 hex characters) the report must carry")
    .option("--allow-migration-agent", "accept a guest policy that allows a migration agent", false)
    .option("--json", "print the result as JSON", false)
    .action((opts) => {
      const report_ = reportBytes(readOrExit(opts.report, "report", opts.json));
      const endorsements = readOrExit(opts.endorsements, "endorsements", opts.json).toString("utf8");
      try {
        const v = verifySnpReport(report_, endorsements, {
          ...(opts.time !== undefined ? { nowMs: opts.time } : {}),
          ...(opts.endorsedTcb !== undefined ? { endorsedTcbHex: opts.endorsedTcb } : {}),
          allowMigrationAgent: opts.allowMigrationAgent,
        });
        report(opts.json, {
          valid: true, platform: "AMD SEV-SNP", product: v.product, signing_key: v.signingKey,
          measurement: v.measurementHex, report_data: v.reportDataHex, host_data: v.hostDataHex,
          reported_tcb: v.reportedTcb, chip_id: v.chipIdHex, policy: v.report.policy,
        });
      } catch (error) {
        refused(opts.json, error);
      }
    });
  attestation.command("verify-dcap")
    .description("Verify an Intel TDX or SGX DCAP quote with collateral from a file (PCCS v4 JSON); prints MRTD/MRENCLAVE, report data and TCB status")
    .requiredOption("--quote <file>", "the raw quote")
    .requiredOption("--collateral <json>", "the collateral (pck_crl, tcb_info, qe_identity and their chains) as JSON")
    .option("--time <date>", "verify at this time instead of now (collateral is valid for about a month)", time)
    .option("--json", "print the result as JSON", false)
    .action((opts) => {
      const quote = readOrExit(opts.quote, "quote", opts.json);
      const collateralText = readOrExit(opts.collateral, "collateral", opts.json).toString("utf8");
      try {
        const v = verifyDcapQuote(quote, parseDcapCollateral(collateralText), { nowMs: opts.time ?? Date.now() });
        report(opts.json, { valid: true, platform: `Intel ${v.tee}`, measurement: v.measurementHex, signer: v.signerHex, report_data: v.reportDataHex, tcb_status: v.tcbStatus, advisory_ids: v.advisoryIds });
      } catch (error) {
        refused(opts.json, error);
      }
    });
}
