// The data that flows in and out of the consensus state machine: log entries, messages
// between nodes, the state a node must persist, and the Ready batch its shell acts on.
// Everything here is plain data so the shell can frame it however it likes.

import type { LogPrefix, LogWindow } from "./log.js";

export type NodeId = string;

/** One ledger transaction as consensus sees it. `term` is CCF's view, `index` its seqno. */
export interface Entry<Payload = unknown> {
  readonly term: number;
  readonly index: number;
  /** Only signature transactions can become commit points; each commits everything before it. */
  readonly isSignature: boolean;
  /** Present on reconfiguration entries: the full set of voters from this entry on. */
  readonly config?: readonly NodeId[];
  /** Opaque to consensus: the shell's serialised ledger entry. Treated as immutable. */
  readonly payload: Payload;
}

/** What a node must persist before any message of the same Ready batch leaves it. */
export interface HardState {
  readonly term: number;
  readonly votedFor: NodeId | undefined;
  /**
   * Set while this node, having lost log entries, may not vote: it votes again once it has seen
   * an entry of a term above this one committed. Persisted, so a restart mid-catch-up keeps it.
   */
  readonly catchUpThroughTerm?: number;
}

/** What a node restarts from: its persisted log and hard state (nothing else survives). */
export interface PersistentState<Payload = unknown> {
  readonly hardState: HardState;
  /** The log's entries with payloads: the whole log, or those after `prefix`. */
  readonly entries: readonly Entry<Payload>[];
  /**
   * The part of the log before `entries` that the shell's storage holds and memory need not:
   * terms, signatures and reconfigurations only (a ledger replayed chunk by chunk).
   */
  readonly prefix?: LogPrefix;
  /**
   * The node lost log entries it may have acknowledged (its ledger was wiped or cut below what
   * it held): it neither votes nor campaigns until it has seen an entry of a newer term than
   * `hardState.term` committed. By then its log holds every entry committed before the loss
   * (leader completeness), so its vote can no longer help elect a primary that lacks one.
   */
  readonly lostEntries?: boolean;
  /**
   * A commit index the node recorded durably before it stopped (its ledger's commit point).
   * Committed entries are durable on a majority, so starting from it is safe; it spares a
   * restarted node from reporting Pending what it had reported Committed.
   */
  readonly commitIndex?: number;
  /** The log starts after this committed signature: the node started from a snapshot of it. */
  readonly base?: { readonly index: number; readonly term: number; readonly voters: readonly NodeId[] };
}

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

export interface AppendEntries<Payload = unknown> extends MessageBase {
  readonly type: "AppendEntries";
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry<Payload>[];
  readonly leaderCommit: number;
}

export interface AppendEntriesResponse extends MessageBase {
  readonly type: "AppendEntriesResponse";
  readonly success: boolean;
  /**
   * On success: the last index known to match the primary's log (prevIndex + entries).
   * On rejection: the backup's last index, so a primary learns that a backup lost entries it
   * had acknowledged (a wiped ledger) and replicates them again.
   */
  readonly matchIndex: number;
  /** On rejection: the prevIndex that did not match, so stale rejections can be ignored. */
  readonly rejectedIndex: number;
  /** On rejection: the primary may resume probing right after this index. */
  readonly hintIndex: number;
  /**
   * The backup lost entries and withholds its vote until an entry of a view above this one
   * commits (PersistentState.lostEntries).
   */
  readonly withholdingVoteThroughTerm?: number;
}

export interface RequestVote extends MessageBase {
  readonly type: "RequestVote";
  /** Pre-vote asks "would you vote for me?" at term + 1 without anyone changing term. */
  readonly preVote: boolean;
  /** Set when the current primary asked for this election (TimeoutNow): bypasses the lease. */
  readonly leadershipTransfer: boolean;
  /** CCF compares the last committable (signature) transaction, not the last entry. */
  readonly lastSignatureIndex: number;
  readonly lastSignatureTerm: number;
}

export interface RequestVoteResponse extends MessageBase {
  readonly type: "RequestVoteResponse";
  readonly preVote: boolean;
  readonly granted: boolean;
}

/** Sent by a primary handing over leadership: the receiver campaigns at once. */
export interface TimeoutNow extends MessageBase {
  readonly type: "TimeoutNow";
}

/**
 * Sent by a primary, with its heartbeats, to a backup it cannot catch up: the backup needs
 * entries before `snapshotIndex + 1`, where the primary's log starts (it started from a snapshot
 * at `snapshotIndex`). Raft's InstallSnapshot, except that the snapshot itself does not travel
 * in consensus: the backup's shell fetches the primary's newest committed snapshot (at or after
 * `snapshotIndex`), verifies it against the service identity and restarts from it.
 */
export interface InstallSnapshot extends MessageBase {
  readonly type: "InstallSnapshot";
  readonly snapshotIndex: number;
}

export type Message<Payload = unknown> =
  | AppendEntries<Payload>
  | AppendEntriesResponse
  | RequestVote
  | RequestVoteResponse
  | TimeoutNow
  | InstallSnapshot;

export type Role = "Backup" | "PreCandidate" | "Candidate" | "Primary";

export interface RoleChange {
  readonly role: Role;
  readonly term: number;
  readonly leaderId: NodeId | undefined;
}

/**
 * One batch of work for the shell. Order matters and is the contract:
 * 1. drop persisted entries with index > `truncateAfter` (if set),
 * 2. append `entriesToPersist` (they start right after the retained log),
 * 3. persist `hardState` (if set),
 * 4. only then send `messages` (a follower's acks promise the entries are durable),
 * 5. call `advance(ready)` before the next tick, step or propose.
 * `committedIndex` is always a signature's index (or 0): every entry up to it is committed.
 */
export interface Ready<Payload = unknown> {
  readonly messages: Message<Payload>[];
  /**
   * Entries a backup needs that the log no longer holds in memory (below its window): the shell
   * reads them from its storage and hands them back with `appendFetched` (or `fetchFailed`).
   */
  readonly fetches?: readonly EntryFetch[];
  readonly entriesToPersist: readonly Entry<Payload>[];
  readonly truncateAfter?: number;
  readonly hardState?: HardState;
  readonly committedIndex: number;
  readonly roleChange?: RoleChange;
  /**
   * The primary cannot catch this backup up (InstallSnapshot): the shell installs a committed
   * snapshot at or after `index`, fetched from `primary`. Repeated with the primary's heartbeats
   * while the backup stays behind; the shell decides how often to act on it.
   */
  readonly snapshotRequired?: { readonly primary: NodeId; readonly index: number };
}

/** A request to the shell: read entries fromIndex..toIndex from storage for `peer`. */
export interface EntryFetch {
  readonly peer: NodeId;
  readonly fromIndex: number;
  readonly toIndex: number;
}

export interface RaftOptions {
  /**
   * Committed entries beyond this window lose their payload in memory (the shell's storage
   * keeps them and `fetches` asks for them). Default: no limit (the whole log stays).
   */
  readonly logWindow?: LogWindow;
  /** Ticks without hearing from a primary before a backup campaigns (randomised in [n, 2n)). */
  readonly electionTicks: number;
  /** Ticks between a primary's heartbeats; must be well below electionTicks. */
  readonly heartbeatTicks: number;
  /** Upper bound on entries in one AppendEntries message. */
  readonly maxEntriesPerAppend: number;
  /** Upper bound on unacknowledged AppendEntries in flight to one backup (pipelining window). */
  readonly maxInflightAppends: number;
  /** Uniform in [0, 1): injected so the state machine stays deterministic. */
  readonly random: () => number;
  /** Proposals are refused while this many entries are uncommitted (CCF: max_uncommitted_tx_count). Default 10,000. */
  readonly maxUncommittedEntries?: number;
  /** Default true: backups ignore votes while they hear from a primary; isolated primaries step down. */
  readonly checkQuorum?: boolean;
  /** Default true: campaign only after a majority says it would vote for us. */
  readonly preVote?: boolean;
  /** For tests of the simulator's checker only: deliberately broken behaviours. */
  readonly unsafe?: {
    /** Commit a signature as soon as the primary alone has persisted it. */
    readonly commitWithoutQuorum?: boolean;
    /** Commit a majority-replicated signature of an earlier term (Raft's "figure 8" bug). */
    readonly commitEarlierTermSignatures?: boolean;
  };
}

export type TransactionStatus = "Committed" | "Invalid" | "Pending" | "Unknown";
