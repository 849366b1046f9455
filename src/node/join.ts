// Joining a service. The joiner calls POST /node/join on any node with its own self-signed
// certificate as TLS client certificate, after checking the target's certificate against the
// service certificate it was given. The service records it as Pending (after checking its
// attestation evidence); members trust it with `transition_node_to_trusted`, whose apply
// endorses its CSR with the service key. The joiner polls; once Trusted the answer carries
// the service key and every ledger secret, each wrapped (RSA-OAEP + AES-GCM) to the joiner's
// encryption key, plus its endorsed certificate. It then starts as a backup, and the primary
// adds it to the consensus configuration and replicates the ledger to it.
import { request as httpsRequest } from "node:https";
import { X509Certificate } from "node:crypto";
import {
  certificateSigningRequestPublicKeyPem, nodeIdFromPublicKey, publicKeyPemFromCertificate, unwrapWithKey, wrapForKey, isCertificateIssuedBy,
  type KeyPairPem,
} from "../crypto/index.js";
import { CocoError } from "../util/index.js";
import { SNP_FORMAT, TDX_FORMAT, admitSnpEvidence, admitTdxEvidence, type SnpQuoteInfo, type TdxQuoteInfo } from "../attestation/index.js";
import { snpAllowListsOf, tdxAllowListsOf } from "./attestation-tables.js";
import type { Transaction } from "../kv/index.js";
import type { LedgerSecretVersion } from "../ledger/index.js";
import type { EndpointRegistry } from "../rpc/index.js";
import { parseAddress } from "./config.js";
import { checkNodeCertificateShape, type JoinAdmission } from "./join-admission.js";

export const NODES_INFO_MAP = "public:ccf.gov.nodes.info";
export const ENDORSED_CERTS_MAP = "public:ccf.gov.nodes.endorsed_certificates";
export const VIRTUAL_MEASUREMENTS_MAP = "public:ccf.gov.nodes.virtual.measurements";
export const VIRTUAL_HOST_DATA_MAP = "public:ccf.gov.nodes.virtual.host_data";
/** What Coco's virtual platform reports as its measurement (it measures nothing: development only). */
export const VIRTUAL_MEASUREMENT = "coco-virtual-platform-v1";
export const VIRTUAL_FORMAT = "Insecure_Virtual";

export interface NodeInfo {
  cert: string;
  status: "Pending" | "Trusted" | "Retired";
  quote_info: { format: string; quote?: string; endorsements?: string };
  encryption_pub_key?: string;
  node_data: unknown;
  certificate_signing_request?: string;
  rpc_interfaces: Record<string, { bind_address: string; published_address?: string }>;
  node_to_node_interface?: { bind_address: string; published_address?: string };
  ledger_secret_seqno?: number;
}

export interface JoinRequestBody {
  node_info_network: {
    rpc_interfaces: Record<string, { bind_address: string; published_address?: string }>;
    node_to_node_interface: { bind_address: string; published_address?: string };
  };
  quote_info: { format: string; quote: string; endorsements?: string };
  public_encryption_key: string;
  consensus_type?: string;
  startup_seqno?: number;
  certificate_signing_request: string;
  node_data?: unknown;
}

export interface NetworkInfo {
  service_certificate: string;
  endorsed_certificate: string;
  /** The service's private key, wrapped to the joiner's encryption key. */
  wrapped_service_key: string;
  service_public_key: string;
  ledger_secrets: { from_seqno: number; wrapped_secret: string }[];
  /** The trusted nodes and their node-to-node addresses, so the joiner can answer the primary at once. */
  nodes: { node_id: string; node_to_node_address: string }[];
}

export interface JoinResponseBody {
  node_status: NodeInfo["status"];
  node_id: string;
  network_info?: NetworkInfo;
}

/** The virtual platform's evidence: what it claims to run, where, and the node key it vouches for. */
export function virtualEvidence(nodePublicKeyPem: string, hostData: string): { format: string; quote: string } {
  const report = { measurement: VIRTUAL_MEASUREMENT, host_data: hostData, report_data: nodeIdFromPublicKey(nodePublicKeyPem) };
  return { format: VIRTUAL_FORMAT, quote: Buffer.from(JSON.stringify(report)).toString("base64") };
}

function refuse(message: string, status = 403, code = "JoinRefused"): CocoError {
  return new CocoError(code, message, status);
}

function isStringRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks a join request's attestation against what governance allows (CCF: measurements and host data tables). */
export function verifyAttestation(tx: Transaction, quoteInfo: unknown, nodePublicKeyPem: string, nowMs: number = Date.now()): void {
  if (!isStringRecord(quoteInfo) || typeof quoteInfo["format"] !== "string") {
    throw refuse("quote_info.format is missing: the join request carries no attestation evidence.", 400, "InvalidInput");
  }
  const format = quoteInfo["format"];
  if (format === SNP_FORMAT) {
    // One verifier for every use (src/attestation); its refusals name the failed check.
    admitSnpEvidence(quoteInfo as unknown as SnpQuoteInfo, snpAllowListsOf(tx), nodeIdFromPublicKey(nodePublicKeyPem), { nowMs });
    return;
  }
  if (format === TDX_FORMAT) {
    // Collateral validity (about a month) is judged at this node's clock.
    admitTdxEvidence(quoteInfo as unknown as TdxQuoteInfo, tdxAllowListsOf(tx), nodeIdFromPublicKey(nodePublicKeyPem), { nowMs });
    return;
  }
  if (format !== VIRTUAL_FORMAT) {
    throw refuse(`Attestation format '${format}' cannot be verified by this service (it accepts: ${VIRTUAL_FORMAT}, ${SNP_FORMAT}, ${TDX_FORMAT}); the joining node's platform is not trusted.`);
  }
  let report: { measurement?: unknown; host_data?: unknown; report_data?: unknown };
  try {
    report = JSON.parse(Buffer.from(String(quoteInfo["quote"]), "base64").toString("utf8")) as typeof report;
  } catch {
    throw refuse("quote_info.quote is not valid virtual-platform evidence (base64 JSON).", 400, "InvalidInput");
  }
  if (report.report_data !== nodeIdFromPublicKey(nodePublicKeyPem)) {
    throw refuse("The attestation evidence does not bind the key of the TLS certificate the node presented.");
  }
  if (typeof report.measurement !== "string" || tx.get(VIRTUAL_MEASUREMENTS_MAP, Buffer.from(report.measurement)) === undefined) {
    throw refuse(`Measurement '${String(report.measurement)}' is not trusted by this service: members must first accept add_virtual_measurement for it.`);
  }
  if (typeof report.host_data !== "string" || tx.get(VIRTUAL_HOST_DATA_MAP, Buffer.from(report.host_data)) === undefined) {
    throw refuse(`Host data '${String(report.host_data)}' is not trusted by this service: members must first accept add_virtual_host_data for it.`);
  }
}

function readNodeInfo(tx: Transaction, nodeId: string): NodeInfo | undefined {
  const raw = tx.get(NODES_INFO_MAP, Buffer.from(nodeId));
  return raw ? (JSON.parse(raw.toString("utf8")) as NodeInfo) : undefined;
}

export interface JoinServiceContext {
  serviceCertPem: string;
  serviceKeys: KeyPairPem;
  ledgerSecrets: () => readonly LedgerSecretVersion[];
  /** The time attestation evidence is judged at (certificate and collateral validity); default: the clock. Tests inject it. */
  attestationTimeMs?: () => number;
}

/** Where admission control (join-admission.ts) sits in handleJoin, for one request. */
export interface JoinGate {
  admission: JoinAdmission;
  /** The client's address, the key of its token bucket. */
  remoteAddress: string;
}

/**
 * Service side of POST /node/join (runs on the primary: the endpoint is forwarded). Known nodes
 * polling for their status pass freely; a new node is charged to the gate's token buckets and
 * its sizes checked before its self-signature, CSR and attestation are verified and it is written.
 */
export function handleJoin(tx: Transaction, callerCertPem: string | undefined, body: unknown, ctx: JoinServiceContext, gate?: JoinGate): JoinResponseBody {
  if (callerCertPem === undefined) throw refuse("A joining node must present its node certificate as TLS client certificate.", 401, "InvalidAuthenticationInfo");
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(callerCertPem);
  } catch (error) {
    throw refuse(`The joining node's certificate is not acceptable: ${(error as Error).message}.`, 400, "InvalidInput");
  }
  if (gate !== undefined) gate.admission.checkCertificate(cert.raw);
  else checkNodeCertificateShape(cert.raw);
  const callerKeyPem = publicKeyPemFromCertificate(callerCertPem);
  const nodeId = nodeIdFromPublicKey(callerKeyPem);
  const existing = readNodeInfo(tx, nodeId);
  if (existing !== undefined) return joinStatus(tx, nodeId, existing, ctx);
  gate?.admission.admitNewNode(gate.remoteAddress);
  if (!isStringRecord(body)) throw refuse("The join request body must be a JSON object.", 400, "InvalidInput");
  const request = body as unknown as JoinRequestBody;
  gate?.admission.checkBodyFields(request.node_data, request.quote_info);
  if (!cert.verify(cert.publicKey)) {
    throw refuse("The joining node's certificate is not acceptable: it is not self-signed by its own key.", 400, "InvalidInput");
  }
  const network = request.node_info_network;
  if (!isStringRecord(network) || !isStringRecord(network.node_to_node_interface) || typeof network.node_to_node_interface.bind_address !== "string"
    || !isStringRecord(network.rpc_interfaces)) {
    throw refuse("node_info_network with rpc_interfaces and node_to_node_interface.bind_address is required.", 400, "InvalidInput");
  }
  for (const [field, address] of [["bind_address", network.node_to_node_interface.bind_address], ["published_address", network.node_to_node_interface.published_address]] as const) {
    if (address === undefined) continue;
    try {
      parseAddress(String(address), `node_info_network.node_to_node_interface.${field}`);
    } catch (error) {
      throw refuse((error as Error).message.replace(/^Invalid configuration: /, ""), 400, "InvalidInput");
    }
  }
  if (typeof request.public_encryption_key !== "string" || !request.public_encryption_key.includes("BEGIN PUBLIC KEY")) {
    throw refuse("public_encryption_key (PEM) is required.", 400, "InvalidInput");
  }
  if (typeof request.certificate_signing_request !== "string") throw refuse("certificate_signing_request (PEM) is required.", 400, "InvalidInput");
  // The service will endorse the CSR's key: it must be the key this node proved it holds over TLS.
  let csrKeyPem: string;
  try {
    csrKeyPem = certificateSigningRequestPublicKeyPem(request.certificate_signing_request);
  } catch (error) {
    throw refuse(`certificate_signing_request: ${(error as Error).message}`, 400, "InvalidInput");
  }
  if (nodeIdFromPublicKey(csrKeyPem) !== nodeId) {
    throw refuse("certificate_signing_request is for another key than the TLS certificate the node presented.", 400, "InvalidInput");
  }
  if (request.consensus_type !== undefined && request.consensus_type !== "CFT") {
    throw refuse(`consensus_type '${String(request.consensus_type)}' does not match the service's (CFT).`, 400, "InvalidInput");
  }
  verifyAttestation(tx, request.quote_info, callerKeyPem, ctx.attestationTimeMs?.() ?? Date.now());
  const info: NodeInfo = {
    cert: callerCertPem,
    status: "Pending",
    quote_info: request.quote_info,
    encryption_pub_key: request.public_encryption_key,
    node_data: request.node_data ?? null,
    certificate_signing_request: request.certificate_signing_request,
    rpc_interfaces: network.rpc_interfaces,
    node_to_node_interface: network.node_to_node_interface,
  };
  tx.set(NODES_INFO_MAP, Buffer.from(nodeId), Buffer.from(JSON.stringify(info)));
  return { node_status: "Pending", node_id: nodeId };
}

function trustedPeers(tx: Transaction, except: string): NetworkInfo["nodes"] {
  const out: NetworkInfo["nodes"] = [];
  tx.forEach(NODES_INFO_MAP, (value, key) => {
    const id = key.toString("utf8");
    const info = JSON.parse(value.toString("utf8")) as NodeInfo;
    const n2n = info.node_to_node_interface;
    if (id !== except && info.status === "Trusted" && n2n) out.push({ node_id: id, node_to_node_address: n2n.published_address ?? n2n.bind_address });
  });
  return out;
}

function joinStatus(tx: Transaction, nodeId: string, info: NodeInfo, ctx: JoinServiceContext): JoinResponseBody {
  if (info.status === "Retired") throw refuse(`Node ${nodeId} was retired from this service and cannot join again; start it with a new identity.`);
  if (info.status !== "Trusted") return { node_status: info.status, node_id: nodeId };
  const endorsed = tx.get(ENDORSED_CERTS_MAP, Buffer.from(nodeId));
  if (endorsed === undefined || info.encryption_pub_key === undefined) return { node_status: "Pending", node_id: nodeId };
  const key = info.encryption_pub_key;
  return {
    node_status: "Trusted",
    node_id: nodeId,
    network_info: {
      service_certificate: ctx.serviceCertPem,
      endorsed_certificate: endorsed.toString("utf8"),
      wrapped_service_key: wrapForKey(key, Buffer.from(ctx.serviceKeys.privateKeyPem)),
      service_public_key: ctx.serviceKeys.publicKeyPem,
      ledger_secrets: ctx.ledgerSecrets().map((v) => ({ from_seqno: v.fromSeqno, wrapped_secret: wrapForKey(key, v.raw) })),
      nodes: trustedPeers(tx, nodeId),
    },
  };
}

// ---- joiner side -------------------------------------------------------------------------

export interface JoinerIdentity {
  nodeKeys: KeyPairPem;
  selfSignedCertPem: string;
  encryptionKeys: KeyPairPem;
  csrPem: string;
}

export interface JoinResult {
  nodeId: string;
  endorsedCertPem: string;
  serviceKeys: KeyPairPem;
  ledgerSecrets: LedgerSecretVersion[];
  peers: NetworkInfo["nodes"];
}

function postJson(target: { host: string; port: number }, path: string, body: unknown, tls: { key: string; cert: string; ca: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = httpsRequest({
      host: target.host, port: target.port, path, method: "POST",
      key: tls.key, cert: tls.cert, ca: tls.ca, minVersion: "TLSv1.3",
      // The target is any node of the service: what matters is that the service endorsed it.
      checkServerIdentity: () => undefined,
      headers: { "content-type": "application/json", "content-length": data.length },
      timeout: 10_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timed out after 10 s")));
    req.on("error", reject);
    req.end(data);
  });
}

/**
 * Asks the service to let this node join, and waits (polling every retryMs) until members trust it.
 * Refusals (wrong service certificate, untrusted platform, bad request) end the wait with a clear error.
 */
export async function joinService(args: {
  target: { host: string; port: number };
  serviceCertPem: string;
  identity: JoinerIdentity;
  nodeInfoNetwork: JoinRequestBody["node_info_network"];
  quoteInfo: { format: string; quote: string };
  retryMs: number;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  signal?: AbortSignal;
}): Promise<JoinResult> {
  const body: JoinRequestBody = {
    node_info_network: args.nodeInfoNetwork,
    quote_info: args.quoteInfo,
    public_encryption_key: args.identity.encryptionKeys.publicKeyPem,
    consensus_type: "CFT",
    startup_seqno: 0,
    certificate_signing_request: args.identity.csrPem,
    node_data: null,
  };
  const tls = { key: args.identity.nodeKeys.privateKeyPem, cert: args.identity.selfSignedCertPem, ca: args.serviceCertPem };
  const target = `${args.target.host}:${args.target.port}`;
  let lastStatus = "";
  for (let attempt = 1; ; attempt++) {
    if (args.signal?.aborted) throw new CocoError("JoinAborted", "Joining was cancelled.", 500);
    let response: { status: number; body: string };
    try {
      response = await postJson(args.target, "/node/join", body, tls);
    } catch (error) {
      const message = (error as Error).message;
      if (/self[- ]signed|unable to verify|certificate/i.test(message) || (error as NodeJS.ErrnoException).code?.startsWith("ERR_TLS") === true
        || /UNABLE_TO|CERT_|DEPTH_ZERO/.test((error as NodeJS.ErrnoException).code ?? "")) {
        throw new CocoError("JoinRefused",
          `The node at ${target} does not present a certificate endorsed by the service certificate given in command.service_certificate_file (${message}): wrong service certificate or wrong target.`, 400);
      }
      args.logger.warn({ target, attempt, err: message }, "join: target unreachable; retrying");
      await new Promise((r) => setTimeout(r, args.retryMs));
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(response.body);
    } catch {
      parsed = undefined;
    }
    if (response.status !== 200) {
      const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
      if (response.status >= 500 || response.status === 429 || response.status === 404 && error?.code === "FrontendNotOpen") {
        args.logger.warn({ target, status: response.status, error }, "join: the service cannot take the request now; retrying");
        await new Promise((r) => setTimeout(r, args.retryMs));
        continue;
      }
      throw new CocoError(error?.code ?? "JoinRefused", `The service refused this node's join request (HTTP ${response.status}): ${error?.message ?? response.body}`, 400);
    }
    const answer = parsed as JoinResponseBody;
    if (answer.node_status !== lastStatus) {
      args.logger.info({ node_id: answer.node_id, status: answer.node_status }, answer.node_status === "Pending"
        ? "join: waiting for members to trust this node (transition_node_to_trusted)" : "join: status");
      lastStatus = answer.node_status;
    }
    if (answer.node_status === "Trusted" && answer.network_info) {
      return acceptNetworkInfo(answer, args.identity, args.serviceCertPem);
    }
    await new Promise((r) => setTimeout(r, args.retryMs));
  }
}

function acceptNetworkInfo(answer: JoinResponseBody, identity: JoinerIdentity, serviceCertPem: string): JoinResult {
  const info = answer.network_info!;
  if (!isCertificateIssuedBy(info.endorsed_certificate, serviceCertPem)) {
    throw new CocoError("JoinRefused", "The endorsed certificate in the join response is not issued by the service certificate.", 400);
  }
  const endorsedKey = publicKeyPemFromCertificate(info.endorsed_certificate);
  if (nodeIdFromPublicKey(endorsedKey) !== nodeIdFromPublicKey(identity.nodeKeys.publicKeyPem)) {
    throw new CocoError("JoinRefused", "The endorsed certificate in the join response is for another key.", 400);
  }
  const servicePrivate = unwrapWithKey(identity.encryptionKeys.privateKeyPem, info.wrapped_service_key).toString("utf8");
  const ledgerSecrets = info.ledger_secrets.map((s) => ({ fromSeqno: s.from_seqno, raw: unwrapWithKey(identity.encryptionKeys.privateKeyPem, s.wrapped_secret) }));
  return {
    nodeId: answer.node_id,
    endorsedCertPem: info.endorsed_certificate,
    serviceKeys: { privateKeyPem: servicePrivate, publicKeyPem: info.service_public_key },
    ledgerSecrets,
    peers: Array.isArray(info.nodes) ? info.nodes : [],
  };
}

/** `POST /node/join`: a new node asks to join (CCF's join protocol; answered once members trust it). */
export function installJoinEndpoint(registry: EndpointRegistry, service: JoinServiceContext, admission?: JoinAdmission): void {
  registry.install({
    method: "POST", path: "/node/join", authPolicies: ["any_cert"], mode: "readwrite",
    summary: "A new node asks to join the service (CCF's join protocol; answered once members trust it)",
    handler: (ctx) => {
      admission?.checkBodySize(ctx.request.body.length);
      let body: unknown;
      try {
        body = ctx.request.body.length > 0 ? JSON.parse(ctx.request.body.toString("utf8")) : undefined;
      } catch {
        throw new CocoError("InvalidInput", "The join request body is not valid JSON.", 400);
      }
      const cert = ctx.caller.policy === "any_cert" ? ctx.caller.cert : undefined;
      const gate = admission === undefined ? undefined : { admission, remoteAddress: ctx.request.remoteAddress ?? "unknown" };
      return { body: handleJoin(ctx.tx, cert, body, service, gate) };
    },
  });
}
