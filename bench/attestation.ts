// Attestation verification throughput: SEV-SNP reports verified per second with the VCEK/ASK/ARK
// chain cold (every RSA-4096 chain signature checked again) and warm (the chain cache: only the
// report's P-384 signature and the field checks), Intel TDX quotes (DCAP, full collateral checks
// each time) and UVM endorsements (DID:x509 chain and COSE signature each time). Uses the real
// fixtures. Prints a table and writes JSON.
// Run: node dist/bench/attestation.js [--seconds 3] [--out bench/results/attestation.json]
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import * as os from "node:os";
import { clearSnpChainCache, parseDcapCollateral, verifyDcapQuote, verifySnpReport, verifyUvmEndorsements } from "../src/attestation/index.js";

const FIXTURES = new URL("../../test/fixtures/attestation/", import.meta.url);
const read = (name: string): Buffer => readFileSync(new URL(name, FIXTURES));

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const secondsPerCase = Number(argument("--seconds", "3"));
const outPath = argument("--out", "bench/results/attestation.json");
const nowMs = Date.parse("2026-06-01T00:00:00Z");
const milanReport = read("snp/milan-report.bin");
const milanEndorsements = read("snp/milan-endorsements.pem").toString("utf8");
const genoaReport = read("snp/genoa-report.bin");
const genoaEndorsements = read("snp/genoa-endorsements.pem").toString("utf8");
const tdxQuote = read("tdx/tdx-quote.bin");
const tdxCollateral = parseDcapCollateral(read("tdx/tdx-quote-collateral.json").toString("utf8"));
const uvmEndorsements = read("uvm/uvm_0.2.9.cose");
const uvmMeasurement = "d0c9e2be22046e60779be88868cff64c2aa22047c15d3127ba495cee3fbc2854c5633f9da2096e6c64ae2b69bbff8082";

interface Figures { name: string; verifications: number; seconds: number; perSecond: number; microsecondsEach: number }

function measure(name: string, once: () => void): Figures {
  for (let i = 0; i < 20; i++) once(); // warm up the JIT and OpenSSL's key caches
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.round(secondsPerCase * 1e9));
  let count = 0;
  let now = started;
  while (now < deadline) {
    for (let i = 0; i < 10; i++) once();
    count += 10;
    now = process.hrtime.bigint();
  }
  const seconds = Number(now - started) / 1e9;
  return { name, verifications: count, seconds: Math.round(seconds * 1000) / 1000, perSecond: Math.round(count / seconds), microsecondsEach: Math.round((seconds / count) * 1e6) };
}

const results: Figures[] = [
  measure("SEV-SNP Milan, chain cold", () => verifySnpReport(milanReport, milanEndorsements, { nowMs, chainCache: false })),
  measure("SEV-SNP Genoa, chain cold", () => verifySnpReport(genoaReport, genoaEndorsements, { nowMs, chainCache: false })),
  (clearSnpChainCache(), measure("SEV-SNP Milan, chain warm", () => verifySnpReport(milanReport, milanEndorsements, { nowMs }))),
  measure("SEV-SNP Genoa, chain warm", () => verifySnpReport(genoaReport, genoaEndorsements, { nowMs })),
  measure("Intel TDX (DCAP)", () => verifyDcapQuote(tdxQuote, tdxCollateral, { nowMs: Date.parse("2025-06-20T12:00:00Z") })),
  // Not cached: the DID:x509 chain (3 RSA certificates) and the PS384 signature each time.
  measure("UVM endorsements (COSE)", () => verifyUvmEndorsements(uvmEndorsements, uvmMeasurement)),
];

console.log(`attestation verification, ${secondsPerCase} s per case, node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}`);
console.log(`${"case".padEnd(28)} ${"per second".padStart(11)} ${"µs each".padStart(9)}`);
for (const r of results) console.log(`${r.name.padEnd(28)} ${String(r.perSecond).padStart(11)} ${String(r.microsecondsEach).padStart(9)}`);
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, loadavg: os.loadavg(), secondsPerCase, results }, null, 2));
console.log(`figures written to ${outPath}`);
