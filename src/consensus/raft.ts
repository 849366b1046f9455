// Raft with CCF's rules as a pure, deterministic state machine. Inputs: tick(), step(message),
// propose(...). Output: ready() batches for the shell to persist and send. No clock, socket,
// file or Math.random in here, so a seeded simulator can replay any schedule exactly.

import { ConsensusError, invariant } from "./errors.js";
import { RaftLog, type TxId } from "./log.js";
import { Progress } from "./progress.js";
import { transactionStatus } from "./status.js";
import type {
  AppendEntries, AppendEntriesResponse, Entry, EntryFetch, HardState, InstallSnapshot, Message, NodeId, PersistentState,
  RaftOptions, Ready, RequestVote, RequestVoteResponse, Role, RoleChange, TransactionStatus,
} from "./types.js";

export interface Proposed {
  readonly term: number;
  readonly index: number;
}

export class RaftNode<Payload = unknown> {
  private readonly log: RaftLog<Payload>;
  private readonly options: RaftOptions;
  private term = 0;
  private votedFor: NodeId | undefined;
  private role: Role = "Backup";
  private leaderId: NodeId | undefined;
  private commitIndex = 0;
  private voters: readonly NodeId[];
  private configIndex = 0;
  private electionElapsed = 0;
  private electionTimeout = 0;
  private heartbeatElapsed = 0;
  private checkQuorumElapsed = 0;
  private readonly progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();
  private transfer: { target: NodeId; elapsed: number; sent: boolean } | undefined;
  private outbox: Message<Payload>[] = [];
  private fetches: EntryFetch[] = [];
  /** Set by an InstallSnapshot from this backup's primary; handed out with the next Ready. */
  private snapshotRequired: { primary: NodeId; index: number } | undefined;
  private hardStateDirty = false;
  private reportedRole: RoleChange;
  private readyOutstanding = false;
  /** Set while a node that lost entries must not vote: the term its hard state held then. */
  private votingWithheldThroughTerm: number | undefined;

  constructor(
    readonly id: NodeId,
    private readonly bootstrapVoters: readonly NodeId[],
    persisted: PersistentState<Payload> | undefined,
    options: RaftOptions,
  ) {
    invariant(options.heartbeatTicks > 0 && options.heartbeatTicks < options.electionTicks, "heartbeatTicks must be in (0, electionTicks)");
    invariant(options.maxEntriesPerAppend > 0 && options.maxInflightAppends > 0, "append limits must be positive");
    this.options = options;
    this.log = new RaftLog(persisted?.entries ?? [], persisted?.prefix, options.logWindow, persisted?.base);
    this.term = persisted?.hardState.term ?? 0;
    this.votedFor = persisted?.hardState.votedFor;
    this.votingWithheldThroughTerm = persisted?.hardState.catchUpThroughTerm;
    // Only a signature is a commit point; the record can never be above what the log holds.
    this.commitIndex = this.log.signatureAtOrBefore(Math.min(persisted?.commitIndex ?? 0, this.log.lastIndex()));
    if (persisted?.lostEntries) {
      this.votingWithheldThroughTerm = Math.max(this.votingWithheldThroughTerm ?? 0, this.term);
      this.hardStateDirty = true;
    }
    this.voters = bootstrapVoters;
    this.refreshConfig();
    this.resetElectionTimeout();
    this.reportedRole = { role: this.role, term: this.term, leaderId: undefined };
  }

  // ---- read-only views -------------------------------------------------------------------

  get currentTerm(): number { return this.term; }
  get currentRole(): Role { return this.role; }
  get leader(): NodeId | undefined { return this.leaderId; }
  get committedIndex(): number { return this.commitIndex; }
  get lastIndex(): number { return this.log.lastIndex(); }
  get configuration(): readonly NodeId[] { return this.voters; }
  /**
   * The voters as of the commit point: a node removed by a reconfiguration that has not
   * committed yet is still one of them (the shell keeps talking to it until the removal commits).
   */
  get committedConfiguration(): readonly NodeId[] { return this.log.configAt(this.commitIndex)?.voters ?? this.bootstrapVoters; }
  get isVoter(): boolean { return this.voters.includes(this.id); }

  /**
   * Who elects: the configuration as of this node's last signature. A new primary rolls back
   * everything after its last signature (CCF), reconfigurations included, so it must be elected
   * by the configuration it will have once primary; counting an unsigned reconfiguration could
   * elect a node that the rollback then removes from the voters, leaving no one able to lead
   * (found by the shell simulator). Single-node steps keep every two adjacent configurations'
   * majorities overlapping, so either may elect.
   */
  private electionVoters(): readonly NodeId[] {
    return this.log.configAt(this.log.lastSignature().index)?.voters ?? this.bootstrapVoters;
  }

  private campaignVoters: readonly NodeId[] = [];
  /**
   * The shell can keep no more entries for now (its disk is full): it neither campaigns nor
   * accepts leadership until allowed again. Votes are still granted: a vote costs no log space.
   */
  setMayLead(allowed: boolean): void { this.mayLead = allowed; }
  private mayLead = true;

  /** A primary handing leadership over: its shell should take no new writes. */
  get transferring(): boolean { return this.transfer !== undefined; }
  /** False while this node, having lost entries, waits to catch up before it votes again. */
  get mayVote(): boolean { return this.votingWithheldThroughTerm === undefined; }
  get lastSignature(): TxId { return this.log.lastSignature(); }
  entryAt(index: number): Entry<Payload> | undefined { return this.log.entry(index); }

  /** CCF's transaction status as this node knows it. */
  txStatus(term: number, index: number): TransactionStatus {
    return transactionStatus(term, index, { lastIndex: this.log.lastIndex(), commitIndex: this.commitIndex, termAt: (i) => this.log.term(i) });
  }

  // ---- inputs ---------------------------------------------------------------------------

  tick(): void {
    this.assertNoReadyOutstanding();
    if (this.role === "Primary") this.tickPrimary();
    else this.tickElection();
  }

  /** The primary appends a transaction from its shell; signatures are the only commit points. */
  propose(payload: Payload, isSignature: boolean): Proposed | ConsensusError {
    this.assertNoReadyOutstanding();
    const refusal = this.refuseProposal(isSignature);
    if (refusal) return refusal;
    return this.appendOwn({ isSignature, payload });
  }

  /** Proposes a new voter set differing from the current one by exactly one node. */
  proposeReconfiguration(voters: readonly NodeId[], payload: Payload): Proposed | ConsensusError {
    this.assertNoReadyOutstanding();
    const refusal = this.refuseProposal(false);
    if (refusal) return refusal;
    const next = [...new Set(voters)].sort();
    const added = next.filter((v) => !this.voters.includes(v));
    const removed = this.voters.filter((v) => !next.includes(v));
    if (added.length + removed.length !== 1 || next.length === 0) {
      return new ConsensusError("InvalidConfiguration", `a reconfiguration must add or remove exactly one node (adds ${added.length}, removes ${removed.length}); split it into single-node steps`);
    }
    if (this.configIndex > this.commitIndex) {
      return new ConsensusError("ReconfigurationPending", `the reconfiguration at ${this.configIndex} is not committed yet; retry once it is`);
    }
    if (this.log.term(this.commitIndex) !== this.term) {
      return new ConsensusError("ReconfigurationNotReady", "this primary has not committed a signature in its term yet; retry after its first signature commits");
    }
    const proposed = this.appendOwn({ isSignature: false, payload, config: next });
    this.refreshConfig();
    return proposed;
  }

  /** Asks the primary to hand leadership to `target` (default: the most up-to-date voter). */
  transferLeadership(target?: NodeId): ConsensusError | undefined {
    this.assertNoReadyOutstanding();
    if (this.role !== "Primary") return new ConsensusError("NotPrimary", "only the primary can transfer leadership", this.leaderId);
    if (target !== undefined && (!this.progress.has(target) || !this.voters.includes(target))) {
      return new ConsensusError("InvalidConfiguration", `${target} is not a voting backup`);
    }
    this.startTransfer(target);
    return undefined;
  }

  step(message: Message<Payload>): void {
    this.assertNoReadyOutstanding();
    invariant(message.to === this.id, () => `message for ${message.to} delivered to ${this.id}`);
    if (!this.acceptTerm(message)) return;
    switch (message.type) {
      case "AppendEntries": return this.onAppendEntries(message);
      case "AppendEntriesResponse": return this.onAppendEntriesResponse(message);
      case "RequestVote": return this.onRequestVote(message);
      case "RequestVoteResponse": return this.onRequestVoteResponse(message);
      case "TimeoutNow": return this.onTimeoutNow();
      case "InstallSnapshot": return this.onInstallSnapshot(message);
    }
  }

  // ---- outputs --------------------------------------------------------------------------

  ready(): Ready<Payload> {
    this.assertNoReadyOutstanding();
    if (this.role === "Primary") {
      this.flushReplication();
      this.announceCommit();
    }
    const { truncateAfter, entries } = this.log.unstable();
    const roleChange = this.takeRoleChange();
    const ready: Ready<Payload> = {
      messages: this.outbox,
      ...(this.fetches.length > 0 ? { fetches: this.fetches } : {}),
      entriesToPersist: entries,
      committedIndex: this.commitIndex,
      ...(truncateAfter !== undefined ? { truncateAfter } : {}),
      ...(this.hardStateDirty ? { hardState: this.hardState() } : {}),
      ...(roleChange ? { roleChange } : {}),
      ...(this.snapshotRequired !== undefined ? { snapshotRequired: this.snapshotRequired } : {}),
    };
    this.outbox = [];
    this.fetches = [];
    this.snapshotRequired = undefined;
    this.readyOutstanding = true;
    return ready;
  }

  /**
   * The shell has handled everything in `ready`. By default its entries are durable too; a
   * shell with asynchronous storage passes `{ durable: false }` and reports durability later
   * with `persisted()` (it must then hold back any AppendEntriesResponse whose matchIndex is
   * not durable yet: see the Ready contract).
   */
  advance(ready: Ready<Payload>, options: { durable?: boolean } = {}): void {
    invariant(this.readyOutstanding, "advance() without a matching ready()");
    this.readyOutstanding = false;
    const entries = ready.entriesToPersist;
    const last = entries.length > 0 ? entries[entries.length - 1]!.index : ready.truncateAfter ?? this.log.unstableFrom - 1;
    this.log.markStable(last, options.durable !== false);
    if (ready.hardState) this.hardStateDirty = false;
    if (this.role === "Primary") this.maybeCommit();
  }

  /** Asynchronous storage: the entry (term, index) and all before it are durable now. */
  persisted(term: number, index: number): void {
    this.assertNoReadyOutstanding();
    if (this.log.markDurable(term, index) && this.role === "Primary") this.maybeCommit();
  }

  /**
   * Drops the payloads of committed, persisted entries beyond the log window (options.logWindow).
   * The shell calls it once it has acted on a commit (its commit listeners may still read entries).
   */
  compactLog(): void {
    this.assertNoReadyOutstanding();
    this.log.compact(Math.min(this.commitIndex, this.log.persistedIndex()));
  }

  /** The log's in-memory window: first index held with its payload minus one, entries and payload bytes held. */
  get logWindowState(): { compactedIndex: number; entries: number; payloadBytes: number } {
    return { compactedIndex: this.log.compactedIndex, entries: this.log.entriesInMemory, payloadBytes: this.log.payloadBytesInMemory };
  }

  /**
   * The shell read the entries a fetch asked for (Ready.fetches): they go to the backup if its
   * progress still waits for them; otherwise they are dropped and the next send decides anew.
   */
  appendFetched(peer: NodeId, fromIndex: number, entries: readonly Entry<Payload>[]): void {
    this.assertNoReadyOutstanding();
    const pr = this.role === "Primary" ? this.progress.get(peer) : undefined;
    if (pr === undefined || pr.fetching !== fromIndex) return;
    pr.fetching = undefined;
    if (pr.nextIndex !== fromIndex || !pr.canSend(this.options.maxInflightAppends) || entries.length === 0) return;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      // Storage rolled back and rewrote meanwhile: only entries of this log may be sent.
      if (entry.index !== fromIndex + i || this.log.term(entry.index) !== entry.term) return;
    }
    this.sendEntries(peer, pr, [...entries.slice(0, this.options.maxEntriesPerAppend)]);
  }

  /** The shell could not read a fetch's entries: a later heartbeat asks again. */
  fetchFailed(peer: NodeId, fromIndex: number): void {
    this.assertNoReadyOutstanding();
    const pr = this.progress.get(peer);
    if (pr !== undefined && pr.fetching === fromIndex) pr.fetching = undefined;
  }

  /** Starts an election at once (a single-voter service need not wait for a timeout). */
  campaignNow(): void {
    this.assertNoReadyOutstanding();
    if (this.role !== "Primary" && this.electionVoters().includes(this.id)) this.campaign(this.options.preVote !== false, false);
  }

  /** Whether proposeReconfiguration would be accepted now (so the shell can skip building one). */
  canReconfigure(): boolean {
    return this.role === "Primary" && this.transfer === undefined && this.configIndex <= this.commitIndex
      && this.log.term(this.commitIndex) === this.term;
  }

  /** Term of the entry at `index` in this node's log (0 for index 0), if it holds it. */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }

  hardState(): HardState {
    const withheld = this.votingWithheldThroughTerm;
    return withheld === undefined ? { term: this.term, votedFor: this.votedFor } : { term: this.term, votedFor: this.votedFor, catchUpThroughTerm: withheld };
  }

  // ---- terms and roles ------------------------------------------------------------------

  /** Raft's term rules plus etcd's pre-vote and lease refinements. Returns false to drop. */
  private acceptTerm(m: Message<Payload>): boolean {
    if (m.term > this.term) {
      if (m.type === "RequestVote") {
        if (!m.leadershipTransfer && this.inLease()) return false; // a healthy primary exists: ignore the disruptor
        if (m.preVote) return true; // pre-votes never change anyone's term
      }
      if (m.type === "RequestVoteResponse" && m.preVote && m.granted) return true;
      this.becomeBackup(m.term, m.type === "AppendEntries" ? m.from : undefined);
      return true;
    }
    if (m.term < this.term) {
      // Tell a stale primary or pre-candidate about the newer term so it steps down.
      if (m.type === "AppendEntries") this.send(this.appendResponse(m.from, false, this.log.lastIndex(), m.prevIndex, 0));
      else if (m.type === "RequestVote" && m.preVote) this.send(this.voteResponse(m, false));
      return false;
    }
    return true;
  }

  private inLease(): boolean {
    if (this.options.checkQuorum === false) return false;
    if (this.role === "Primary") return true;
    return this.leaderId !== undefined && this.electionElapsed < this.options.electionTicks;
  }

  private becomeBackup(term: number, leaderId: NodeId | undefined): void {
    if (term > this.term) {
      this.term = term;
      this.votedFor = undefined;
      this.hardStateDirty = true;
    }
    this.role = "Backup";
    this.leaderId = leaderId;
    this.electionElapsed = 0;
    this.resetElectionTimeout();
    this.progress.clear();
    this.votes.clear();
    this.transfer = undefined;
  }

  private becomePrimary(): void {
    this.role = "Primary";
    this.leaderId = this.id;
    this.transfer = undefined;
    // CCF: roll back whatever follows the last signature; it was never committed and cannot be.
    const lastSignature = this.log.lastSignature().index;
    invariant(lastSignature >= this.commitIndex, () => `${this.id}: last signature ${lastSignature} below commit ${this.commitIndex}`);
    this.log.truncateAfter(lastSignature);
    this.refreshConfig();
    this.progress.clear();
    for (const voter of this.voters) if (voter !== this.id) this.progress.set(voter, new Progress(this.log.lastIndex()));
    this.heartbeatElapsed = 0;
    this.checkQuorumElapsed = 0;
  }

  private takeRoleChange(): RoleChange | undefined {
    const now = { role: this.role, term: this.term, leaderId: this.leaderId };
    const before = this.reportedRole;
    if (now.role === before.role && now.term === before.term && now.leaderId === before.leaderId) return undefined;
    this.reportedRole = now;
    return now;
  }

  private refreshConfig(): void {
    const latest = this.log.latestConfig();
    this.voters = latest?.voters ?? this.bootstrapVoters;
    this.configIndex = latest?.index ?? 0;
    if (this.role !== "Primary") return;
    for (const voter of this.voters) {
      if (voter !== this.id && !this.progress.has(voter)) {
        // A node just added gets an election timeout to answer before check-quorum counts it absent.
        const pr = new Progress(this.log.lastIndex());
        pr.recentActive = true;
        this.progress.set(voter, pr);
      }
    }
    for (const peer of [...this.progress.keys()]) if (!this.voters.includes(peer)) this.progress.delete(peer);
  }

  private quorum(): number {
    return Math.floor(this.voters.length / 2) + 1;
  }

  // ---- elections ------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.mayVote && this.electionElapsed >= this.electionTimeout && this.electionVoters().includes(this.id)) {
      this.campaign(this.options.preVote !== false, false);
    }
  }

  private resetElectionTimeout(): void {
    const base = this.options.electionTicks;
    this.electionTimeout = base + Math.floor(this.options.random() * base);
  }

  private campaign(preVote: boolean, leadershipTransfer: boolean): void {
    const voters = this.electionVoters();
    if (!voters.includes(this.id) || !this.mayVote || !this.mayLead) return;
    this.campaignVoters = voters;
    if (preVote) {
      this.role = "PreCandidate";
    } else {
      this.term++;
      this.votedFor = this.id;
      this.hardStateDirty = true;
      this.role = "Candidate";
    }
    this.leaderId = undefined;
    this.electionElapsed = 0;
    this.resetElectionTimeout();
    this.votes.clear();
    this.votes.set(this.id, true);
    if (this.tally() === "Won") return this.wonElection(preVote);
    const last = this.log.lastSignature();
    for (const voter of voters) {
      if (voter === this.id) continue;
      this.send({
        type: "RequestVote", from: this.id, to: voter, term: preVote ? this.term + 1 : this.term,
        preVote, leadershipTransfer, lastSignatureIndex: last.index, lastSignatureTerm: last.term,
      });
    }
  }

  private tally(): "Won" | "Lost" | "Pending" {
    let granted = 0;
    let rejected = 0;
    const voters = this.campaignVoters;
    const quorum = Math.floor(voters.length / 2) + 1;
    for (const voter of voters) {
      const vote = this.votes.get(voter);
      if (vote === true) granted++;
      else if (vote === false) rejected++;
    }
    if (granted >= quorum) return "Won";
    if (voters.length - rejected < quorum) return "Lost";
    return "Pending";
  }

  private wonElection(preVote: boolean): void {
    if (preVote) this.campaign(false, false);
    else this.becomePrimary();
  }

  private onRequestVote(m: RequestVote): void {
    const canVote = this.votedFor === m.from
      || (this.votedFor === undefined && this.leaderId === undefined)
      || (m.preVote && m.term > this.term);
    const mine = this.log.lastSignature();
    // CCF: the candidate must hold the latest committable transaction we hold.
    const upToDate = m.lastSignatureTerm > mine.term
      || (m.lastSignatureTerm === mine.term && m.lastSignatureIndex >= mine.index);
    const granted = canVote && upToDate && this.mayVote;
    if (granted && !m.preVote) {
      this.votedFor = m.from;
      this.hardStateDirty = true;
      this.electionElapsed = 0;
    }
    this.send(this.voteResponse(m, granted));
  }

  private voteResponse(m: RequestVote, granted: boolean): RequestVoteResponse {
    // A granted pre-vote answers at the proposed term so the pre-candidate can match it up.
    const term = granted && m.preVote ? m.term : this.term;
    return { type: "RequestVoteResponse", from: this.id, to: m.from, term, preVote: m.preVote, granted };
  }

  private onRequestVoteResponse(m: RequestVoteResponse): void {
    const expecting = m.preVote ? this.role === "PreCandidate" : this.role === "Candidate";
    if (!expecting || !this.campaignVoters.includes(m.from)) return;
    if (m.preVote && m.granted && m.term !== this.term + 1) return; // from an older pre-vote round
    this.votes.set(m.from, m.granted);
    const result = this.tally();
    if (result === "Won") this.wonElection(m.preVote);
    else if (result === "Lost") this.becomeBackup(this.term, undefined);
  }

  /**
   * The primary cannot send what this backup lacks. Acted on only from the primary this backup
   * follows in the current term (the term rules already dropped older ones), and only while the
   * commit point (or its own snapshot base) is below the primary's log start: a backup that
   * committed past it can always be replicated to from its commit point.
   */
  private onInstallSnapshot(m: InstallSnapshot): void {
    if (this.role !== "Backup" || this.leaderId !== m.from) return;
    // (Its own base, if it started from a snapshot, is committed too.)
    if (Math.max(this.commitIndex, this.log.firstIndex() - 1) >= m.snapshotIndex) return;
    this.snapshotRequired = { primary: m.from, index: m.snapshotIndex };
  }

  private onTimeoutNow(): void {
    if (this.role === "Primary" || !this.electionVoters().includes(this.id)) return;
    this.campaign(false, true);
  }

  // ---- primary: proposals, replication, commit ------------------------------------------

  /** A signature is never refused for back-pressure: it is what lets the backlog commit. */
  private refuseProposal(isSignature: boolean): ConsensusError | undefined {
    if (this.role !== "Primary") return new ConsensusError("NotPrimary", `${this.id} is not the primary; send the request to the primary`, this.leaderId);
    // During a leadership transfer the shell takes no new writes (see `transferring`), but what
    // it committed locally before must still reach the log: refusing it would split the KV
    // state from the log (the shell simulator found exactly that crash).
    const uncommittedMax = this.options.maxUncommittedEntries ?? 10_000;
    if (!isSignature && this.log.lastIndex() - this.commitIndex >= uncommittedMax) {
      return new ConsensusError("TooManyUncommitted", `${uncommittedMax} entries await commit (is a majority reachable, and is the shell signing?); retry later`);
    }
    return undefined;
  }

  private appendOwn(fields: { isSignature: boolean; payload: Payload; config?: readonly NodeId[] }): Proposed {
    const index = this.log.lastIndex() + 1;
    this.log.append({ term: this.term, index, ...fields });
    return { term: this.term, index };
  }

  private tickPrimary(): void {
    for (const pr of this.progress.values()) pr.stalledTicks = pr.inflight.length > 0 ? pr.stalledTicks + 1 : 0;
    this.heartbeatElapsed++;
    this.checkQuorumElapsed++;
    if (this.transfer && ++this.transfer.elapsed >= this.options.electionTicks) {
      this.transfer = undefined;
      // Retired, or unable to lead (disk full): stop leading regardless.
      if (!this.isVoter || !this.mayLead) return this.becomeBackup(this.term, undefined);
    }
    if (this.checkQuorumElapsed >= this.options.electionTicks) {
      this.checkQuorumElapsed = 0;
      if (this.options.checkQuorum !== false && !this.quorumActive()) return this.becomeBackup(this.term, undefined);
      for (const pr of this.progress.values()) pr.recentActive = false;
    }
    if (this.heartbeatElapsed >= this.options.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      for (const [peer, pr] of this.progress) this.heartbeat(peer, pr);
    }
  }

  private quorumActive(): boolean {
    const active = this.voters.filter((v) => v === this.id || this.progress.get(v)?.recentActive === true).length;
    return active >= this.quorum();
  }

  private heartbeat(peer: NodeId, pr: Progress): void {
    if (pr.mode === "Probe") pr.probeSent = false; // re-probe: the last one may be lost
    // The tail of the window was lost (a lost middle shows up as a rejection): resync by probing.
    else if (pr.stalledTicks >= this.options.electionTicks) pr.becomeProbe();
    if (this.sendAppend(peer, pr)) return;
    const prevIndex = pr.matchIndex;
    this.send(this.appendEntries(peer, prevIndex, []));
    // This node started from a snapshot and lacks what the backup needs: the backup installs a
    // snapshot instead (the heartbeat above still keeps it from campaigning).
    if (pr.nextIndex < this.log.firstIndex()) {
      this.send({ type: "InstallSnapshot", from: this.id, to: peer, term: this.term, snapshotIndex: this.log.firstIndex() - 1 });
    }
  }

  /** Sends what flow control allows to every backup: one batch per Ready covers many proposals. */
  private flushReplication(): void {
    for (const [peer, pr] of this.progress) {
      for (let i = 0; i < this.options.maxInflightAppends && this.sendAppend(peer, pr); i++);
    }
  }

  /**
   * Tells each replicating backup a commit index that no AppendEntries carried yet, at once: an
   * empty AppendEntries after what it acknowledged. Otherwise a backup learns it only with the
   * next batch, which flow control may hold back, or the next heartbeat (as etcd's raft does it,
   * broadcasting an append when the commit moves). Measured: backups then learnt a commit a
   * median 22 ms after the primary at half load (`npm run bench -- --nodes 3 --trace-latency`).
   */
  private announceCommit(): void {
    for (const [peer, pr] of this.progress) {
      // What an empty AppendEntries after its match would let it learn: nothing new, nothing sent.
      if (pr.mode === "Replicate" && pr.commitSent < Math.min(this.commitIndex, pr.matchIndex)) this.send(this.appendEntries(peer, pr.matchIndex, []));
    }
  }

  private sendAppend(peer: NodeId, pr: Progress): boolean {
    if (!pr.canSend(this.options.maxInflightAppends)) return false;
    if (pr.mode === "Replicate" && pr.nextIndex > this.log.lastIndex()) return false;
    // This node started from a snapshot and does not hold what the backup lacks: it cannot
    // catch it up (the backup can restart from a newer snapshot of the service).
    if (pr.nextIndex < this.log.firstIndex()) return false;
    if (pr.nextIndex <= this.log.compactedIndex) {
      // Below the in-memory window: the shell reads them from its storage (appendFetched).
      if (pr.fetching !== undefined) return false;
      pr.fetching = pr.nextIndex;
      const toIndex = Math.min(this.log.compactedIndex, pr.nextIndex + this.options.maxEntriesPerAppend - 1);
      this.fetches.push({ peer, fromIndex: pr.nextIndex, toIndex });
      return false;
    }
    this.sendEntries(peer, pr, this.log.slice(pr.nextIndex, this.options.maxEntriesPerAppend));
    return true;
  }

  /** Sends entries from pr.nextIndex on and records them in the backup's flow control. */
  private sendEntries(peer: NodeId, pr: Progress, entries: Entry<Payload>[]): void {
    invariant(entries.length === 0 || entries[0]!.index === pr.nextIndex, () => `entries for ${peer} start at its next index ${pr.nextIndex}`);
    this.send(this.appendEntries(peer, pr.nextIndex - 1, entries));
    if (pr.mode === "Probe") {
      pr.probeSent = true;
    } else {
      const last = pr.nextIndex - 1 + entries.length;
      pr.inflight.push(last);
      pr.nextIndex = last + 1;
    }
  }

  private appendEntries(to: NodeId, prevIndex: number, entries: Entry<Payload>[]): AppendEntries<Payload> {
    const prevTerm = this.log.term(prevIndex);
    invariant(prevTerm !== undefined, () => `${this.id}: no entry at ${prevIndex} to replicate after`);
    const pr = this.progress.get(to);
    // A backup takes the commit index only up to the last entry the message reaches.
    if (pr !== undefined) pr.commitSent = Math.min(this.commitIndex, prevIndex + entries.length);
    return { type: "AppendEntries", from: this.id, to, term: this.term, prevIndex, prevTerm, entries, leaderCommit: this.commitIndex };
  }

  private onAppendEntriesResponse(m: AppendEntriesResponse): void {
    if (this.role !== "Primary") return;
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.success) {
      if (pr.acknowledge(m.matchIndex)) this.maybeCommit();
      pr.withholdingVoteThroughTerm = m.withholdingVoteThroughTerm;
      this.maybeRestoreVote(m.from, pr);
      this.maybeSendTimeoutNow();
      return;
    }
    const stale = pr.mode === "Replicate" ? m.rejectedIndex <= pr.matchIndex : m.rejectedIndex !== pr.nextIndex - 1;
    if (stale) return;
    if (pr.mode === "Probe" && m.matchIndex < pr.matchIndex) {
      // The answer to the current probe, at matchIndex: the backup holds fewer entries than it
      // acknowledged (its ledger was wiped or cut). Replicate again from what it still holds;
      // commit never moves back, it is a fact.
      pr.matchIndex = m.matchIndex;
      pr.becomeProbe();
      return;
    }
    pr.becomeProbe();
    pr.nextIndex = Math.max(pr.matchIndex + 1, Math.min(m.hintIndex + 1, m.rejectedIndex));
  }

  /** CCF: commit the highest signature of this term that a majority of the configuration persisted. */
  private maybeCommit(): void {
    const signature = this.commitIndexWith(this.log.persistedIndex());
    if (signature <= this.commitIndex) return;
    this.commitIndex = signature;
    // A retired primary hands over once its retirement is committed.
    if (!this.isVoter && this.configIndex <= this.commitIndex && !this.transfer) this.startTransfer(undefined);
  }

  /**
   * The commit index this primary would reach if its own log were durable up to `index` (the
   * backups' acknowledgements as they stand): a signature at most `index`, of this term, held by a
   * majority. The shell lets its ledger record that commit point right after the flush that makes
   * `index` durable, without a round trip through consensus. The current commit index when this
   * node is not primary or its own durability would decide nothing new.
   */
  commitIndexIfPersisted(index: number): number {
    if (this.role !== "Primary" || index <= this.log.persistedIndex()) return this.commitIndex;
    invariant(index <= this.log.lastIndex(), () => `${this.id}: forecast for ${index} beyond the log's end ${this.log.lastIndex()}`);
    return Math.max(this.commitIndex, this.commitIndexWith(index));
  }

  /** The highest signature of this term on a majority, counting this node's log durable up to `persisted`. */
  private commitIndexWith(persisted: number): number {
    let quorumIndex: number;
    if (this.options.unsafe?.commitWithoutQuorum) {
      quorumIndex = persisted;
    } else {
      const matches = this.voters.map((v) => (v === this.id ? persisted : this.progress.get(v)?.matchIndex ?? 0));
      matches.sort((a, b) => b - a);
      quorumIndex = matches[this.quorum() - 1] ?? 0;
    }
    const signature = this.log.signatureAtOrBefore(quorumIndex);
    if (signature <= this.commitIndex) return this.commitIndex;
    // Raft's current-term rule: an older term's entry on a majority can still be overwritten.
    if (this.log.term(signature) !== this.term && !this.options.unsafe?.commitEarlierTermSignatures) return this.commitIndex;
    return signature;
  }

  /**
   * A backup that lost entries votes again only once an entry of a newer view commits. Once it
   * holds this primary's whole log, the primary hands leadership to another up-to-date voter:
   * the new view's first signature restores the backup's vote, so the service tolerates another
   * failure again without waiting for one (a wiped node and then a lost node would otherwise
   * leave no majority able to elect).
   */
  private maybeRestoreVote(peer: NodeId, pr: Progress): void {
    // A primary of a newer view than the backup waits for: its own commit restores the vote.
    const through = pr.withholdingVoteThroughTerm;
    if (through === undefined || through < this.term || this.transfer || pr.matchIndex < this.log.lastIndex()) return;
    if (this.log.term(this.commitIndex) !== this.term) return; // let this view commit first
    let target: NodeId | undefined;
    let best = -1;
    for (const [other, p] of this.progress) {
      if (other !== peer && this.voters.includes(other) && p.withholdingVoteThroughTerm === undefined && p.matchIndex > best) { best = p.matchIndex; target = other; }
    }
    if (target !== undefined) this.startTransfer(target);
  }

  private startTransfer(target: NodeId | undefined): void {
    let chosen = target;
    if (chosen === undefined) {
      let best = -1;
      for (const [peer, pr] of this.progress) {
        if (this.voters.includes(peer) && pr.matchIndex > best) { best = pr.matchIndex; chosen = peer; }
      }
    }
    if (chosen === undefined) return;
    this.transfer = { target: chosen, elapsed: 0, sent: false };
    this.maybeSendTimeoutNow();
  }

  private maybeSendTimeoutNow(): void {
    const t = this.transfer;
    if (!t || t.sent || this.progress.get(t.target)?.matchIndex !== this.log.lastIndex()) return;
    t.sent = true;
    this.send({ type: "TimeoutNow", from: this.id, to: t.target, term: this.term });
    // A retired primary has nothing left to lead: step down now rather than race the new one.
    if (!this.isVoter) this.becomeBackup(this.term, undefined);
  }

  // ---- backup: accepting entries --------------------------------------------------------

  private onAppendEntries(message: AppendEntries<Payload>): void {
    invariant(this.role !== "Primary", () => `two primaries in term ${this.term}: ${this.id} and ${message.from}`);
    if (this.role !== "Backup" || this.leaderId !== message.from) this.becomeBackup(message.term, message.from);
    this.electionElapsed = 0;
    // Entries at or below a snapshot base came with the snapshot: committed, so the same as the
    // primary's. Read a message reaching below it (a heartbeat at the primary's matchIndex 0 for
    // a node that joined from a snapshot) from the base: answering "match at 0" would send the
    // primary back to entry 1, which this log can never take.
    const base = this.log.firstIndex() - 1;
    const m = message.prevIndex >= base ? message : {
      ...message, prevIndex: base, prevTerm: this.log.term(base)!, entries: message.entries.filter((entry) => entry.index > base),
    };
    const localPrevTerm = this.log.term(m.prevIndex);
    if (localPrevTerm !== m.prevTerm) {
      // Skip back over the whole conflicting term in one round trip, never below the commit index.
      const hint = localPrevTerm === undefined
        ? this.log.lastIndex()
        : Math.max(this.commitIndex, this.log.firstIndexOfTermAt(m.prevIndex) - 1);
      this.send(this.appendResponse(m.from, false, this.log.lastIndex(), m.prevIndex, Math.min(hint, m.prevIndex - 1)));
      return;
    }
    let configChanged = false;
    for (const entry of m.entries) {
      const localTerm = this.log.term(entry.index);
      if (localTerm === entry.term) continue;
      if (localTerm !== undefined) {
        invariant(entry.index > this.commitIndex, () => `${this.id}: primary ${m.from} overwrites committed ${entry.index}`);
        configChanged ||= this.log.latestConfig() !== undefined && this.log.latestConfig()!.index >= entry.index;
        this.log.truncateAfter(entry.index - 1);
      }
      this.log.append(entry);
      configChanged ||= entry.config !== undefined;
    }
    if (configChanged) this.refreshConfig();
    const lastNew = m.prevIndex + m.entries.length;
    const commit = this.log.signatureAtOrBefore(Math.min(m.leaderCommit, lastNew));
    if (commit > this.commitIndex) this.commitIndex = commit;
    if (this.votingWithheldThroughTerm !== undefined && (this.log.term(this.commitIndex) ?? 0) > this.votingWithheldThroughTerm) {
      this.votingWithheldThroughTerm = undefined; // caught up past the loss: a voter again
      this.hardStateDirty = true;
    }
    this.send(this.appendResponse(m.from, true, lastNew, 0, 0));
  }

  private appendResponse(to: NodeId, success: boolean, matchIndex: number, rejectedIndex: number, hintIndex: number): AppendEntriesResponse {
    const response: AppendEntriesResponse = { type: "AppendEntriesResponse", from: this.id, to, term: this.term, success, matchIndex, rejectedIndex, hintIndex };
    const through = this.votingWithheldThroughTerm;
    return through === undefined ? response : { ...response, withholdingVoteThroughTerm: through };
  }

  private send(message: Message<Payload>): void {
    this.outbox.push(message);
  }

  private assertNoReadyOutstanding(): void {
    invariant(!this.readyOutstanding, () => `${this.id}: call advance(ready) before the next input`);
  }
}
