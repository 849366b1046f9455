// Historical endpoints of JS apps (app.json `"mode": "historical"`): which transaction a request
// asks for and CCF's answers before the endpoint function runs (CCF's historical query adapter:
// `txid_from_header`, then 400 for a missing or malformed id, 404 unless it is committed).
import type { IncomingHttpHeaders } from "node:http";
import { ErrorCodes, type HandlerResult } from "../../rpc/index.js";
import { CocoError, parseTxId, type TxId } from "../../util/index.js";

/** The request header naming the transaction, as in CCF. */
export const TXID_HEADER = "x-ms-ccf-transaction-id";

/**
 * The committed transaction a historical request names, or the answer to give instead:
 * throws CCF's 400s and its 404 for an Invalid id; returns its 404 for a Pending or Unknown
 * one (with `cache-control: no-cache`: the answer changes once the transaction commits).
 */
export function historicalTarget(headers: IncomingHttpHeaders, statusForTxId: (view: number, seqno: number) => string): TxId | HandlerResult {
  const header = headers[TXID_HEADER];
  if (header === undefined) {
    throw new CocoError("MissingRequiredHeader", `Historical query is missing '${TXID_HEADER}' header.`, 400);
  }
  const text = Array.isArray(header) ? header.join(", ") : header;
  let id: TxId;
  try {
    id = parseTxId(text);
  } catch {
    throw new CocoError("InvalidHeaderValue", `The value '${text}' in header '${TXID_HEADER}' could not be converted to a valid Tx ID.`, 400);
  }
  const status = statusForTxId(id.view, id.seqno);
  const message = `Only committed transactions can be queried. Transaction ${id.view}.${id.seqno} is ${status}`;
  if (status === "Committed") return id;
  if (status === "Invalid") throw new CocoError(ErrorCodes.TransactionInvalid, message, 404);
  return { status: 404, headers: { "cache-control": "no-cache" }, body: { error: { code: ErrorCodes.TransactionPendingOrUnknown, message } } };
}

export function isTxId(value: TxId | HandlerResult): value is TxId {
  return typeof (value as TxId).seqno === "number" && typeof (value as TxId).view === "number";
}
