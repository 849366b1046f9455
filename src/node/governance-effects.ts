// What governance may ask of the node itself, in one place: rotate the ledger secret, issue
// fresh recovery shares (on request, on opening the service, after a rekey), and learn a rotated
// secret on a backup. A proposal's `apply` only *requests* an effect, by writing a marker through
// apply's overlay of the transaction; the node carries it out once that transaction commits
// locally, so a proposal whose apply fails (its writes discarded) never acts. Only the primary
// acts; a backup applying the same transaction from the ledger does not.
// Retiring a node rotates the ledger secret too (rekeyIfRetiredNodesKnowSecret): the retired node
// knew the old secret, and must not be able to read private data written after it left.
import type { Logger } from "pino";
import { randomBytes, unwrapWithKey, wrapForKey } from "../crypto/index.js";
import type { KvAccess } from "../js/index.js";
import { CocoError } from "../util/index.js";
import type { EndpointRegistry } from "../rpc/index.js";
import type { ResolvedConfig } from "./config.js";
import type { TransactionEngine } from "./engine.js";
import type { CommitActions } from "./frontend.js";
import { resealSecrets, type NodeIdentity } from "./identity.js";
import { readNodes } from "./reconfiguration.js";
import {
  HISTORICAL_SECRETS_MAP, RECOVERY_SHARES_MAP, buildRecoveryShares, encryptPreviousSecret, recoveryMembers, recoveryThreshold, type RecoverySharesInfo,
} from "./recovery-shares.js";
import { SERVICE_INFO_MAP } from "./service-status.js";
import { SINGLETON_KEY } from "./signatures.js";

/** Marks the transactions that asked to rotate the ledger secret (the new secret is used after them). */
const LEDGER_REKEY_MAP = "public:ccf.internal.ledger_rekeys";
/** Marks the transactions that asked for fresh recovery shares (set_recovery_threshold, ...). */
const RECOVERY_SHARES_REFRESH_MAP = "public:ccf.internal.recovery_shares_refresh";
const MEMBERS_INFO_MAP = "public:ccf.gov.members.info";
/** Carries a new ledger secret to the other nodes, wrapped to each one's encryption key. */
export const LEDGER_SECRET_SHARES_MAP = "public:ccf.internal.ledger_secret_shares";

export interface LedgerSecretShares {
  from_seqno: number;
  /** Node id -> the secret wrapped to that node's encryption key. */
  wrapped: Record<string, string>;
  /** Nodes already retired (and out of the configuration) when this secret was made: they never had it. */
  retired_nodes?: string[];
}

/** The consensus configurations, to tell a retired node that is still a voter from one that left. */
export interface VoterView {
  readonly configuration: readonly string[];
  readonly committedConfiguration: readonly string[];
}

const REQUESTED = Buffer.from(JSON.stringify({ requested: true }));

/** The effects a constitution's `apply` can request of the node (CCF's node hooks). */
export interface NodeEffects {
  requestLedgerRekey(kv: KvAccess): void;
  requestRecoverySharesRefresh(kv: KvAccess): void;
}

export class GovernanceEffects implements NodeEffects, CommitActions {
  private rekeyRequested = false;
  /** A rotation owed to a retirement could not be written; the next commit tries again. */
  rekeyAfterRetirementPending = false;
  private sharesRefreshRequested = false;

  constructor(
    private readonly engine: TransactionEngine,
    private readonly identity: NodeIdentity,
    private readonly config: ResolvedConfig,
    private readonly logger: Logger,
    /** The consensus configurations (a retiring node stays a recipient of new secrets while it votes). */
    private readonly voters: () => VoterView = () => ({ configuration: [], committedConfiguration: [] }),
  ) {
    const store = engine.store;
    store.onWrite(LEDGER_REKEY_MAP, () => { if (engine.isPrimary) this.rekeyRequested = true; });
    store.onWrite(RECOVERY_SHARES_REFRESH_MAP, () => { if (engine.isPrimary) this.sharesRefreshRequested = true; });
    // Opening the service issues the first recovery shares, as in CCF.
    store.onWrite(SERVICE_INFO_MAP, () => { if (engine.isPrimary) this.sharesRefreshRequested = true; });
    // As CCF, a member that becomes Active (acks) or whose record changes gets fresh shares.
    store.onWrite(MEMBERS_INFO_MAP, () => { if (engine.isPrimary) this.sharesRefreshRequested = true; });
    // A backup learns a rotated ledger secret from the transaction that carries it.
    store.onWrite(LEDGER_SECRET_SHARES_MAP, (_seqno, writes) => {
      if (engine.isPrimary) return;
      for (const value of writes.values()) if (value) this.learnSecret(JSON.parse(value.toString("utf8")) as LedgerSecretShares);
    });
  }

  requestLedgerRekey(kv: KvAccess): void {
    kv.set(LEDGER_REKEY_MAP, SINGLETON_KEY, REQUESTED);
  }

  requestRecoverySharesRefresh(kv: KvAccess): void {
    kv.set(RECOVERY_SHARES_REFRESH_MAP, SINGLETON_KEY, REQUESTED);
  }

  /** CommitActions: requests left by a transaction that did not commit are forgotten. */
  reset(): void {
    this.rekeyRequested = false;
    this.sharesRefreshRequested = false;
  }

  /** CommitActions: the requesting transaction committed locally at `seqno`. */
  committed(seqno: number): void {
    if (this.rekeyRequested) {
      this.rekeyRequested = false;
      this.sharesRefreshRequested = true; // the new secret must be recoverable too
      this.rotateLedgerSecret(seqno);
    }
    if (this.sharesRefreshRequested) {
      this.sharesRefreshRequested = false;
      this.issueRecoveryShares().catch((error) => this.logger.error({ err: error }, "could not issue recovery shares"));
    }
  }

  /**
   * On the primary: rotates the ledger secret if a retired node that has left the configuration
   * (latest and committed) may know the current one. Called whenever nodes.info, the
   * configuration or the role changes. A retired primary does not rotate (it would know the new
   * secret): it hands over once its removal commits, and the next primary rotates.
   */
  rekeyIfRetiredNodesKnowSecret(): void {
    const { engine, identity } = this;
    const voters = this.voters();
    this.rekeyAfterRetirementPending = false;
    if (!engine.isPrimary) return;
    const nodes = readNodes(engine.store);
    if (nodes.get(identity.nodeId)?.status !== "Trusted") return;
    const isVoter = (id: string) => voters.configuration.includes(id) || voters.committedConfiguration.includes(id);
    const departed = [...nodes].filter(([id, node]) => node.status === "Retired" && !isVoter(id)).map(([id]) => id);
    if (departed.length === 0) return;
    const latest = engine.ledgerSecrets[engine.ledgerSecrets.length - 1]!;
    const raw = engine.store.begin().get(LEDGER_SECRET_SHARES_MAP, SINGLETON_KEY);
    const record = raw === undefined ? undefined : JSON.parse(raw.toString("utf8")) as LedgerSecretShares;
    // Only the record of the current secret says who never had it; otherwise assume every node did.
    const neverHadIt = record !== undefined && record.from_seqno === latest.fromSeqno ? record.retired_nodes ?? [] : [];
    const mayKnow = departed.filter((id) => !neverHadIt.includes(id));
    if (mayKnow.length === 0) return;
    try {
      this.rotateLedgerSecret(engine.lastSeqnoLocal);
      this.logger.info({ retired: mayKnow }, "ledger secret rotated because retired nodes knew the previous one");
      this.issueRecoveryShares().catch((error) => this.logger.error({ err: error }, "could not issue recovery shares"));
    } catch (error) {
      // Not writable now (a leadership transfer, back-pressure): the next commit retries.
      this.rekeyAfterRetirementPending = true;
      this.logger.warn({ err: (error as Error).message, retired: mayKnow }, "could not rotate the ledger secret after a retirement yet");
    }
  }

  /** `GET /gov/recovery/encrypted-shares/{memberId}` (CCF's governance API). */
  installEndpoints(registry: EndpointRegistry): void {
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
  }

  /**
   * The next transaction carries a fresh secret to every other current node (Trusted, or retiring
   * and still a voter, which must apply entries until its removal commits), wrapped to its key;
   * the secret encrypts everything after that transaction. A retired node out of the
   * configuration, or a pending one, is not given it.
   */
  private rotateLedgerSecret(seqno: number): void {
    const { engine, identity } = this;
    const voters = this.voters();
    const raw = randomBytes(32);
    const shares: LedgerSecretShares = { from_seqno: seqno + 2, wrapped: {}, retired_nodes: [] };
    const isVoter = (id: string) => voters.configuration.includes(id) || voters.committedConfiguration.includes(id);
    for (const [nodeId, node] of readNodes(engine.store)) {
      if (nodeId === identity.nodeId) continue;
      const current = node.status === "Trusted" || (node.status === "Retired" && isVoter(nodeId));
      if (current && node.encryption_pub_key) shares.wrapped[nodeId] = wrapForKey(node.encryption_pub_key, raw);
      else if (node.status === "Retired") shares.retired_nodes!.push(nodeId);
    }
    const shareTx = engine.store.begin();
    shareTx.set(LEDGER_SECRET_SHARES_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify(shares)));
    // The previous secret stays recoverable from the new one (and so from the recovery shares).
    const previous = engine.ledgerSecrets[engine.ledgerSecrets.length - 1]!;
    shareTx.set(HISTORICAL_SECRETS_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify(encryptPreviousSecret(previous, { fromSeqno: shares.from_seqno, raw }))));
    const shared = engine.commit(shareTx);
    engine.rekey(shared.seqno, raw);
    resealSecrets(this.config, identity, engine.ledgerSecrets);
    this.logger.info({ from_seqno: shared.seqno + 1, secrets: engine.ledgerSecrets.length, nodes: Object.keys(shares.wrapped).length }, "ledger secret rotated");
  }

  private learnSecret(shares: LedgerSecretShares): void {
    const wrapped = shares.wrapped[this.identity.nodeId];
    if (wrapped === undefined) return;
    this.engine.addLedgerSecret(shares.from_seqno, unwrapWithKey(this.identity.encryptionKeys.privateKeyPem, wrapped));
    resealSecrets(this.config, this.identity, this.engine.ledgerSecrets);
    this.logger.info({ from_seqno: shares.from_seqno }, "ledger secret rotated by the primary");
  }

  private async issueRecoveryShares(): Promise<void> {
    const { engine } = this;
    // As CCF, shares are issued once the service is open; while a recovered service waits,
    // members still need the previous service's shares, which must stay in place.
    const status = engine.store.get(SERVICE_INFO_MAP, SINGLETON_KEY);
    const current = status ? (JSON.parse(status.toString("utf8")) as { status?: string }).status : undefined;
    if (current !== "Open") return;
    const secrets = engine.ledgerSecrets;
    const latest = secrets[secrets.length - 1]!;
    const info = await buildRecoveryShares(recoveryMembers(engine.store), recoveryThreshold(engine.store), latest.raw, latest.fromSeqno);
    if (info === undefined) return;
    const tx = engine.store.begin();
    tx.set(RECOVERY_SHARES_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify(info)));
    const id = engine.commit(tx);
    this.logger.info({ seqno: id.seqno, members: Object.keys(info.encrypted_shares).length, threshold: info.recovery_threshold }, "recovery shares issued");
  }
}
