// `coco ledger verify | read | export`: offline audit of a ledger directory (or several, as a
// node's read-only ledger directories). The work is in src/audit; this file parses options,
// draws progress on stderr and maps outcomes to exit codes (documented in docs/cli.md).
import { createWriteStream, readFileSync, type WriteStream } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import { AuditProblem, readLedger, recoverLedgerSecrets, verifyLedger, type EncodedBytes, type ReadEntry, type ReadOptions, type ReadWrite, type VerifyProgress, type VerifyReport } from "../audit/index.js";
import { CocoError } from "../util/index.js";

/** Everything verified (verify), everything read and decrypted as asked (read, export). */
export const EXIT_OK = 0;
/** The ledger has a problem: damaged, altered, incomplete, or signed by an untrusted node. */
export const EXIT_PROBLEM = 1;
/** Bad arguments, or a file or directory that cannot be read. */
export const EXIT_USAGE = 2;
/** verify: all signed entries verified, but entries after the last signature are unproven.
 * read/export: some private domains could not be decrypted (ranges on stderr). */
export const EXIT_INCOMPLETE = 3;

const PROGRESS_LINE_INTERVAL_MS = 10_000;
const PROGRESS_BAR_WIDTH = 30;

function seqnoRange(value: string): { from: number; to: number } {
  const match = /^(\d+)?\.\.(\d+)?$/.exec(value) ?? /^(\d+)$/.exec(value);
  if (!match) throw new InvalidArgumentError(`'${value}' is not a seqno range: use A..B, A.., ..B or A.`);
  const from = match[1] === undefined ? 1 : Number(match[1]);
  const to = match.length === 2 ? from : match[2] === undefined ? Infinity : Number(match[2]);
  if (from < 1 || to < from) throw new InvalidArgumentError(`'${value}': the range must start at 1 or more and not end before it starts.`);
  return { from, to };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new CocoError("InvalidInput", `cannot read ${what} '${path}': ${(error as Error).message}`, 400);
  }
}

/** Ledger problems exit 1; anything else (arguments, IO) exits 2. */
function failWith(error: unknown): never {
  const message = error instanceof CocoError ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error);
  console.error(`coco ledger: ${message}`);
  process.exit(error instanceof AuditProblem ? EXIT_PROBLEM : EXIT_USAGE);
}

function progressReporter(): (p: VerifyProgress) => void {
  const started = Date.now();
  let lastLine = 0;
  const tty = process.stderr.isTTY === true;
  return (p) => {
    const fraction = p.bytesTotal === 0 ? 1 : p.bytesDone / p.bytesTotal;
    const rate = Math.round(p.entries / Math.max((Date.now() - started) / 1000, 1e-3));
    if (tty) {
      const filled = Math.round(fraction * PROGRESS_BAR_WIDTH);
      process.stderr.write(`\r[${"#".repeat(filled)}${" ".repeat(PROGRESS_BAR_WIDTH - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${p.entries} tx, ${rate} tx/s `);
      if (fraction >= 1) process.stderr.write("\n");
    } else if (Date.now() - lastLine >= PROGRESS_LINE_INTERVAL_MS) {
      lastLine = Date.now();
      console.error(`coco ledger verify: ${(fraction * 100).toFixed(0)}% (${p.entries} transactions, ${rate} tx/s, at ${p.file})`);
    }
  };
}

function printVerifyReport(report: VerifyReport): void {
  console.log(`Trust anchor: ${report.trustAnchor.description}.`);
  report.serviceIdentities.forEach((identity, i) => {
    console.log(`Service identity ${i}: ${identity.fingerprint}, recorded at seqno ${identity.fromSeqno}, ${identity.trusted ? "trusted" : "NOT trusted"}` +
      (identity.endorsedPreviousAt !== undefined ? `, endorses identity ${i - 1} at seqno ${identity.endorsedPreviousAt}` : ""));
  });
  console.log(`Read ${report.files} files, ${report.bytes} bytes, ${report.entries} transactions (seqnos 1..${report.lastSeqno}), ` +
    `${report.signatures} signature transactions (${report.coseSignatures} with a COSE signature by the service key), in ${report.seconds.toFixed(2)} s (${Math.round(report.entries / Math.max(report.seconds, 1e-6))} tx/s).`);
  if (report.problem !== null) {
    console.log(`PROBLEM (${report.problem.code}): ${report.problem.message}`);
    return;
  }
  console.log(`Verified: seqnos 1..${report.verifiedThroughSeqno} are covered by signed Merkle roots that check out.`);
  if (report.unsignedTail !== null) {
    const t = report.unsignedTail;
    console.log(`NOT verified: ${t.count} transactions after the last signature transaction (seqnos ${t.fromSeqno}..${t.toSeqno}) are covered by no signature yet.`);
  }
}

function bytesJson(value: EncodedBytes, name: string): Record<string, string> {
  return "text" in value ? { [name]: value.text } : { [`${name}_base64`]: value.base64 };
}

function writesJson(maps: Map<string, ReadWrite[]>): Record<string, object[]> {
  const out: Record<string, object[]> = {};
  for (const [name, writes] of maps) {
    out[name] = writes.map((w) => ({ ...bytesJson(w.key, "key"), ...(w.value === null ? { deleted: true } : bytesJson(w.value, "value")) }));
  }
  return out;
}

function entryJson(entry: ReadEntry): object {
  return {
    txid: `${entry.view}.${entry.seqno}`, view: entry.view, seqno: entry.seqno,
    flags: { signature: entry.isSignature },
    public: writesJson(entry.public),
    ...(entry.private !== undefined ? { private: writesJson(entry.private) } : { private_encrypted_bytes: entry.privateBytes, private_error: entry.privateError }),
  };
}

const CSV_COLUMNS = ["txid", "seqno", "view", "signature", "domain", "map", "key", "key_encoding", "value", "value_encoding"] as const;

function csvField(value: string | number | boolean): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One row per key written: the flat shape that spreadsheets and databases import. */
function exportRows(entry: ReadEntry): Record<(typeof CSV_COLUMNS)[number], string | number | boolean>[] {
  const rows: Record<(typeof CSV_COLUMNS)[number], string | number | boolean>[] = [];
  const common = { txid: `${entry.view}.${entry.seqno}`, seqno: entry.seqno, view: entry.view, signature: entry.isSignature };
  const add = (domain: string, maps: Map<string, ReadWrite[]>): void => {
    for (const [map, writes] of maps) {
      for (const w of writes) {
        rows.push({
          ...common, domain, map,
          key: "text" in w.key ? w.key.text : w.key.base64, key_encoding: "text" in w.key ? "utf8" : "base64",
          value: w.value === null ? "" : "text" in w.value ? w.value.text : w.value.base64,
          value_encoding: w.value === null ? "deleted" : "text" in w.value ? "utf8" : "base64",
        });
      }
    }
  };
  add("public", entry.public);
  if (entry.private !== undefined) add("private", entry.private);
  else rows.push({ ...common, domain: "private", map: "", key: "", key_encoding: "", value: entry.privateError ?? "", value_encoding: "undecrypted" });
  return rows;
}

interface ReadCliOptions { seqno?: { from: number; to: number }; tables?: string; memberEncKey: string[] }

/** Builds the reader's options, recovering ledger secrets when member keys are given. */
async function readerOptions(dirs: string[], opts: ReadCliOptions): Promise<{ options: ReadOptions; undecryptable: string[] }> {
  const options: ReadOptions = {};
  if (opts.seqno) {
    options.fromSeqno = opts.seqno.from;
    options.toSeqno = opts.seqno.to;
  }
  if (opts.tables) options.tables = new Set(opts.tables.split(",").map((t) => t.trim()).filter((t) => t !== ""));
  const undecryptable: string[] = [];
  if (opts.memberEncKey.length > 0) {
    const keys = opts.memberEncKey.map((path) => readText(path, "member encryption key"));
    const recovered = await recoverLedgerSecrets(dirs, keys);
    if (recovered.secrets) options.secrets = recovered.secrets;
    options.secretRanges = recovered.ranges;
    for (const range of recovered.ranges) {
      if (!range.recovered) undecryptable.push(`seqnos ${range.fromSeqno}..${range.toSeqno}: ${range.reason}`);
    }
  }
  return { options, undecryptable };
}

function reportUndecryptable(command: string, undecryptable: string[]): number {
  for (const line of undecryptable) console.error(`coco ledger ${command}: private domains not decrypted for ${line}`);
  return undecryptable.length > 0 ? EXIT_INCOMPLETE : EXIT_OK;
}

/** `coco ledger read | head` closes stdout early: stop quietly, as other Unix tools do. */
function exitOnClosedStdout(): void {
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(EXIT_OK);
    failWith(error);
  });
}

async function writeOut(out: NodeJS.WritableStream, line: string): Promise<void> {
  if (!out.write(line)) await new Promise<void>((resolve) => out.once("drain", () => resolve()));
}

export function registerLedgerCommands(program: Command): void {
  const ledger = program.command("ledger").description("Audit a ledger offline: verify it, read it, export it (no running node needed)");
  // Usage errors exit 2, so that 1 always means "the ledger has a problem".
  ledger.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE));

  ledger.command("verify")
    .description("Check every chunk, frame and entry, rebuild the Merkle tree, verify every signature transaction (node signature and COSE signature by the service key) and the signing nodes' certificates. " +
      "Exit codes: 0 all verified, 1 problem found, 2 usage or IO error, 3 verified but entries after the last signature are unproven")
    .argument("<dirs...>", "ledger directories (chunks of one ledger; several for read-only copies)")
    .option("--service-cert <pem>", "service certificate to trust (default: the service identity the ledger records, which only proves self-consistency)")
    .option("--json", "print the result as JSON on stdout", false)
    .option("--no-progress", "no progress on stderr")
    .action(async (dirs: string[], opts: { serviceCert?: string; json: boolean; progress: boolean }) => {
      try {
        const serviceCertPem = opts.serviceCert === undefined ? undefined : readText(opts.serviceCert, "service certificate");
        const report = await verifyLedger(dirs, { ...(serviceCertPem ? { serviceCertPem } : {}), ...(opts.progress ? { onProgress: progressReporter() } : {}) });
        if (opts.json) console.log(JSON.stringify(report));
        else printVerifyReport(report);
        process.exitCode = report.problem !== null ? EXIT_PROBLEM : report.unsignedTail !== null ? EXIT_INCOMPLETE : EXIT_OK;
      } catch (error) {
        failWith(error);
      }
    });

  const readOptions = (command: Command): Command => command
    .argument("<dirs...>", "ledger directories")
    .option("--seqno <range>", "only seqnos A..B (A.., ..B and A also work)", seqnoRange)
    .option("--tables <names>", "only these maps, comma-separated full names (e.g. public:records,records)")
    .option("--member-enc-key <pem>", "a recovery member's RSA encryption private key; repeat up to the recovery threshold to decrypt private domains", collect, []);

  readOptions(ledger.command("read"))
    .description("Print entries as JSON lines (tx id, flags, public and, with member keys, private writes; keys and values as UTF-8 text or base64). " +
      "Checks chunk and frame integrity but not signatures: run `coco ledger verify` for that. Exit 3 if some private domains could not be decrypted")
    .action(async (dirs: string[], opts: ReadCliOptions) => {
      exitOnClosedStdout();
      try {
        const { options, undecryptable } = await readerOptions(dirs, opts);
        for await (const entry of readLedger(dirs, options)) await writeOut(process.stdout, `${JSON.stringify(entryJson(entry))}\n`);
        process.exitCode = reportUndecryptable("read", undecryptable);
      } catch (error) {
        failWith(error);
      }
    });

  readOptions(ledger.command("export"))
    .description("Write the ledger's decoded content, one row per key written (txid, seqno, view, signature, domain, map, key, key_encoding, value, value_encoding)")
    .addOption(new Option("--format <format>", "jsonl or csv (RFC 4180, with a header row)").choices(["jsonl", "csv"]).default("jsonl"))
    .option("--out <file>", "write to this file instead of stdout")
    .action(async (dirs: string[], opts: ReadCliOptions & { format: "jsonl" | "csv"; out?: string }) => {
      let file: WriteStream | undefined;
      exitOnClosedStdout();
      try {
        const { options, undecryptable } = await readerOptions(dirs, opts);
        file = opts.out === undefined ? undefined : createWriteStream(opts.out);
        const out: NodeJS.WritableStream = file ?? process.stdout;
        if (opts.format === "csv") await writeOut(out, `${CSV_COLUMNS.join(",")}\r\n`);
        for await (const entry of readLedger(dirs, options)) {
          for (const row of exportRows(entry)) {
            await writeOut(out, opts.format === "csv" ? `${CSV_COLUMNS.map((c) => csvField(row[c])).join(",")}\r\n` : `${JSON.stringify(row)}\n`);
          }
        }
        if (file) await new Promise<void>((resolve, reject) => file!.end((error?: Error | null) => (error ? reject(error) : resolve())));
        process.exitCode = reportUndecryptable("export", undecryptable);
      } catch (error) {
        file?.destroy();
        failWith(error);
      }
    });
}
