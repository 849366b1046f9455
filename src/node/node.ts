// A Coco node: opens its ledger, loads or creates its identity and secrets (or joins an
// existing service), rebuilds its state from the ledger, takes part in consensus over the
// node-to-node channels, writes the genesis transaction for a new service, and serves HTTPS.
import { mkdirSync, readdirSync, readFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { createNodeLogger, LogFile } from "./logger.js";
import {
  certificateFingerprint, createCertificateSigningRequest, endorseCertificateSigningRequestSync, renewServiceCertificateSync,
} from "../crypto/index.js";
import { NodeChannels } from "../channels/index.js";
import { ThreadedLedger } from "../ledger/index.js";
import { ADMISSION_DEFAULTS, AccessLog, EndpointRegistry, HttpServer, MEMBERS_CERTS_MAP, type AccessLogDestination, type RpcRequest, type RpcResponse, type UpgradeHandler } from "../rpc/index.js";
import { NodeMetrics, UNMATCHED_ENDPOINT } from "./metrics.js";
import { LatencyTrace } from "./latency-trace.js";
import { lockWorkspace, unlockWorkspace } from "./workspace-lock.js";
import type { Store, Transaction } from "../kv/index.js";
import type { TxId } from "../util/index.js";
import { CocoError } from "../util/index.js";
import type { ResolvedConfig } from "./config.js";
import { LEDGER_CHUNK_REQUESTS_MAP, RAFT_CONFIGURATION_MAP, SIGNATURE_EARLY_MIN_MS, TransactionEngine } from "./engine.js";
import { Replicator, FRAME_RAFT, FRAME_FORWARD_REQUEST, FRAME_FORWARD_RESPONSE } from "./replication.js";
import { Forwarder } from "./forwarding.js";
import { reconcileConfiguration } from "./reconfiguration.js";
import { PeerSync, readPeersFile, type KnownPeer } from "./peers.js";
import { PeerAdmission } from "./membership.js";
import { ENDORSED_CERTS_MAP, NODES_INFO_MAP, installJoinEndpoint, joinService } from "./join.js";
import { HistoricalStates } from "./historical.js";
import { JoinAdmission } from "./join-admission.js";
import { GovernanceEffects } from "./governance-effects.js";
import { Frontend, type AppRouter } from "./frontend.js";
import { UpgradeRouter } from "./upgrades.js";
import { createJoinerIdentity, createServiceIdentity, hasIdentity, loadOrCreateIdentity, saveJoinedIdentity, type NodeIdentity } from "./identity.js";
import { Recovery, openLedgerForRecovery, serviceEndorsementsFor } from "./recovery.js";
import { installPreviousIdentityEndpoint, installRecoveryShareEndpoint } from "./recovery-endpoints.js";
import { installNodeEndpoints } from "./node-endpoints.js";
import { installMemoryEndpoint } from "./memory-endpoint.js";
import { installAttestationEndpoints } from "./attestation-endpoints.js";
import { nodeEvidence, trustGenesisPlatform } from "./node-evidence.js";
import { installExplorerEndpoints } from "../explorer/index.js";
import { SINGLETON_KEY } from "./signatures.js";
import { Snapshotter } from "./snapshots.js";
import { installSnapshotEndpoints } from "./snapshot-endpoints.js";
import { fetchServiceSnapshot } from "./snapshot-fetch.js";
import { rebuildState, recoverFromLedger } from "./snapshot-startup.js";
import { ServiceStatus } from "./service-status.js";
import { JsRuntime } from "../js/index.js";
import { CONSTITUTION_MAP, type GovernanceDeps, defaultConstitutionSource, installGovernanceEndpoints, loadConstitutionFiles } from "../governance/index.js";

export interface StartOptions {
  /** Installs the app's endpoints (built-in apps are composed by the CLI, above this layer). */
  installApps?: (registry: EndpointRegistry, context: AppContext) => void;
  /** Routes to the deployed JS app (CCF app bundle), composed by the CLI like built-in apps. */
  appRouter?: (store: Store, logger: Logger, consensus: AppConsensus, observer: AppObserver) => AppRouter;
  logger?: Logger;
}

/** Where apps report their execution time (the node's metrics). */
export interface AppObserver {
  jsExecution(seconds: number): void;
  evmExecution(seconds: number): void;
}

/** What the node tells built-in apps. */
export interface AppContext {
  observer: AppObserver;
  /** The node's committed seqno (e.g. the EVM app answers receipts only once committed). */
  committedSeqno(): number;
  /** The view that wrote a seqno, if this node holds it (to name a transaction `view.seqno`). */
  viewForSeqno(seqno: number): number | null;
  /** Serves WebSocket handshakes to `prefix` and the paths below it, on the node's HTTPS port. */
  handleUpgrades(prefix: string, handler: UpgradeHandler): void;
  /**
   * Runs a request as one that arrived over HTTP would run (routing, forwarding to the primary,
   * authentication, commit): e.g. a JSON-RPC message received on a WebSocket.
   */
  dispatch(request: RpcRequest): Promise<RpcResponse>;
  /** A transaction on this node's latest state, to read (it is never committed). */
  beginReadTransaction(): Transaction;
  /** Called each time the commit point advances (with the new commit seqno). */
  onCommit(listener: (seqno: number) => void): void;
  /** CCF 6's COSE receipt of a committed transaction (the logging app serves it). */
  coseReceipt(view: number, seqno: number): Promise<Buffer>;
}

/** What a JS app may ask of consensus (`ccf.consensus`). */
export interface AppConsensus {
  lastCommittedTxId(): TxId;
  viewForSeqno(seqno: number): number | null;
  statusForTxId(view: number, seqno: number): string;
  /** Committed states for historical queries (`"mode": "historical"`, `ccf.historical.*`). */
  historical: HistoricalStates;
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
    readonly replicator: Replicator,
    private readonly channels: NodeChannels | undefined,
    private readonly forwarder: Forwarder | undefined,
    readonly metrics: NodeMetrics,
    private readonly accessLog: AccessLog | undefined,
  ) {}

  /**
   * Starts a node on its workspace, which it locks first (workspace-lock.ts): a second process on
   * the same workspace is refused, naming the running PID.
   */
  static async start(config: ResolvedConfig, options: StartOptions = {}): Promise<CocoNode> {
    mkdirSync(config.workspace, { recursive: true });
    lockWorkspace(config.workspace, `coco node (${config.command})`);
    try {
      return await CocoNode.startLocked(config, options);
    } catch (error) {
      unlockWorkspace(config.workspace);
      throw error;
    }
  }

  private static async startLocked(config: ResolvedConfig, options: StartOptions): Promise<CocoNode> {
    const logger = options.logger ?? createNodeLogger(config);
    const { ledger, entries, identity, bootstrapPeers, lostLedger, streamed } = config.command === "Recover"
      ? { ...await openForRecovery(config, logger), streamed: false }
      : await openLedgerAndIdentity(config, logger);
    const latencyTrace = LatencyTrace.fromEnvironment(identity.nodeId);
    const engine = new TransactionEngine(ledger, {
      nodeId: identity.nodeId,
      serviceCertPem: identity.serviceCertPem,
      nodePrivateKeyPem: identity.nodeKeys.privateKeyPem,
      nodeCertPem: identity.nodeCertPem,
      ledgerSecrets: identity.ledgerSecrets,
      signatureTxCount: config.signatureTxCount,
      signatureDelayMs: config.signatureDelayMs,
      pendingTransactionsMax: config.pendingTransactionsMax,
      entryWorker: true,
      // CCF 6: every signature transaction also carries the service's COSE signature of the root.
      coseSignatures: { servicePrivateKeyPem: identity.serviceKeys.privateKeyPem, servicePublicKeyPem: identity.serviceKeys.publicKeyPem },
      logger,
      merkleWindowLeaves: config.memory.merkleWindowLeaves,
      historicalCacheBytes: config.memory.historicalCacheBytes,
      earlySignatureMinMs: SIGNATURE_EARLY_MIN_MS,
      ...(latencyTrace !== undefined ? { latencyTrace } : {}),
    });
    const started = Date.now();
    // A recovering node applies the previous service's public state only (see recovery.ts).
    const recovery = config.command === "Recover" ? new Recovery(engine, identity, config, logger) : undefined;
    // With a committed snapshot the ledger came back whole (snapshot-startup.ts checks and skips
    // what the snapshot covers); otherwise it is read back in bounded ranges and consensus keeps
    // only its window of it.
    const rebuilt = recovery !== undefined
      ? await recoverFromLedger(recovery, entries, config, logger)
      : streamed
        ? { replayed: await engine.replayLedger(config.memory.consensusWindowEntries, ledger.committedSeqno), snapshotSeqno: 0 }
        : await rebuildState({
          engine, entries, ledgerLastSeqno: ledger.lastSeqno, snapshotDirectory: config.snapshots.directory,
          serviceCertPems: [identity.serviceCertPem], logger,
        });
    const replayed = rebuilt.replayed;
    if (ledger.lastSeqno > 0 && recovery === undefined) {
      logger.info({ entries: ledger.lastSeqno, streamed, ms: Date.now() - started }, "state rebuilt from the ledger");
    }
    const startupSeqno = engine.lastTxId.seqno;
    const ticks = (ms: number) => Math.max(1, Math.round(ms / config.consensus.tickMs));
    const replicator = new Replicator(engine, replayed, {
      nodeId: identity.nodeId,
      workspace: config.workspace,
      // A new service starts with this node as its only voter; a joiner waits to be added.
      bootstrapVoters: config.command !== "Join" && !lostLedger ? [identity.nodeId] : [],
      lostEntries: lostLedger,
      // A snapshot is only ever taken of committed state.
      commitIndex: Math.max(ledger.committedSeqno, rebuilt.snapshotSeqno),
      ...("base" in rebuilt && rebuilt.base !== undefined ? { snapshotBase: rebuilt.base } : {}),
      tickMs: config.consensus.tickMs,
      electionTicks: ticks(config.consensus.electionTimeoutMs),
      heartbeatTicks: ticks(config.consensus.heartbeatMs),
      maxEntriesPerAppend: 4000,
      maxInflightAppends: 8,
      maxUncommittedEntries: config.pendingTransactionsMax * 2,
      logWindow: { entriesMax: config.memory.consensusWindowEntries, bytesMax: config.memory.consensusWindowBytes },
      logger,
      ...(recovery !== undefined ? { onBecomePrimary: () => recovery.onBecomePrimary() } : {}),
      // Raft hears only nodes of the current configuration (membership.ts): not a retired node.
      acceptSender: (nodeId: string): boolean => admission.accepts(nodeId),
    });
    // Who may speak to this node over node-to-node channels, re-judged whenever nodes.info, the
    // configuration or the commit point's configuration changes.
    const admission: PeerAdmission = new PeerAdmission({
      self: identity.nodeId, store: engine.store, consensus: (): Replicator => replicator, bootstrapPeers: bootstrapPeers.map((peer) => peer.node_id),
    });
    let committedVoters = replicator.committedConfiguration.join(",");
    replicator.onCommit(() => {
      const voters = replicator.committedConfiguration.join(",");
      if (voters === committedVoters) return;
      committedVoters = voters;
      admission.configurationMayHaveChanged();
    });
    const serviceStatus = new ServiceStatus(engine.store);
    // The constitution and ballots run here, isolated from the node (see docs/js-runtime.md).
    const runtime = new JsRuntime({
      timeLimitMs: config.jsTimeLimitMs, memoryLimitMiB: config.jsMemoryLimitMiB,
      // console.* in the constitution and ballots goes to the node log, as CCF logs it.
      console: (level, text) => {
        const details = { constitution: true, console: level };
        if (level === "error") logger.error(details, text);
        else if (level === "warn") logger.warn(details, text);
        else if (level === "debug") logger.debug(details, text);
        else logger.info(details, text);
      },
    });

    const registry = new EndpointRegistry();
    let rpcAddress = `${config.rpc.host}:${config.rpc.port}`;
    installMemoryEndpoint(registry, engine, () => replicator);
    installNodeEndpoints(registry, engine, {
      nodeId: identity.nodeId,
      serviceCertPem: identity.serviceCertPem,
      nodeCertPem: identity.nodeCertPem,
      rpcInterfaceName: config.rpc.name,
      rpcAddress: () => rpcAddress,
      startupSeqno,
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
    const snapshotter = new Snapshotter(engine, {
      directory: config.snapshots.directory, txCount: config.snapshots.txCount, keepMax: config.snapshots.keepMax,
      durable: config.durability === "fsync", logger,
    }, rebuilt.snapshotSeqno);
    // What governance asks of the node (rekey, recovery shares), carried out on commit.
    const effects = new GovernanceEffects(engine, identity, config, logger, () => replicator);
    // Retiring a node rotates the ledger secret once the node has left the configuration (the
    // primary checks after every change of nodes.info or the configurations, and on taking over).
    const rekeyAfterRetirement = () => effects.rekeyIfRetiredNodesKnowSecret();
    admission.onChange(rekeyAfterRetirement);
    replicator.onCommit(() => { if (effects.rekeyAfterRetirementPending) setImmediate(rekeyAfterRetirement); });
    replicator.onRoleChange((change) => { if (change.role === "Primary") setImmediate(rekeyAfterRetirement); });
    const governanceDeps: GovernanceDeps = {
      runtime,
      hooks: (kv) => ({
        generateEndorsedCertificate: (csrPem: string, validFrom: string, validityPeriodDays: number) => endorseCertificateSigningRequestSync({
          csrPem, serviceKeys: identity.serviceKeys, serviceCertPem: identity.serviceCertPem,
          ...(validFrom !== undefined ? { validFrom } : {}), validityPeriodDays,
        }),
        generateNetworkCertificate: (validFrom: string, validityPeriodDays: number) => renewServiceCertificateSync({
          serviceKeys: identity.serviceKeys, serviceCertPem: identity.serviceCertPem, validFrom, validityPeriodDays,
        }),
        // CCF refreshes the certificates of ACME-endorsed interfaces; Coco has none, so, as a
        // CCF node configured without any, there is nothing to do once the names are checked.
        triggerAcmeRefresh: (interfaces: string[] | undefined) => {
          if (interfaces !== undefined && !(Array.isArray(interfaces) && interfaces.every((name) => typeof name === "string"))) {
            throw new TypeError("triggerACMERefresh: interfaces must be an array of strings");
          }
        },
        getLatestLedgerSecretSeqno: () => engine.ledgerSecrets[engine.ledgerSecrets.length - 1]!.fromSeqno,
        triggerLedgerRekey: () => effects.requestLedgerRekey(kv),
        triggerRecoverySharesRefresh: () => effects.requestRecoverySharesRefresh(kv),
        // The trigger_snapshot action: a snapshot at the next committed signature (snapshots.ts).
        triggerSnapshot: () => snapshotter.trigger(),
        // trigger_ledger_chunk: recorded in the transaction, so every node ends its chunk at the
        // same signature (engine.persist).
        triggerLedgerChunk: () => kv.set(LEDGER_CHUNK_REQUESTS_MAP, SINGLETON_KEY, Buffer.from("requested")),
      }),
      nowSeconds: () => Math.floor(Date.now() / 1000),
      createdAtWindow: { maxAgeSeconds: config.governance.createdAtMaxAgeSeconds, maxFutureSeconds: config.governance.createdAtMaxFutureSeconds },
      serviceCertPem: identity.serviceCertPem,
      // What members acknowledge: the Merkle root signed by the last signature transaction.
      stateDigest: () => engine.lastSignatureRoot,
    };
    installGovernanceEndpoints(registry, governanceDeps);
    effects.installEndpoints(registry);
    installPreviousIdentityEndpoint(registry);
    installExplorerEndpoints(registry);
    if (recovery !== undefined) {
      installRecoveryShareEndpoint(registry, recovery, governanceDeps);
      recovery.setCommitActions(effects);
    }
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
    // Metrics read consensus, the ledger files and the channels when scraped (metrics.ts).
    const metrics = new NodeMetrics({
      nodeId: identity.nodeId,
      startCommitSeqno: replicator.committedIndex,
      consensus: () => ({
        role: replicator.role, view: replicator.term, commitSeqno: replicator.committedIndex, lastSeqno: engine.lastSeqnoLocal,
        primaryId: replicator.primaryId,
        peers: replicator.configuration.filter((id) => id !== identity.nodeId).map((id) => ({ nodeId: id, connected: channels?.isConnected(id) ?? false })),
      }),
      ledgerDirectory: config.ledgerDirectory,
      snapshotsDirectory: join(config.workspace, "snapshots"),
      sessions: () => server.sessions,
      sessionCaps: { soft: config.rpc.connectionsMax - (config.admission.rpc.privilegedConnectionsReserved ?? ADMISSION_DEFAULTS.privilegedConnectionsReserved), hard: config.rpc.connectionsMax },
      rpcInterfaceName: config.rpc.name,
    });
    metrics.installEndpoints(registry);
    replicator.onCommit((seqno) => metrics.commitAdvanced(seqno));
    engine.on("rollback", () => metrics.rolledBack(engine.lastSeqnoLocal));
    const appObserver: AppObserver = { jsExecution: (s) => metrics.jsExecution(s), evmExecution: (s) => metrics.evmExecution(s) };
    const upgrades = new UpgradeRouter(() => serviceStatus.isOpen);
    options.installApps?.(registry, {
      committedSeqno: () => engine.commitTxId.seqno,
      viewForSeqno: (seqno) => engine.viewAt(seqno),
      handleUpgrades: (prefix, handler) => upgrades.register(prefix, handler),
      // The frontend exists once the apps are installed; messages arrive only after that.
      dispatch: async (request) => frontend.dispatch(request),
      beginReadTransaction: () => engine.store.begin(),
      onCommit: (listener) => void engine.on("commit", listener),
      coseReceipt: (view, seqno) => engine.coseReceipt(view, seqno),
      observer: appObserver,
    });
    const appRouter = options.appRouter?.(engine.store, logger, {
      lastCommittedTxId: () => engine.commitTxId,
      viewForSeqno: (seqno) => engine.viewAt(seqno),
      statusForTxId: (view, seqno) => engine.status(view, seqno),
      historical: new HistoricalStates(engine),
    }, appObserver);
    const frontend = new Frontend(registry, engine, () => serviceStatus.isOpen, effects, appRouter);
    frontend.observer = { committedLocally: (seqno) => metrics.committedLocally(seqno), retried: (method, path) => metrics.requestRetried(method, path) };
    const accessLog = config.accessLog === undefined ? undefined : new AccessLog(openAccessLog(config.accessLog, logger), identity.nodeId);

    // Node-to-node channels: consensus messages and forwarded requests.
    let channels: NodeChannels | undefined;
    let forwarder: Forwarder | undefined;
    let nodeToNodeAddress: string | undefined;
    if (config.nodeToNode !== undefined) {
      const ch = new NodeChannels({
        identity: { nodeId: identity.nodeId, privateKeyPem: identity.nodeKeys.privateKeyPem, certPem: identity.nodeCertPem, serviceCertPem: identity.serviceCertPem },
        listen: { host: config.nodeToNode.host, port: config.nodeToNode.port },
        inboundHandshakeTimeoutMs: config.admission.nodeToNode.handshakeTimeoutMs,
        inboundConnectionsPerAddressMax: config.admission.nodeToNode.connectionsPerAddressMax,
        inboundConnectionsMax: config.admission.nodeToNode.connectionsMax,
        logger,
        // Only current members of the service may deliver frames; a retired node is refused at
        // authentication, and its open connections close when it stops being accepted.
        acceptPeer: (peer) => {
          const decision = admission.decide(peer);
          return decision.accepted ? true : { refused: decision.reason };
        },
        // A closed connection to the primary fails what was forwarded to it at once (forwarding.ts).
        onPeerConnected: (peer) => fw.peerConnected(peer),
        onPeerDisconnected: (peer) => fw.peerDisconnected(peer),
        onMessage: (from, type, payload) => {
          if (type === FRAME_RAFT) replicator.receive(from, payload);
          else if (type === FRAME_FORWARD_REQUEST) void fw.onRequest(from, payload);
          else if (type === FRAME_FORWARD_RESPONSE) fw.onResponse(from, payload);
          else logger.warn({ from, type }, "unknown node-to-node frame type");
        },
      });
      const fw = new Forwarder({
        transport: ch,
        nodeId: identity.nodeId,
        primary: () => replicator.primaryId,
        dispatchLocal: frontend.dispatchLocal,
        // The caller identity in a forwarded request is believed only from a Trusted node.
        isTrustedForwarder: (peer) => admission.isTrusted(peer),
        ...config.forwarding,
        logger,
      });
      // Requests pending at a primary that is no longer the primary are answered at once.
      replicator.onRoleChange((change) => fw.primaryChanged(change.primaryId));
      channels = ch;
      forwarder = fw;
      const bound = await ch.listen();
      nodeToNodeAddress = `${bound.host}:${bound.port}`;
      replicator.setTransport(ch);
      frontend.forwarding = { isPrimary: () => engine.isPrimary, forward: (request) => fw.forward(request) };
      new PeerSync({ nodeId: identity.nodeId, workspace: config.workspace, store: engine.store, channels: ch, bootstrapPeers, admission, logger }).sync();
    }

    // The primary moves the consensus configuration towards the trusted nodes, one node at a time.
    const reconcile = () => reconcileConfiguration(engine, replicator, logger);
    replicator.onCommit(reconcile);
    engine.store.onWrite(NODES_INFO_MAP, () => setImmediate(reconcile));
    const server = new HttpServer({
      host: config.rpc.host,
      port: config.rpc.port,
      certificatePem: identity.nodeCertPem,
      privateKeyPem: identity.nodeKeys.privateKeyPem,
      bodyBytesMax: config.rpc.bodyBytesMax,
      connectionsMax: config.rpc.connectionsMax,
      keepAliveTimeoutMs: 30_000,
      admission: config.admission.rpc,
      // Members' certificates may use the connections kept back from anonymous clients.
      isPrivilegedCaller: (cert) => engine.store.get(MEMBERS_CERTS_MAP, cert.idKey) !== undefined,
      logger,
      onError: (error, request) => logger.error({ err: error, method: request?.method, path: request?.path }, "request failed"),
      onUpgrade: upgrades.handle,
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
    const isGenesis = startupSeqno === 0 && config.command === "Start" && !lostLedger;
    // As CCF's first node, genesis records the node's CSR, from which governance renews its
    // certificate (set_node_certificate_validity, set_all_nodes_certificate_validity).
    const genesisCsrPem = isGenesis ? await createCertificateSigningRequest(identity.nodeKeys, {
      commonName: config.nodeCertificate.subjectName,
      ipAddresses: config.nodeCertificate.ipAddresses,
      dnsNames: config.nodeCertificate.dnsNames,
    }) : undefined;
    recovery?.setNodeToNodeAddress(nodeToNodeAddress);
    replicator.start();
    if (isGenesis && genesisCsrPem !== undefined) {
      // A new service: this node is its only voter and leads at once.
      if (!engine.isPrimary) throw new CocoError("InternalError", "a new service's first node did not become primary", 500);
      writeGenesis(engine, identity, config, nodeToNodeAddress, genesisCsrPem);
      engine.emitSignature();
    }
    if (recovery !== undefined && !recovery.started) {
      throw new CocoError("InternalError", "a recovering node did not become the recovered service's primary", 500);
    }
    const address = await server.listen();
    rpcAddress = `${address.address}:${address.port}`;
    // For tools that find the node (coco gov --workspace) when it listens on a port the OS chose.
    if (config.rpcAddressesFile !== undefined) writeFileSync(config.rpcAddressesFile, JSON.stringify({ [config.rpc.name]: rpcAddress }) + "\n");
    logger.info({ node_id: identity.nodeId, address: rpcAddress, node_to_node: nodeToNodeAddress, view: engine.currentView, role: replicator.role, durability: config.durability }, "node is serving");
    const node = new CocoNode(config, identity, engine, registry, server, ledger, logger, { host: address.address, port: address.port }, replicator, channels, forwarder, metrics, accessLog);
    engine.on("failure", (error: Error) => {
      logger.fatal({ err: error }, "ledger failure: this node stops taking part in the service; restart it to recover from its ledger");
      for (const listener of node.fatalListeners) listener(error);
    });
    return node;
  }

  private readonly fatalListeners: ((error: Error) => void)[] = [];

  /**
   * Called once if the node can no longer serve (its ledger failed): it has stopped taking part
   * in consensus; the process should exit so that it restarts and recovers from its ledger.
   */
  onFatal(listener: (error: Error) => void): void {
    this.fatalListeners.push(listener);
  }

  /** Stops accepting requests, commits what is pending (single node) and closes the ledger. */
  async stop(): Promise<void> {
    await this.server.close();
    this.accessLog?.close();
    this.forwarder?.close();
    // A lone voter commits its tail with a last signature; others just stop taking part.
    await this.engine.close();
    this.replicator.process();
    this.replicator.stop();
    await this.channels?.close();
    await this.ledger.close();
    this.logger.info("node stopped");
    unlockWorkspace(this.config.workspace);
    this.logger.flush?.();
  }
}

/**
 * Opens the ledger and finds who this node is: its sealed identity; or, on the first start of a
 * joiner, the identity the service gives it; or, for a new service, a fresh one. Keys and sealed
 * secrets without a ledger mean the ledger was wiped or moved away: the node is still a member
 * of its service, finds its peers in peers.json, catches up from them, and votes again only once
 * it holds everything committed before the loss.
 */
async function openLedgerAndIdentity(config: ResolvedConfig, logger: Logger): Promise<{
  ledger: ThreadedLedger; entries: Buffer[]; identity: NodeIdentity; bootstrapPeers: KnownPeer[]; lostLedger: boolean; streamed: boolean;
}> {
  // A node reads its ledger back in bounded ranges (replayLedger), unless a committed snapshot
  // may shorten the replay (snapshot-startup.ts works on the entries in memory).
  let streamed = !hasCommittedSnapshot(config.snapshots.directory);
  const ledgerOptions = { chunkSizeBytes: config.ledgerChunkBytes, durability: config.durability, logger };
  let { ledger, entries } = await ThreadedLedger.open(config.ledgerDirectory, { ...ledgerOptions, returnEntries: !streamed });
  try {
    let bootstrapPeers: KnownPeer[] = [];
    const lostLedger = ledger.lastSeqno === 0 && hasIdentity(config);
    if (lostLedger) {
      bootstrapPeers = readPeersFile(config.workspace);
      if (bootstrapPeers.length === 0) {
        throw new CocoError("LedgerMissing",
          `The ledger directory '${config.ledgerDirectory}' is empty, but this workspace holds a node identity (node.key, sealed secrets) and no ` +
          `peers.json naming the service's other nodes. Restore the ledger directory; or restore peers.json (any node's copy, minus this node) so ` +
          `that it catches up from them; or, to start a new service, remove node.key and the sealed secrets from the workspace.`, 400);
      }
      logger.warn({ ledger: config.ledgerDirectory, peers: bootstrapPeers.map((p) => p.node_id) },
        "the ledger directory is empty but this node has an identity: catching up from its peers; it votes again once caught up");
    }
    let identity: NodeIdentity;
    if (config.command === "Join" && !hasIdentity(config)) {
      ({ identity, peers: bootstrapPeers } = await joinAsNewNode(config, logger, ledger.lastSeqno > 0));
      // As CCF 6: the joiner fetches the service's newest committed snapshot itself; its ledger
      // then starts right after it, and consensus replicates only what follows.
      const snapshot = await fetchServiceSnapshot({
        target: { host: config.join!.targetHost, port: config.join!.targetPort }, serviceCertPem: identity.serviceCertPem,
        directory: config.snapshots.directory, durable: config.durability === "fsync", logger,
      }).catch((error: Error) => {
        logger.warn({ reason: error.message }, "no snapshot from the service: replicating the whole ledger");
        return undefined;
      });
      if (snapshot !== undefined) {
        await ledger.close();
        streamed = false;
        ({ ledger, entries } = await ThreadedLedger.open(config.ledgerDirectory, { ...ledgerOptions, returnEntries: true, startAfter: snapshot.seqno }));
      }
    } else {
      identity = await loadOrCreateIdentity(config, ledger.lastSeqno > 0);
    }
    return { ledger, entries, identity, bootstrapPeers, lostLedger, streamed };
  } catch (error) {
    await ledger.close().catch(() => undefined);
    throw error;
  }
}

/** A recovering node: the previous service's ledger, and a new identity whose secret starts after it. */
async function openForRecovery(config: ResolvedConfig, logger: Logger): Promise<{
  ledger: ThreadedLedger; entries: Buffer[]; identity: NodeIdentity; bootstrapPeers: KnownPeer[]; lostLedger: boolean;
}> {
  const { ledger, entries } = await openLedgerForRecovery(config, logger);
  try {
    return { ledger, entries, identity: await createServiceIdentity(config, entries.length + 1), bootstrapPeers: [], lostLedger: false };
  } catch (error) {
    await ledger.close().catch(() => undefined);
    throw error;
  }
}

/**
 * The genesis transaction of a new service, as CCF's first node writes it: the members of the
 * start configuration (status Accepted until each acknowledges the service state), the
 * constitution, this node (Trusted) and the service (Opening). Users, apps and the opening of
 * the service come later, through proposals.
 */
function writeGenesis(engine: TransactionEngine, identity: NodeIdentity, config: ResolvedConfig, nodeToNodeAddress: string | undefined, csrPem: string): void {
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
  const evidence = nodeEvidence(config, identity.nodeKeys.publicKeyPem, "start");
  tx.set(NODES_INFO_MAP, Buffer.from(identity.nodeId), json({
    cert: identity.nodeCertPem,
    status: "Trusted",
    certificate_signing_request: csrPem,
    quote_info: evidence.quoteInfo,
    encryption_pub_key: identity.encryptionKeys.publicKeyPem,
    node_data: null,
    rpc_interfaces: { [config.rpc.name]: { bind_address: `${config.rpc.host}:${config.rpc.port}` } },
    ...(nodeToNodeAddress ? { node_to_node_interface: { bind_address: nodeToNodeAddress, ...(config.nodeToNode?.publishedAddress ? { published_address: config.nodeToNode.publishedAddress } : {}) } } : {}),
  }));
  tx.set(ENDORSED_CERTS_MAP, Buffer.from(identity.nodeId), Buffer.from(identity.nodeCertPem));
  // As CCF does for the first node: its own platform is trusted from the start.
  trustGenesisPlatform(tx, evidence, config.virtualHostData);
  tx.set(RAFT_CONFIGURATION_MAP, SINGLETON_KEY, json([identity.nodeId]));
  tx.set("public:ccf.gov.service.info", SINGLETON_KEY, json({
    cert: identity.serviceCertPem,
    status: "Opening",
    recovery_count: 0,
    service_data: null,
  }));
  engine.commit(tx);
}

/** First start of a joining node: ask the service, wait to be trusted, keep what it sends. */
async function joinAsNewNode(config: ResolvedConfig, logger: Logger, ledgerHasEntries: boolean): Promise<{ identity: NodeIdentity; peers: { node_id: string; node_to_node_address: string }[] }> {
  if (ledgerHasEntries) {
    throw new CocoError("LedgerWithoutSecrets", `The ledger directory '${config.ledgerDirectory}' holds entries but this node has not joined yet; start it with an empty ledger directory.`, 400);
  }
  if (!existsSync(config.serviceCertificateFile)) {
    throw new CocoError("InvalidConfiguration", `Service certificate '${config.serviceCertificateFile}' (command.service_certificate_file) is missing: a joining node needs the certificate of the service it joins.`, 400);
  }
  const serviceCertPem = readFileSync(config.serviceCertificateFile, "utf8");
  const joiner = await createJoinerIdentity(config);
  const n2n = config.nodeToNode!;
  const quoteInfo = nodeEvidence(config, joiner.nodeKeys.publicKeyPem, "join").quoteInfo;
  logger.info({ target: `${config.join!.targetHost}:${config.join!.targetPort}` }, "joining the service");
  const result = await joinService({
    target: { host: config.join!.targetHost, port: config.join!.targetPort },
    serviceCertPem,
    identity: joiner,
    nodeInfoNetwork: {
      rpc_interfaces: { [config.rpc.name]: { bind_address: `${config.rpc.host}:${config.rpc.port}` } },
      node_to_node_interface: { bind_address: `${n2n.host}:${n2n.port}`, ...(n2n.publishedAddress ? { published_address: n2n.publishedAddress } : {}) },
    },
    quoteInfo,
    retryMs: config.join!.retryMs,
    logger,
  });
  logger.info({ node_id: result.nodeId, secrets: result.ledgerSecrets.length }, "trusted by the service: joining as a backup");
  return { identity: saveJoinedIdentity(config, joiner, result, serviceCertPem), peers: result.peers };
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

/** Whether the snapshot directory holds a committed snapshot a start may use (snapshot-startup.ts). */
function hasCommittedSnapshot(directory: string): boolean {
  try {
    return readdirSync(directory).some((name) => name.startsWith("snapshot_") && name.endsWith(".committed"));
  } catch {
    return false;
  }
}
