// `coco receipt`: fetch a transaction's receipt from the service as a user (`get`), and verify a
// receipt offline against the service certificate (`verify`). Both find the service and the
// identity as `coco gov` does (context.ts): flags, COCO_* variables, or the workspace.
import { readFileSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import type { Command } from "commander";
import { isCoseReceipt, verifyReceipt, verifyTransactionCoseReceipt, type CcfReceipt } from "../client/index.js";
import { CocoError } from "../util/index.js";
import { addContextOptions, resolveContext, type ContextFlags } from "./context.js";

/** How long `get` waits for a transaction to be committed (its receipt exists only then). */
const RECEIPT_WAIT_MS = 30_000;
const RECEIPT_POLL_MS = 100;

function readText(file: string, what: string, hint: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new CocoError("InvalidInput", `cannot read ${what} '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message} (${hint})`, 400);
  }
}

/** What a COSE receipt must prove besides its signature (a JSON receipt shows its leaf itself). */
interface CoseExpectations { transactionId?: string; claimsDigest?: string }

/** Checks a receipt (CCF JSON, or CCF 6 COSE); prints the verdict; returns the exit code. */
function verifyFile(file: string, serviceCertFile: string, json: boolean, expect: CoseExpectations = {}): number {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file === "-" ? 0 : file);
  } catch (error) {
    throw new CocoError("InvalidInput", `cannot read receipt '${file}': ${(error as Error).message}`, 400);
  }
  const serviceCert = readText(serviceCertFile, "service certificate", "--service-cert, COCO_SERVICE_CERT or --workspace");
  const report = (txid: string, root: Buffer, extra: Record<string, unknown> = {}) => {
    if (json) console.log(JSON.stringify({ valid: true, transaction_id: txid, root: root.toString("hex"), ...extra }));
    else console.log(`Receipt is valid: transaction ${txid} is committed in the service's ledger (root ${root.toString("hex")}).`);
  };
  try {
    if (isCoseReceipt(bytes)) {
      const result = verifyTransactionCoseReceipt(bytes, serviceCert, expect);
      report(`${result.txId.view}.${result.txId.seqno}`, result.root, {
        format: "cose", signed_transaction_id: result.signedTxId, claims_digest: Buffer.from(result.leaf.claimsDigest).toString("hex"),
      });
      return 0;
    }
    if (expect.transactionId !== undefined || expect.claimsDigest !== undefined) {
      throw new Error("--transaction-id and --claims-digest apply to COSE receipts; a JSON receipt shows its leaf components itself");
    }
    let parsed: CcfReceipt;
    try {
      parsed = JSON.parse(bytes.toString("utf8")) as CcfReceipt;
    } catch (error) {
      throw new Error(`'${file}' is neither a COSE receipt nor JSON: ${(error as Error).message}`);
    }
    const result = verifyReceipt(parsed, serviceCert);
    report(parsed.leaf_components.commit_evidence.split(":")[1]!, result.root);
    return 0;
  } catch (error) {
    if (json) console.log(JSON.stringify({ valid: false, error: (error as Error).message }));
    else console.error(`Receipt is NOT valid: ${(error as Error).message}`);
    return 1;
  }
}

interface Answer { status: number; text: string; retryAfterSeconds: number | undefined }

function getOnce(url: URL, tls: { ca: string; cert: string; key: string }): Promise<Answer> {
  return new Promise((resolveAnswer, reject) => {
    const req = httpsRequest(url, { method: "GET", ...tls, servername: url.hostname === "127.0.0.1" ? "localhost" : url.hostname, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const retry = Number(res.headers["retry-after"]);
        resolveAnswer({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), retryAfterSeconds: Number.isFinite(retry) ? retry : undefined });
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url.origin} within 10 s`)));
    req.on("error", (error) => reject(new CocoError("ServiceUnreachable", `cannot reach ${url.origin}: ${error.message} (--url, COCO_URL or --workspace)`, 503)));
    req.end();
  });
}

/** GET /app/receipt as the user, waiting while the transaction is not committed yet. */
async function fetchReceipt(transactionId: string, flags: ContextFlags): Promise<string> {
  if (!/^\d+\.\d+$/.test(transactionId)) throw new CocoError("InvalidInput", `'${transactionId}' is not a transaction id (view.seqno, e.g. 2.17)`, 400);
  const context = resolveContext(flags);
  const tls = {
    ca: readText(context.serviceCert, "service certificate", "--service-cert, COCO_SERVICE_CERT or --workspace"),
    cert: readText(context.userCert, "user certificate", "--user-cert, COCO_USER_CERT or --workspace"),
    key: readText(context.userKey, "user private key", "--user-key, COCO_USER_KEY or --workspace"),
  };
  const url = new URL(`/app/receipt?transaction_id=${transactionId}`, context.url);
  const deadline = Date.now() + RECEIPT_WAIT_MS;
  for (;;) {
    const answer = await getOnce(url, tls);
    if (answer.status === 200) return answer.text;
    let code = "";
    let message = answer.text;
    try {
      const body = JSON.parse(answer.text) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? "";
      message = body.error?.message ?? answer.text;
    } catch {
      // not a CCF error body: print it as it came
    }
    const pending = answer.status === 202 || code === "TransactionPendingOrUnknown" || answer.status === 503;
    if (!pending || Date.now() > deadline) throw new CocoError(code || `HTTP${answer.status}`, message, answer.status);
    await new Promise((r) => setTimeout(r, answer.retryAfterSeconds !== undefined ? Math.min(answer.retryAfterSeconds * 1000, 1000) : RECEIPT_POLL_MS));
  }
}

export function registerReceiptCommands(program: Command, fail: (error: unknown) => never): void {
  const receipt = program.command("receipt").description("Get a transaction's CCF receipt from the service, and verify receipts offline");
  addContextOptions(receipt.command("get")
    .description("Fetch the receipt of a committed transaction (GET /app/receipt as a user; waits up to 30 s for the commit)")
    .argument("<transaction_id>", "view.seqno, as in the x-ms-ccf-transaction-id header"), { user: true })
    .option("--out <file>", "write the receipt JSON to this file instead of stdout")
    .option("--verify", "also verify it against the service certificate", false)
    .action(async (transactionId: string, opts: ContextFlags & { out?: string; verify: boolean }) => {
      try {
        const text = await fetchReceipt(transactionId, opts);
        if (opts.out === undefined) console.log(text);
        else writeFileSync(opts.out, text.endsWith("\n") ? text : `${text}\n`);
        if (opts.verify) {
          if (opts.out === undefined) throw new CocoError("InvalidInput", "--verify needs --out (the receipt goes to a file, the verdict to the terminal)", 400);
          process.exitCode = verifyFile(opts.out, resolveContext(opts).serviceCert, false);
        }
      } catch (error) {
        fail(error);
      }
    });
  addContextOptions(receipt.command("verify")
    .description("Verify a receipt offline against the service certificate: a CCF JSON receipt (GET /app/receipt, `coco receipt get`) or a CCF 6 COSE receipt (GET /app/log/public/cose_receipt)")
    .argument("<file>", "receipt file: JSON, or binary COSE_Sign1 ('-' for stdin)"), { url: false })
    .option("--transaction-id <view.seqno>", "COSE receipts: the transaction the receipt must prove")
    .option("--claims-digest <hex>", "COSE receipts: the claims digest the transaction must carry")
    .option("--json", "print the result as JSON", false)
    .action((file: string, opts: ContextFlags & { json: boolean; transactionId?: string; claimsDigest?: string }) => {
      try {
        process.exitCode = verifyFile(file, resolveContext(opts).serviceCert, opts.json, {
          ...(opts.transactionId === undefined ? {} : { transactionId: opts.transactionId }),
          ...(opts.claimsDigest === undefined ? {} : { claimsDigest: opts.claimsDigest }),
        });
      } catch (error) {
        fail(error);
      }
    });
}
