// A Coco node: opens its ledger, loads or creates its identity and secrets (or joins an
// existing service), rebuilds its state from the ledger, takes part in consensus over the
// node-to-node channels, writes the genesis transaction for a new service, and serves HTTPS.
// This file is the composition root (CocoNode.start); each part is built in its own module.
import { mkdirSync, writeFileSync } from "node:fs";
import type { Logger } from "pino";
import { createNodeLogger } from "./logger.js";
import type { NodeChannels } from "../channels/index.js";
import type { ThreadedLedger } from "../ledger/index.js";
import { type AccessLog, EndpointRegistry, type HttpServer, type RpcRequest, type RpcResponse, type UpgradeHandler } from "../rpc/index.js";
import type { NodeMetrics } from "./metrics.js";
import { lockWorkspace, unlockWorkspace } from "./workspace-lock.js";
import type { Store, Transaction } from "../kv/index.js";
import type { TxId } from "../util/index.js";
import { CocoError } from "../util/index.js";
import type { ResolvedConfig } from "./config.js";
import type { TransactionEngine } from "./engine.js";
import type { Replicator } from "./replication.js";
import type { Forwarder } from "./forwarding.js";
import { readNodes, reconcileConfiguration } from "./reconfiguration.js";
import { SnapshotFollower } from "./snapshot-follower.js";
import { SnapshotInstaller } from "./snapshot-install.js";
import { readPeersFile } from "./peers.js";
import { NODES_INFO_MAP } from "./join.js";
import { HistoricalStates } from "./historical.js";
import { Frontend, type AppRouter } from "./frontend.js";
import { UpgradeRouter } from "./upgrades.js";
import type { NodeIdentity } from "./identity.js";
import { installExplorerEndpoints } from "../explorer/index.js";
import { Snapshotter } from "./snapshots.js";
import { ServiceStatus } from "./service-status.js";
import { applyHeapGrowth } from "./memory-config.js";
import { openNode } from "./node-open.js";
import type { MerkleHistoryBuild } from "./merkle-history.js";
import { createConsensus } from "./node-consensus.js";
import { installGovernance } from "./node-governance.js";
import { startNodeChannels, type NodeToNode } from "./node-channels.js";
import { createAccessLog, createHttpServer, createNodeMetrics, installNodeFrontend } from "./node-serving.js";
import { genesisCertificateSigningRequest, writeGenesis } from "./node-genesis.js";

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
    private readonly snapshotter: Snapshotter,
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

  /**
   * The composition root: each part is built in its own module, in this order, and wired here.
   * node-open.ts (ledger, identity, engine, state) → node-consensus.ts (Raft loop, admission) →
   * node-serving.ts (/node endpoints) → snapshots.ts → node-governance.ts (constitution, effects)
   * → the apps → frontend.ts → node-channels.ts (peers, forwarding) → reconfiguration.ts →
   * node-serving.ts (HTTPS) → node-genesis.ts (a new service's first transaction).
   */
  private static async startLocked(config: ResolvedConfig, options: StartOptions): Promise<CocoNode> {
    const logger = options.logger ?? createNodeLogger(config);
    applyHeapGrowth(config.memory.heapGrowingPercent);
    const opened = await openNode(config, logger);
    const { engine, identity, recovery, ledger } = opened;
    const startupSeqno = engine.lastTxId.seqno;
    const { replicator, admission } = createConsensus(opened, config, logger);
    const serviceStatus = new ServiceStatus(engine.store);

    const registry = new EndpointRegistry();
    let rpcAddress = `${config.rpc.host}:${config.rpc.port}`;
    installNodeFrontend(registry, { opened, config, replicator, serviceStatus, startupSeqno, rpcAddress: () => rpcAddress });
    const snapshotter = new Snapshotter(engine, {
      directory: config.snapshots.directory, txCount: config.snapshots.txCount, keepMax: config.snapshots.keepMax,
      durable: config.durability === "fsync", logger, retainedMerkleDirectory: config.ledgerDirectory,
    }, opened.snapshotSeqno);
    // Backups fetch the primary's snapshots, so that their restarts replay little too.
    const snapshotFollower = new SnapshotFollower({
      directory: config.snapshots.directory, txCount: config.snapshots.txCount, keepMax: config.snapshots.keepMax,
      durable: config.durability === "fsync", serviceCertPem: identity.serviceCertPem, logger,
      isPrimary: () => engine.isPrimary,
      retained: { directory: config.ledgerDirectory, at: (seqno) => engine.retainedHashesAt(seqno) },
      primary: () => {
        const primaryId = replicator.primaryId;
        const rpc = primaryId === undefined ? undefined : Object.values(readNodes(engine.store).get(primaryId)?.rpc_interfaces ?? {})[0];
        return primaryId === undefined || rpc === undefined ? undefined : { nodeId: primaryId, rpcAddress: rpc.published_address ?? rpc.bind_address };
      },
    }, await SnapshotFollower.newestLocal(config.snapshots.directory));
    engine.on("commit", (seqno) => snapshotFollower.onCommit(seqno));
    // A primary that cannot catch this node up (it started from a snapshot this node is behind):
    // fetch its snapshot and restart from it (snapshot-install.ts).
    let requestRestart: (reason: string) => void = () => undefined;
    const snapshotInstaller = new SnapshotInstaller({
      workspace: config.workspace, directory: config.snapshots.directory, durable: config.durability === "fsync",
      serviceCertPem: identity.serviceCertPem, logger, restart: (reason) => requestRestart(reason),
      rpcAddressOf: (nodeId) => {
        const rpc = Object.values(readNodes(engine.store).get(nodeId)?.rpc_interfaces ?? {})[0];
        return rpc !== undefined ? rpc.published_address ?? rpc.bind_address : readPeersFile(config.workspace).find((p) => p.node_id === nodeId)?.rpc_address;
      },
    });
    replicator.onSnapshotRequired((required) => snapshotInstaller.onRequired(required));
    const governance = installGovernance(registry, { opened, config, logger, replicator, admission, snapshotter });
    installExplorerEndpoints(registry);
    let server: HttpServer | undefined;
    let nodeToNode: NodeToNode | undefined;
    const metrics = createNodeMetrics({
      opened, config, replicator, channels: () => nodeToNode?.channels, sessions: () => server!.sessions,
    });
    metrics.installEndpoints(registry);
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
    const frontend = new Frontend(registry, engine, () => serviceStatus.isOpen, governance.effects, appRouter);
    frontend.observer = { committedLocally: (seqno) => metrics.committedLocally(seqno), retried: (method, path) => metrics.requestRetried(method, path) };
    const accessLog = createAccessLog(config, identity.nodeId, logger);
    nodeToNode = await startNodeChannels({ opened, config, logger, replicator, admission, frontend });

    // The primary moves the consensus configuration towards the trusted nodes, one node at a time.
    const reconcile = () => reconcileConfiguration(engine, replicator, logger);
    replicator.onCommit(reconcile);
    engine.store.onWrite(NODES_INFO_MAP, () => setImmediate(reconcile));
    server = createHttpServer({ opened, config, logger, frontend, metrics, accessLog, onUpgrade: upgrades.handle });
    const isGenesis = startupSeqno === 0 && config.command === "Start" && !opened.lostLedger;
    const genesisCsrPem = isGenesis ? await genesisCertificateSigningRequest(identity, config) : undefined;
    recovery?.setNodeToNodeAddress(nodeToNode?.address);
    replicator.start();
    if (genesisCsrPem !== undefined) {
      // A new service: this node is its only voter and leads at once.
      if (!engine.isPrimary) throw new CocoError("InternalError", "a new service's first node did not become primary", 500);
      writeGenesis(engine, identity, config, nodeToNode?.address, genesisCsrPem);
      engine.emitSignature();
    }
    if (recovery !== undefined && !recovery.started) {
      throw new CocoError("InternalError", "a recovering node did not become the recovered service's primary", 500);
    }
    const address = await server.listen();
    rpcAddress = `${address.address}:${address.port}`;
    // For tools that find the node (coco gov --workspace) when it listens on a port the OS chose.
    if (config.rpcAddressesFile !== undefined) writeFileSync(config.rpcAddressesFile, JSON.stringify({ [config.rpc.name]: rpcAddress }) + "\n");
    logger.info({ node_id: identity.nodeId, address: rpcAddress, node_to_node: nodeToNode?.address, view: engine.currentView, role: replicator.role, durability: config.durability }, "node is serving");
    const node = new CocoNode(config, identity, engine, registry, server, ledger, logger, { host: address.address, port: address.port }, replicator, nodeToNode?.channels, nodeToNode?.forwarder, metrics, accessLog, snapshotter);
    // Restarted from a snapshot: the Merkle tree before it (receipts of older transactions) is built now.
    node.merkleHistory = opened.merkleHistory;
    node.snapshotFollower = snapshotFollower;
    node.snapshotInstaller = snapshotInstaller;
    requestRestart = (reason) => {
      if (node.restartListeners.length === 0) {
        logger.error({ reason }, "this node must restart to install a snapshot, and whatever started it does not restart it in place: restart it");
      }
      for (const listener of node.restartListeners) listener(reason);
    };
    void opened.merkleHistory?.start();
    engine.on("failure", (error: Error) => {
      logger.fatal({ err: error }, "ledger failure: this node stops taking part in the service; restart it to recover from its ledger");
      for (const listener of node.fatalListeners) listener(error);
    });
    return node;
  }

  private readonly fatalListeners: ((error: Error) => void)[] = [];
  private readonly restartListeners: ((reason: string) => void)[] = [];
  private snapshotInstaller: SnapshotInstaller | undefined;

  /**
   * Called when the node must be stopped and started again on the same configuration: it fetched
   * a snapshot to install (snapshot-install.ts), which happens at start. `coco node start` does
   * it in the same process.
   */
  onRestartRequested(listener: (reason: string) => void): void {
    this.restartListeners.push(listener);
  }
  private merkleHistory: MerkleHistoryBuild | undefined;
  private snapshotFollower: SnapshotFollower | undefined;

  /**
   * Called once if the node can no longer serve (its ledger failed): it has stopped taking part
   * in consensus; the process should exit so that it restarts and recovers from its ledger.
   */
  onFatal(listener: (error: Error) => void): void {
    this.fatalListeners.push(listener);
  }

  /** Stops accepting requests, commits what is pending (single node) and closes the ledger. */
  async stop(): Promise<void> {
    this.merkleHistory?.stop();
    this.snapshotFollower?.close();
    this.snapshotInstaller?.close();
    await this.server.close();
    this.accessLog?.close();
    this.forwarder?.close();
    // A snapshot being captured or written is dropped (its temporary file removed).
    await this.snapshotter.close();
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
