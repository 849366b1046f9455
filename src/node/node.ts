// A Coco node: opens its ledger, loads or creates its identity and secrets, rebuilds its state
// from the ledger, writes the genesis transaction for a new service, and serves HTTPS.
import { mkdirSync, readFileSync, existsSync, openSync, writeSync, fsyncSync, closeSync, renameSync } from "node:fs";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { certificateFingerprint } from "../crypto/index.js";
import { ThreadedLedger } from "../ledger/index.js";
import { EndpointRegistry, HttpServer, MEMBERS_CERTS_MAP, USERS_CERTS_MAP } from "../rpc/index.js";
import { formatTxId } from "../util/index.js";
import type { ResolvedConfig } from "./config.js";
import { TransactionEngine } from "./engine.js";
import { Frontend } from "./frontend.js";
import { loadOrCreateIdentity, type NodeIdentity } from "./identity.js";
import { installNodeEndpoints } from "./node-endpoints.js";
import { SINGLETON_KEY } from "./signatures.js";

export interface StartOptions {
  /** Installs the app's endpoints (built-in apps are composed by the CLI, above this layer). */
  installApps?: (registry: EndpointRegistry) => void;
  logger?: Logger;
}

const CONSENSUS_STATE_FILE = "consensus_state.json";

/** The view is persisted (fsync'd) before the node writes in it, as Raft persists its term. */
function readPersistedView(workspace: string): number {
  const path = join(workspace, CONSENSUS_STATE_FILE);
  if (!existsSync(path)) return 0;
  return (JSON.parse(readFileSync(path, "utf8")) as { view: number }).view;
}

function persistView(workspace: string, view: number): void {
  const path = join(workspace, CONSENSUS_STATE_FILE);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w", 0o644);
  writeSync(fd, JSON.stringify({ view }));
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}

export class CocoNode {
  private constructor(
    readonly config: ResolvedConfig,
    readonly identity: NodeIdentity,
    readonly engine: TransactionEngine,
    readonly registry: EndpointRegistry,
    private readonly server: HttpServer,
    private readonly ledger: ThreadedLedger,
    readonly logger: Logger,
    readonly address: { host: string; port: number },
  ) {}

  static async start(config: ResolvedConfig, options: StartOptions = {}): Promise<CocoNode> {
    const logger = options.logger ?? pino({ level: config.logLevel }, config.logFile ? pino.destination({ dest: config.logFile, mkdir: true, sync: false }) : undefined);
    mkdirSync(config.workspace, { recursive: true });
    const { ledger, entries } = await ThreadedLedger.open(config.ledgerDirectory, {
      chunkSizeBytes: config.ledgerChunkBytes,
      durability: config.durability,
      logger,
    });
    const identity = await loadOrCreateIdentity(config, entries.length > 0);
    const engine = new TransactionEngine(ledger, {
      nodeId: identity.nodeId,
      nodePrivateKeyPem: identity.nodeKeys.privateKeyPem,
      nodeCertPem: identity.nodeCertPem,
      ledgerSecret: identity.ledgerSecret,
      signatureTxCount: config.signatureTxCount,
      signatureDelayMs: config.signatureDelayMs,
      pendingTransactionsMax: config.pendingTransactionsMax,
      logger,
    });
    const started = Date.now();
    await engine.recover(entries, readPersistedView(config.workspace));
    persistView(config.workspace, engine.currentView);
    if (entries.length > 0) {
      logger.info({ entries: entries.length, commit: formatTxId(engine.commitTxId.view, engine.commitTxId.seqno), view: engine.currentView, ms: Date.now() - started }, "state rebuilt from the ledger");
    }
    const startupSeqno = engine.lastTxId.seqno;
    if (startupSeqno === 0) writeGenesis(engine, identity, config);

    const registry = new EndpointRegistry();
    let rpcAddress = `${config.rpc.host}:${config.rpc.port}`;
    installNodeEndpoints(registry, engine, {
      nodeId: identity.nodeId,
      serviceCertPem: identity.serviceCertPem,
      nodeCertPem: identity.nodeCertPem,
      rpcInterfaceName: config.rpc.name,
      rpcAddress: () => rpcAddress,
      startupSeqno,
      serviceStatus: () => "Open",
    });
    options.installApps?.(registry);
    const frontend = new Frontend(registry, engine);
    const server = new HttpServer({
      host: config.rpc.host,
      port: config.rpc.port,
      certificatePem: identity.nodeCertPem,
      privateKeyPem: identity.nodeKeys.privateKeyPem,
      bodyBytesMax: config.rpc.bodyBytesMax,
      connectionsMax: config.rpc.connectionsMax,
      keepAliveTimeoutMs: 30_000,
      onError: (error, request) => logger.error({ err: error, method: request?.method, path: request?.path }, "request failed"),
    }, frontend.dispatch);
    engine.start();
    if (startupSeqno === 0) engine.emitSignature();
    const address = await server.listen();
    rpcAddress = `${address.address}:${address.port}`;
    logger.info({ node_id: identity.nodeId, address: rpcAddress, view: engine.currentView, durability: config.durability }, "node is serving");
    engine.on("failure", () => logger.fatal("ledger failure: writes are refused until the node is restarted"));
    return new CocoNode(config, identity, engine, registry, server, ledger, logger, { host: address.address, port: address.port });
  }

  /** Stops accepting requests, commits what is pending and closes the ledger. */
  async stop(): Promise<void> {
    await this.server.close();
    await this.engine.close();
    await this.ledger.close();
    this.logger.info("node stopped");
    this.logger.flush?.();
  }
}

/**
 * The genesis transaction of a new service: the governance tables under CCF's names. Until
 * governance lands, the start configuration's members and users are registered directly and
 * the service is open at once.
 */
function writeGenesis(engine: TransactionEngine, identity: NodeIdentity, config: ResolvedConfig): void {
  const tx = engine.store.begin();
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  for (const file of config.genesis.memberCertificateFiles) {
    const pem = readFileSync(file, "utf8");
    const id = certificateFingerprint(pem);
    tx.set(MEMBERS_CERTS_MAP, Buffer.from(id), Buffer.from(pem));
    tx.set("public:ccf.gov.members.info", Buffer.from(id), json({ status: "Active", member_data: null }));
  }
  for (const file of config.genesis.userCertificateFiles) {
    const pem = readFileSync(file, "utf8");
    tx.set(USERS_CERTS_MAP, Buffer.from(certificateFingerprint(pem)), Buffer.from(pem));
  }
  tx.set("public:ccf.gov.nodes.info", Buffer.from(identity.nodeId), json({
    cert: identity.nodeCertPem,
    status: "Trusted",
    quote_info: { format: "Insecure_Virtual" },
    node_data: null,
    rpc_interfaces: { [config.rpc.name]: { bind_address: `${config.rpc.host}:${config.rpc.port}` } },
  }));
  tx.set("public:ccf.gov.service.info", SINGLETON_KEY, json({
    cert: identity.serviceCertPem,
    status: "Open",
    recovery_count: 0,
    service_data: null,
  }));
  engine.commit(tx);
}
