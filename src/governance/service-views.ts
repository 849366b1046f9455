// Read-only views of the service under /gov/service (CCF's service_state.h): the tables as
// the 2024-07-01 API shows them, camelCase, ids as hex.
import type { Transaction } from "../kv/index.js";
import type { EndpointContext, EndpointRegistry, HandlerResult } from "../rpc/index.js";
import { parseQuery } from "../rpc/index.js";
import { CocoError } from "../util/errors.js";
import { govHandler, type GovernanceDeps, JAVASCRIPT_CONTENT_TYPE, parseHexId } from "./common.js";
import {
  type MemberInfo, parseJson, readConstitution, readJson, readPem, type ServiceInfo, SINGLETON_KEY, TABLES,
} from "./tables.js";

function notFound(message: string): CocoError {
  return new CocoError("ResourceNotFound", message, 404);
}

function describeMember(tx: Transaction, memberId: string, info: MemberInfo): Record<string, unknown> {
  const member: Record<string, unknown> = { memberId, status: info.status, memberData: info.member_data ?? null };
  const cert = readPem(tx, TABLES.membersCerts, memberId);
  if (cert !== undefined) member.certificate = cert;
  const encryptionKey = readPem(tx, TABLES.membersEncryptionPublicKeys, memberId);
  if (encryptionKey !== undefined) member.publicEncryptionKey = encryptionKey;
  member.recoveryRole = info.recovery_role ?? (encryptionKey !== undefined ? "Participant" : "NonParticipant");
  return member;
}

interface NodeInfo {
  cert?: string;
  status: string;
  node_data?: unknown;
  retired_committed?: boolean;
  quote_info?: { format?: string; quote?: string; endorsements?: string; uvm_endorsements?: string; endorsed_tcb?: string };
  rpc_interfaces?: Record<string, { bind_address?: string; published_address?: string; app_protocol?: string }>;
}

const QUOTE_FORMATS: Record<string, string> = { Insecure_Virtual: "Insecure_Virtual", OE_SGX_v1: "OE_SGX_v1", AMD_SEV_SNP_v1: "AMD_SEV_SNP_v1" };

function describeQuote(quote: NodeInfo["quote_info"]): Record<string, unknown> {
  const format = QUOTE_FORMATS[quote?.format ?? ""] ?? quote?.format ?? "Insecure_Virtual";
  const out: Record<string, unknown> = { format };
  if (format === "Insecure_Virtual" && quote?.quote !== undefined) {
    out.rawQuote = quote.quote;
    try {
      const details = JSON.parse(Buffer.from(quote.quote, "base64").toString("utf8")) as Record<string, unknown>;
      out.details = { measurement: details.measurement, reportData: details.report_data, hostData: details.host_data };
    } catch {
      // A quote that is not CCF's virtual JSON is shown raw only.
    }
  } else if (format === "OE_SGX_v1") {
    if (quote?.quote !== undefined) out.quote = quote.quote;
    if (quote?.endorsements !== undefined) out.endorsements = quote.endorsements;
  } else if (format === "AMD_SEV_SNP_v1") {
    if (quote?.uvm_endorsements !== undefined) out.uvmEndorsements = quote.uvm_endorsements;
    if (quote?.endorsed_tcb !== undefined) out.endorsedTcb = Buffer.from(quote.endorsed_tcb, "hex").toString("base64");
  }
  return out;
}

function describeNode(tx: Transaction, nodeId: string, info: NodeInfo): Record<string, unknown> {
  const node: Record<string, unknown> = { nodeId, status: info.status, nodeData: info.node_data ?? null };
  const endorsed = readPem(tx, TABLES.nodesEndorsedCertificates, nodeId) ?? info.cert;
  if (endorsed !== undefined) node.certificate = endorsed;
  node.retiredCommitted = info.retired_committed ?? false;
  node.quoteInfo = describeQuote(info.quote_info);
  const rpcInterfaces: Record<string, unknown> = {};
  for (const [name, rpc] of Object.entries(info.rpc_interfaces ?? {})) {
    const described: Record<string, unknown> = { publishedAddress: rpc.published_address ?? rpc.bind_address ?? "" };
    if (rpc.app_protocol !== undefined) described.protocol = rpc.app_protocol;
    rpcInterfaces[name] = described;
  }
  node.rpcInterfaces = rpcInterfaces;
  return node;
}

function serviceInfo(deps: GovernanceDeps, ctx: EndpointContext): HandlerResult {
  const info = readJson<ServiceInfo>(ctx.tx, TABLES.serviceInfo, SINGLETON_KEY);
  if (info === undefined) throw notFound("Service info not yet available");
  const body: Record<string, unknown> = {
    status: info.status,
    certificate: info.cert ?? deps.serviceCertPem,
    recoveryCount: info.recovery_count ?? 0,
  };
  if (info.current_service_create_txid !== undefined) body.creationTransactionId = info.current_service_create_txid;
  body.serviceData = info.service_data ?? null;
  const config = readJson<Record<string, number | undefined>>(ctx.tx, TABLES.serviceConfig, SINGLETON_KEY);
  if (config !== undefined) {
    body.configuration = {
      recoveryThreshold: config.recovery_threshold,
      maximumNodeCertificateValidityDays: config.maximum_node_certificate_validity_days ?? 365,
      maximumServiceCertificateValidityDays: config.maximum_service_certificate_validity_days ?? 365,
      recentCoseProposalsWindowSize: config.recent_cose_proposals_window_size ?? 100,
    };
  }
  return { body };
}

function listOf<T>(tx: Transaction, map: string, describe: (id: string, value: T) => Record<string, unknown>): HandlerResult {
  const value: Record<string, unknown>[] = [];
  tx.forEach(map, (raw, key) => {
    const parsed = parseJson<T>(raw);
    if (parsed !== undefined) value.push(describe(key.toString("utf8"), parsed));
  });
  return { body: { value } };
}

function describeUser(tx: Transaction, userId: string, cert: string): Record<string, unknown> {
  return { userId, certificate: cert, userData: readJson<unknown>(tx, TABLES.usersInfo, userId) ?? null };
}

interface EndpointKey { uri_path: string; verb: string }
interface EndpointProperties {
  js_module?: string; js_function?: string; forwarding_required?: string; redirection_strategy?: string;
  authn_policies?: unknown[]; mode?: string; openapi?: unknown;
}

/**
 * A key of public:ccf.gov.endpoints. CCF serialises EndpointKey as "<VERB> <uri_path>" (the form
 * CCF's set_js_app writes); a JSON {uri_path, verb} key is read too.
 */
export function parseEndpointKey(text: string): EndpointKey | undefined {
  if (text.startsWith("{")) {
    try {
      const key = JSON.parse(text) as Partial<EndpointKey>;
      return typeof key.uri_path === "string" && typeof key.verb === "string" ? { uri_path: key.uri_path, verb: key.verb } : undefined;
    } catch {
      return undefined;
    }
  }
  const space = text.indexOf(" ");
  if (space <= 0 || space === text.length - 1) return undefined;
  return { verb: text.slice(0, space), uri_path: text.slice(space + 1) };
}

function javascriptApp(ctx: EndpointContext): HandlerResult {
  const caseParam = parseQuery(ctx.request.query).case;
  if (caseParam !== undefined && caseParam !== "original") {
    throw new CocoError("InvalidQueryParameterValue", "Accepted values for the 'case' query parameter are: original", 400);
  }
  const endpoints: Record<string, Record<string, unknown>> = {};
  ctx.tx.forEach(TABLES.jsEndpoints, (raw, rawKey) => {
    const key = parseEndpointKey(rawKey.toString("utf8"));
    if (key === undefined) return;
    const properties = parseJson<EndpointProperties>(raw) ?? {};
    const operation = caseParam === "original" ? properties : {
      jsModule: properties.js_module,
      jsFunction: properties.js_function,
      forwardingRequired: properties.forwarding_required,
      redirectionStrategy: properties.redirection_strategy,
      authnPolicies: properties.authn_policies ?? [],
      mode: properties.mode,
      openApi: properties.openapi,
    };
    (endpoints[key.uri_path] ??= {})[key.verb] = operation;
  });
  return { body: { endpoints } };
}

export function installServiceViewEndpoints(registry: EndpointRegistry, deps: GovernanceDeps): void {
  const get = (path: string, summary: string, handler: (ctx: EndpointContext) => HandlerResult, minimum?: "2024-07-01") =>
    registry.install({ method: "GET", path, authPolicies: ["no_auth"], mode: "readonly", summary, handler: govHandler(handler, minimum) });

  get("/gov/service/info", "Service status, identity and configuration", (ctx) => serviceInfo(deps, ctx));
  get("/gov/service/constitution", "The constitution (JavaScript)", (ctx) => {
    const source = readConstitution(ctx.tx);
    if (source === undefined) throw notFound("Constitution not found");
    return { headers: { "content-type": JAVASCRIPT_CONTENT_TYPE }, body: source };
  });
  get("/gov/service/members", "All members", (ctx) => listOf<MemberInfo>(ctx.tx, TABLES.membersInfo, (id, info) => describeMember(ctx.tx, id, info)));
  get("/gov/service/members/{memberId}", "One member", (ctx) => {
    const memberId = parseHexId(ctx.params.memberId, "member");
    const info = readJson<MemberInfo>(ctx.tx, TABLES.membersInfo, memberId);
    if (info === undefined) throw notFound(`Member ${memberId} does not exist.`);
    return { body: describeMember(ctx.tx, memberId, info) };
  });
  get("/gov/service/users", "All users", (ctx) => {
    const ids: string[] = [];
    ctx.tx.forEach(TABLES.usersCerts, (_raw, key) => void ids.push(key.toString("utf8")));
    return { body: { value: ids.map((id) => describeUser(ctx.tx, id, readPem(ctx.tx, TABLES.usersCerts, id)!)) } };
  });
  get("/gov/service/users/{userId}", "One user", (ctx) => {
    const userId = parseHexId(ctx.params.userId, "user");
    const cert = readPem(ctx.tx, TABLES.usersCerts, userId);
    if (cert === undefined) throw notFound(`User ${userId} does not exist.`);
    return { body: describeUser(ctx.tx, userId, cert) };
  });
  get("/gov/service/nodes", "All nodes", (ctx) => listOf<NodeInfo>(ctx.tx, TABLES.nodesInfo, (id, info) => describeNode(ctx.tx, id, info)));
  get("/gov/service/nodes/{nodeId}", "One node", (ctx) => {
    const nodeId = parseHexId(ctx.params.nodeId, "node");
    const info = readJson<NodeInfo>(ctx.tx, TABLES.nodesInfo, nodeId);
    if (info === undefined) throw notFound(`Node ${nodeId} does not exist.`);
    return { body: describeNode(ctx.tx, nodeId, info) };
  });
  get("/gov/service/javascript-app", "The JS app's endpoints", javascriptApp, "2024-07-01");
  get("/gov/service/javascript-modules", "The JS app's modules", (ctx) => {
    const value: { moduleName: string }[] = [];
    ctx.tx.forEach(TABLES.jsModules, (_raw, key) => void value.push({ moduleName: key.toString("utf8") }));
    return { body: { value } };
  }, "2024-07-01");
}
