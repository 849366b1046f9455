// `npm run faults`: the fault-injection suite's command line. Starts real Coco nodes on 127.0.0.1,
// injects faults under write load, prints one JSON line per round and a summary; exits 1 on any
// violation, 2 if the run stopped before its planned rounds.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { NodeProcess } from "../helpers/node-process.js";
import { formatReport, runFaultSuite, type Counts, type FaultSuiteOptions } from "./suite.js";

const HELP = `Usage: npm run faults -- [options]

Fault-injection suite: real Coco node processes on 127.0.0.1 under write load, with faults.
Checks that every write ever seen Committed reads back with its value on every node, that no
transaction status flips (Invalid->Committed, Committed->other), that the network takes writes
again and every node reaches the same commit; reports availability gaps per fault.

Presets (counts below override them):
  --quick                 CI-sized (default): 3 nodes; 3 primary kills, 1 primary pause, 1 backup
                          pause, 1 network kill, disk-full, damaged-file, wiped-node; 3 s pauses
  --full                  the issue's run: 3 and 5 nodes; 100 primary kills, 20 primary pauses,
                          10 backup pauses, 10 network kills, disk-full, damaged-file,
                          wiped-node; 10 s pauses
Options:
  --nodes N[,M]           network sizes, e.g. 3 or 3,5
  --primary-kills N       SIGKILL the primary, wait for a new one, restart the killed node
  --primary-pauses N      SIGSTOP the primary for --pause-ms, then SIGCONT
  --backup-pauses N       SIGSTOP a backup for --pause-ms, then SIGCONT
  --network-kills N       SIGKILL every node, restart all from their workspaces
  --disk-full / --no-disk-full        a backup's ledger on a small tmpfs, filled, then freed
  --damaged-file / --no-damaged-file  cut, then flip, bytes of a backup's last ledger chunk
  --wiped-node / --no-wiped-node      restart a backup with an empty ledger: it must catch up
  --pause-ms MS           length of a SIGSTOP pause
  --writers N             concurrent writer loops (default 4)
  --seed N                seed of every random choice (printed; reuse it to replay choices)
  --minutes N             stop scheduling rounds after N minutes (quick 10, full 240)
  --json FILE             write every figure, fault and violation as JSON
  --keep                  keep the workspaces (ledgers, logs) even on success
  -h, --help              this text
Exit status: 0 all checks passed; 1 a violation; 2 the run stopped before its planned rounds.`;

function int(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      help: { type: "boolean", short: "h" }, quick: { type: "boolean" }, full: { type: "boolean" },
      nodes: { type: "string" }, "primary-kills": { type: "string" }, "primary-pauses": { type: "string" },
      "backup-pauses": { type: "string" }, "network-kills": { type: "string" },
      "disk-full": { type: "boolean" }, "no-disk-full": { type: "boolean" },
      "damaged-file": { type: "boolean" }, "no-damaged-file": { type: "boolean" },
      "wiped-node": { type: "boolean" }, "no-wiped-node": { type: "boolean" },
      "pause-ms": { type: "string" }, writers: { type: "string" }, seed: { type: "string" },
      minutes: { type: "string" }, json: { type: "string" }, keep: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) { console.log(HELP); return 0; }
  if (values.quick && values.full) throw new Error("--quick and --full exclude each other");
  const nodes = values.nodes?.split(",").map((s) => int("nodes", s)!);
  if (nodes?.some((n) => n < 1 || n > 7)) throw new Error("--nodes: between 1 and 7 nodes per network");
  const counts: Partial<Counts> = {};
  const set = <K extends keyof Counts>(key: K, value: Counts[K] | undefined) => { if (value !== undefined) counts[key] = value; };
  set("primaryKills", int("primary-kills", values["primary-kills"]));
  set("primaryPauses", int("primary-pauses", values["primary-pauses"]));
  set("backupPauses", int("backup-pauses", values["backup-pauses"]));
  set("networkKills", int("network-kills", values["network-kills"]));
  set("diskFull", values["disk-full"] ? true : values["no-disk-full"] ? false : undefined);
  set("damagedFile", values["damaged-file"] ? true : values["no-damaged-file"] ? false : undefined);
  set("wipedNode", values["wiped-node"] ? true : values["no-wiped-node"] ? false : undefined);
  const pauseMs = int("pause-ms", values["pause-ms"]);
  const options: FaultSuiteOptions = {
    preset: values.full ? "full" : "quick", counts,
    ...(nodes ? { nodes } : {}),
    ...(pauseMs !== undefined ? { timing: { pauseMs, diskFullMs: pauseMs } } : {}),
    ...(values.seed !== undefined ? { seed: int("seed", values.seed)! } : {}),
    ...(values.writers !== undefined ? { writersMax: Math.max(1, int("writers", values.writers)!) } : {}),
    ...(values.minutes !== undefined ? { runMinutesMax: int("minutes", values.minutes)! } : {}),
    ...(values.keep ? { keep: true } : {}),
  };
  const report = await runFaultSuite(options);
  console.log(formatReport(report));
  if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2));
  if (!report.ok && report.totals.violations === 0) return 2;
  return report.ok ? 0 : 1;
}

// Interrupted (Ctrl-C, a CI timeout): take the node processes down too, paused ones included.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    for (const child of NodeProcess.children) child.kill("SIGKILL");
    console.error(`faults: interrupted by ${signal}; node processes killed (a tmpfs may stay mounted under /tmp/coco-faults-*)`);
    process.exit(130);
  });
}

main().then((code) => process.exit(code), (e: Error) => {
  console.error(`faults: ${e.message}`);
  process.exit(2);
});
