// The transaction engine: the single path every write takes on its way into the ledger.
// On the primary:
//   KV commit -> write set -> ledger entry (private domain encrypted) -> Merkle leaf
//   -> proposed to consensus (the replication shell persists and replicates it)
// Every `signatureDelayMs` or `signatureTxCount` transactions it appends a signature
// transaction signing the Merkle root with the node key. Consensus decides commit: a signature
// persisted by a majority of the configuration commits everything up to it.
// On a backup, entries arrive from the primary and are applied through `applyReplicated`
// (decrypt, KV apply, Merkle leaf; signatures are checked against the local Merkle root).
import { EventEmitter } from "node:events";
import { randomBytes as cryptoRandomBytes } from "node:crypto";
import { sha256, signDigest, verifyDigest } from "../crypto/index.js";
import {
  buildCoseReceipt, computeRootFromPath, COSE_SIGNATURES_MAP, encodeInclusionProof, MerkleTree, signRootCose, type CcfReceipt, type CoseSignatureKeys, type ProofStep,
} from "../merkle/index.js";
import { Store, serialiseWriteSet, deserialiseDomain, type SnapshotCapture, type MapWrites, type Transaction, type WriteSet } from "../kv/index.js";
import { ENTRY_KEY_NONCE_BYTES, LedgerSecrets, isLedgerDiskFull, type LedgerSecretVersion, type LedgerStore, decodeEntry, decryptPrivate, encodeEntry, entryLeaf, writeSetDigest } from "../ledger/index.js";
import { CocoError, ConcurrencyLimit, assert, formatTxId, type TxId } from "../util/index.js";
import { LogPrefixBuilder, transactionStatus, type LogPrefix } from "../consensus/index.js";
import { COMMIT_NONCE_BYTES, CommitEvidence, CommitEvidenceKeys } from "./commit-evidence.js";
import { SERVICE_INFO_MAP } from "./service-status.js";
import { SIGNATURES_MAP, SINGLETON_KEY, SignatureIndex, ViewHistory, decodeSignature, encodeSignature, type SignatureRecord } from "./signatures.js";
import { BackupSignatureCheck } from "./signature-check.js";
import { EntryEncoder, type CoseSigning, type EncodedBatch, type EncodeItem, type SignedRoot } from "./entry-encoder.js";
import { realScheduler, type Scheduler, type TimerHandle } from "./scheduler.js";
import { ByteLru } from "./byte-lru.js";
import type { LatencyTrace } from "./latency-trace.js";
import type { RetainedHashes } from "./merkle-retained-file.js";

export type TxStatus = "Unknown" | "Pending" | "Committed" | "Invalid";

/** In line at the encoder worker: a batch of entries, or a reserved signature whose root it signs. */
type InFlight =
  | { readonly id: number; readonly firstSeqno: number; readonly count: number; result?: EncodedBatch }
  | { readonly signature: number; signId?: number; root?: Buffer; signed?: Buffer; coseSigned?: Buffer };

/** A transaction waiting for its ledger entry; no write set yet: a reserved signature transaction. */
interface Queued {
  readonly seqno: number;
  readonly writeSet: WriteSet | undefined;
  readonly isSignature: boolean;
  readonly claimsDigest: Buffer;
  readonly config?: readonly string[];
}

const ZERO_DIGEST = Buffer.alloc(32);
const EMPTY = Buffer.alloc(0);
/**
 * A turn with fewer transactions than this, and nothing at the encoder worker, is encoded on the
 * main thread: at low load a round trip to the worker costs more CPU (~30 µs of messages and
 * wake-ups) than encoding a few entries (~7 µs each), and the main thread has time to spare.
 */
export const ENTRY_WORKER_MIN_BATCH = 16;
/**
 * A signature made as soon as the previous one commits (rather than at the signature timer) comes
 * at least this long after the previous one: it bounds the signing cost (~1.2 ms of CPU for the
 * node's and the service's signatures, on the entry worker) and each backup's check of them
 * (~1 ms of CPU, signature-check.ts) to 100 signatures a second, 2.5 times the timer's 40.
 */
export const SIGNATURE_EARLY_MIN_MS = 10;

/** Where the primary's new ledger entries go: the replication shell proposes them to consensus. */
export interface EntrySink {
  propose(entry: Buffer, seqno: number, isSignature: boolean, config: readonly string[] | undefined): void;
  /** False while consensus takes no new writes (a primary handing leadership over). */
  acceptsWrites(): boolean;
}

/** A ledger entry as consensus sees it after a replay (view = term, seqno = index). */
export interface ReplayedEntry {
  readonly term: number;
  readonly index: number;
  readonly isSignature: boolean;
  readonly config?: readonly string[];
  readonly payload: Buffer;
}

/** How a ledger read at start-up is applied. */
export interface ReplayOptions {
  /** Apply only public domains (a recovering node does not know the previous ledger secrets yet). */
  publicOnly?: boolean;
  /** Check every signature transaction: its root and the signing node's endorsement. */
  verifySignatures?: boolean;
  /** replayLedger: go on with this builder (it holds the entries a snapshot covered). */
  builder?: LogPrefixBuilder<Buffer>;
}

/** Service identities a ledger may name (one per recovery): more means a corrupt ledger. */
const SERVICE_CERTS_MAX = 1000;

/** The map whose write marks a reconfiguration transaction (value: the JSON voter list). */
export const RAFT_CONFIGURATION_MAP = "public:ccf.internal.consensus_configuration";
const RAFT_CONFIGURATION_MAP_BYTES = Buffer.from(RAFT_CONFIGURATION_MAP);

/** A start-up replay reads the ledger back this many bytes at a time (one worker round trip each). */
export const REPLAY_READ_BYTES = 4 * 1024 * 1024;

/**
 * A ledger entry as consensus sees it (term, index, signature, configuration): what a primary
 * sends a backup when it reads entries below its in-memory window back from the ledger.
 */
export function consensusEntryOf(bytes: Buffer): ReplayedEntry {
  const entry = decodeEntry(bytes);
  let config: readonly string[] | undefined;
  if (entry.publicDomain.includes(RAFT_CONFIGURATION_MAP_BYTES)) {
    for (const map of deserialiseDomain(entry.publicDomain).maps) {
      if (map.name !== RAFT_CONFIGURATION_MAP) continue;
      for (const [, value] of map.writes) if (value) config = JSON.parse(value.toString("utf8")) as string[];
    }
  }
  return config === undefined
    ? { term: entry.view, index: entry.seqno, isSignature: entry.isSignature, payload: bytes }
    : { term: entry.view, index: entry.seqno, isSignature: entry.isSignature, config, payload: bytes };
}

export interface EngineOptions {
  nodeId: string;
  serviceCertPem: string;
  nodePrivateKeyPem: string;
  nodeCertPem: string;
  ledgerSecrets: readonly LedgerSecretVersion[];
  signatureTxCount: number;
  signatureDelayMs: number;
  pendingTransactionsMax: number;
  /**
   * Encode the primary's entries on a worker thread (entry-encoder.ts) instead of the main
   * thread. The node turns it on; the output is the same either way.
   */
  entryWorker?: boolean;
  /** Clock and timers (default: node's); the simulator passes its own. */
  scheduler?: Scheduler;
  /**
   * CCF 6's COSE signatures: each signature transaction also stores a COSE_Sign1 by the service
   * key over the same root (public:ccf.internal.cose_signatures), from which COSE receipts are
   * built. The node sets it; without it (unit tests, the simulator) only the node's ECDSA
   * signature is written, as before CCF 6.
   */
  coseSignatures?: CoseSignatureKeys;
  /**
   * Source of the entry key nonces (default: node:crypto's randomBytes). Only the simulator
   * passes another, seeded, so its runs stay reproducible; nodes never do.
   */
  randomBytes?: (size: number) => Buffer;
  /**
   * How Merkle roots are signed and checked (default: ECDSA P-384 over the root as a prehash,
   * CCF's format). Only the shell simulator passes another, to spend its time on consensus
   * rather than on elliptic-curve arithmetic; nodes never do.
   */
  rootSignatures?: RootSignatures;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void; error(o: object, msg: string): void };
  /**
   * Merkle leaves kept below the commit point (default: all). Older receipts rebuild their
   * path from leaves read back from the ledger, through the historical cache.
   */
  merkleWindowLeaves?: number;
  /** Bytes of ledger reads cached for receipts of old transactions (default 16 MiB). */
  historicalCacheBytes?: number;
  /** Signature seqnos kept in memory, at least (SignatureIndex; default SIGNATURE_SEQNOS_RESIDENT_DEFAULT). */
  signatureIndexEntries?: number;
  /**
   * Sign as soon as the last signature commits (if transactions wait), at least this many ms
   * after the previous signature, instead of waiting for the signature timer (reportCommit).
   * The node passes SIGNATURE_EARLY_MIN_MS; undefined (unit tests that count signatures): off.
   */
  earlySignatureMinMs?: number;
  /** Benchmarks: when each transaction passed each stage of the write path (latency-trace.ts). */
  latencyTrace?: LatencyTrace;
}

/** Written by trigger_ledger_chunk (ccf.node.triggerLedgerChunk): the ledger chunk ends at the next signature. */
export const LEDGER_CHUNK_REQUESTS_MAP = "public:ccf.internal.ledger_chunk_requests";

/**
 * Merkle hashes at this height and above stay in memory for good: 64 bytes per 65,536
 * transactions (~1 KB per million). A receipt whose leaf left the in-memory window reads back
 * the block of 2^16 entries that holds it (hashed into leaves on the ledger's worker) and keeps
 * its tree in the historical cache. At height 8 the hashes grew by 0.25 bytes per transaction
 * (~2 GB after three months at 1,000 tx/s) for a cheaper cold receipt (docs/architecture.md, "Memory").
 */
export const MERKLE_RETAINED_HEIGHT = 16;
/** describeRange's marker when only leaves, views and signature flags are wanted. */
const NO_MARKER = new Uint8Array(0);
/** Block trees (for receipts of flushed leaves) built at once, at most. */
const BLOCK_TREE_BUILDS_MAX = 2;

/** The payload of a covered entry consensus keeps no payload for (coveredEntriesTree). */
export const NO_PAYLOAD: Buffer = Buffer.alloc(0);
const HISTORICAL_CACHE_BYTES_DEFAULT = 16 * 1024 * 1024;
/** Retry-After of a receipt asked for while the Merkle tree before the snapshot is rebuilt. */
const MERKLE_HISTORY_RETRY_SECONDS = 2;
/** A ledger read for Merkle leaves takes at most this many bytes per worker round trip. */
const LEAF_READ_BYTES = 1024 * 1024;

/** ECDSA over Merkle roots; `rootPreimage` (the root's two children) lets OpenSSL do it (crypto's signDigest). */
export interface RootSignatures {
  sign(privateKeyPem: string, root: Buffer, rootPreimage?: Buffer): Buffer;
  verify(publicKeyPem: string, root: Buffer, signature: Buffer, rootPreimage?: Buffer): boolean;
}

const ecdsaRootSignatures: RootSignatures = { sign: signDigest, verify: verifyDigest };

/** What the engine tells the consensus loop and the node, as typed events. */
export interface EngineEvents {
  /** The ledger holds everything up to this seqno durably. */
  durable: [seqno: number];
  /** Everything up to this seqno (a signature) is committed. */
  commit: [seqno: number];
  /** Everything after this seqno was rolled back. */
  rollback: [seqno: number];
  /** The ledger or the entry encoder failed for good: the node can no longer serve. */
  failure: [error: Error];
  /** The ledger's disk is full: writes wait in memory; the node refuses new ones. */
  diskFull: [error: Error];
  /** The ledger wrote again after `diskFull`, up to this durable seqno. */
  diskSpaceAvailable: [durableSeqno: number];
}

export class TransactionEngine extends EventEmitter<EngineEvents> {
  readonly store = new Store();
  /** Replaced once, before any transaction, when the node starts from a snapshot (loadSnapshot). */
  private merkle = new MerkleTree(MERKLE_RETAINED_HEIGHT);
  get tree(): MerkleTree { return this.merkle; }
  /** Transactions at or before this seqno came with a snapshot (frontier only): no paths for them here. */
  private snapshotBase = 0;
  /**
   * The Merkle tree before snapshotBase, rebuilt from this node's ledger after it serves
   * (merkle-history.ts): "building" until adoptMerkleHistory, "failed" if it did not match.
   */
  private merkleHistory: "none" | "building" | { failed: string } = "none";
  /** Trees of retained-height Merkle blocks read back from the ledger, for receipts of flushed leaves, by "block:count". */
  private readonly blockTrees: ByteLru<string, MerkleTree>;
  private readonly blockTreesBuilding = new Map<string, Promise<MerkleTree>>();
  private readonly blockTreeBuilds = new ConcurrencyLimit(BLOCK_TREE_BUILDS_MAX);
  private readonly signatures: SignatureIndex;
  private readonly views = new ViewHistory();
  private readonly secrets: LedgerSecrets;
  private readonly commitEvidence: CommitEvidenceKeys;
  /**
   * Service certificates whose nodes may sign: this service's, and those of earlier services
   * the ledger names (a recovered service's ledger starts with its previous services' entries).
   */
  private readonly serviceCerts = new Set<string>();
  private readonly randomBytes: (size: number) => Buffer;
  /**
   * Salt of the keys this node encrypts entries and derives commit evidence with (ledger/entry.ts),
   * fresh at start, at every term it leads and after every rollback: the view and seqno come
   * from files the host can restore to an older copy, so only this makes (key, IV) unique.
   */
  private keyNonce: Buffer = Buffer.alloc(0);
  /** Highest seqno encoded (or sent to the encoder) under `keyNonce`. */
  private keyNonceLastSeqno = 0;
  /** A reserved signature's seqno that later batches went past at the encoder; it is encoded once they are in. */
  private keyNonceGap: number | undefined;
  private view = 0;
  private lastSeqno = 0;
  /** Consensus's commit point, as far as this node holds the entries. */
  private commitSeqno = 0;
  /**
   * What the ledger's commit point file records. Every answer about commitment (status, receipts,
   * /node/commit, historical reads, commit waiters) uses min(commitSeqno, recordedSeqno): after a
   * restart this node knows exactly that much, so nothing it said was Committed becomes Pending.
   */
  private recordedSeqno: number;
  private txSinceSignature = 0;
  /** Seqnos of transactions that asked for a ledger chunk (trigger_ledger_chunk) not yet persisted past. */
  private chunkRequests: number[] = [];
  private signatureTimer: TimerHandle | undefined;
  private readonly scheduler: Scheduler;
  private readonly rootSignatures: RootSignatures;
  /** A flush of the entries appended in this turn is queued (a microtask). */
  private flushQueued = false;
  /** What consensus would commit once this node's log is durable up to a seqno (set by the consensus loop). */
  private commitForecast: (durableSeqno: number) => number = () => 0;
  private closed = false;
  private failure: Error | undefined;
  private primary = false;
  private sink: EntrySink | undefined;
  /** Committed locally, not yet at the encoder or in the log, in seqno order. */
  private batch: Queued[] = [];
  /** Seqno of the last entry handed to consensus (the Merkle tree has exactly this many leaves). */
  private proposedSeqno = 0;
  private readonly encoder: EntryEncoder | undefined;
  /** In line for the log, oldest first: batches at the encoder worker and reserved signatures. */
  private inFlight: InFlight[] = [];
  /** A signature transaction's seqno is reserved and it is not signed yet. */
  private signaturePending = false;
  /** emitSignature was called while one was pending: sign again once it is done. */
  private signatureAgain = false;
  /** Seqno of the last signature reserved, and when (the scheduler's clock). */
  private lastSignatureReserved = 0;
  private lastSignatureReservedAtMs = -Infinity;
  /** A signature right after a commit is queued (reportCommit). */
  private earlySignatureQueued = false;
  /** Highest batch id delivered by the encoder (answers to discarded batches included). */
  private deliveredId = 0;
  /** A backup's check of each signature transaction it applies (signature-check.ts). */
  private readonly signatureCheck: BackupSignatureCheck;
  private readonly trace: LatencyTrace | undefined;

  constructor(private readonly ledger: LedgerStore, private readonly options: EngineOptions) {
    super();
    this.scheduler = options.scheduler ?? realScheduler;
    this.trace = options.latencyTrace;
    this.recordedSeqno = ledger.recordedCommitSeqno;
    this.store.onWrite(LEDGER_CHUNK_REQUESTS_MAP, (seqno) => void this.chunkRequests.push(seqno));
    ledger.on("commitRecorded", (seqno) => {
      const before = this.reportedCommitSeqno;
      this.recordedSeqno = Math.max(this.recordedSeqno, seqno);
      this.trace?.mark("commitRecorded", seqno);
      if (this.reportedCommitSeqno > before) this.reportCommit();
    });
    this.rootSignatures = options.rootSignatures ?? ecdsaRootSignatures;
    this.signatureCheck = new BackupSignatureCheck(this.rootSignatures, options.logger);
    this.randomBytes = options.randomBytes ?? cryptoRandomBytes;
    this.signatures = new SignatureIndex(options.signatureIndexEntries);
    this.blockTrees = new ByteLru(options.historicalCacheBytes ?? HISTORICAL_CACHE_BYTES_DEFAULT);
    this.refreshKeyNonce();
    assert(options.rootSignatures === undefined || !options.entryWorker, "the entry worker signs with ECDSA only");
    this.secrets = new LedgerSecrets(options.ledgerSecrets);
    // Commit evidence is derived from the ledger secret of each transaction, as in CCF.
    this.commitEvidence = new CommitEvidenceKeys(this.secrets);
    this.serviceCerts.add(options.serviceCertPem);
    this.store.onWrite(SERVICE_INFO_MAP, (_seqno, writes) => {
      for (const value of writes.values()) {
        const cert = value ? (JSON.parse(value.toString("utf8")) as { cert?: string }).cert : undefined;
        if (typeof cert === "string" && this.serviceCerts.size < SERVICE_CERTS_MAX) this.serviceCerts.add(cert);
      }
    });
    // A full disk is survivable: writes stop here (checkWritable), consensus steps down and
    // stops campaigning (replication.ts), and all resumes once the ledger writes again.
    ledger.on("diskFull", (error) => {
      this.options.logger.error({ err: error }, "the ledger's disk is full: this node refuses writes and steps down until space is freed");
      this.emit("diskFull", error);
    });
    ledger.on("diskSpaceAvailable", (durable) => {
      this.options.logger.warn({ durable }, "the ledger's disk has space again: writes resume");
      this.emit("durable", durable);
      this.emit("diskSpaceAvailable", durable);
      this.kickFlushLoop();
    });
    if (options.entryWorker) {
      this.encoder = EntryEncoder.start(this.secrets.list(), options.nodePrivateKeyPem,
        (reply) => this.onDelivered(reply), (error) => this.fail(error), options.coseSignatures);
    }
  }

  get currentView(): number { return this.view; }
  get isPrimary(): boolean { return this.primary; }
  get lastSeqnoLocal(): number { return this.lastSeqno; }
  setSink(sink: EntrySink): void { this.sink = sink; }
  get lastTxId(): TxId { return { view: this.views.viewAt(this.lastSeqno) ?? this.view, seqno: this.lastSeqno }; }
  /** The last transaction this node reports Committed (see recordedSeqno). */
  get commitTxId(): TxId {
    const seqno = this.reportedCommitSeqno;
    return { view: this.views.viewAt(seqno) ?? 0, seqno };
  }
  /** Consensus's commit point on this node, ahead of commitTxId while the ledger records it. */
  get consensusCommitSeqno(): number { return this.commitSeqno; }
  /**
   * What this node reports Committed: consensus's commit point, no further than its ledger has
   * recorded. Consensus commits only at signature transactions, but the recorded point can stop
   * between two (the ledger records only what is durable), and a restart resumes from the
   * signature at or below it (RaftNode): reporting past that signature would turn Committed back
   * into Pending after a crash (shell simulator, seed 50123). So that case rounds down too.
   */
  private get reportedCommitSeqno(): number {
    if (this.commitSeqno <= this.recordedSeqno) return this.commitSeqno;
    return this.signatures.seqnoAtOrBelow(this.recordedSeqno) ?? 0;
  }
  get lastSignedSeqno(): number { return this.signatures.last?.seqno ?? 0; }
  /** Signature seqnos in memory, and the seqno from which they answer without the ledger (GET /node/memory). */
  get signatureSeqnosResident(): number { return this.signatures.residentCount; }
  get signatureSeqnosExactFrom(): number { return this.signatures.exactFrom; }
  /** The view that wrote `seqno`, if this node holds it. */
  viewAt(seqno: number): number | null {
    return seqno >= 1 && seqno <= this.lastSeqno ? (this.views.viewAt(seqno) ?? null) : null;
  }

  /** Hex Merkle root signed by the last signature transaction ("" before the first). */
  get lastSignatureRoot(): string { return this.signatures.last?.root ?? ""; }

  /**
   * Rebuilds state from the entries read back from the ledger at start-up and returns them as
   * consensus entries. Nothing is assumed committed: consensus decides (a single node commits
   * them again with its first signature of the new view; a backup learns it from the primary).
   */
  replay(entries: readonly Buffer[], options: ReplayOptions = {}): ReplayedEntry[] {
    const replayed: ReplayedEntry[] = [];
    const progressEvery = 100_000;
    for (const bytes of entries) {
      if (this.lastSeqno > 0 && this.lastSeqno % progressEvery === 0) {
        this.options.logger.info({ replayed: this.lastSeqno, total: entries.length, percent: Math.floor((100 * this.lastSeqno) / entries.length) },
          options.publicOnly ? "reading the public ledger" : "replaying the ledger");
      }
      replayed.push(this.applyEntry(bytes, options.verifySignatures === true && "replay", options.publicOnly === true));
    }
    return replayed;
  }

  /**
   * Rebuilds state from the whole ledger, read back in ranges of at most `REPLAY_READ_BYTES`:
   * the ledger never sits whole in memory. Returns what consensus keeps: the compact prefix and
   * the payloads of the newest `keepEntries` entries (and of every entry above `keepAbove`).
   */
  async replayLedger(keepEntries: number, keepAbove: number, options: ReplayOptions = {}): Promise<{ prefix: LogPrefix; entries: ReplayedEntry[]; count: number }> {
    const builder = options.builder ?? new LogPrefixBuilder<Buffer>(keepEntries, keepAbove);
    const last = this.ledger.lastSeqno;
    const progressEvery = 100_000;
    let nextProgress = progressEvery;
    while (this.lastSeqno < last) {
      const entries = await this.ledger.readRange(this.lastSeqno + 1, last, REPLAY_READ_BYTES);
      assert(entries.length > 0, `the ledger reads at least one entry from seqno ${this.lastSeqno + 1}`);
      for (const bytes of entries) builder.add(this.applyEntry(bytes, options.verifySignatures === true && "replay", options.publicOnly === true));
      if (this.lastSeqno >= nextProgress) {
        nextProgress += progressEvery;
        this.options.logger.info({ replayed: this.lastSeqno, total: last, percent: Math.floor((100 * this.lastSeqno) / last) }, "replaying the ledger");
      }
      // Below the recorded commit point nothing is ever rolled back: the KV store's undo records
      // and the Merkle tree's old hashes go as the replay passes (a restarted node used more
      // memory than before it stopped, holding undo records of its whole ledger).
      const committed = Math.min(keepAbove, this.lastSeqno);
      this.store.compact(committed);
      this.flushHistory(committed);
      this.signatures.trimCommitted(Math.min(committed, this.recordedSeqno));
    }
    const { prefix, entries } = builder.result();
    return { prefix, entries: entries as ReplayedEntry[], count: last };
  }

  /**
   * A restart from a snapshot at `seqno` on a ledger that starts at seqno 1 (snapshot-startup.ts):
   * streams entries 1..seqno back in ranges (never the whole ledger in memory) for their Merkle
   * leaves, so the whole tree is rebuilt and receipts of older transactions are still served,
   * and for what consensus keeps of them (`builder`). They are neither decrypted nor applied.
   * Below `payloadsFrom` the ledger's worker thread hashes them and hands over only leaves,
   * views and flags (the builder keeps no payload that old: it is asserted by the caller); from
   * it on (consensus's window may reach back there) the entries come back whole. The tree is
   * flushed as it grows, as replayLedger flushes it.
   */
  async coveredEntriesTree(seqno: number, builder: LogPrefixBuilder<Buffer>, payloadsFrom: number): Promise<MerkleTree> {
    assert(this.lastSeqno === 0 && seqno <= this.ledger.lastSeqno, `the ledger holds the entries up to the snapshot's seqno ${seqno}`);
    const tree = new MerkleTree(MERKLE_RETAINED_HEIGHT);
    const window = this.options.merkleWindowLeaves ?? Infinity;
    const flush = () => { if (tree.size - window - tree.flushedIndex >= window) tree.flush(tree.size - window); };
    const describedLast = Math.min(seqno, payloadsFrom - 1);
    // The next range is described (on the ledger's worker) while this one is added to the tree.
    const describe = (first: number) => this.ledger.describeRange(first, describedLast, REPLAY_READ_BYTES, RAFT_CONFIGURATION_MAP_BYTES);
    let describing = describedLast >= 1 ? describe(1) : undefined;
    while (describing !== undefined) {
      const described = await describing;
      const count = described.flags.length;
      assert(count > 0 && described.first === tree.size + 1, `the ledger describes entries from seqno ${tree.size + 1}`);
      describing = tree.size + count < describedLast ? describe(tree.size + count + 1) : undefined;
      const leaves = Buffer.from(described.leaves);
      for (let i = 0; i < count; i++) {
        const index = described.first + i;
        if ((described.flags[i]! & 2) !== 0) {
          // May change the configuration: consensus needs its voters (rare: read it whole).
          const [bytes] = await this.ledger.readRange(index, index, 1);
          builder.add(this.describeEntry(bytes!));
        } else {
          builder.add({ term: described.views[i]!, index, isSignature: (described.flags[i]! & 1) !== 0, payload: NO_PAYLOAD });
        }
        tree.appendFrom(leaves, 32 * i);
      }
      flush();
    }
    let reading = tree.size < seqno ? this.ledger.readRange(tree.size + 1, seqno, REPLAY_READ_BYTES) : undefined;
    while (reading !== undefined) {
      const entries = await reading;
      assert(entries.length > 0, `the ledger reads at least one entry from seqno ${tree.size + 1}`);
      const next = tree.size + entries.length + 1;
      reading = next <= seqno ? this.ledger.readRange(next, seqno, REPLAY_READ_BYTES) : undefined;
      for (const bytes of entries) {
        builder.add(this.describeEntry(bytes));
        tree.append(entryLeaf(bytes));
      }
      flush();
    }
    assert(tree.size === seqno, `the covered entries' tree has ${seqno} leaves`);
    return tree;
  }

  /**
   * Forgets Merkle hashes only receipts of transactions well below `committedSeqno` need (they
   * are rebuilt from the ledger then). Trims once the flushable part reaches the window again,
   * so the copy a trim makes is paid once per window of commits.
   */
  private flushHistory(committedSeqno: number): void {
    const window = this.options.merkleWindowLeaves;
    // A tree rebuilt from a snapshot's frontier retains no height: it keeps what follows the snapshot.
    if (window === undefined || this.tree.retainHeight === Infinity) return;
    const target = Math.min(committedSeqno - window, this.tree.size);
    if (target - this.tree.flushedIndex < window) return;
    this.tree.flush(target);
    assert(this.tree.flushedIndex === target && this.tree.size >= target, "the Merkle tree flushed below its size");
  }

  /**
   * The first signature transaction after `seqno`, which is older than the signature seqnos kept
   * in memory: found in the ledger (one is at or before SignatureIndex.exactFrom), its entries
   * described on the ledger's worker at most LEAF_READ_BYTES per round trip.
   */
  private async signatureAboveFromLedger(seqno: number): Promise<number> {
    const last = this.signatures.exactFrom;
    assert(seqno < last, `seqno ${seqno} precedes the signature seqnos in memory (from ${last})`);
    for (let first = seqno + 1; first <= last;) {
      const described = await this.ledger.describeRange(first, last, LEAF_READ_BYTES, NO_MARKER);
      const count = described.flags.length;
      assert(count > 0 && described.first === first, `the ledger describes seqnos from ${first}`);
      const at = described.flags.findIndex((flags) => (flags & 1) !== 0);
      if (at !== -1) return first + at;
      first += count;
    }
    throw new CocoError("LedgerCorrupted", `The ledger holds no signature transaction between seqno ${seqno + 1} and ${last}, which this node signed or received as one.`, 500);
  }

  /**
   * The tree of Merkle leaves firstLeaf..firstLeaf + count - 1 (leaf i is seqno i + 1), from the
   * cache or the ledger. The ledger's worker reads the entries and hashes them into leaves
   * (describeRange); they are appended here one read (at most LEAF_READ_BYTES of entries) per turn.
   */
  private async blockTree(block: { blockIndex: number; firstLeaf: number; count: number }): Promise<MerkleTree> {
    const key = `${block.blockIndex}:${block.count}`;
    const cached = this.blockTrees.get(key);
    if (cached !== undefined) return cached;
    // One build per block however many receipts ask for it, and at most BLOCK_TREE_BUILDS_MAX at
    // once: a block's tree is up to 4 MiB while it is built, and receipts of many old blocks at
    // once must not hold that many times over.
    let building = this.blockTreesBuilding.get(key);
    if (building === undefined) {
      building = this.blockTreeBuilds.run(() => this.buildBlockTree(block, key)).finally(() => this.blockTreesBuilding.delete(key));
      this.blockTreesBuilding.set(key, building);
    }
    return building;
  }

  private async buildBlockTree(block: { blockIndex: number; firstLeaf: number; count: number }, key: string): Promise<MerkleTree> {
    const cached = this.blockTrees.get(key);
    if (cached !== undefined) return cached;
    const tree = new MerkleTree();
    while (tree.size < block.count) {
      const first = block.firstLeaf + tree.size + 1;
      const described = await this.ledger.describeRange(first, block.firstLeaf + block.count, LEAF_READ_BYTES, NO_MARKER);
      const count = described.flags.length;
      assert(count > 0 && described.first === first, `the ledger describes seqnos from ${first}`);
      const leaves = Buffer.from(described.leaves);
      for (let i = 0; i < count && tree.size < block.count; i++) tree.appendFrom(leaves, 32 * i);
    }
    // Two hashes per leaf at most (the leaves and the levels above them).
    this.blockTrees.set(key, tree, 64 * block.count + 256);
    return tree;
  }

  /** Applies one entry to the KV store, Merkle tree and indexes; returns it as consensus sees it. */
  private applyEntry(bytes: Buffer, verify: false | "replay" | "replicated", publicOnly = false): ReplayedEntry {
    const entry = decodeEntry(bytes);
    assert(entry.seqno === this.lastSeqno + 1, `ledger entries are contiguous (expected ${this.lastSeqno + 1}, found ${entry.seqno})`);
    const privatePlain = entry.privateCiphertext.length > 0 && !publicOnly ? decryptPrivate(entry, this.secrets.forSeqno(entry.seqno)) : EMPTY;
    let config: readonly string[] | undefined;
    let signature: SignatureRecord | undefined;
    let coseValue: Buffer | undefined;
    // Only signature and reconfiguration entries need their public domain read here (the store
    // reads it again to apply it): skip the extra decode for every other entry.
    const special = entry.isSignature || entry.publicDomain.includes(RAFT_CONFIGURATION_MAP_BYTES);
    for (const map of special ? deserialiseDomain(entry.publicDomain).maps : []) {
      if (map.name === SIGNATURES_MAP) {
        for (const [, value] of map.writes) if (value) signature = decodeSignature(value);
      } else if (map.name === COSE_SIGNATURES_MAP) {
        for (const [, value] of map.writes) if (value) coseValue = value;
      } else if (map.name === RAFT_CONFIGURATION_MAP) {
        for (const [, value] of map.writes) if (value) config = JSON.parse(value.toString("utf8")) as string[];
      }
    }
    if (signature && verify !== false) this.verifySignature(signature, coseValue, entry.seqno, entry.view, verify === "replay");
    this.store.applySerialised(entry.seqno, entry.publicDomain, privatePlain);
    this.merkle.append(entryLeaf(bytes));
    this.views.note(entry.view, entry.seqno);
    this.lastSeqno = entry.seqno;
    this.proposedSeqno = entry.seqno;
    if (entry.isSignature && signature) this.signatures.add(signature);
    const replayed: ReplayedEntry = { term: entry.view, index: entry.seqno, isSignature: entry.isSignature, payload: bytes };
    if (config) (replayed as { config?: readonly string[] }).config = config;
    return replayed;
  }

  /** A ledger entry as consensus sees it, not applied: entries a snapshot already covers. */
  describeEntry(bytes: Buffer): ReplayedEntry {
    return consensusEntryOf(bytes);
  }


  /**
   * Starts a snapshot of committed signature `seqno`: a capture of the KV maps as they were then
   * (the store may already hold later transactions; the capture copies in slices, snapshots.ts),
   * the view, the Merkle frontier and the raw ledger secret that seals the private maps.
   */
  snapshotCapture(seqno: number): {
    capture: SnapshotCapture; view: number; views: { view: number; seqno: number }[]; tree: Buffer[]; ledgerSecret: Buffer;
    /** What the tree retains of leaves 1..seqno, when it holds all of them (merkle-retained-file.ts). */
    retained: RetainedHashes | undefined;
  } {
    assert(seqno <= this.commitSeqno && this.signatures.seqnoAbove(seqno - 1) === seqno, `snapshot seqno ${seqno} is a committed signature`);
    // A tree that started from a snapshot's frontier retains nothing before it (until merkle-history.ts adopts the rest).
    const retained = this.retainedHashesAt(seqno);
    return {
      view: this.views.viewAt(seqno) ?? this.view,
      views: this.views.startsUpTo(seqno),
      tree: this.merkle.frontierAt(seqno),
      retained,
      ledgerSecret: this.secrets.rangeFor(seqno).raw,
      // Last: nothing above can throw once the store's undo log is pinned.
      capture: this.store.beginCapture(seqno),
    };
  }

  /**
   * What the Merkle tree retains of leaves 1..seqno (merkle-retained-file.ts), if it holds them
   * all: not while a tree started from a snapshot's frontier lacks the history before it, nor for
   * a seqno it has not reached or has flushed past.
   */
  retainedHashesAt(seqno: number): RetainedHashes | undefined {
    if (this.merkle.retainHeight !== MERKLE_RETAINED_HEIGHT || this.snapshotBase !== 0) return undefined;
    if (seqno < this.merkle.flushedIndex || seqno > this.merkle.size || seqno < 1) return undefined;
    return { size: seqno, retainHeight: MERKLE_RETAINED_HEIGHT, ...this.merkle.retainedAt(seqno) };
  }

  /** The raw ledger secret that encrypts `seqno` (a snapshot's private maps are sealed with it). */
  ledgerSecretFor(seqno: number): Buffer {
    return this.secrets.rangeFor(seqno).raw;
  }

  /**
   * Starts this engine from a snapshot of signature `seqno` (verified by the caller): the KV
   * state, the Merkle tree's frontier, the view. Everything up to `seqno` is committed; entries
   * after it are then replayed or replicated as usual. Receipts need the tree's paths, so
   * transactions at or before `seqno` get none from this node (receipt() says so).
   */
  loadSnapshot(snapshot: {
    seqno: number; view: number; views: readonly { view: number; seqno: number }[]; tree: readonly Buffer[]; parts: readonly Buffer[];
    /** The whole tree up to the snapshot, rebuilt from ledger entries this node holds: receipts for every transaction. */
    fullTree?: MerkleTree;
  }): void {
    assert(this.lastSeqno === 0 && this.merkle.size === 0, "a snapshot is loaded into a fresh engine");
    const frontier = MerkleTree.fromFrontier(snapshot.seqno, snapshot.tree);
    if (snapshot.fullTree !== undefined && (snapshot.fullTree.size !== snapshot.seqno || !snapshot.fullTree.root().equals(frontier.root()))) {
      throw new CocoError("InvalidSnapshot", `The snapshot's Merkle tree at seqno ${snapshot.seqno} is not the tree of this node's ledger entries.`, 400);
    }
    this.store.loadSnapshotParts(snapshot.parts);
    assert(this.store.currentVersion === snapshot.seqno, `the snapshot's state is at its seqno ${snapshot.seqno}`);
    this.merkle = snapshot.fullTree ?? frontier;
    if (snapshot.fullTree === undefined) this.snapshotBase = snapshot.seqno;
    const signature = this.store.get(SIGNATURES_MAP, SINGLETON_KEY);
    const record = signature === undefined ? undefined : decodeSignature(signature);
    if (record === undefined || record.seqno !== snapshot.seqno) {
      throw new CocoError("InvalidSnapshot", `A snapshot of seqno ${snapshot.seqno} must be taken at a signature transaction (its last signature is ${record?.seqno}).`, 400);
    }
    this.signatures.add(record);
    // The views before the snapshot, so that /node/tx still answers for those transactions.
    for (const start of snapshot.views) {
      if (start.seqno > snapshot.seqno || start.view > snapshot.view) throw new CocoError("InvalidSnapshot", "The snapshot's view history goes past its seqno or view.", 400);
      this.views.note(start.view, start.seqno);
    }
    this.views.note(snapshot.view, snapshot.seqno);
    for (const [, value] of this.store.maps.get(SERVICE_INFO_MAP)?.entries ?? []) {
      const cert = (JSON.parse(value.value.toString("utf8")) as { cert?: string }).cert;
      if (typeof cert === "string") this.serviceCerts.add(cert);
    }
    this.lastSeqno = snapshot.seqno;
    this.proposedSeqno = snapshot.seqno;
    this.commitSeqno = snapshot.seqno;
    this.keyNonceLastSeqno = snapshot.seqno;
  }

  /** Transactions at or before this seqno came with the snapshot this node started from. */
  get snapshotStartSeqno(): number {
    return this.snapshotBase;
  }

  /** Receipts before the snapshot answer 503 (retry) while its Merkle history is rebuilt, or say why it never will be. */
  setMerkleHistoryState(state: "building" | { failed: string }): void {
    assert(this.snapshotBase > 0, "only a node started from a snapshot rebuilds the tree before it");
    this.merkleHistory = state;
  }

  /**
   * Gives a node started from a snapshot the whole Merkle tree (merkle-history.ts): `history`
   * holds leaves 1..k, rebuilt from this node's ledger (k >= the snapshot's seqno, and leaves
   * after it copied from this tree). Its root must be this tree's root at k, i.e. the snapshot's
   * frontier must be the tree of this node's own entries; the leaves this tree gained since are
   * appended (synchronously: no append or rollback comes between) and the history takes over.
   */
  adoptMerkleHistory(history: MerkleTree): void {
    const k = history.size;
    assert(this.snapshotBase > 0 && k >= this.snapshotBase && k <= this.merkle.size, `a Merkle history of ${k} leaves fits the tree (snapshot ${this.snapshotBase}, size ${this.merkle.size})`);
    if (!history.root().equals(this.merkle.rootAt(k))) {
      throw new CocoError("InvalidSnapshot", `The Merkle tree of this node's ledger up to seqno ${k} does not match the tree the snapshot at ${this.snapshotBase} carried.`, 500);
    }
    for (let i = k; i < this.merkle.size; i++) history.append(this.merkle.leaf(i));
    assert(history.size === this.merkle.size && history.root().equals(this.merkle.root()), "the adopted tree has the same leaves and root");
    this.merkle = history;
    this.snapshotBase = 0;
    this.merkleHistory = "none";
  }

  /**
   * A backup checks every signature transaction before applying it (signature-check.ts): the
   * root must be ours, signed by an endorsed node, and its COSE signature (if any) by the
   * service key in force: the certificate service.info holds as applied so far.
   */
  private verifySignature(record: SignatureRecord, coseValue: Buffer | undefined, seqno: number, view: number, replay: boolean): void {
    const info = this.store.get(SERVICE_INFO_MAP, SINGLETON_KEY);
    const current = info === undefined ? undefined : (JSON.parse(info.toString("utf8")) as { cert?: unknown }).cert;
    this.signatureCheck.check(
      { record, coseValue, seqno, view, root: this.merkle.root(), rootPreimage: this.merkle.rootPreimageAt() },
      { all: this.serviceCerts, current: typeof current === "string" ? current : this.options.serviceCertPem },
      replay ? this.scheduler.now() : undefined,
    );
  }

  /** Drops every entry after `seqno` (never a committed one): consensus rolled them back. */
  rollback(seqno: number): void {
    if (seqno >= this.lastSeqno) return;
    assert(seqno >= this.commitSeqno, "never roll back committed transactions");
    assert(this.batch.length === 0 && this.inFlight.length === 0, "the batch is drained before a rollback");
    this.options.logger.warn({ from: seqno + 1, to: this.lastSeqno }, "rolling back uncommitted transactions");
    this.store.rollback(seqno);
    this.chunkRequests = this.chunkRequests.filter((r) => r <= seqno);
    this.merkle.retract(seqno);
    this.signatures.truncate(seqno);
    this.views.truncate(seqno);
    this.truncateSecrets(seqno);
    // On a full disk the ledger keeps the truncation and applies it before anything it writes later.
    this.ledger.truncate(seqno).catch((error) => { if (!isLedgerDiskFull(error)) this.fail(error as Error); });
    this.lastSeqno = seqno;
    this.proposedSeqno = Math.min(this.proposedSeqno, seqno);
    this.refreshKeyNonce();
    this.emit("rollback", seqno);
  }

  private truncateSecrets(seqno: number): void {
    const before = this.secrets.count;
    this.secrets.truncate(seqno);
    if (this.secrets.count !== before) {
      this.encoder?.setSecrets(this.secrets.list());
      this.commitEvidence.setSecrets(this.secrets);
    }
  }

  /**
   * A primary stepping down drops the transactions it committed locally but never handed to
   * consensus (queued, or at the encoder): no other node has them, so none can commit, and
   * their clients see them become Invalid, as for any uncommitted transaction of an old view.
   */
  private discardUnproposed(): void {
    if (this.lastSeqno === this.proposedSeqno) return;
    const seqno = this.proposedSeqno;
    this.options.logger.warn({ from: seqno + 1, to: this.lastSeqno }, "dropping transactions not yet proposed to consensus (no longer primary)");
    this.batch = [];
    this.inFlight = [];
    this.signaturePending = false;
    this.signatureAgain = false;
    this.store.rollback(seqno);
    this.views.truncate(seqno);
    this.truncateSecrets(seqno);
    this.lastSeqno = seqno;
    this.refreshKeyNonce();
    this.emit("rollback", seqno);
  }

  /**
   * Draws the key nonce for what this node encrypts from now on. Called at start, when it
   * becomes primary and after a rollback: each is a point from which an earlier run (restored
   * files) or an earlier term of this run may have used the same (view, seqno).
   */
  private refreshKeyNonce(): void {
    const nonce = this.randomBytes(ENTRY_KEY_NONCE_BYTES);
    assert(nonce.length === ENTRY_KEY_NONCE_BYTES, `a key nonce is ${ENTRY_KEY_NONCE_BYTES} bytes`);
    assert(!nonce.equals(this.keyNonce), "a fresh key nonce differs from the last one");
    this.keyNonce = Buffer.from(nonce);
    // Whatever was proposed before was encrypted under an earlier nonce, or by another primary.
    this.keyNonceLastSeqno = this.proposedSeqno;
    this.keyNonceGap = undefined;
  }

  /**
   * Claims seqnos first..last for encryption under the current key nonce: the invariant that
   * makes (key, IV) unique, checked. Seqnos are claimed in increasing order, except that the
   * one reserved signature may be claimed after later batches went to the encoder worker.
   */
  private claimKeyNonceSeqnos(first: number, last: number): void {
    assert(last >= first, "a claim covers at least one seqno");
    if (first === last && first === this.keyNonceGap) {
      this.keyNonceGap = undefined;
      return;
    }
    assert(first > this.keyNonceLastSeqno, `seqnos ${first}..${last} were not yet encrypted under this key nonce (last ${this.keyNonceLastSeqno})`);
    if (first > this.keyNonceLastSeqno + 1) {
      assert(first === this.keyNonceLastSeqno + 2 && this.keyNonceGap === undefined,
        `only a reserved signature is skipped under a key nonce (claiming ${first} after ${this.keyNonceLastSeqno})`);
      this.keyNonceGap = first - 1;
    }
    this.keyNonceLastSeqno = last;
  }

  /** This node leads `view` from now on: it executes transactions and signs. */
  becomePrimary(view: number): void {
    assert(view >= this.view, "views only grow");
    this.refreshKeyNonce();
    this.view = view;
    this.primary = true;
    this.txSinceSignature = 0;
    this.signatureTimer?.cancel();
    this.signatureTimer = this.scheduler.every(this.options.signatureDelayMs, () => {
      if (this.txSinceSignature > 0) this.emitSignature();
    });
  }

  /** Another node leads (or none does): stop executing writes and signing. */
  becomeBackup(view: number): void {
    this.discardUnproposed();
    if (view > this.view) this.view = view;
    this.primary = false;
    this.signatureTimer?.cancel();
    this.signatureTimer = undefined;
  }

  /**
   * Backup: applies an entry replicated by the primary, its signatures checked first
   * (signature-check.ts). `committed`: the primary reports the entry committed already (a backup
   * catching up on history a majority holds): its signatures are then checked as in a replay,
   * every root but the ECDSA and COSE signatures at most once a second, so that catching up
   * thousands of signature transactions does not cost ~5 ms each.
   */
  applyReplicated(bytes: Buffer, committed = false): ReplayedEntry {
    return this.applyEntry(bytes, committed ? "replay" : "replicated");
  }

  /** Writes an entry (own or replicated) to the ledger; durability is reported by the flush loop. */
  persist(entry: Buffer, seqno: number, isSignature: boolean): void {
    // trigger_ledger_chunk: the chunk ends at the first signature after the request, on every node
    // (a function of the log alone, so closed chunks stay identical across nodes).
    let endsChunk = false;
    if (isSignature && this.chunkRequests.length > 0) {
      endsChunk = this.chunkRequests.some((r) => r < seqno && this.signatures.seqnoAbove(r) === seqno);
      this.chunkRequests = this.chunkRequests.filter((r) => r > seqno);
    }
    this.ledger.append(entry, seqno, isSignature, endsChunk);
    this.trace?.mark("appended", seqno);
    this.kickFlushLoop();
  }

  /**
   * Queues a flush of what this turn appends. Flushes are not held back while earlier ones are
   * at the disk: the ledger worker folds the ones that queue up behind a group commit into the
   * next one, so entries reach the disk one write after they arrive rather than after a reply
   * to this thread and a new request.
   */
  private kickFlushLoop(): void {
    // While the disk is full the ledger retries on its own and says when it wrote again.
    if (this.flushQueued || this.ledger.diskFull || this.failure) return;
    this.flushQueued = true;
    queueMicrotask(this.postFlush);
  }

  private readonly postFlush = (): void => {
    this.flushQueued = false;
    if (this.failure || this.ledger.diskFull || this.ledger.durableSeqno >= this.ledger.lastSeqno) return;
    const last = this.ledger.lastSeqno;
    this.trace?.mark("flushPosted", last);
    this.ledger.flush(this.commitForecast(last)).then(
      (durable) => {
        this.trace?.mark("durable", durable);
        this.emit("durable", durable);
      },
      (error: unknown) => { if (!isLedgerDiskFull(error)) this.fail(error as Error); },
    );
  };

  /**
   * The consensus loop says what it would commit once this node's log is durable up to a seqno
   * (Raft's commit rule with this node's vote counted): the ledger records that commit point in
   * the same visit to the disk as the flush (a node alone commits each signature that way).
   */
  setCommitForecast(forecast: (durableSeqno: number) => number): void {
    this.commitForecast = forecast;
  }

  /** Consensus committed everything up to `seqno` (always a signature). */
  advanceCommit(seqno: number): void {
    if (seqno <= this.commitSeqno) return;
    assert(seqno <= this.lastSeqno, "commit never passes the local log");
    const reported = this.reportedCommitSeqno;
    this.commitSeqno = seqno;
    this.trace?.mark("consensusCommit", seqno);
    this.store.compact(seqno);
    this.flushHistory(seqno);
    // What is reported Committed may round down to a signature at or below the recorded point: keep it.
    this.signatures.trimCommitted(Math.min(seqno, this.recordedSeqno));
    this.ledger.commit(seqno).catch((error) => this.options.logger.warn({ err: error }, "could not mark ledger chunks committed"));
    // At start the commit point on disk is usually ahead of consensus: report what it covers now.
    if (this.reportedCommitSeqno > reported) this.reportCommit();
  }

  private reportCommit(): void {
    this.emit("commit", this.reportedCommitSeqno);
    // The last signature is committed and transactions wait for the next: sign them now rather
    // than at the next tick of the signature timer. Signatures then follow one another as fast
    // as the write path commits them (a light load waits one commit round, not up to the whole
    // delay), while under heavy load, with a signature always on its way, the timer and the
    // transaction count still decide and a signature's cost stays spread over many transactions.
    const minMs = this.options.earlySignatureMinMs;
    if (minMs === undefined || !this.primary || this.txSinceSignature === 0 || this.signaturePending || this.earlySignatureQueued
      || this.lastSignatureReserved > this.reportedCommitSeqno) return;
    this.earlySignatureQueued = true;
    const sign = (): void => {
      this.earlySignatureQueued = false;
      // The timer or the transaction count may have signed meanwhile.
      if (this.txSinceSignature > 0 && !this.signaturePending) this.emitSignature();
    };
    const waitMs = this.lastSignatureReservedAtMs + minMs - this.scheduler.now();
    if (waitMs <= 0) queueMicrotask(sign);
    else this.scheduler.after(waitMs, sign);
  }

  /**
   * Hands every locally committed transaction to consensus now: waits for the batches at the
   * encoder worker, then encodes what is still queued on this thread. A reconfiguration must
   * follow everything before it in the log; close() must leave nothing behind.
   */
  drain(): void {
    for (;;) {
      this.settle();
      // The last request still unanswered (settling may have asked for a signature).
      let last: number | undefined;
      for (const item of this.inFlight) {
        if ("id" in item) { if (item.result === undefined) last = item.id; }
        else if (item.signId !== undefined && item.signed === undefined) last = item.signId;
      }
      if (last === undefined || this.encoder === undefined || this.failure) break;
      try {
        this.encoder.waitFor(last, () => this.deliveredId);
      } catch (error) {
        this.fail(error as Error); // callers check `failure` before relying on the log
        return;
      }
    }
    if (!this.failure) this.encodeQueued();
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.options.logger.error({ err: error }, "ledger write or entry encoding failed; the node stops accepting writes");
    this.emit("failure", error);
  }

  /**
   * Commits a transaction locally; the caller answers with the returned id at once. The KV
   * state changes now; turning the write set into a ledger entry (serialise, encrypt, hash,
   * Merkle leaf, ledger append) happens for the whole batch of the event-loop turn at once.
   */
  commit(tx: Transaction, claimsDigest: Buffer = ZERO_DIGEST): TxId {
    this.checkWritable();
    const seqno = this.lastSeqno + 1;
    const writeSet = this.store.commit(tx, seqno);
    this.trace?.executed(seqno);
    this.enqueue(writeSet, false, claimsDigest);
    if (++this.txSinceSignature >= this.options.signatureTxCount) this.emitSignature();
    return { view: this.view, seqno };
  }

  /**
   * Commits a reconfiguration transaction (it writes RAFT_CONFIGURATION_MAP): proposed to
   * consensus at once, as the new voter set. The caller checked consensus would accept it.
   */
  commitReconfiguration(tx: Transaction, voters: readonly string[]): TxId {
    this.checkWritable();
    this.drain();
    this.checkWritable();
    const seqno = this.lastSeqno + 1;
    const writeSet = this.store.commit(tx, seqno);
    this.batch.push({ seqno, writeSet, isSignature: false, claimsDigest: ZERO_DIGEST, config: voters });
    this.views.note(this.view, seqno);
    this.lastSeqno = seqno;
    this.txSinceSignature++;
    this.drain();
    return { view: this.view, seqno };
  }

  private checkWritable(): void {
    if (this.failure) throw new CocoError("ServiceUnavailable", "The node's ledger failed; it accepts no more writes.", 503);
    if (this.ledger.diskFull) {
      throw new CocoError("LedgerDiskFull", "This node's disk is full: it accepts no writes until space is freed (it is handing leadership to another node). Retry shortly.", 507);
    }
    if (!this.primary) throw new CocoError("NotPrimary", "This node is not the primary; the request should have been forwarded to it.", 503);
    if (this.sink !== undefined && !this.sink.acceptsWrites()) {
      throw new CocoError("LeadershipTransferInProgress", "This primary is handing leadership to another node; retry shortly.", 503);
    }
    if (this.lastSeqno - this.commitSeqno >= this.options.pendingTransactionsMax) {
      throw new CocoError("TooManyPendingTransactions",
        `More than ${this.options.pendingTransactionsMax} transactions are waiting to be committed; retry shortly.`, 503);
    }
  }

  private enqueue(writeSet: WriteSet, isSignature: boolean, claimsDigest: Buffer): void {
    this.push({ seqno: writeSet.seqno, writeSet, isSignature, claimsDigest });
  }

  private push(item: Queued): void {
    this.batch.push(item);
    this.views.note(this.view, item.seqno);
    this.lastSeqno = item.seqno;
    if (this.batch.length === 1) this.scheduler.soon(this.flushBatch);
  }

  /**
   * Once per event-loop turn: the turn's transactions go to the encoder worker, as one batch
   * per run of ordinary transactions; a reserved signature waits in line between them. Without
   * a worker (or for a reconfiguration) they are encoded here.
   */
  private readonly flushBatch = (): void => {
    const batch = this.batch;
    if (batch.length === 0) return;
    const encoder = this.encoder;
    if (encoder === undefined || !this.primary || this.failure || encoder.failed || batch.some((b) => b.config !== undefined)
      || (this.inFlight.length === 0 && batch.length < ENTRY_WORKER_MIN_BATCH)) {
      this.drain();
      return;
    }
    this.batch = [];
    let run: EncodeItem[] = [];
    let runFirst = 0;
    const submitRun = () => {
      if (run.length === 0) return;
      this.claimKeyNonceSeqnos(runFirst, runFirst + run.length - 1);
      this.inFlight.push({ id: encoder.submit(this.keyNonce, this.view, runFirst, run), firstSeqno: runFirst, count: run.length });
      run = [];
    };
    for (const item of batch) {
      if (item.writeSet === undefined) {
        submitRun();
        this.inFlight.push({ signature: item.seqno });
        continue;
      }
      if (run.length === 0) runFirst = item.seqno;
      const { publicDomain, privateDomain } = serialiseWriteSet(item.writeSet);
      run.push({ claimsDigest: item.claimsDigest, publicDomain, privateDomain });
    }
    submitRun();
    this.settle();
  };

  /** An answer of the encoder worker: kept with its request, then the line moves as far as it can. */
  private onDelivered(reply: EncodedBatch | SignedRoot): void {
    this.deliveredId = reply.id;
    // Answers to requests dropped by discardUnproposed find nothing and are ignored.
    for (const item of this.inFlight) {
      if (reply.kind === "entries" && "id" in item && item.id === reply.id) item.result = reply;
      else if (reply.kind === "signature" && "signature" in item && item.signId === reply.id) {
        item.signed = reply.signature;
        if (reply.coseSignature !== undefined) item.coseSigned = reply.coseSignature;
      }
    }
    this.settle();
  }

  /**
   * Moves the head of the line into the log: encoded batches go to consensus in order; a
   * signature at the head (everything before it is in the tree) has its root signed by the
   * worker, or here without one, and is then proposed.
   */
  private settle(): void {
    while (this.inFlight.length > 0 && !this.failure) {
      const head = this.inFlight[0]!;
      if ("id" in head) {
        if (head.result === undefined) return;
        this.inFlight.shift();
        this.proposeBatch(head.firstSeqno, head.count, head.result);
        continue;
      }
      if (head.signed !== undefined) {
        this.inFlight.shift();
        this.proposeSignature(head.signature, head.root!, head.signed, head.coseSigned);
        continue;
      }
      if (this.encoder !== undefined && !this.encoder.failed) {
        if (head.signId === undefined) {
          assert(head.signature === this.proposedSeqno + 1 && this.tree.size === head.signature - 1, `signature ${head.signature} follows every transaction before it`);
          head.root = this.tree.root();
          head.signId = this.encoder.sign(head.root, this.tree.rootPreimageAt(), this.coseSigning(head.signature));
        }
        return;
      }
      this.inFlight.shift();
      this.completeSignature(head.signature);
    }
  }

  private proposeBatch(firstSeqno: number, count: number, encoded: EncodedBatch): void {
    assert(firstSeqno === this.proposedSeqno + 1, `encoded batch starts at ${firstSeqno} after proposed seqno ${this.proposedSeqno}`);
    assert(encoded.entries.length === count, "the encoder answers every entry of a batch");
    const sink = this.sink;
    assert(sink !== undefined, "an entry sink is set before the first transaction");
    for (let i = 0; i < count; i++) {
      const seqno = firstSeqno + i;
      this.merkle.appendFrom(encoded.leaves, 32 * i);
      this.proposedSeqno = seqno;
      sink.propose(encoded.entries[i]!, seqno, false, undefined);
    }
  }

  /** Turns every queued write set into a ledger entry and a Merkle leaf here, in seqno order. */
  private encodeQueued(): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    assert(this.inFlight.length === 0, "batches at the encoder are delivered before encoding here");
    this.batch = [];
    const nonces = this.commitEvidence.nonces(this.keyNonce, this.view, batch[0]!.seqno, batch.length);
    for (let i = 0; i < batch.length; i++) {
      const { seqno, writeSet, isSignature, claimsDigest, config } = batch[i]!;
      if (writeSet === undefined) {
        this.completeSignature(seqno);
        continue;
      }
      this.proposeEncoded(writeSet, isSignature, claimsDigest, nonces.subarray(i * COMMIT_NONCE_BYTES, (i + 1) * COMMIT_NONCE_BYTES), config);
    }
  }

  /** Encodes one transaction here and hands it to consensus. */
  private proposeEncoded(writeSet: WriteSet, isSignature: boolean, claimsDigest: Buffer, nonce: Buffer, config: readonly string[] | undefined): void {
    const view = this.view;
    const seqno = writeSet.seqno;
    const sink = this.sink;
    assert(sink !== undefined, "an entry sink is set before the first transaction");
    assert(seqno === this.proposedSeqno + 1, `proposing seqno ${seqno} after ${this.proposedSeqno}`);
    this.claimKeyNonceSeqnos(seqno, seqno);
    const { publicDomain, privateDomain } = serialiseWriteSet(writeSet);
    const commitEvidenceDigest = CommitEvidence.digestShared(view, seqno, nonce);
    const entry = encodeEntry({
      view, seqno, isSignature, claimsDigest, commitEvidenceDigest, keyNonce: this.keyNonce, publicDomain, privatePlaintext: privateDomain,
    }, this.secrets.forSeqno(seqno));
    this.merkle.append(entryLeaf(entry));
    this.proposedSeqno = seqno;
    sink.propose(entry, seqno, isSignature, config);
  }

  /**
   * Appends a signature transaction over the Merkle root of everything before it. Its seqno is
   * taken now; while the encoder worker still holds earlier transactions, later ones go on
   * committing, and the signature is made once the tree has caught up (completeSignature).
   */
  emitSignature(): void {
    if (this.closed || this.failure || !this.primary) return;
    // One at a time: the reserved signature covers what precedes it, the next one the rest.
    if (this.signaturePending) {
      this.signatureAgain = true;
      return;
    }
    this.txSinceSignature = 0;
    const seqno = this.lastSeqno + 1;
    this.store.reserve(seqno);
    this.lastSignatureReserved = seqno;
    this.lastSignatureReservedAtMs = this.scheduler.now();
    this.trace?.mark("signatureReserved", seqno);
    this.signaturePending = true;
    this.push({ seqno, writeSet: undefined, isSignature: true, claimsDigest: ZERO_DIGEST });
    // Without the worker, or with nothing before it left to encode (an idle primary, a new
    // primary's first signature): sign here at once. Otherwise the turn's transactions before
    // it go to the worker (flushBatch, scheduled by push), which signs the root once they are in.
    if (this.encoder === undefined || this.encoder.failed || (this.inFlight.length === 0 && this.batch.length === 1)) this.drain();
  }

  /** Signs the root of the first seqno - 1 transactions here and proposes the reserved signature transaction. */
  private completeSignature(seqno: number): void {
    const root = this.tree.root();
    const cose = this.coseSigning(seqno);
    const coseSignature = cose === undefined ? undefined : signRootCose({ ...this.options.coseSignatures!, root, ...cose });
    this.proposeSignature(seqno, root, this.rootSignatures.sign(this.options.nodePrivateKeyPem, root, this.tree.rootPreimageAt()), coseSignature);
  }

  /** The txid and time CCF 6's COSE signature of signature transaction `seqno` carries, if this node makes them. */
  private coseSigning(seqno: number): CoseSigning | undefined {
    if (this.options.coseSignatures === undefined) return undefined;
    return { txid: formatTxId(this.view, seqno), issuedAtSeconds: Math.floor(this.scheduler.now() / 1000) };
  }

  /** The signature transaction `seqno` over `root` (the first seqno - 1 transactions), signed: record, KV write, entry, log. */
  private proposeSignature(seqno: number, root: Buffer, signature: Buffer, coseSignature: Buffer | undefined): void {
    assert(seqno === this.proposedSeqno + 1 && this.tree.size === seqno - 1, `signature ${seqno} follows every transaction before it`);
    const record: SignatureRecord = {
      seqno,
      view: this.view,
      commit_seqno: this.commitSeqno,
      commit_view: this.views.viewAt(this.commitSeqno) ?? 0,
      root: root.toString("hex"),
      sig: signature.toString("base64"),
      node: this.options.nodeId,
      cert: this.options.nodeCertPem,
    };
    const value = encodeSignature(record);
    this.store.writeReserved(seqno, SIGNATURES_MAP, SINGLETON_KEY, value);
    const maps: MapWrites[] = [{ name: SIGNATURES_MAP, isPublic: true, writes: [[SINGLETON_KEY, value]] }];
    if (coseSignature !== undefined) {
      // As CCF: the COSE_Sign1 bytes as a JSON base64 string, in the same transaction.
      const coseValue = Buffer.from(JSON.stringify(coseSignature.toString("base64")));
      this.store.writeReserved(seqno, COSE_SIGNATURES_MAP, SINGLETON_KEY, coseValue);
      maps.unshift({ name: COSE_SIGNATURES_MAP, isPublic: true, writes: [[SINGLETON_KEY, coseValue]] });
    }
    const writeSet: WriteSet = { seqno, maps };
    this.signatures.add(record);
    this.signaturePending = false;
    this.trace?.mark("signatureProposed", seqno);
    this.proposeEncoded(writeSet, true, ZERO_DIGEST, this.commitEvidence.nonces(this.keyNonce, this.view, seqno, 1), undefined);
    if (this.signatureAgain) {
      // Asked for while this one was pending: sign what came after it (not from inside the
      // encoding loop that may be calling us, which still holds later transactions).
      this.signatureAgain = false;
      this.scheduler.soon(() => { if (this.txSinceSignature > 0) this.emitSignature(); });
    }
  }

  /**
   * Rotates the ledger secret: transactions after `afterSeqno` are encrypted with `raw`.
   * Called right after the rekey transaction commits locally, before any later transaction.
   */
  rekey(afterSeqno: number, raw: Buffer): void {
    assert(afterSeqno === this.lastSeqno, "rekey takes effect right after the transaction that asked for it");
    this.secrets.add(afterSeqno + 1, raw);
    this.encoder?.setSecrets(this.secrets.list());
  }

  /** A ledger secret learnt from the ledger or the join response, used from `fromSeqno` on. */
  addLedgerSecret(fromSeqno: number, raw: Buffer): void {
    if (this.secrets.list().some((v) => v.fromSeqno === fromSeqno)) return;
    this.secrets.add(fromSeqno, raw);
    this.encoder?.setSecrets(this.secrets.list());
  }

  /**
   * The previous services' ledger secrets, recovered from members' shares: they decrypt (and
   * give the commit evidence of) every transaction before this service's first secret.
   */
  restoreEarlierLedgerSecrets(versions: readonly LedgerSecretVersion[]): void {
    this.secrets.addEarlier(versions);
    this.commitEvidence.setSecrets(this.secrets);
    this.encoder?.setSecrets(this.secrets.list());
  }

  /** Raw ledger entry at `seqno` (any, committed or not, that the ledger holds). */
  readLedgerEntry(seqno: number): Promise<Buffer> {
    return this.ledger.read(seqno);
  }

  /** Raw ledger entries first..at most last (at least one; as many as fit in `bytesMax`). */
  readLedgerRange(first: number, last: number, bytesMax: number): Promise<Buffer[]> {
    return this.ledger.readRange(first, last, bytesMax);
  }

  get ledgerSecrets(): LedgerSecretVersion[] {
    return this.secrets.list();
  }

  /** CCF's transaction status, by the one rule every status answer uses (consensus/status.ts). */
  status(view: number, seqno: number): TxStatus {
    return transactionStatus(view, seqno, { lastIndex: this.lastSeqno, commitIndex: this.reportedCommitSeqno, termAt: this.localViewAt });
  }

  private readonly localViewAt = (seqno: number): number | undefined =>
    (seqno === 0 ? 0 : seqno <= this.lastSeqno ? this.views.viewAt(seqno) : undefined);

  /** CCF's JSON receipt for a committed transaction. */
  async receipt(view: number, seqno: number): Promise<CcfReceipt> {
    const { signature, entry, commitEvidence, path } = await this.receiptParts(view, seqno);
    const proof = path.map((step) => ("left" in step ? { left: step.left.toString("hex") } : { right: step.right.toString("hex") }));
    return {
      cert: signature.cert,
      node_id: signature.node,
      signature: signature.sig,
      proof,
      leaf_components: {
        write_set_digest: writeSetDigest(entry.bytes).toString("hex"),
        commit_evidence: commitEvidence,
        claims_digest: entry.claimsDigest.toString("hex"),
      },
    };
  }

  /** An older signature transaction's record, read back from its ledger entry. */
  private async readSignatureRecord(seqno: number): Promise<SignatureRecord> {
    const entry = decodeEntry(await this.ledger.read(seqno));
    for (const map of deserialiseDomain(entry.publicDomain).maps) {
      if (map.name !== SIGNATURES_MAP) continue;
      for (const [, value] of map.writes) {
        if (!value) continue;
        const record = decodeSignature(value);
        if (record.seqno !== seqno || entry.seqno !== seqno) {
          throw new CocoError("LedgerCorrupted", `Ledger entry ${seqno} holds the signature record of seqno ${record.seqno}: a ledger file was changed on disk. Restore this node's ledger from a peer.`, 500);
        }
        return record;
      }
    }
    throw new CocoError("InternalError", `Ledger entry ${seqno} is indexed as a signature transaction but holds no signature record.`, 500);
  }

  /** The path of a leaf the tree flushed: its blocks' leaves come back from the ledger (and the cache). */
  private async flushedPath(index: number, size: number): Promise<ReturnType<MerkleTree["path"]>> {
    const blocks = new Map<number, MerkleTree>();
    for (const block of this.tree.blocksForPath(index, size)) blocks.set(block.blockIndex, await this.blockTree(block));
    return this.tree.pathFromLeaves(index, size, blocks);
  }

  /**
   * CCF 6's COSE receipt for a committed transaction: the COSE signature of the signature
   * transaction that covers it (read back from that transaction's ledger entry, so nothing
   * grows in memory), with the inclusion proof in its unprotected header.
   */
  async coseReceipt(view: number, seqno: number): Promise<Buffer> {
    const { signature, entry, commitEvidence, path } = await this.receiptParts(view, seqno);
    const signatureEntry = decodeEntry(await this.ledger.read(signature.seqno));
    let coseSignature: Buffer | undefined;
    for (const map of deserialiseDomain(signatureEntry.publicDomain).maps) {
      if (map.name !== COSE_SIGNATURES_MAP) continue;
      for (const [, value] of map.writes) if (value) coseSignature = Buffer.from(JSON.parse(value.toString("utf8")) as string, "base64");
    }
    if (coseSignature === undefined) {
      // Signed before COSE signatures (an older ledger) or by a node without the service key.
      throw new CocoError("ResourceNotFound", `No COSE signature available for transaction ${formatTxId(view, seqno)}: signature transaction ${signature.seqno} carries none.`, 404);
    }
    const proof = encodeInclusionProof({ writeSetDigest: writeSetDigest(entry.bytes), commitEvidence, claimsDigest: entry.claimsDigest }, path);
    return buildCoseReceipt(coseSignature, proof);
  }

  /** What both receipt forms need: the covering signature, the entry, its commit evidence and its Merkle path. */
  private async receiptParts(view: number, seqno: number): Promise<{ signature: SignatureRecord; entry: ReturnType<typeof decodeEntry>; commitEvidence: string; path: ProofStep[] }> {
    const status = this.status(view, seqno);
    if (status === "Invalid") {
      throw new CocoError("TransactionInvalid", `Transaction ${formatTxId(view, seqno)} is invalid: it was rolled back and can never be committed.`, 404);
    }
    if (status !== "Committed") {
      throw new CocoError("TransactionPendingOrUnknown",
        `Transaction ${formatTxId(view, seqno)} is ${status.toLowerCase()}: a receipt is available once it is committed.`, 404);
    }
    if (seqno <= this.snapshotBase && this.merkleHistory === "building") {
      throw new CocoError("MerkleHistoryNotReady",
        `Transaction ${formatTxId(view, seqno)} precedes the snapshot this node restarted from (seqno ${this.snapshotBase}); ` +
        "the Merkle tree of those transactions is being rebuilt from its ledger: retry shortly.", 503,
        { headers: { "retry-after": String(MERKLE_HISTORY_RETRY_SECONDS) } });
    }
    if (seqno <= this.snapshotBase && typeof this.merkleHistory === "object") {
      throw new CocoError("TransactionNotInThisNodesHistory",
        `Transaction ${formatTxId(view, seqno)} precedes the snapshot this node restarted from (seqno ${this.snapshotBase}), and this node's ledger ` +
        `before it does not match the snapshot (${this.merkleHistory.failed}): ask another node, and restore this node's ledger from a peer.`, 404);
    }
    if (seqno <= this.snapshotBase) {
      throw new CocoError("TransactionNotInThisNodesHistory",
        `Transaction ${formatTxId(view, seqno)} precedes the snapshot this node started from (seqno ${this.snapshotBase}): ` +
        "it holds no Merkle path for it. Ask a node whose ledger goes back that far.", 404);
    }
    const signatureSeqno = seqno >= this.signatures.exactFrom ? this.signatures.seqnoAbove(seqno) : await this.signatureAboveFromLedger(seqno);
    if (signatureSeqno === undefined || signatureSeqno > this.reportedCommitSeqno) {
      throw new CocoError("TransactionPendingOrUnknown",
        `Transaction ${formatTxId(view, seqno)} is a signature transaction; its receipt is available once a later signature is committed.`, 404);
    }
    this.checkSecretKnown(seqno);
    const signature = this.signatures.record(signatureSeqno) ?? await this.readSignatureRecord(signatureSeqno);
    const treeSize = signature.seqno - 1;
    const entry = decodeEntry(await this.ledger.read(seqno));
    const commitEvidence = this.commitEvidence.evidence(entry.keyNonce, entry.view, seqno);
    if (!sha256(Buffer.from(commitEvidence)).equals(entry.commitEvidenceDigest)) {
      // The ledger entry was written under another commit-evidence derivation (or secret):
      // answer plainly rather than serve a receipt that cannot verify.
      throw new CocoError("InternalError", `Cannot rebuild the commit evidence of ${formatTxId(view, seqno)}: it does not match the digest in its ledger entry.`, 500);
    }
    if (seqno - 1 >= this.tree.flushedIndex) return { signature, entry, commitEvidence, path: this.tree.path(seqno - 1, treeSize) };
    const path = await this.flushedPath(seqno - 1, treeSize);
    // Rebuilt from ledger files, which the host can change: serve it only if it leads to the signed root.
    if (!computeRootFromPath(entryLeaf(entry.bytes), path).equals(Buffer.from(signature.root, "hex"))) {
      this.blockTrees.clear();
      throw new CocoError("LedgerCorrupted",
        `The Merkle path of ${formatTxId(view, seqno)}, rebuilt from the ledger files, does not lead to the root signed at seqno ${signature.seqno}: `
        + "a ledger file before it was changed on disk. Restore this node's ledger from a peer.", 500);
    }
    return { signature, entry, commitEvidence, path };
  }

  /**
   * One committed transaction as its ledger entry holds it, private domain decrypted: what
   * historical queries (src/node/historical.ts) rebuild a read-only store from, as CCF does.
   */
  async readEntry(seqno: number): Promise<{
    view: number; seqno: number; isSignature: boolean; publicDomain: Buffer; privatePlain: Buffer; claimsDigest: Buffer;
  }> {
    if (!Number.isSafeInteger(seqno) || seqno < 1 || seqno > this.reportedCommitSeqno) {
      throw new CocoError("TransactionPendingOrUnknown", `Seqno ${seqno} is not committed on this node (commit seqno ${this.reportedCommitSeqno}).`, 404);
    }
    this.checkSecretKnown(seqno);
    const entry = decodeEntry(await this.ledger.read(seqno));
    assert(entry.seqno === seqno, `ledger read of seqno ${seqno} returned seqno ${entry.seqno}`);
    const privatePlain = entry.privateCiphertext.length > 0 ? decryptPrivate(entry, this.secrets.forSeqno(seqno)) : Buffer.alloc(0);
    return { view: entry.view, seqno, isSignature: entry.isSignature, publicDomain: entry.publicDomain, privatePlain, claimsDigest: entry.claimsDigest };
  }

  /** A recovered service learns its previous services' secrets only from members' recovery shares. */
  private checkSecretKnown(seqno: number): void {
    if (seqno < this.secrets.firstSeqno) {
      throw new CocoError("LedgerSecretsNotRecovered",
        `Transaction seqno ${seqno} was written by a previous service whose ledger secrets are not recovered yet: members submit their recovery shares first.`, 503);
    }
  }

  /** Stops signing, writes a final signature (primary) and flushes the ledger. */
  async close(): Promise<void> {
    this.signatureTimer?.cancel();
    this.drain();
    if (this.primary && this.txSinceSignature > 0) this.emitSignature();
    this.drain();
    this.closed = true;
    await this.encoder?.close();
    while (!this.failure && this.ledger.durableSeqno < this.ledger.lastSeqno) {
      this.emit("durable", await this.ledger.flush());
    }
  }
}
