// Benchmark of `coco ledger verify` (src/audit/verify.ts): writes a ledger of N transactions with
// the real ledger writer, signed as a node signs it (a signature transaction every 1000), then
// times verifyLedger over it. Prints tx/s and writes JSON like the other benchmarks. The
// signature interval defaults to the node's default (ledger_signatures.tx_count = 5000, as CCF):
// each signature costs one P-384 ECDSA verification (several ms with @noble/curves), so a
// shorter interval costs more per transaction.
// Run: node dist/bench/ledger-verify.js [transactions] [signatureEvery] [--out file]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { verifyLedger } from "../src/audit/index.js";
import { makeServiceFixture, writeSignedLedger } from "../test/helpers/signed-ledger.js";

const transactions = Number(process.argv[2] ?? 1_000_000);
const outIndex = process.argv.indexOf("--out");
const outPath = outIndex > 0 ? process.argv[outIndex + 1]! : `bench/results/ledger-verify-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
const SIGNATURE_EVERY = Number(process.argv[3] !== undefined && !process.argv[3].startsWith("--") ? process.argv[3] : 5000);

const dir = mkdtempSync(join(tmpdir(), "coco-verify-bench-"));
try {
  const service = await makeServiceFixture();
  let started = process.hrtime.bigint();
  // The logging app's shape: a public and a private write per transaction (AES-GCM private domain).
  const written = await writeSignedLedger({ dir, service, transactions, signatureEvery: SIGNATURE_EVERY });
  const writeSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`wrote ${written.lastSeqno} entries (${written.signatureSeqnos.length} signature transactions) in ${writeSeconds.toFixed(1)} s`);
  // Wall time is what a user waits; CPU time (user + system of this process) is what one
  // dedicated core would need: on a shared machine the two differ a lot, so both are reported.
  const runs: { seconds: number; txPerSecond: number; cpuSeconds: number; txPerCpuSecond: number }[] = [];
  let report;
  for (let run = 0; run < 3; run++) {
    started = process.hrtime.bigint();
    const cpuStart = process.cpuUsage();
    report = await verifyLedger([dir], { serviceCertPem: service.serviceCertPem });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = process.cpuUsage(cpuStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    if (!report.verified || report.problem !== null) throw new Error(`the benchmark ledger did not verify: ${report.problem?.message}`);
    runs.push({ seconds, txPerSecond: Math.round(report.entries / seconds), cpuSeconds, txPerCpuSecond: Math.round(report.entries / cpuSeconds) });
    console.log(`verify run ${run + 1}: ${report.entries} entries, ${report.bytes} bytes, ${report.files} files in ${seconds.toFixed(2)} s wall ` +
      `(${runs[run]!.txPerSecond} tx/s), ${cpuSeconds.toFixed(2)} s CPU (${runs[run]!.txPerCpuSecond} tx per CPU second)`);
  }
  const best = Math.max(...runs.map((r) => r.txPerSecond));
  const bestPerCpuSecond = Math.max(...runs.map((r) => r.txPerCpuSecond));
  const result = {
    benchmark: "ledger-verify",
    date: new Date().toISOString(),
    machine: { cores: availableParallelism(), cpu: cpus()[0]?.model ?? "unknown", node: process.version },
    ledger: { transactions: report!.entries, bytes: report!.bytes, files: report!.files, signatureEvery: SIGNATURE_EVERY, writeSeconds },
    runs,
    bestTxPerSecond: best,
    bestTxPerCpuSecond: bestPerCpuSecond,
    loadAverage: loadavg(),
    note: "verifyLedger runs on one thread (one core); the machine is shared, so wall-clock figures are noisy",
  };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`best ${best} tx/s wall, ${bestPerCpuSecond} tx per CPU second (machine has ${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}); wrote ${outPath}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
