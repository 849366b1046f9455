// What a node serves to clients: its metrics, its HTTPS server (with the access log), and the
// endpoints every node has (/node/*, attestation, snapshots, join).
import { join } from "node:path";
import { pino, type Logger } from "pino";
import type { NodeChannels } from "../channels/index.js";
import {
  ADMISSION_DEFAULTS, AccessLog, type AccessLogDestination, type EndpointRegistry, HttpServer, type HttpSessionStats, MEMBERS_CERTS_MAP, type UpgradeHandler,
} from "../rpc/index.js";
import { CocoError } from "../util/index.js";
import { installAttestationEndpoints } from "./attestation-endpoints.js";
import type { ResolvedConfig } from "./config.js";
import type { Frontend } from "./frontend.js";
import { installJoinEndpoint } from "./join.js";
import { JoinAdmission } from "./join-admission.js";
import { LogFile } from "./logger.js";
import { installMemoryEndpoint } from "./memory-endpoint.js";
import { NodeMetrics, UNMATCHED_ENDPOINT } from "./metrics.js";
import { installNodeEndpoints } from "./node-endpoints.js";
import type { OpenedNode } from "./node-open.js";
import { serviceEndorsementsFor } from "./recovery.js";
import type { Replicator } from "./replication.js";
import type { ServiceStatus } from "./service-status.js";
import { installSnapshotEndpoints } from "./snapshot-endpoints.js";

/** How long an idle client connection stays open. */
const KEEP_ALIVE_TIMEOUT_MS = 30_000;

/** The endpoints every node serves, whatever its app: /node/*, attestation, snapshots, join. */
export function installNodeFrontend(registry: EndpointRegistry, parts: {
  opened: OpenedNode; config: ResolvedConfig; replicator: Replicator; serviceStatus: ServiceStatus;
  /** The last seqno of the ledger when the node started. */
  startupSeqno: number;
  /** The RPC address as bound (known once the server listens). */
  rpcAddress: () => string;
}): void {
  const { opened: { engine, identity, recovery, ledger }, config, replicator, serviceStatus } = parts;
  installMemoryEndpoint(registry, engine, () => replicator, ledger);
  installNodeEndpoints(registry, engine, {
    nodeId: identity.nodeId,
    serviceCertPem: identity.serviceCertPem,
    nodeCertPem: identity.nodeCertPem,
    rpcInterfaceName: config.rpc.name,
    rpcAddress: parts.rpcAddress,
    startupSeqno: parts.startupSeqno,
    serviceStatus: () => serviceStatus.status,
    serviceInfo: () => serviceStatus.current,
    nodeState: () => recovery?.state ?? "PartOfNetwork",
    serviceEndorsements: (nodeCertPem) => serviceEndorsementsFor(engine.store, nodeCertPem, identity.serviceCertPem),
    consensus: () => ({
      role: replicator.role, primaryId: replicator.primaryId, term: replicator.term, voters: replicator.configuration,
      commit: replicator.committedIndex, last: engine.lastSeqnoLocal, mayVote: replicator.raft.mayVote,
    }),
  });
  installAttestationEndpoints(registry, identity.nodeId);
  installSnapshotEndpoints(registry, config.snapshots.directory);
  installJoinEndpoint(registry, {
    serviceCertPem: identity.serviceCertPem, serviceKeys: identity.serviceKeys,
    ledgerSecrets: () => {
      // A recovering service does not hold its previous services' secrets yet: a joiner could not read the ledger.
      if (recovery !== undefined && recovery.state !== "PartOfNetwork") {
        throw new CocoError("ServiceRecovering", "The service is recovering: nodes join once it is Open (its private state restored).", 503);
      }
      return engine.ledgerSecrets;
    },
  }, new JoinAdmission(config.admission.join));
}

/** The node's metrics (metrics.ts), read from consensus, the ledger files and the channels when scraped. */
export function createNodeMetrics(parts: {
  opened: OpenedNode; config: ResolvedConfig; replicator: Replicator;
  channels: () => NodeChannels | undefined; sessions: () => HttpSessionStats;
}): NodeMetrics {
  const { opened: { engine, identity }, config, replicator } = parts;
  const metrics = new NodeMetrics({
    nodeId: identity.nodeId,
    startCommitSeqno: replicator.committedIndex,
    consensus: () => ({
      role: replicator.role, view: replicator.term, commitSeqno: replicator.committedIndex, lastSeqno: engine.lastSeqnoLocal,
      primaryId: replicator.primaryId,
      peers: replicator.configuration.filter((id) => id !== identity.nodeId).map((id) => ({ nodeId: id, connected: parts.channels()?.isConnected(id) ?? false })),
    }),
    ledgerDirectory: config.ledgerDirectory,
    snapshotsDirectory: join(config.workspace, "snapshots"),
    sessions: parts.sessions,
    sessionCaps: { soft: config.rpc.connectionsMax - (config.admission.rpc.privilegedConnectionsReserved ?? ADMISSION_DEFAULTS.privilegedConnectionsReserved), hard: config.rpc.connectionsMax },
    rpcInterfaceName: config.rpc.name,
  });
  replicator.onCommit((seqno) => metrics.commitAdvanced(seqno));
  engine.on("rollback", () => metrics.rolledBack(engine.lastSeqnoLocal));
  return metrics;
}

/** The HTTPS server on the node's RPC interface; each answer is counted and, if configured, logged. */
export function createHttpServer(parts: {
  opened: OpenedNode; config: ResolvedConfig; logger: Logger;
  frontend: Frontend; metrics: NodeMetrics; accessLog: AccessLog | undefined; onUpgrade: UpgradeHandler;
}): HttpServer {
  const { opened: { engine, identity }, config, logger, frontend, metrics, accessLog } = parts;
  return new HttpServer({
    host: config.rpc.host,
    port: config.rpc.port,
    certificatePem: identity.nodeCertPem,
    privateKeyPem: identity.nodeKeys.privateKeyPem,
    bodyBytesMax: config.rpc.bodyBytesMax,
    connectionsMax: config.rpc.connectionsMax,
    keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
    admission: config.admission.rpc,
    // Members' certificates may use the connections kept back from anonymous clients.
    isPrivilegedCaller: (cert) => engine.store.get(MEMBERS_CERTS_MAP, cert.idKey) !== undefined,
    logger,
    onError: (error, request) => logger.error({ err: error, method: request?.method, path: request?.path }, "request failed"),
    onUpgrade: parts.onUpgrade,
    onAnswered: (answered) => {
      const facts = answered.request === undefined ? undefined : frontend.factsOf(answered.request);
      const endpoint = facts?.endpoint ?? UNMATCHED_ENDPOINT;
      metrics.requestAnswered(facts?.method ?? answered.method, endpoint, answered.status, answered.seconds);
      if (accessLog === undefined) return;
      const caller = facts?.caller;
      accessLog.record({
        method: answered.method, endpoint, status: answered.status, seconds: answered.seconds, bytes: answered.bytes,
        callerKind: facts?.forwarded === true ? "forwarded" : caller === undefined ? "none" : typeof caller.policy === "string" ? caller.policy : "all_of",
        callerId: caller !== undefined && "id" in caller ? caller.id : undefined,
      });
    },
  }, frontend.dispatch);
}

/** The access log (if configured), tagged with the node's id. */
export function createAccessLog(config: ResolvedConfig, nodeId: string, logger: Logger): AccessLog | undefined {
  return config.accessLog === undefined ? undefined : new AccessLog(openAccessLog(config.accessLog, logger), nodeId);
}

/**
 * The access log's destination: its own file (a LogFile: never crashes on a full disk), or the
 * node log's destination when no file is set (pino's stream, shared with the node's own lines).
 */
function openAccessLog(settings: { file: string | undefined }, logger: Logger): AccessLogDestination {
  if (settings.file !== undefined) return new LogFile(settings.file);
  const stream = (logger as unknown as Record<symbol, AccessLogDestination | undefined>)[pino.symbols.streamSym];
  return stream ?? process.stdout;
}
