// A Coco node: opens its ledger, loads or creates its identity and secrets, rebuilds its state
// from the ledger, writes the genesis transaction for a new service, and serves HTTPS.
import { mkdirSync, readFileSync, existsSync, openSync, writeSync, fsyncSync, closeSync, renameSync } from "node:fs";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { certificateFingerprint, randomBytes } from "../crypto/index.js";
import { ThreadedLedger } from "../ledger/index.js";
import { EndpointRegistry, HttpServer, MEMBERS_CERTS_MAP } from "../rpc/index.js";
import type { Store } from "../kv/index.js";
import type { TxId } from "../util/index.js";
import { CocoError, formatTxId } from "../util/index.js";
import type { ResolvedConfig } from "./config.js";
import { TransactionEngine } from "./engine.js";
import { Frontend, type AppRouter, type CommitActions } from "./frontend.js";
import { loadOrCreateIdentity, resealSecrets, type NodeIdentity } from "./identity.js";
import { installNodeEndpoints } from "./node-endpoints.js";
import { SINGLETON_KEY } from "./signatures.js";
import { ServiceStatus, SERVICE_INFO_MAP } from "./service-status.js";
import { RECOVERY_SHARES_MAP, buildRecoveryShares, recoveryMembers, recoveryThreshold, type RecoverySharesInfo } from "./recovery-shares.js";
import { JsRuntime } from "../js/index.js";
import { CONSTITUTION_MAP, defaultConstitutionSource, installGovernanceEndpoints, loadConstitutionFiles } from "../governance/index.js";

export interface StartOptions {
  /** Installs the app's endpoints (built-in apps are composed by the CLI, above this layer). */
  installApps?: (registry: EndpointRegistry, context: AppContext) => void;
  /** Routes to the deployed JS app (CCF app bundle), composed by the CLI like built-in apps. */
  appRouter?: (store: Store, logger: Logger, consensus: AppConsensus) => AppRouter;
  logger?: Logger;
}

/** What the node tells built-in apps. */
export interface AppContext {
  /** The node's committed seqno (e.g. the EVM app answers receipts only once committed). */
  committedSeqno(): number;
  /** The view that wrote a seqno, if this node holds it (to name a transaction `view.seqno`). */
  viewForSeqno(seqno: number): number | null;
}

/** What a JS app may ask of consensus (`ccf.consensus`). */
export interface AppConsensus {
  lastCommittedTxId(): TxId;
  viewForSeqno(seqno: number): number | null;
  statusForTxId(view: number, seqno: number): string;
}

const CONSENSUS_STATE_FILE = "consensus_state.json";
/** Marks the transactions that rotated the ledger secret (the new secret is used after them). */
const LEDGER_REKEY_MAP = "public:ccf.internal.ledger_rekeys";
/** Marks the transactions that asked for fresh recovery shares (set_recovery_threshold, ...). */
const RECOVERY_SHARES_REFRESH_MAP = "public:ccf.internal.recovery_shares_refresh";

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
      ledgerSecrets: identity.ledgerSecrets,
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
    const serviceStatus = new ServiceStatus(engine.store);
    // The constitution and ballots run here, isolated from the node (see docs/js-runtime.md).
    const runtime = new JsRuntime({ timeLimitMs: config.jsTimeLimitMs, memoryLimitMiB: config.jsMemoryLimitMiB });

    const registry = new EndpointRegistry();
    let rpcAddress = `${config.rpc.host}:${config.rpc.port}`;
    installNodeEndpoints(registry, engine, {
      nodeId: identity.nodeId,
      serviceCertPem: identity.serviceCertPem,
      nodeCertPem: identity.nodeCertPem,
      rpcInterfaceName: config.rpc.name,
      rpcAddress: () => rpcAddress,
      startupSeqno,
      serviceStatus: () => serviceStatus.status,
    });
    // Node actions the constitution asks for, carried out once the proposal's transaction
    // commits. The hook writes a marker through apply's overlay, so a proposal whose apply
    // fails (its writes discarded) never rotates the secret.
    let rekeyRequested = false;
    let sharesRefreshRequested = false;
    engine.store.onWrite(LEDGER_REKEY_MAP, () => { rekeyRequested = true; });
    engine.store.onWrite(RECOVERY_SHARES_REFRESH_MAP, () => { sharesRefreshRequested = true; });
    // Opening the service issues the first recovery shares, as in CCF.
    engine.store.onWrite(SERVICE_INFO_MAP, () => { sharesRefreshRequested = true; });
    const refreshRecoveryShares = async () => {
      const secrets = engine.ledgerSecrets;
      const latest = secrets[secrets.length - 1]!;
      const info = await buildRecoveryShares(recoveryMembers(engine.store), recoveryThreshold(engine.store), latest.raw, latest.fromSeqno);
      if (info === undefined) return;
      const tx = engine.store.begin();
      tx.set(RECOVERY_SHARES_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify(info)));
      const id = engine.commit(tx);
      logger.info({ seqno: id.seqno, members: Object.keys(info.encrypted_shares).length, threshold: info.recovery_threshold }, "recovery shares issued");
    };
    const actions: CommitActions = {
      reset: () => { rekeyRequested = false; sharesRefreshRequested = false; },
      committed: (seqno) => {
        if (rekeyRequested) {
          rekeyRequested = false;
          sharesRefreshRequested = true; // the new secret must be recoverable too
          engine.rekey(seqno, randomBytes(32));
          resealSecrets(config, identity, engine.ledgerSecrets);
          logger.info({ from_seqno: seqno + 1, secrets: engine.ledgerSecrets.length }, "ledger secret rotated");
        }
        if (sharesRefreshRequested) {
          sharesRefreshRequested = false;
          refreshRecoveryShares().catch((error) => logger.error({ err: error }, "could not issue recovery shares"));
        }
      },
    };
    installGovernanceEndpoints(registry, {
      runtime,
      hooks: (kv) => ({
        triggerLedgerRekey: () => kv.set(LEDGER_REKEY_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify({ requested: true }))),
        triggerRecoverySharesRefresh: () => kv.set(RECOVERY_SHARES_REFRESH_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify({ requested: true }))),
      }),
      nowSeconds: () => Math.floor(Date.now() / 1000),
      serviceCertPem: identity.serviceCertPem,
      // What members acknowledge: the Merkle root signed by the last signature transaction.
      stateDigest: () => engine.lastSignatureRoot,
    });
    registry.install({
      method: "GET", path: "/gov/recovery/encrypted-shares/{memberId}", authPolicies: ["no_auth"], mode: "readonly",
      summary: "A recovery member's encrypted recovery share",
      handler: (ctx) => {
        const raw = ctx.tx.get(RECOVERY_SHARES_MAP, SINGLETON_KEY);
        const share = raw ? (JSON.parse(raw.toString("utf8")) as RecoverySharesInfo).encrypted_shares[ctx.params["memberId"]!] : undefined;
        if (share === undefined) {
          throw new CocoError("ResourceNotFound", `No recovery share for member ${ctx.params["memberId"]}: only Active members with an encryption key hold one.`, 404);
        }
        return { body: { memberId: ctx.params["memberId"], encryptedShare: share } };
      },
    });
    options.installApps?.(registry, { committedSeqno: () => engine.commitTxId.seqno, viewForSeqno: (seqno) => engine.viewAt(seqno) });
    const appRouter = options.appRouter?.(engine.store, logger, {
      lastCommittedTxId: () => engine.commitTxId,
      viewForSeqno: (seqno) => engine.viewAt(seqno),
      statusForTxId: (view, seqno) => engine.status(view, seqno),
    });
    const frontend = new Frontend(registry, engine, () => serviceStatus.isOpen, actions, appRouter);
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
 * The genesis transaction of a new service, as CCF's first node writes it: the members of the
 * start configuration (status Accepted until each acknowledges the service state), the
 * constitution, this node (Trusted) and the service (Opening). Users, apps and the opening of
 * the service come later, through proposals.
 */
function writeGenesis(engine: TransactionEngine, identity: NodeIdentity, config: ResolvedConfig): void {
  const tx = engine.store.begin();
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  for (const member of config.genesis.members) {
    const pem = readFileSync(member.certificateFile, "utf8");
    const id = certificateFingerprint(pem);
    tx.set(MEMBERS_CERTS_MAP, Buffer.from(id), Buffer.from(pem));
    const memberData = member.dataJsonFile ? JSON.parse(readFileSync(member.dataJsonFile, "utf8")) as unknown : null;
    tx.set("public:ccf.gov.members.info", Buffer.from(id), json({ status: "Accepted", member_data: memberData }));
    tx.set("public:ccf.gov.members.acks", Buffer.from(id), json({ state_digest: "" }));
    if (member.encryptionPublicKeyFile) {
      tx.set("public:ccf.gov.members.encryption_public_keys", Buffer.from(id), Buffer.from(readFileSync(member.encryptionPublicKeyFile, "utf8")));
    }
  }
  const constitution = config.genesis.constitutionFiles.length > 0
    ? loadConstitutionFiles(config.genesis.constitutionFiles)
    : defaultConstitutionSource();
  tx.set(CONSTITUTION_MAP, SINGLETON_KEY, json(constitution));
  // CCF's service configuration (the constitution's set_recovery_threshold and node actions
  // read it). The threshold defaults to 1 when any member can hold a recovery share.
  const recoveryMembers = config.genesis.members.filter((m) => m.encryptionPublicKeyFile !== undefined).length;
  tx.set("public:ccf.gov.service.config", SINGLETON_KEY, json({
    consensus: "CFT",
    reconfiguration_type: "OneTransaction",
    recovery_threshold: config.genesis.recoveryThreshold ?? (recoveryMembers > 0 ? 1 : 0),
    maximum_node_certificate_validity_days: 365,
    maximum_service_certificate_validity_days: 365,
    recent_cose_proposals_window_size: 100,
  }));
  tx.set("public:ccf.gov.nodes.info", Buffer.from(identity.nodeId), json({
    cert: identity.nodeCertPem,
    status: "Trusted",
    quote_info: { format: "Insecure_Virtual" },
    node_data: null,
    rpc_interfaces: { [config.rpc.name]: { bind_address: `${config.rpc.host}:${config.rpc.port}` } },
  }));
  tx.set("public:ccf.gov.service.info", SINGLETON_KEY, json({
    cert: identity.serviceCertPem,
    status: "Opening",
    recovery_count: 0,
    service_data: null,
  }));
  engine.commit(tx);
}
