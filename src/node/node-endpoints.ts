// CCF's built-in node endpoints (/node/*) and the transaction-level endpoints every app has
// (/app/tx, /app/commit, /app/receipt), with CCF's paths, query parameters and bodies.
import { CocoError, formatTxId, parseTxId } from "../util/index.js";
import { buildOpenApiDocument, ErrorCodes, parseQuery, type EndpointRegistry, type EndpointContext } from "../rpc/index.js";
import type { TransactionEngine } from "./engine.js";

export const COCO_VERSION = "0.1.0";
/**
 * Version of the /node/api document: CCF 6.0 LTS's (its node frontend's `document_version` on
 * release/6.x at 4fda3f504, CCF 6.0.16; CCF 7 moved to 4.14.0).
 */
export const NODE_OPENAPI_DOCUMENT_VERSION = "4.13.0";

export interface NodeInfo {
  nodeId: string;
  serviceCertPem: string;
  nodeCertPem: string;
  rpcInterfaceName: string;
  rpcAddress: () => string;
  startupSeqno: number;
  serviceStatus: () => string;
  /** The service's record in public:ccf.gov.service.info (recovery count, creation txid). */
  serviceInfo?: () => { recovery_count?: number; service_data?: unknown; current_service_create_txid?: string } | undefined;
  /** CCF's node state (ReadingPublicLedger, PartOfPublicNetwork, ... during a recovery). */
  nodeState?: () => string;
  /** Endorsements a receipt signed by this node certificate needs (a previous service's node), if any. */
  serviceEndorsements?: (nodeCertPem: string) => string[] | undefined;
  consensus: () => { role: string; primaryId: string | undefined; term: number; voters: readonly string[]; commit: number; last: number; mayVote: boolean };
}

const NODES_INFO = "public:ccf.gov.nodes.info";

/**
 * /node/* endpoints describe the node that answers (its id, role, view of consensus and
 * commit): a backup never forwards them, not even on a session it forwarded a write of (as
 * CCF's node frontend, ForwardingRequired::Never).
 */
const NODE_LOCAL = { forwarding: "never" } as const;

interface StoredNode {
  status: string;
  node_data?: unknown;
  rpc_interfaces?: Record<string, { bind_address: string; published_address?: string }>;
  node_to_node_interface?: { bind_address: string; published_address?: string };
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
      ...(path.startsWith("/node/") ? NODE_LOCAL : {}),
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
    state: info.nodeState?.() ?? "PartOfNetwork",
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
  get("/node/network", "The service's identity, status, current view and primary", () => ({
    service_certificate: info.serviceCertPem,
    service_status: info.serviceStatus(),
    current_view: engine.currentView,
    primary_id: info.consensus().primaryId ?? null,
    recovery_count: info.serviceInfo?.()?.recovery_count ?? 0,
    service_data: info.serviceInfo?.()?.service_data ?? null,
    current_service_create_txid: info.serviceInfo?.()?.current_service_create_txid ?? "1.1",
  }));
  // Every node CCF knows (nodes.info), with whether it is the primary and in the configuration.
  const nodes = (ctx: EndpointContext) => {
    const c = info.consensus();
    const out: Record<string, unknown>[] = [];
    ctx.tx.forEach(NODES_INFO, (value, key) => {
      const nodeId = key.toString("utf8");
      const stored = JSON.parse(value.toString("utf8")) as StoredNode;
      const rpc = stored.rpc_interfaces ?? {};
      out.push({
        node_id: nodeId,
        status: stored.status,
        primary: nodeId === c.primaryId,
        in_configuration: c.voters.includes(nodeId),
        rpc_interfaces: Object.fromEntries(Object.entries(rpc).map(([name, i]) => [name, { bind_address: i.bind_address, published_address: i.published_address ?? i.bind_address }])),
        node_to_node_interface: stored.node_to_node_interface ?? null,
        node_data: stored.node_data ?? null,
        ...(nodeId === info.nodeId ? { last_written: engine.lastTxId.seqno } : {}),
      });
    });
    return out;
  };
  get("/node/network/nodes", "The nodes of the network, their status and which is primary", (ctx) => {
    const q = parseQuery(ctx.request.query);
    let list = nodes(ctx);
    if (q["status"] !== undefined) list = list.filter((n) => n["status"] === q["status"]);
    return { nodes: list };
  });
  get("/node/network/nodes/{nodeId}", "One node of the network", (ctx) => {
    const node = nodes(ctx).find((n) => n["node_id"] === ctx.params["nodeId"]);
    if (!node) throw new CocoError(ErrorCodes.ResourceNotFound, `Node ${ctx.params["nodeId"]} is not part of this network.`, 404);
    return node;
  });
  const primaryRedirect = (ctx: EndpointContext, path: (primaryId: string) => string) => {
    const c = info.consensus();
    if (c.primaryId === undefined) throw new CocoError(ErrorCodes.ResourceNotFound, "No primary is known right now (an election may be in progress).", 404);
    const node = nodes(ctx).find((n) => n["node_id"] === c.primaryId) as { rpc_interfaces?: Record<string, { published_address: string }> } | undefined;
    const address = node?.rpc_interfaces?.[info.rpcInterfaceName]?.published_address ?? Object.values(node?.rpc_interfaces ?? {})[0]?.published_address;
    const headers: Record<string, string> = {};
    if (address) headers["location"] = `https://${address}${path(c.primaryId)}`;
    return { status: 308, headers, body: { primary_id: c.primaryId } };
  };
  for (const method of ["GET", "HEAD"]) {
    registry.install({
      method, path: "/node/primary", mode: "readonly", authPolicies: ["no_auth"], ...NODE_LOCAL,
      summary: "200 on the primary; elsewhere a 308 redirect to the primary",
      handler: (ctx) => (info.consensus().role === "Primary" ? { body: { primary: true } } : primaryRedirect(ctx, () => "/node/primary")),
    });
  }
  registry.install({
    method: "GET", path: "/node/network/nodes/primary", mode: "readonly", authPolicies: ["no_auth"], ...NODE_LOCAL,
    summary: "The current primary node (a 308 redirect to its /node/network/nodes/{id} entry)",
    handler: (ctx) => {
      const c = info.consensus();
      if (c.primaryId === info.nodeId) return { body: nodes(ctx).find((n) => n["node_id"] === info.nodeId) };
      return primaryRedirect(ctx, (id) => `/node/network/nodes/${id}`);
    },
  });
  get("/node/consensus", "This node's view of consensus: role, view, configuration, commit", () => {
    const c = info.consensus();
    // `votes` (Coco's addition) is false while a node that lost ledger entries catches up.
    return { details: { primary_id: c.primaryId ?? null, current_view: c.term, role: c.role, configuration: [...c.voters], commit_seqno: c.commit, last_seqno: c.last, votes: c.mayVote } };
  });

  // Built from the registry on each call, so every /node endpoint installed by any part of the
  // node (attestation, join, recovery) is described.
  get("/node/api", "OpenAPI schema", () => buildOpenApiDocument({
    title: "CCF Public Node API",
    description: "This API provides public, uncredentialed access to service and node state.",
    version: NODE_OPENAPI_DOCUMENT_VERSION,
  }, registry.list(), "/node/"));

  get("/app/commit", "The latest committed transaction id", commit, "no_auth");
  get("/app/tx", "Status of a transaction id", txStatus, "no_auth");
  get("/app/receipt", "CCF receipt (Merkle proof and signature) for a committed transaction", (ctx) => {
    const { view, seqno } = txIdFromQuery(ctx);
    return engine.receipt(view, seqno).then((receipt) => {
      // Signed by a previous service's node (before a recovery): add the endorsement chain.
      const endorsements = info.serviceEndorsements?.(receipt.cert);
      return endorsements === undefined ? receipt : { ...receipt, service_endorsements: endorsements };
    });
  }, "user");
}
