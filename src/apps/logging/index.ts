// The logging app: CCF's reference sample and Coco's benchmark workload. Messages recorded at
// client-chosen ids, private ones in the private map `records` (encrypted in the ledger),
// public ones in `public:records`. Paths, bodies and answers are those of CCF's sample.
import { createHash } from "node:crypto";
import { CocoError } from "../../util/index.js";
import { ErrorCodes, parseQuery, type AuthPolicyName, type EndpointContext, type EndpointRegistry, type HandlerResult } from "../../rpc/index.js";
import { installCoseReceiptEndpoint, type CoseReceiptSource } from "./cose-receipt.js";

export type { CoseReceiptSource } from "./cose-receipt.js";

export const PRIVATE_RECORDS = "records";
export const PUBLIC_RECORDS = "public:records";

const AUTH: readonly AuthPolicyName[] = ["user_cert"];
const TRUE_RESULT: HandlerResult = { body: true };

interface RecordIn {
  id: number;
  msg: string;
  record_claim: boolean;
}

function badInput(message: string): CocoError {
  return new CocoError(ErrorCodes.InvalidInput, message, 400);
}

function isValidId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function parseRecord(ctx: EndpointContext): RecordIn {
  let parsed: unknown;
  try {
    parsed = JSON.parse(ctx.request.body.toString("utf8"));
  } catch {
    throw badInput("Request body is not valid JSON: expected {\"id\": <non-negative integer>, \"msg\": <string>}.");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw badInput("Request body must be a JSON object {\"id\": <non-negative integer>, \"msg\": <string>}.");
  }
  const { id, msg, record_claim } = parsed as Record<string, unknown>;
  if (!isValidId(id)) throw badInput(`Field 'id' must be a non-negative integer, got ${JSON.stringify(id) ?? "nothing"}.`);
  if (typeof msg !== "string") throw badInput(`Field 'msg' must be a string, got ${JSON.stringify(msg) ?? "nothing"}.`);
  if (msg.length === 0) throw badInput("Cannot record an empty log message.");
  if (record_claim !== undefined && typeof record_claim !== "boolean") throw badInput("Field 'record_claim' must be a boolean.");
  return { id, msg, record_claim: record_claim === true };
}

function idFromQuery(ctx: EndpointContext): number {
  const raw = parseQuery(ctx.request.query)["id"];
  if (raw === undefined) throw new CocoError(ErrorCodes.InvalidQueryParameterValue, "Missing query parameter 'id'.", 400);
  const id = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!isValidId(id)) {
    throw new CocoError(ErrorCodes.InvalidQueryParameterValue, `Query parameter 'id' must be a non-negative integer, got '${raw}'.`, 400);
  }
  return id;
}

/** Keys and values are JSON, as CCF's C++ maps serialise `size_t` keys and `string` values. */
const keyOf = (id: number) => Buffer.from(String(id));

function installFor(registry: EndpointRegistry, path: string, map: string, isPublic: boolean): void {
  registry.install({
    method: "POST", path, mode: "readwrite", authPolicies: AUTH,
    summary: `Record a ${isPublic ? "public" : "private"} message at an id`,
    handler: (ctx) => {
      const record = parseRecord(ctx);
      ctx.tx.set(map, keyOf(record.id), Buffer.from(JSON.stringify(record.msg)));
      if (isPublic && record.record_claim) {
        return { body: true, claimsDigest: createHash("sha256").update(record.msg).digest() };
      }
      return TRUE_RESULT;
    },
  });
  registry.install({
    method: "GET", path, mode: "readonly", authPolicies: AUTH,
    summary: `Read the ${isPublic ? "public" : "private"} message recorded at an id`,
    handler: (ctx) => {
      const id = idFromQuery(ctx);
      const value = ctx.tx.get(map, keyOf(id));
      if (value === undefined) throw new CocoError(ErrorCodes.ResourceNotFound, `No such record: ${id}.`, 404);
      return { body: { msg: JSON.parse(value.toString("utf8")) as string } };
    },
  });
  registry.install({
    method: "DELETE", path, mode: "readwrite", authPolicies: AUTH,
    summary: `Remove the ${isPublic ? "public" : "private"} message at an id; answers whether one existed`,
    handler: (ctx) => ({ body: ctx.tx.delete(map, keyOf(idFromQuery(ctx))) }),
  });
  registry.install({
    method: "DELETE", path: `${path}/all`, mode: "readwrite", authPolicies: AUTH,
    summary: `Remove every ${isPublic ? "public" : "private"} message`,
    handler: (ctx) => {
      ctx.tx.clear(map);
      return TRUE_RESULT;
    },
  });
  registry.install({
    method: "GET", path: `${path}/count`, mode: "readonly", authPolicies: AUTH,
    summary: `Number of ${isPublic ? "public" : "private"} messages`,
    handler: (ctx) => ({ body: ctx.tx.size(map) }),
  });
}

export interface LoggingAppOptions {
  /** Where COSE receipts come from (the node); without it `/app/log/public/cose_receipt` is not installed. */
  coseReceipt?: CoseReceiptSource;
}

export function installLoggingApp(registry: EndpointRegistry, options: LoggingAppOptions = {}): void {
  installFor(registry, "/app/log/private", PRIVATE_RECORDS, false);
  installFor(registry, "/app/log/public", PUBLIC_RECORDS, true);
  if (options.coseReceipt !== undefined) installCoseReceiptEndpoint(registry, "/app/log/public/cose_receipt", AUTH, options.coseReceipt);
}
