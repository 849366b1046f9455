// One seeded schedule of a whole cluster: nodes driven through their Ready batches, a lossy
// reordering network, partitions, crashes and restarts from persisted state, clients writing
// through whoever is primary, reconfigurations. Ends with a healed quiet period that must
// commit a fresh write everywhere (liveness) and still hold every committed transaction.

import { RaftNode } from "../raft.js";
import { ConsensusError, ConsensusInvariantError } from "../errors.js";
import type { Entry, HardState, Message, NodeId, RaftOptions, Ready } from "../types.js";
import { SafetyChecker, SafetyViolation } from "./checker.js";
import { SimulatedNetwork } from "./network.js";
import { Prng } from "./prng.js";
import { TraceRecorder } from "./trace.js";

export interface SimulationOptions {
  readonly seed: number;
  /** Voters at bootstrap; one more spare node can be added by reconfiguration. */
  readonly nodes: number;
  /** Ticks of faults before the healed quiet period. */
  readonly steps: number;
  readonly quietTicksMax?: number;
  readonly traceCapacity?: number;
  /** Print every trace line as it happens (replaying one seed). */
  readonly echo?: (line: string) => void;
  readonly unsafe?: RaftOptions["unsafe"];
  /** Default true. Off only to show the end-to-end properties catch a broken commit rule too. */
  readonly checkDurability?: boolean;
}

export interface SimulationResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly property?: string;
  readonly message?: string;
  readonly trace: string[];
  readonly stats: { ticks: number; committed: number; elections: number; crashes: number; reconfigurations: number };
}

interface SimNode {
  readonly id: NodeId;
  raft: RaftNode<string> | undefined;
  readonly store: { hardState: HardState; entries: Entry<string>[] };
  commit: number;
}

interface ClientTx {
  readonly entry: Entry<string>;
  polls: number;
}

interface Tuning {
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly maxEntriesPerAppend: number;
  readonly maxInflightAppends: number;
  /** Ticks between the shell's signatures. */
  readonly signatureIntervalTicks: number;
  /** Whether a new primary's shell signs at once (CCF does) or waits for its next interval. */
  readonly signOnElection: boolean;
  readonly maxUncommittedEntries: number;
}
const pendingClientTxMax = 64;

export class Simulation {
  private readonly random: Prng;
  private readonly network: SimulatedNetwork;
  private readonly checker: SafetyChecker;
  private readonly trace: TraceRecorder;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly stores = new Map<NodeId, Entry<string>[]>();
  private readonly bootstrap: NodeId[];
  private readonly pending: ClientTx[] = [];
  private now = 0;
  private writes = 0;
  private chaos = true;
  private readonly tuning: Tuning;
  private readonly stats = { ticks: 0, committed: 0, elections: 0, crashes: 0, reconfigurations: 0 };

  constructor(private readonly options: SimulationOptions) {
    this.random = new Prng(options.seed);
    this.checker = new SafetyChecker(options.checkDurability !== false);
    // Small batches and windows, and late signatures, open windows that defaults hide.
    this.tuning = {
      electionTicks: 10,
      heartbeatTicks: 2,
      maxEntriesPerAppend: this.random.pick([1, 4, 16, 64]),
      maxInflightAppends: this.random.pick([1, 2, 4]),
      signatureIntervalTicks: this.random.pick([1, 4, 10]),
      signOnElection: this.random.chance(0.7),
      maxUncommittedEntries: this.random.pick([20, 100, 10_000]),
    };
    this.network = new SimulatedNetwork(this.random.fork(), this.randomFaults());
    this.trace = new TraceRecorder(options.traceCapacity ?? 200, options.echo);
    const ids = Array.from({ length: options.nodes + 1 }, (_, i) => `n${i + 1}`);
    this.bootstrap = ids.slice(0, options.nodes);
    for (const id of ids) {
      const node: SimNode = { id, raft: undefined, store: { hardState: { term: 0, votedFor: undefined }, entries: [] }, commit: 0 };
      this.nodes.set(id, node);
      this.stores.set(id, node.store.entries);
    }
  }

  run(): SimulationResult {
    try {
      for (const node of this.nodes.values()) this.start(node);
      for (; this.now < this.options.steps; this.now++) this.tickCluster();
      this.quiet();
      return this.result(undefined);
    } catch (error) {
      if (error instanceof SafetyViolation) return this.result(error);
      if (error instanceof ConsensusInvariantError) return this.result(new SafetyViolation("node invariant", error.message));
      throw error;
    }
  }

  private result(violation: SafetyViolation | undefined): SimulationResult {
    this.stats.ticks = this.now;
    this.stats.committed = this.checker.committedIndex;
    return {
      seed: this.options.seed, ok: !violation, trace: this.trace.lines(), stats: { ...this.stats },
      ...(violation ? { property: violation.property, message: violation.message } : {}),
    };
  }

  // ---- one tick of the whole cluster ----------------------------------------------------

  private tickCluster(): void {
    if (this.chaos) this.injectFaults();
    for (const message of this.network.takeDue(this.now)) this.deliver(message);
    for (const node of this.nodes.values()) {
      if (!node.raft) continue;
      node.raft.tick();
      this.process(node);
    }
    this.shellWork();
    this.pollClients();
  }

  private deliver(message: Message<string>): void {
    const node = this.nodes.get(message.to)!;
    if (!node.raft) return;
    this.trace.record(this.now, () => `deliver ${describe(message)}`);
    node.raft.step(message);
    this.process(node);
  }

  /** The shell's loop for one node: persist, then check, then send, then advance. */
  private process(node: SimNode): void {
    const raft = node.raft!;
    for (let round = 0; round < 8; round++) {
      const ready = raft.ready();
      this.persist(node, ready);
      if (ready.roleChange) this.onRoleChange(node, ready);
      if (ready.committedIndex !== node.commit) {
        this.checker.onCommitted(node.id, node.store.entries, node.commit, ready.committedIndex, raft.configuration, this.stores);
        this.trace.record(this.now, `${node.id} commit ${node.commit} -> ${ready.committedIndex}`);
        node.commit = ready.committedIndex;
      }
      for (const message of ready.messages) this.network.send(message, this.now);
      raft.advance(ready);
      if (ready.roleChange?.role === "Primary" && this.tuning.signOnElection) this.sign(node); // as CCF's shell does
      const idle = ready.messages.length === 0 && ready.entriesToPersist.length === 0 && ready.truncateAfter === undefined && !ready.hardState;
      if (idle) return;
    }
  }

  private persist(node: SimNode, ready: Ready<string>): void {
    const log = node.store.entries;
    if (ready.truncateAfter !== undefined) {
      if (ready.truncateAfter < node.commit) throw new SafetyViolation("state machine safety", `${node.id} truncates to ${ready.truncateAfter} below its commit ${node.commit}`);
      log.length = Math.min(log.length, ready.truncateAfter);
    }
    if (ready.entriesToPersist.length > 0) {
      const from = ready.entriesToPersist[0]!.index;
      log.length = Math.min(log.length, from - 1);
      for (const entry of ready.entriesToPersist) log.push(entry);
      this.checker.onPersisted(node.id, log, from);
    }
    if (ready.hardState) node.store.hardState = ready.hardState;
  }

  private onRoleChange(node: SimNode, ready: Ready<string>): void {
    const change = ready.roleChange!;
    this.trace.record(this.now, `${node.id} becomes ${change.role} term=${change.term} leader=${change.leaderId ?? "-"} last=${node.store.entries.length}`);
    if (change.role !== "Primary") return;
    this.stats.elections++;
    this.checker.onBecamePrimary(node.id, change.term, node.store.entries);
  }

  // ---- the shells' and clients' work ----------------------------------------------------

  private primaries(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.raft?.currentRole === "Primary");
  }

  private sign(node: SimNode): void {
    const proposed = node.raft!.propose(`sig@${this.now}`, true);
    if (!(proposed instanceof ConsensusError)) this.trace.record(this.now, `${node.id} signs at ${proposed.term}.${proposed.index}`);
    this.process(node);
  }

  private shellWork(): void {
    for (const node of this.primaries()) {
      const raft = node.raft!;
      if (this.chaos && this.random.chance(0.6)) this.clientWrite(node); // the quiet period writes only its probe
      if (this.chaos && this.random.chance(0.02)) this.reconfigure(node);
      // Sign when something is unsigned, or when this term has no signature yet: without one
      // nothing can commit (the current-term rule), however long the primary waits.
      const last = raft.entryAt(raft.lastIndex);
      const needsSignature = !last || !last.isSignature || last.term !== raft.currentTerm;
      if (needsSignature && this.now % this.tuning.signatureIntervalTicks === 0) this.sign(node);
    }
  }

  private clientWrite(node: SimNode): void {
    const payload = `w${++this.writes}`;
    const proposed = node.raft!.propose(payload, false);
    if (proposed instanceof ConsensusError) return;
    this.trace.record(this.now, `client ${payload} -> ${node.id} at ${proposed.term}.${proposed.index}`);
    if (this.pending.length < pendingClientTxMax) {
      this.pending.push({ entry: node.raft!.entryAt(proposed.index)!, polls: 0 });
    }
    this.process(node);
  }

  private reconfigure(node: SimNode): void {
    const raft = node.raft!;
    const voters = raft.configuration;
    const outside = [...this.nodes.keys()].filter((id) => !voters.includes(id));
    const remove = voters.length > 3 && (outside.length === 0 || this.random.chance(0.5));
    const target = remove ? this.random.pick(voters) : outside.length > 0 ? this.random.pick(outside) : undefined;
    if (target === undefined) return;
    const next = remove ? voters.filter((v) => v !== target) : [...voters, target];
    const proposed = raft.proposeReconfiguration(next, `cfg${this.now}`);
    if (proposed instanceof ConsensusError) return;
    this.stats.reconfigurations++;
    this.trace.record(this.now, `${node.id} proposes config [${next.join(",")}] at ${proposed.term}.${proposed.index}`);
    this.process(node);
  }

  /** Clients ask a random live node about their transactions; answers are checked. */
  private pollClients(): void {
    const live = [...this.nodes.values()].filter((n) => n.raft);
    if (live.length === 0) return;
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const tx = this.pending[i]!;
      const status = this.random.pick(live).raft!.txStatus(tx.entry.term, tx.entry.index);
      if (status === "Committed" || status === "Invalid") {
        this.checker.onClientReport(tx.entry, status);
        this.trace.record(this.now, `client ${tx.entry.payload} at ${tx.entry.term}.${tx.entry.index} is ${status}`);
        this.pending.splice(i, 1);
      } else if (++tx.polls > 400) {
        this.pending.splice(i, 1); // give up on it; its fate is still checked by the final log
      }
    }
  }

  // ---- faults -------------------------------------------------------------------------

  private randomFaults(): { lossProbability: number; duplicateProbability: number; delayTicksMax: number } {
    return {
      lossProbability: this.random.pick([0, 0.01, 0.05, 0.2]),
      duplicateProbability: this.random.pick([0, 0.02, 0.1]),
      delayTicksMax: this.random.pick([1, 2, 4, 8]),
    };
  }

  private injectFaults(): void {
    const r = this.random;
    const nodes = [...this.nodes.values()];
    if (r.chance(0.01)) {
      const victim = r.chance(0.5) ? this.primaries()[0] ?? r.pick(nodes) : r.pick(nodes);
      if (victim.raft) this.crash(victim);
    }
    for (const node of nodes) if (!node.raft && r.chance(0.05)) this.start(node);
    if (r.chance(0.01)) this.partition();
    if (r.chance(0.02)) {
      this.network.heal();
      this.trace.record(this.now, "network heals");
    }
    if (r.chance(0.01)) this.network.faults = this.randomFaults();
  }

  private partition(): void {
    const ids = [...this.nodes.keys()];
    for (let i = ids.length - 1; i > 0; i--) {
      const j = this.random.int(i + 1);
      [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    }
    const cut = 1 + this.random.int(ids.length - 1);
    const groups = [ids.slice(0, cut), ids.slice(cut)];
    this.network.partition(groups);
    this.trace.record(this.now, `partition ${groups.map((g) => `[${g.join(",")}]`).join(" ")}`);
  }

  private crash(node: SimNode): void {
    node.raft = undefined;
    node.commit = 0;
    this.stats.crashes++;
    this.trace.record(this.now, `${node.id} crashes (persisted ${node.store.entries.length} entries, term ${node.store.hardState.term})`);
  }

  private start(node: SimNode): void {
    const random = this.random.fork();
    const persisted = { hardState: node.store.hardState, entries: [...node.store.entries] };
    const { electionTicks, heartbeatTicks, maxEntriesPerAppend, maxInflightAppends, maxUncommittedEntries } = this.tuning;
    node.raft = new RaftNode<string>(node.id, this.bootstrap, persisted, {
      electionTicks, heartbeatTicks, maxEntriesPerAppend, maxInflightAppends, maxUncommittedEntries, random: () => random.next(), ...(this.options.unsafe ? { unsafe: this.options.unsafe } : {}),
    });
    node.commit = 0;
    if (this.now > 0) this.trace.record(this.now, `${node.id} restarts from ${persisted.entries.length} entries, term ${persisted.hardState.term}`);
    this.process(node);
  }

  // ---- the healed quiet period ----------------------------------------------------------

  private quiet(): void {
    this.chaos = false;
    this.network.heal();
    this.network.faults = { lossProbability: 0, duplicateProbability: 0, delayTicksMax: 2 };
    for (const node of this.nodes.values()) if (!node.raft) this.start(node);
    this.trace.record(this.now, "quiet period: network healed, all nodes up");
    // Enough to elect a primary and to catch the slowest backup up one batch per round trip.
    const longest = Math.max(...[...this.nodes.values()].map((n) => n.store.entries.length));
    const quietTicksMax = this.options.quietTicksMax ?? 400 + Math.ceil((6 * longest) / this.tuning.maxEntriesPerAppend);
    const end = this.now + quietTicksMax;
    let probe: { node: SimNode; term: number; index: number } | undefined;
    for (; this.now < end; this.now++) {
      this.tickCluster();
      const primary = this.primaries()[0];
      if (!primary) continue;
      const raft = primary.raft!;
      if (!probe || probe.node !== primary || raft.txStatus(probe.term, probe.index) === "Invalid") {
        const proposed = raft.propose(`probe@${this.now}`, false);
        if (proposed instanceof ConsensusError) continue;
        probe = { node: primary, ...proposed };
        this.process(primary);
        continue;
      }
      const everywhere = raft.configuration.every((id) => this.nodes.get(id)!.raft!.txStatus(probe!.term, probe!.index) === "Committed");
      if (everywhere) {
        this.checker.checkFinal(primary.id, primary.store.entries, raft.committedIndex);
        return;
      }
    }
    throw new SafetyViolation("liveness", `no write committed on every voter within ${quietTicksMax} ticks of healing`);
  }
}

export function describe(m: Message<string>): string {
  const head = `${m.from}->${m.to} t${m.term}`;
  switch (m.type) {
    case "AppendEntries": {
      const entries = m.entries.map((e) => `${e.term}.${e.index}${e.isSignature ? "S" : ""}${e.config ? "C" : ""}`).join(",");
      return `${head} AE prev=${m.prevTerm}.${m.prevIndex} [${entries}] commit=${m.leaderCommit}`;
    }
    case "AppendEntriesResponse":
      return `${head} AE-${m.success ? `ok match=${m.matchIndex}` : `reject at=${m.rejectedIndex} hint=${m.hintIndex}`}`;
    case "RequestVote":
      return `${head} ${m.preVote ? "PreVote" : "Vote"}${m.leadershipTransfer ? "(transfer)" : ""} lastSig=${m.lastSignatureTerm}.${m.lastSignatureIndex}`;
    case "RequestVoteResponse":
      return `${head} ${m.preVote ? "PreVote" : "Vote"} ${m.granted ? "granted" : "rejected"}`;
    case "TimeoutNow":
      return `${head} TimeoutNow`;
    case "InstallSnapshot":
      return `${head} InstallSnapshot at=${m.snapshotIndex}`;
  }
}
