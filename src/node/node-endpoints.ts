// CCF's built-in node endpoints (/node/*) and the transaction-level endpoints every app has
// (/app/tx, /app/commit, /app/receipt), with CCF's paths, query parameters and bodies.
import { CocoError, formatTxId, parseTxId } from "../util/index.js";
import { ErrorCodes, parseQuery, type EndpointRegistry, type EndpointContext } from "../rpc/index.js";
import type { TransactionEngine } from "./engine.js";

export const COCO_VERSION = "0.1.0";

export interface NodeInfo {
  nodeId: string;
  serviceCertPem: string;
  nodeCertPem: string;
  rpcInterfaceName: string;
  rpcAddress: () => string;
  startupSeqno: number;
  serviceStatus: () => string;
}

function txIdFromQuery(ctx: EndpointContext): { view: number; seqno: number } {
  const value = parseQuery(ctx.request.query)["transaction_id"];
  if (value === undefined) {
    throw new CocoError(ErrorCodes.InvalidQueryParameterValue, "Missing query parameter 'transaction_id' (expected '<view>.<seqno>', e.g. '2.17').", 400);
  }
  try {
    return parseTxId(value);
  } catch (error) {
    throw new CocoError(ErrorCodes.InvalidQueryParameterValue, (error as Error).message, 400);
  }
}

export function installNodeEndpoints(registry: EndpointRegistry, engine: TransactionEngine, info: NodeInfo): void {
  const get = (path: string, summary: string, handler: (ctx: EndpointContext) => unknown, auth: "no_auth" | "user" = "no_auth") =>
    registry.install({
      method: "GET", path, summary, mode: "readonly",
      authPolicies: auth === "no_auth" ? ["no_auth"] : ["user_cert", "member_cert"],
      handler: (ctx) => {
        const body = handler(ctx);
        return body instanceof Promise ? body.then((b) => ({ body: b })) : { body };
      },
    });

  const commit = () => {
    const id = engine.commitTxId;
    return { transaction_id: formatTxId(id.view, id.seqno) };
  };
  const txStatus = (ctx: EndpointContext) => {
    const { view, seqno } = txIdFromQuery(ctx);
    return { status: engine.status(view, seqno), transaction_id: formatTxId(view, seqno) };
  };

  get("/node/state", "This node's id, state and last signed seqno", () => ({
    node_id: info.nodeId,
    state: "PartOfNetwork",
    last_signed_seqno: engine.lastSignedSeqno,
    startup_seqno: info.startupSeqno,
  }));
  get("/node/commit", "The latest committed transaction id", commit);
  get("/node/tx", "Status of a transaction id: Unknown, Pending, Committed or Invalid", txStatus);
  get("/node/version", "Versions of this node's software", () => ({
    ccf_version: `coco-${COCO_VERSION}`,
    coco_version: COCO_VERSION,
    node_version: process.version,
    unsafe: false,
  }));
  get("/node/network", "The service's identity, status and current view", () => ({
    service_certificate: info.serviceCertPem,
    service_status: info.serviceStatus(),
    current_view: engine.currentView,
    primary_id: info.nodeId,
    recovery_count: 0,
    service_data: null,
    current_service_create_txid: "1.1",
  }));
  const nodeEntry = () => ({
    node_id: info.nodeId,
    status: "Trusted",
    primary: true,
    rpc_interfaces: { [info.rpcInterfaceName]: { bind_address: info.rpcAddress(), published_address: info.rpcAddress() } },
    node_data: null,
    last_written: engine.lastTxId.seqno,
  });
  get("/node/network/nodes", "The nodes of the network, their status and which is primary", () => ({ nodes: [nodeEntry()] }));
  get("/node/primary", "Answers 200 on the primary", () => ({ primary: true }));
  get("/node/network/nodes/primary", "The current primary node", () => nodeEntry());

  get("/app/commit", "The latest committed transaction id", commit, "no_auth");
  get("/app/tx", "Status of a transaction id", txStatus, "no_auth");
  get("/app/receipt", "CCF receipt (Merkle proof and signature) for a committed transaction", (ctx) => {
    const { view, seqno } = txIdFromQuery(ctx);
    return engine.receipt(view, seqno);
  }, "user");
}
