// CCF 6's `GET /app/log/public/cose_receipt` (samples/apps/logging): the COSE receipt of a
// committed transaction, named by the `x-ms-ccf-transaction-id` request header as CCF's
// historical endpoints take it (Coco also accepts `?transaction_id=`). The body is the COSE_Sign1
// (`application/cose`); verify it with `coco receipt verify` or any COSE library
// (docs/receipts.md).
import { CocoError, parseTxId } from "../../util/index.js";
import { parseQuery, type AuthPolicyName, type EndpointRegistry } from "../../rpc/index.js";

/** The node's COSE receipt of `view.seqno` (TransactionEngine.coseReceipt), given by the node. */
export type CoseReceiptSource = (view: number, seqno: number) => Promise<Buffer>;

const TXID_HEADER = "x-ms-ccf-transaction-id";

export function installCoseReceiptEndpoint(registry: EndpointRegistry, path: string, authPolicies: readonly AuthPolicyName[], source: CoseReceiptSource): void {
  registry.install({
    method: "GET", path, mode: "readonly", authPolicies,
    // As CCF (ForwardingRequired::Never): any node that holds the committed ledger answers.
    forwarding: "never",
    summary: "COSE receipt (CCF 6) of a committed transaction named by the x-ms-ccf-transaction-id header",
    handler: async (ctx) => {
      const header = ctx.request.headers[TXID_HEADER];
      const text = (Array.isArray(header) ? header[0] : header) ?? parseQuery(ctx.request.query)["transaction_id"];
      if (text === undefined) {
        throw new CocoError("MissingRequiredHeader", `Historical query is missing '${TXID_HEADER}' header.`, 400);
      }
      let txid: { view: number; seqno: number };
      try {
        txid = parseTxId(text);
      } catch {
        throw new CocoError("InvalidHeaderValue", `The value '${text}' in header '${TXID_HEADER}' could not be converted to a valid Tx ID.`, 400);
      }
      const receipt = await source(txid.view, txid.seqno);
      return { headers: { "content-type": "application/cose" }, body: receipt };
    },
  });
}
