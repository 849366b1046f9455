// The replication shell: drives the pure Raft state machine (src/consensus) with a clock, the
// transaction engine, the ledger and the node-to-node channels.
//   proposals (primary's entries)  -> raft.propose
//   channel frames                 -> raft.step
//   timer                          -> raft.tick
//   ready(): truncate -> engine.rollback, entries -> apply (backup) + ledger append,
//            hard state -> fsync'd file, commit -> engine.advanceCommit, messages -> channels
// The ledger is written asynchronously (worker thread, group commit). A backup's success
// response promises its entries are durable, so it is held until the flush covering its
// matchIndex completes; the primary counts itself only for entries it has made durable.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { RaftNode, type AppendEntriesResponse, type EntryFetch, type HardState, type LogPrefix, type Message, type Ready, type Role } from "../consensus/index.js";
import { CocoError, RateLimitedLog } from "../util/index.js";
import { consensusEntryOf, type TransactionEngine, type EntrySink, type ReplayedEntry } from "./engine.js";
import { realScheduler, type Scheduler, type TimerHandle } from "./scheduler.js";
import { decodeRaftMessage, encodeRaftMessage } from "./raft-codec.js";

export const FRAME_RAFT = 1;
/** A malformed Raft message is logged at most once per this interval (with the count of the others). */
const MALFORMED_LOG_INTERVAL_MS = 10_000;
export const FRAME_FORWARD_REQUEST = 2;
export const FRAME_FORWARD_RESPONSE = 3;

export interface Transport {
  send(nodeId: string, type: number, payload: Buffer): boolean;
}

export interface ReplicationOptions {
  /** The node started from a snapshot of this committed signature: its log starts after it (snapshots.ts). */
  snapshotBase?: { index: number; term: number; voters: readonly string[] };
  nodeId: string;
  workspace: string;
  /** Voters when the log holds no configuration yet: [self] for a new service, [] for a joiner. */
  bootstrapVoters: readonly string[];
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  maxEntriesPerAppend: number;
  maxInflightAppends: number;
  maxUncommittedEntries: number;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void; error(o: object, msg: string): void; fatal?(o: object, msg: string): void; debug?(o: object, msg: string): void };
  /**
   * Whether Raft may hear from this (authenticated) sender now: the node passes its membership
   * rule (membership.ts), so a retired node cannot bump the view with a huge-term RequestVote or
   * AppendEntries. The check sits here, in the shell, because the pure Raft core knows ids but not
   * who governance trusts. Default: every sender (unit tests of the core's behaviour).
   */
  acceptSender?: (nodeId: string) => boolean;
  /** Clock and timers (default: node's); the simulator passes its own. */
  scheduler?: Scheduler;
  /** Where term and vote live (default: `consensus_state.json` in the workspace, fsync'd). */
  hardStateStore?: HardStateStore;
  /** Uniform in [0, 1) for election timeouts (default Math.random; the simulator seeds it). */
  random?: () => number;
  /**
   * This node lost ledger entries it may have acknowledged (wiped or damaged ledger): it catches
   * up before it votes again (see PersistentState.lostEntries).
   */
  lostEntries?: boolean;
  /** The commit point the ledger recorded before the node stopped (0 if none). */
  commitIndex?: number;
  /**
   * Runs when this node becomes primary, before its first signature of the view: a recovering
   * node writes the recovered service's first transaction there, so that every signature of the
   * new service follows the record of its identity.
   */
  onBecomePrimary?: () => void;
  /**
   * Committed entries kept in memory beyond the newest ones (default: all). Backups behind the
   * window are served from the ledger (ledger reads of at most `bytesMax` each).
   */
  logWindow?: { entriesMax: number; bytesMax: number };
}

/** What the node replayed from its ledger: every entry, or the compact prefix plus the newest ones. */
export type ReplayedLog = readonly ReplayedEntry[] | { readonly prefix: LogPrefix; readonly entries: readonly ReplayedEntry[]; readonly count: number };

/** A fetch for a backup behind the window reads at most this many bytes from the ledger. */
const FETCH_BYTES_MAX = 4 * 1024 * 1024;

/** Term and vote: read at start, written (durably) before any message that depends on them. */
export interface HardStateStore {
  read(): HardState;
  write(state: HardState): void;
}

export function fileHardStateStore(workspace: string): HardStateStore {
  return { read: () => readHardState(workspace), write: (state) => writeHardState(workspace, state) };
}

const HARD_STATE_FILE = "consensus_state.json";

export function readHardState(workspace: string): HardState {
  const path = join(workspace, HARD_STATE_FILE);
  if (!existsSync(path)) return { term: 0, votedFor: undefined };
  const saved = JSON.parse(readFileSync(path, "utf8").trim()) as { term?: number; view?: number; voted_for?: string | null; catch_up_through_view?: number };
  const state = { term: saved.term ?? saved.view ?? 0, votedFor: saved.voted_for ?? undefined };
  return saved.catch_up_through_view === undefined ? state : { ...state, catchUpThroughTerm: saved.catch_up_through_view };
}

/** Size of the hard state file: one sector, so that overwriting it is a single atomic write. */
const HARD_STATE_BYTES = 512;

/**
 * Term and vote are fsync'd before any message that depends on them leaves (Raft's rule). The
 * file is overwritten in place, never replaced: a full disk cannot refuse a write into blocks the
 * file already holds (a new file and a rename would need free space and fail exactly then), and
 * a record within one 512-byte sector is written whole or not at all.
 */
function writeHardState(workspace: string, state: HardState): void {
  const path = join(workspace, HARD_STATE_FILE);
  const json = JSON.stringify({
    term: state.term, voted_for: state.votedFor ?? null,
    ...(state.catchUpThroughTerm !== undefined ? { catch_up_through_view: state.catchUpThroughTerm } : {}),
  });
  if (json.length >= HARD_STATE_BYTES) throw new Error(`hard state record of ${json.length} bytes exceeds ${HARD_STATE_BYTES}`);
  const record = Buffer.alloc(HARD_STATE_BYTES, 0x20);
  record.write(json, 0, "utf8");
  record[HARD_STATE_BYTES - 1] = 0x0a;
  const fd = openSync(path, existsSync(path) ? "r+" : "w", 0o644);
  try {
    writeSync(fd, record, 0, HARD_STATE_BYTES, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** One debug line per sender per this many ms about its dropped messages: a retired node may keep trying. */
export const DROPPED_SENDER_LOG_INTERVAL_MS = 10_000;
/** Senders remembered for rate limiting; beyond it the oldest is forgotten (and may log again). */
const DROPPED_SENDERS_MAX = 64;

/** Rate-limited log of Raft messages dropped because their sender is outside the configuration. */
class DroppedMessageLog {
  private readonly bySender = new Map<string, { loggedAtMs: number; dropped: number }>();
  /** Messages dropped since the process started (all senders). */
  total = 0;

  note(from: string, type: string, term: number, logger: ReplicationOptions["logger"], nowMs: number): void {
    this.total += 1;
    const entry = this.bySender.get(from);
    if (entry !== undefined && nowMs - entry.loggedAtMs < DROPPED_SENDER_LOG_INTERVAL_MS) {
      entry.dropped += 1;
      return;
    }
    const droppedSinceLastLine = entry?.dropped ?? 0;
    this.bySender.delete(from);
    if (this.bySender.size >= DROPPED_SENDERS_MAX) this.bySender.delete(this.bySender.keys().next().value!);
    this.bySender.set(from, { loggedAtMs: nowMs, dropped: 0 });
    logger.debug?.({ from, type, term, droppedSinceLastLine }, "dropped a Raft message from a node outside the configuration (not trusted, or retired)");
  }
}

export class Replicator implements EntrySink {
  readonly raft: RaftNode<Buffer>;
  private transport: Transport | undefined;
  /** Success responses waiting for their matchIndex to be durable. */
  private held: AppendEntriesResponse[] = [];
  private durableSeqno = 0;
  private timer: TimerHandle | undefined;
  private readonly scheduler: Scheduler;
  private readonly hardStateStore: HardStateStore;
  private processScheduled = false;
  private inReady = false;
  private stopped = false;
  private readonly commitListeners: ((seqno: number) => void)[] = [];
  private readonly snapshotRequiredListeners: ((required: { primary: string; index: number }) => void)[] = [];
  private readonly roleListeners: ((change: { role: Role; term: number; primaryId: string | undefined }) => void)[] = [];
  private readonly droppedFromOutsiders = new DroppedMessageLog();
  private readonly malformed: RateLimitedLog;

  constructor(private readonly engine: TransactionEngine, replayed: ReplayedLog, private readonly options: ReplicationOptions) {
    this.scheduler = options.scheduler ?? realScheduler;
    this.hardStateStore = options.hardStateStore ?? fileHardStateStore(options.workspace);
    this.malformed = new RateLimitedLog(options.logger, MALFORMED_LOG_INTERVAL_MS, () => this.scheduler.now());
    const log = "prefix" in replayed ? replayed : { entries: replayed as readonly ReplayedEntry[], count: (replayed as readonly ReplayedEntry[]).length };
    this.raft = new RaftNode<Buffer>(options.nodeId, options.bootstrapVoters, {
      hardState: this.hardStateStore.read(), entries: log.entries, ...("prefix" in log ? { prefix: log.prefix } : {}),
      lostEntries: options.lostEntries === true, commitIndex: options.lostEntries ? 0 : options.commitIndex ?? 0,
      ...(options.snapshotBase !== undefined ? { base: options.snapshotBase } : {}),
    }, {
      ...(options.logWindow !== undefined
        ? { logWindow: { ...options.logWindow, payloadBytes: (payload: unknown) => (payload as Buffer).length } } : {}),
      electionTicks: options.electionTicks,
      heartbeatTicks: options.heartbeatTicks,
      maxEntriesPerAppend: options.maxEntriesPerAppend,
      maxInflightAppends: options.maxInflightAppends,
      maxUncommittedEntries: options.maxUncommittedEntries,
      random: options.random ?? Math.random,
    });
    // A node that lost entries records that it withholds its vote before anything else happens:
    // a crash before its first Ready would otherwise forget it, and it could vote for a candidate
    // lacking entries it had acknowledged (shell simulator seed 149467).
    if (options.lostEntries === true) this.hardStateStore.write(this.raft.hardState());
    // A streamed replay counts seqnos; an array of entries starts after the snapshot base, if any.
    this.durableSeqno = "prefix" in replayed ? log.count : (options.snapshotBase?.index ?? 0) + log.count;
    // Restarted with a recorded commit point: what was Committed before the restart still is.
    if (this.raft.committedIndex > 0) engine.advanceCommit(this.raft.committedIndex);
    engine.setSink(this);
    engine.setCommitForecast((durableSeqno) => this.raft.commitIndexIfPersisted(durableSeqno));
    engine.on("durable", (seqno: number) => this.onDurable(seqno));
    // A node whose ledger failed takes no further part in consensus: no acknowledgement, vote or
    // campaign (it stayed a voter and won elections it could not serve, in the fault tests).
    engine.on("failure", (error: Error) => this.halt(error));
    engine.on("diskFull", () => {
      this.raft.setMayLead(false);
      // A primary that cannot persist cannot commit: hand over to the most up-to-date backup.
      if (this.raft.currentRole === "Primary" && !this.stopped && !this.inReady) {
        const refused = this.raft.transferLeadership();
        if (refused) this.options.logger.warn({ reason: refused.message }, "disk full: could not hand leadership over");
        this.scheduleProcess();
      }
    });
    engine.on("diskSpaceAvailable", () => this.raft.setMayLead(true));
  }

  get role(): Role { return this.raft.currentRole; }
  get term(): number { return this.raft.currentTerm; }
  get primaryId(): string | undefined { return this.raft.leader; }
  get configuration(): readonly string[] { return this.raft.configuration; }
  get committedConfiguration(): readonly string[] { return this.raft.committedConfiguration; }
  /** Raft messages dropped because their sender was outside the configuration (acceptSender). */
  get droppedOutsiderMessages(): number { return this.droppedFromOutsiders.total; }
  get committedIndex(): number { return this.raft.committedIndex; }

  onCommit(listener: (seqno: number) => void): void { this.commitListeners.push(listener); }
  /** The primary cannot catch this backup up: it must install a snapshot at or after `index` (snapshot-install.ts). */
  onSnapshotRequired(listener: (required: { primary: string; index: number }) => void): void { this.snapshotRequiredListeners.push(listener); }

  /** Called after every consensus role change (role, view or primary), in order. */
  onRoleChange(listener: (change: { role: Role; term: number; primaryId: string | undefined }) => void): void { this.roleListeners.push(listener); }

  setTransport(transport: Transport): void { this.transport = transport; }

  start(): void {
    this.timer = this.scheduler.every(this.options.tickMs, () => {
      if (this.stopped) return;
      this.raft.tick();
      this.process();
    });
    // A lone voter need not wait for an election timeout.
    const voters = this.raft.configuration;
    if (voters.length === 1 && voters[0] === this.options.nodeId) {
      this.raft.campaignNow();
      this.process();
    }
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  /** A frame from the node-to-node channel (from = the authenticated peer). */
  receive(from: string, payload: Buffer): void {
    if (this.stopped) return;
    let message: Message<Buffer>;
    try {
      message = decodeRaftMessage(payload, from);
    } catch (error) {
      // Rate-limited: a peer on another version (a message type this node does not know) or a
      // broken one may send this with every heartbeat.
      this.malformed.warn({ from, err: (error as Error).message }, "refused a malformed Raft message");
      return;
    }
    if (message.to !== this.options.nodeId) return;
    if (this.options.acceptSender !== undefined && !this.options.acceptSender(from)) {
      this.droppedFromOutsiders.note(from, message.type, message.term, this.options.logger, this.scheduler.now());
      return;
    }
    this.raft.step(message);
    this.process();
  }

  /** EntrySink: the engine produced an entry (primary only). */
  propose(entry: Buffer, seqno: number, isSignature: boolean, config: readonly string[] | undefined): void {
    const proposed = config !== undefined ? this.raft.proposeReconfiguration(config, entry) : this.raft.propose(entry, isSignature);
    if (proposed instanceof Error || proposed.index !== seqno) {
      // The engine already applied this transaction: continuing would split KV state from the log.
      const reason = proposed instanceof Error ? proposed.message : `consensus index ${proposed.index} != seqno ${seqno}`;
      this.options.logger.error({ seqno, reason }, "consensus refused an entry the engine produced; stopping");
      throw new CocoError("InternalError", `Consensus refused transaction ${seqno}: ${reason}`, 500);
    }
    this.scheduleProcess();
  }

  /** EntrySink: no new writes while leadership is being handed over. */
  acceptsWrites(): boolean { return !this.raft.transferring; }

  /** Whether a reconfiguration would be accepted now. */
  canReconfigure(): boolean { return this.raft.canReconfigure(); }

  private scheduleProcess(): void {
    if (this.processScheduled || this.inReady) return;
    this.processScheduled = true;
    queueMicrotask(() => {
      this.processScheduled = false;
      if (!this.stopped) this.process();
    });
  }

  private onDurable(seqno: number): void {
    // A stopped shell (a failed apply left its Ready unadvanced) tells consensus nothing more,
    // and sends no acknowledgement for what it refused.
    if (this.stopped) return;
    this.durableSeqno = seqno;
    const term = this.raft.termAt(seqno);
    if (term !== undefined && !this.inReady) this.raft.persisted(term, seqno);
    if (this.held.length > 0) {
      // Of the acknowledgements this flush releases, only the highest per primary and term is
      // sent: the primary's progress is monotonic, so the lower ones would change nothing there
      // (one message per flush instead of one per AppendEntries).
      const latest = new Map<string, AppendEntriesResponse>();
      this.held = this.held.filter((m) => {
        if (m.matchIndex > seqno) return true;
        const key = `${m.to}\u0000${m.term}`;
        const previous = latest.get(key);
        if (previous === undefined || m.matchIndex >= previous.matchIndex) latest.set(key, m);
        return false;
      });
      for (const m of latest.values()) this.send(m);
    }
    if (!this.stopped) this.process();
  }

  /** Handles Ready batches until consensus has nothing more to say. */
  process(): void {
    if (this.inReady) return;
    for (let round = 0; round < 16; round++) {
      this.inReady = true;
      let ready: Ready<Buffer>;
      try {
        ready = this.raft.ready();
        // Stepping down: first drop what this node committed locally but never proposed, so
        // the engine's log ends where consensus's does before the new primary's entries apply.
        if (ready.roleChange && ready.roleChange.role !== "Primary" && this.engine.isPrimary) this.engine.becomeBackup(ready.roleChange.term);
        this.handle(ready);
      } catch (error) {
        this.inReady = false;
        this.crash(error as Error);
        return;
      }
      this.raft.advance(ready, { durable: false });
      this.inReady = false;
      if (ready.roleChange) this.changeRole(ready.roleChange.role, ready.roleChange.term, ready.roleChange.leaderId);
      const idle = ready.messages.length === 0 && ready.entriesToPersist.length === 0 && ready.truncateAfter === undefined
        && !ready.hardState && !ready.roleChange;
      if (idle) break;
    }
    // Entries may have become durable while the Ready was outstanding.
    const term = this.raft.termAt(this.durableSeqno);
    if (term !== undefined && this.durableSeqno > 0) this.raft.persisted(term, this.durableSeqno);
    const committed = Math.min(this.raft.committedIndex, this.engine.lastSeqnoLocal);
    if (committed > this.engine.consensusCommitSeqno) {
      this.engine.advanceCommit(committed);
      for (const listener of this.commitListeners) listener(committed);
      // Committed entries beyond the window leave memory now that every listener has seen them.
      this.raft.compactLog();
    }
  }

  /**
   * A backup needs entries below the in-memory window: read them from the ledger (on the
   * ledger's worker thread, off this loop) and hand them to consensus, which sends them if the
   * backup still waits for them.
   */
  private fetch(request: EntryFetch): void {
    this.engine.readLedgerRange(request.fromIndex, request.toIndex, FETCH_BYTES_MAX).then(
      (entries) => {
        if (this.stopped) return;
        this.raft.appendFetched(request.peer, request.fromIndex, entries.map(consensusEntryOf));
        this.process();
      },
      (error: unknown) => {
        if (this.stopped) return;
        this.options.logger.warn({ peer: request.peer, from: request.fromIndex, to: request.toIndex, err: (error as Error).message },
          "could not read ledger entries for a backup behind the in-memory window; retrying at the next heartbeat");
        this.raft.fetchFailed(request.peer, request.fromIndex);
      },
    );
  }

  private handle(ready: Ready<Buffer>): void {
    if (ready.truncateAfter !== undefined) this.engine.rollback(ready.truncateAfter);
    for (const entry of ready.entriesToPersist) {
      if (entry.index > this.engine.lastSeqnoLocal) this.engine.applyReplicated(entry.payload, entry.index <= ready.committedIndex);
      this.engine.persist(entry.payload, entry.index, entry.isSignature);
    }
    // Rolled-back entries are no longer durable (the ledger lowers its own durable seqno too).
    if (ready.truncateAfter !== undefined) this.durableSeqno = Math.min(this.durableSeqno, ready.truncateAfter);
    if (ready.hardState) this.hardStateStore.write(ready.hardState);
    for (const request of ready.fetches ?? []) this.fetch(request);
    if (ready.snapshotRequired !== undefined) for (const listener of this.snapshotRequiredListeners) listener(ready.snapshotRequired);
    for (const message of ready.messages) {
      if (message.type === "AppendEntriesResponse" && message.success && message.matchIndex > this.durableSeqno) {
        this.held.push(message);
      } else {
        this.send(message);
      }
    }
  }

  private send(message: Message<Buffer>): void {
    if (!this.transport) return;
    this.transport.send(message.to, FRAME_RAFT, encodeRaftMessage(message));
  }

  private changeRole(role: Role, term: number, leader: string | undefined): void {
    this.options.logger.info({ role, term, primary: leader }, "consensus role");
    if (role === "Primary") {
      this.engine.becomePrimary(term);
      this.options.onBecomePrimary?.();
      // CCF's rule: a new primary signs at once, so its view has a commit point.
      if (this.engine.lastSeqnoLocal > 0) this.engine.emitSignature();
    } else {
      this.engine.becomeBackup(term);
      this.held = this.held.filter((m) => m.term >= term);
    }
    for (const listener of this.roleListeners) listener({ role, term, primaryId: leader });
  }

  private crash(error: Error): void {
    this.halt(error);
    this.engine.emit("failure", error);
  }

  private halted = false;

  private halt(error: Error): void {
    if (this.halted) return;
    this.halted = true;
    this.stopped = true;
    this.timer?.cancel();
    this.options.logger.error({ err: error }, "this node stops taking part in consensus");
  }
}
