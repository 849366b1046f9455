// Disaster recovery, as CCF does it: a node started with `command.type: "Recover"` reads the
// ledger of a service whose nodes all stopped, checks it (every signature transaction signs the
// Merkle root of everything before it, by a node the service endorsed), applies its public
// domains only, and starts a public-only service with a new identity (status Recovering).
// Members accept `transition_service_to_open` (status WaitingForRecoveryShares) and submit their
// recovery shares; at the threshold the previous ledger secrets are restored, the private
// domains of the old ledger are decrypted and applied, and the service opens.
import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import { createNodeCertificate, isCertificateIssuedBy, publicKeyPemFromCertificate, verifyDigest } from "../crypto/index.js";
import { Store } from "../kv/index.js";
import { LedgerSecrets, ThreadedLedger, decodeEntry, decryptPrivate, type LedgerSecretVersion } from "../ledger/index.js";
import { TABLES } from "../governance/index.js";
import { CocoError, assert } from "../util/index.js";
import { rpcInterfacesRecord, type ResolvedConfig } from "./config.js";
import { LogPrefixBuilder } from "../consensus/index.js";
import { RAFT_CONFIGURATION_MAP, type TransactionEngine } from "./engine.js";
import type { CommitActions } from "./frontend.js";
import { hasIdentity, resealSecrets, type NodeIdentity } from "./identity.js";
import { ENDORSED_CERTS_MAP, NODES_INFO_MAP, virtualEvidence } from "./join.js";
import {
  HISTORICAL_SECRETS_MAP, RECOVERY_SHARES_MAP, decryptPreviousSecret, encryptPreviousSecret, recoverLatestSecret,
  type HistoricalEncryptedSecret, type RecoverySharesInfo,
} from "./recovery-shares.js";
import { fileHardStateStore, type ReplayedLog } from "./replication.js";
import { SERVICE_INFO_MAP, type ServiceInfo } from "./service-status.js";
import { SIGNATURES_MAP, SINGLETON_KEY, decodeSignature } from "./signatures.js";
import { openPrivatePart } from "./snapshot-format.js";
import { prefixAtSnapshot, type StartupSnapshot } from "./snapshot-load.js";

/** CCF's node states, as `/node/state` reports them. */
export type NodeState = "ReadingPublicLedger" | "PartOfPublicNetwork" | "ReadingPrivateLedger" | "PartOfNetwork";

/**
 * One record per recovery, keyed by the recovery count: the previous service's certificate and
 * its public key endorsed by the new service key (a certificate), so that receipts signed by the
 * previous service's nodes verify against the current service certificate (`service_endorsements`).
 */
export const PREVIOUS_IDENTITY_ENDORSEMENTS_MAP = "public:ccf.internal.previous_service_identity_endorsement";

export interface PreviousIdentityEndorsement {
  previous_service_identity: string;
  /** The previous service's public key, in a certificate issued by the next service's key. */
  endorsement: string;
  /** Last seqno of the previous service's ledger. */
  previous_last_seqno: number;
}

/** Private state is written back in transactions of at most this many keys (bounded entries). */
const PRIVATE_RECOVERY_KEYS_PER_TX_MAX = 10_000;
/** Bytes of the previous ledger read (and decrypted) per turn of the event loop (the node keeps answering meanwhile). */
const PRIVATE_REPLAY_READ_BYTES = 1024 * 1024;
/** Progress is logged every this many entries. */
const PROGRESS_ENTRIES = 100_000;

/**
 * Opens the previous service's ledger for recovery: the workspace must not hold a node identity
 * already (a recovery makes a new one), and the ledger must hold at least one signature; the
 * unsigned tail after the last signature was never committed and is dropped, as CCF does.
 */
export async function openLedgerForRecovery(config: ResolvedConfig, logger: Logger): Promise<ThreadedLedger> {
  if (hasIdentity(config)) {
    throw new CocoError("InvalidConfiguration",
      `The workspace '${config.workspace}' already holds a node identity (node.key, sealed secrets). A recovering node creates a new one: ` +
      `start it in a fresh workspace with a copy of the previous service's ledger in ledger.directory.`, 400);
  }
  // Read back in ranges (readPublicLedger), as a restart does: never whole in memory.
  const { ledger } = await ThreadedLedger.open(config.ledgerDirectory, {
    chunkSizeBytes: config.ledgerChunkBytes, durability: config.durability, logger, returnEntries: false,
    residentIndexEntries: config.memory.ledgerIndexEntries,
  });
  try {
    const last = ledger.lastSeqno;
    let lastSignature = last;
    while (lastSignature > 0 && !decodeEntry(await ledger.read(lastSignature)).isSignature) lastSignature--;
    if (lastSignature === 0) {
      throw new CocoError("LedgerHasNoSignature",
        `The ledger in '${config.ledgerDirectory}' holds no signature transaction (${last} entries): there is nothing committed to recover.`, 400);
    }
    if (lastSignature < last) {
      logger.warn({ from: lastSignature + 1, to: last }, "dropping the unsigned tail of the previous service's ledger (never committed)");
      await ledger.truncate(lastSignature);
    }
    return ledger;
  } catch (error) {
    await ledger.close().catch(() => undefined);
    throw error;
  }
}

/** What the public ledger told us, kept until the private state is restored. */
interface PreviousService {
  certPem: string;
  info: ServiceInfo;
  lastSeqno: number;
  lastView: number;
  shares: RecoverySharesInfo;
  historical: Map<number, HistoricalEncryptedSecret>;
  /** The previous ledger's first entry not covered by the snapshot started from (1 without one): the private replay reads from it. */
  firstEntry: number;
  /** The previous service's snapshot this recovery started from: its private maps are restored with the recovered secret. */
  snapshot: StartupSnapshot | undefined;
  endorsementPem: string;
}

export class Recovery {
  private nodeState: NodeState = "ReadingPublicLedger";
  private readonly submitted = new Map<string, Buffer>();
  private previous: PreviousService | undefined;
  private nodeToNodeAddress: string | undefined;
  private written = false;
  private commitActions: CommitActions | undefined;

  constructor(
    private readonly engine: TransactionEngine,
    private readonly ledger: { readonly lastSeqno: number },
    private readonly identity: NodeIdentity,
    private readonly config: ResolvedConfig,
    private readonly logger: Logger,
  ) {
    assert(config.command === "Recover" && config.recover !== undefined, "a Recovery is made for a Recover node");
  }

  get state(): NodeState { return this.nodeState; }
  /** Whether the recovered service's first transaction is written. */
  get started(): boolean { return this.written; }

  setNodeToNodeAddress(address: string | undefined): void {
    this.nodeToNodeAddress = address;
  }

  /**
   * Governance's commit actions (GovernanceEffects): the transaction that opens the recovered
   * service asks for fresh recovery shares of the new ledger secret, as opening any service does.
   */
  setCommitActions(actions: CommitActions): void {
    this.commitActions = actions;
  }

  /** This node leads the recovered service: its first transaction comes before its first signature. */
  onBecomePrimary(): void {
    if (this.written) return;
    this.writeRecoveryTransaction(this.nodeToNodeAddress);
    this.written = true;
  }
  get isReadingPrivateLedger(): boolean { return this.nodeState === "ReadingPrivateLedger"; }
  get recoveryThreshold(): number { return this.previous?.shares.recovery_threshold ?? 0; }

  /**
   * Applies the public domains of the previous ledger, read back in ranges from the newest usable
   * snapshot on (or from seqno 1), checking every signature on the way, and returns what
   * consensus keeps of it, without configurations: the recovered service starts with this node
   * as its only voter.
   */
  async readPublicLedger(window: { keepEntries: number; keepAbove: number }, snapshot?: StartupSnapshot): Promise<ReplayedLog> {
    const { engine, logger } = this;
    const historical = new Map<number, HistoricalEncryptedSecret>();
    const noteHistorical = (value: Buffer) => {
      const record = JSON.parse(value.toString("utf8")) as HistoricalEncryptedSecret;
      historical.set(record.next_from_seqno, record);
    };
    engine.store.onWrite(HISTORICAL_SECRETS_MAP, (_seqno, writes) => {
      for (const value of writes.values()) if (value) noteHistorical(value);
    });
    const started = Date.now();
    let builder = new LogPrefixBuilder<Buffer>(window.keepEntries, window.keepAbove);
    if (snapshot !== undefined) {
      // The snapshot's public maps now; its private maps once members' shares give the secret.
      engine.loadSnapshot({
        seqno: snapshot.seqno, view: snapshot.parsed.header.view, views: snapshot.parsed.header.views,
        tree: snapshot.parsed.header.tree.map((h) => Buffer.from(h, "hex")), parts: [snapshot.parsed.publicPart],
      });
      const latestHistorical = engine.store.get(HISTORICAL_SECRETS_MAP, SINGLETON_KEY);
      if (latestHistorical !== undefined) noteHistorical(latestHistorical);
      // Consensus's record of the covered entries comes from the snapshot's view history (no configurations: see above).
      builder = LogPrefixBuilder.after<Buffer>(prefixAtSnapshot(snapshot, undefined), window.keepEntries, window.keepAbove);
      logger.info({ snapshot: snapshot.name, seqno: snapshot.seqno }, "recovery: starting from the previous service's snapshot");
    }
    const firstEntry = engine.lastSeqnoLocal + 1;
    logger.info({ entries: this.ledgerLastSeqno - firstEntry + 1, ledger: this.config.ledgerDirectory }, "recovery: reading the public ledger");
    let replayed: Awaited<ReturnType<TransactionEngine["replayLedger"]>>;
    try {
      replayed = await engine.replayLedger(window.keepEntries, window.keepAbove, { publicOnly: true, verifySignatures: true, builder });
    } catch (error) {
      throw new CocoError("LedgerCorrupted", `The previous service's ledger does not verify: ${(error as Error).message}`, 400, { cause: error });
    }
    const certPem = readFileSync(this.config.recover!.previousServiceIdentityFile, "utf8");
    const raw = engine.store.get(SERVICE_INFO_MAP, SINGLETON_KEY);
    const info = raw === undefined ? undefined : (JSON.parse(raw.toString("utf8")) as ServiceInfo);
    if (info === undefined || info.cert.trim() !== certPem.trim()) {
      throw new CocoError("PreviousServiceIdentityMismatch",
        `The ledger's service certificate is not the one in command.recover.previous_service_identity_file ('${this.config.recover!.previousServiceIdentityFile}'): ` +
        `give the certificate of the service that wrote this ledger.`, 400);
    }
    this.checkLastSignature(certPem);
    const sharesRaw = engine.store.get(RECOVERY_SHARES_MAP, SINGLETON_KEY);
    if (sharesRaw === undefined) {
      throw new CocoError("NoRecoveryShares",
        "The previous service never issued recovery shares (no member with an encryption key was Active when it opened): its private state cannot be recovered.", 400);
    }
    const last = { index: engine.lastSeqnoLocal, term: engine.viewAt(engine.lastSeqnoLocal)! };
    assert(last.index === this.ledgerLastSeqno && last.term > 0, "the whole previous ledger was read");
    this.previous = {
      certPem, info, lastSeqno: last.index, lastView: last.term,
      shares: JSON.parse(sharesRaw.toString("utf8")) as RecoverySharesInfo,
      historical, firstEntry, snapshot,
      endorsementPem: await createNodeCertificate({
        nodePublicKeyPem: publicKeyPemFromCertificate(certPem), serviceKeys: this.identity.serviceKeys,
        serviceCertPem: this.identity.serviceCertPem, commonName: "CN=CCF Service",
      }),
    };
    // The new service's views follow the previous service's: terms only grow, IVs never repeat.
    fileHardStateStore(this.config.workspace).write({ term: last.term, votedFor: undefined });
    logger.info({ entries: last.index - firstEntry + 1, last_seqno: last.index, last_view: last.term, ms: Date.now() - started, percent: 100 },
      "recovery: public ledger read and verified");
    this.nodeState = "PartOfPublicNetwork";
    return {
      prefix: { ...replayed.prefix, configs: [] },
      entries: replayed.entries.map(({ term, index, isSignature, payload }) => ({ term, index, isSignature, payload })),
      count: replayed.count,
    };
  }

  /** The previous service's ledger ends here (its unsigned tail dropped). */
  private get ledgerLastSeqno(): number {
    return this.ledger.lastSeqno;
  }

  /**
   * The replay checked every root but, for speed, not every ECDSA signature; the last signature
   * signs the root of the whole ledger, so it is checked here, by a node of the previous service.
   */
  private checkLastSignature(previousCertPem: string): void {
    const { engine } = this;
    const raw = engine.store.get(SIGNATURES_MAP, SINGLETON_KEY);
    const record = raw === undefined ? undefined : decodeSignature(raw);
    const ok = record !== undefined && record.seqno === engine.lastSeqnoLocal
      && record.root === engine.tree.rootAt(record.seqno - 1).toString("hex")
      && isCertificateIssuedBy(record.cert, previousCertPem)
      && verifyDigest(record.cert, engine.tree.rootAt(record.seqno - 1), Buffer.from(record.sig, "base64"), engine.tree.rootPreimageAt(record.seqno - 1));
    if (!ok) {
      throw new CocoError("LedgerCorrupted", `The last signature transaction (${engine.lastSeqnoLocal}) of the previous service's ledger does not verify with a node certificate endorsed by the previous service.`, 400);
    }
  }

  /**
   * The first transaction of the recovered service (this node is its primary): the previous
   * nodes retire, this node is trusted and the only voter, and the service is Recovering under
   * its new identity, which endorses the previous one.
   */
  private writeRecoveryTransaction(nodeToNodeAddress: string | undefined): void {
    const { engine, identity, config } = this;
    const previous = this.previous!;
    assert(engine.isPrimary, "the recovering node leads the recovered service");
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    const tx = engine.store.begin();
    tx.forEach(NODES_INFO_MAP, (value, key) => {
      const node = JSON.parse(value.toString("utf8")) as { status: string };
      if (node.status !== "Retired") tx.set(NODES_INFO_MAP, key, json({ ...node, status: "Retired" }));
    });
    tx.set(NODES_INFO_MAP, Buffer.from(identity.nodeId), json({
      cert: identity.nodeCertPem,
      status: "Trusted",
      quote_info: virtualEvidence(identity.nodeKeys.publicKeyPem, config.virtualHostData),
      encryption_pub_key: identity.encryptionKeys.publicKeyPem,
      node_data: null,
      rpc_interfaces: rpcInterfacesRecord(config),
      ...(nodeToNodeAddress ? { node_to_node_interface: { bind_address: nodeToNodeAddress, ...(config.nodeToNode?.publishedAddress ? { published_address: config.nodeToNode.publishedAddress } : {}) } } : {}),
    }));
    tx.set(ENDORSED_CERTS_MAP, Buffer.from(identity.nodeId), Buffer.from(identity.nodeCertPem));
    tx.set(RAFT_CONFIGURATION_MAP, SINGLETON_KEY, json([identity.nodeId]));
    const recoveryCount = (previous.info.recovery_count ?? 0) + 1;
    const createSeqno = engine.lastSeqnoLocal + 1;
    tx.set(SERVICE_INFO_MAP, SINGLETON_KEY, json({
      cert: identity.serviceCertPem,
      status: "Recovering",
      recovery_count: recoveryCount,
      service_data: previous.info.service_data ?? null,
      previous_service_identity_version: previous.lastSeqno,
      current_service_create_txid: `${engine.currentView}.${createSeqno}`,
    } satisfies ServiceInfo));
    tx.set(TABLES.previousServiceIdentity, SINGLETON_KEY, json(previous.certPem));
    tx.set(PREVIOUS_IDENTITY_ENDORSEMENTS_MAP, Buffer.from(String(recoveryCount)), json({
      previous_service_identity: previous.certPem, endorsement: previous.endorsementPem, previous_last_seqno: previous.lastSeqno,
    } satisfies PreviousIdentityEndorsement));
    const id = engine.commit(tx);
    assert(id.seqno === createSeqno, "the recovery transaction is the recovered service's first");
    this.logger.info({ txid: `${id.view}.${id.seqno}`, recovery_count: recoveryCount, previous_last_seqno: previous.lastSeqno },
      "recovery: public-only service started (Recovering); members now accept transition_service_to_open and submit their recovery shares");
  }

  /** The previous service's encrypted share of `memberId`, if it held one. */
  holdsShare(memberId: string): boolean {
    return this.previous?.shares.encrypted_shares[memberId] !== undefined;
  }

  /**
   * A member's decrypted share. Returns how many are in; at the threshold, rebuilds the previous
   * ledger secret (a wrong share fails here: every submitted share is dropped and members start
   * over) and starts restoring the private state.
   */
  async submitShare(memberId: string, share: Buffer): Promise<{ submittedCount: number; threshold: number; recovering: boolean }> {
    const previous = this.previous;
    if (previous === undefined || this.nodeState !== "PartOfPublicNetwork") {
      throw new CocoError("NodeAlreadyRecovering", "This node is not waiting for recovery shares (it is restoring or has restored the private state).", 403);
    }
    if (this.submitted.has(memberId)) {
      throw new CocoError("RecoveryShareAlreadySubmitted", `Member ${memberId} already submitted its recovery share.`, 400);
    }
    const expected = previous.shares.recovery_threshold === 1 || Object.keys(previous.shares.encrypted_shares).length === 1 ? 32 : 33;
    if (share.length !== expected) {
      throw new CocoError("InvalidRecoveryShare", `A recovery share of this service is ${expected} bytes once decrypted, not ${share.length}: decrypt the encrypted share with the member's encryption private key.`, 400);
    }
    // A copy: the caller wipes its buffer once it has answered.
    this.submitted.set(memberId, Buffer.from(share));
    const threshold = previous.shares.recovery_threshold;
    const submittedCount = this.submitted.size;
    if (submittedCount < threshold) return { submittedCount, threshold, recovering: false };
    let latest: Buffer;
    try {
      latest = await recoverLatestSecret(previous.shares, [...this.submitted.values()]);
    } catch (error) {
      this.submitted.clear();
      this.logger.warn({ err: error }, "recovery: the submitted shares do not rebuild the ledger secret; all were dropped");
      throw new CocoError("InvalidRecoveryShare",
        `The ${submittedCount} submitted recovery shares do not rebuild the previous service's ledger secret (at least one is wrong); ` +
        `every submitted share was dropped: members submit theirs again.`, 400);
    }
    for (const kept of this.submitted.values()) kept.fill(0);
    this.submitted.clear();
    this.nodeState = "ReadingPrivateLedger";
    this.restorePrivateState(latest).catch((error: unknown) => {
      this.logger.error({ err: error }, "recovery: restoring the private state failed; the service stays public-only");
      this.nodeState = "PartOfPublicNetwork";
    });
    return { submittedCount, threshold, recovering: true };
  }

  /** Every previous ledger secret, from the latest one (in the shares) back through the historical chain. */
  private previousSecrets(latest: Buffer): LedgerSecretVersion[] {
    const previous = this.previous!;
    const versions: LedgerSecretVersion[] = [{ fromSeqno: previous.shares.latest_ledger_secret_seqno, raw: latest }];
    for (;;) {
      const head = versions[0]!;
      const record = previous.historical.get(head.fromSeqno);
      if (record === undefined) break;
      versions.unshift({ fromSeqno: record.previous_from_seqno, raw: decryptPreviousSecret(record, head.raw) });
      assert(versions.length <= previous.historical.size + 1, "the historical secrets form a chain");
    }
    // From the start of the ledger, or of the snapshot the recovery started from.
    const needed = previous.snapshot?.seqno ?? 1;
    if (versions[0]!.fromSeqno > needed) {
      throw new CocoError("LedgerSecretsIncomplete",
        `The ledger secrets recovered reach back to seqno ${versions[0]!.fromSeqno}, not to seqno ${needed} where the recovered ledger starts.`, 500);
    }
    return versions;
  }

  private async restorePrivateState(latest: Buffer): Promise<void> {
    const { engine, logger } = this;
    const previous = this.previous!;
    const versions = this.previousSecrets(latest);
    const secrets = new LedgerSecrets(versions);
    const started = Date.now();
    const total = previous.lastSeqno - previous.firstEntry + 1;
    logger.info({ entries: total, secrets: versions.length }, "recovery: reading the private ledger");
    // The old private domains are applied to a store of their own, then written to the service.
    const privateStore = new Store();
    const empty = Buffer.alloc(0);
    if (previous.snapshot !== undefined) {
      const { seqno, name } = previous.snapshot;
      privateStore.loadSnapshotParts([openPrivatePart(previous.snapshot.parsed, name, secrets.rangeFor(seqno).raw)]);
    }
    // Read back in ranges from the ledger (on its worker), a range per turn of the event loop.
    let nextProgress = PROGRESS_ENTRIES;
    for (let seqno = previous.firstEntry; seqno <= previous.lastSeqno;) {
      const entries = await engine.readLedgerRange(seqno, previous.lastSeqno, PRIVATE_REPLAY_READ_BYTES);
      assert(entries.length > 0, `the ledger reads seqno ${seqno}`);
      for (const bytes of entries) {
        const entry = decodeEntry(bytes);
        assert(entry.seqno === seqno, `the private replay reads seqno ${seqno} (found ${entry.seqno})`);
        const plain = entry.privateCiphertext.length > 0 ? decryptPrivate(entry, secrets.forSeqno(entry.seqno)) : empty;
        privateStore.applySerialised(entry.seqno, empty, plain);
        seqno++;
      }
      privateStore.compact(seqno - 1);
      const read = seqno - previous.firstEntry;
      if (read >= nextProgress) {
        nextProgress += PROGRESS_ENTRIES;
        logger.info({ read, total, percent: Math.floor((100 * read) / total) }, "recovery: reading the private ledger");
      }
    }
    engine.restoreEarlierLedgerSecrets(versions);
    let keys = 0;
    let tx = engine.store.begin();
    let inTx = 0;
    const reader = privateStore.begin();
    for (const map of privateStore.mapNames()) {
      if (map.startsWith("public:")) continue;
      const pairs: [Buffer, Buffer][] = [];
      reader.forEach(map, (value, key) => { pairs.push([Buffer.from(key), Buffer.from(value)]); });
      for (const [key, value] of pairs) {
        tx.set(map, key, value);
        keys++;
        if (++inTx >= PRIVATE_RECOVERY_KEYS_PER_TX_MAX) {
          engine.commit(tx);
          tx = engine.store.begin();
          inTx = 0;
        }
      }
    }
    // The previous service's latest secret stays reachable from this service's first one.
    const ownFirst = engine.ledgerSecrets.find((v) => v.fromSeqno === previous.lastSeqno + 1);
    assert(ownFirst !== undefined, "the recovered service's first secret starts after the previous ledger");
    tx.set(HISTORICAL_SECRETS_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify(encryptPreviousSecret(versions[versions.length - 1]!, ownFirst))));
    const infoRaw = engine.store.get(SERVICE_INFO_MAP, SINGLETON_KEY)!;
    tx.set(SERVICE_INFO_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify({ ...(JSON.parse(infoRaw.toString("utf8")) as ServiceInfo), status: "Open" })));
    resealSecrets(this.config, this.identity, engine.ledgerSecrets);
    this.commitActions?.reset();
    const id = engine.commit(tx);
    this.commitActions?.committed(id.seqno);
    engine.emitSignature();
    this.nodeState = "PartOfNetwork";
    logger.info({ keys, entries: previous.lastSeqno, txid: `${id.view}.${id.seqno}`, ms: Date.now() - started, percent: 100 },
      "recovery: private state restored; the service is Open");
  }
}

/**
 * The endorsements a receipt signed by a previous service's node needs to verify against the
 * current service certificate (CCF's `service_endorsements`): the first is issued by the key of
 * the service after the signer's, and each next one by the service after that.
 */
export function serviceEndorsementsFor(store: Store, nodeCertPem: string, currentServiceCertPem: string): string[] | undefined {
  if (isCertificateIssuedBy(nodeCertPem, currentServiceCertPem)) return undefined;
  const records: { count: number; record: PreviousIdentityEndorsement }[] = [];
  const tx = store.begin();
  tx.forEach(PREVIOUS_IDENTITY_ENDORSEMENTS_MAP, (value, key) => {
    records.push({ count: Number(key.toString("utf8")), record: JSON.parse(value.toString("utf8")) as PreviousIdentityEndorsement });
  });
  records.sort((a, b) => a.count - b.count);
  const first = records.findIndex(({ record }) => isCertificateIssuedBy(nodeCertPem, record.previous_service_identity));
  return first < 0 ? undefined : records.slice(first).map(({ record }) => record.endorsement);
}
