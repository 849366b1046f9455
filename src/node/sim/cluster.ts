// The shell simulator: N real node shells (TransactionEngine, Replicator, ThreadedLedger, the
// KV store with governance's nodes.info and reconfiguration) in one process, on simulated time,
// a simulated network and simulated disks (sim/disk.ts). A seed fixes every schedule: crashes
// that lose unsynced writes, SIGSTOP-like pauses, partitions, lossy and reordering links,
// damaged ledger entries, governance retiring and re-adding nodes. The checker (sim/checker.ts)
// runs after every event; a healed quiet period then checks that the network makes progress.
import { NODES_INFO_MAP } from "../join.js";
import { SIGNATURE_EARLY_MIN_MS, TransactionEngine } from "../engine.js";
import { Replicator, FRAME_RAFT } from "../replication.js";
import { PeerAdmission } from "../membership.js";
import { reconcileConfiguration } from "../reconfiguration.js";
import { SINGLETON_KEY } from "../signatures.js";
import { ThreadedLedger, decodeEntry } from "../../ledger/index.js";
import { ConsensusInvariantError } from "../../consensus/index.js";
import { Prng, TraceRecorder } from "../../consensus/sim/index.js";
import { Lifetime, NodeScheduler, SimClock } from "./clock.js";
import { SimDisk } from "./disk.js";
import { ShellChecker, ShellViolation } from "./checker.js";
import { simRootSignatures, type SimIdentities } from "./identities.js";

export interface ShellSimulationOptions {
  readonly seed: number;
  readonly nodes: number;
  /** Simulated milliseconds of faults before the quiet period. */
  readonly chaosMs: number;
  readonly identities: SimIdentities;
  readonly echo?: (line: string) => void;
  readonly traceCapacity?: number;
}

export interface ShellSimulationResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly property?: string;
  readonly message?: string;
  readonly trace: string[];
  readonly stats: { simulatedMs: number; events: number; committed: number; elections: number; crashes: number; pauses: number; damaged: number; diskFull: number; writes: number; reconfigurations: number };
}

interface Live {
  readonly life: Lifetime;
  readonly engine: TransactionEngine;
  readonly replicator: Replicator;
  failure?: Error;
}

interface Slot {
  readonly name: string;
  readonly nodeId: string;
  readonly disk: SimDisk;
  live: Live | undefined;
  started: boolean;
  refused?: string;
}

interface Tuning {
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly maxEntriesPerAppend: number;
  readonly maxInflightAppends: number;
  readonly signatureTxCount: number;
  readonly signatureDelayMs: number;
  readonly linkDelayMsMax: number;
  readonly lossProbability: number;
  readonly duplicateProbability: number;
  /** Consensus's in-memory window (undefined: the whole log): small ones make primaries serve backups from the ledger. */
  readonly logWindow: { entriesMax: number; bytesMax: number } | undefined;
  /** Signature seqnos the engines keep (undefined: the node's default): small ones drop committed signatures early. */
  readonly signatureIndexEntries: number | undefined;
}

const STEP_MS = 10;
const QUIET_MS_MAX = 20_000;
const EVENTS_MAX = 2_000_000;
const quietLogger = { info() {}, warn() {}, error() {}, fatal() {} };

export class ShellSimulation {
  private readonly random: Prng;
  /**
   * The engines' entry key nonces: seeded like everything else, but a stream of its own so that
   * drawing nonces (which decides nothing) does not shift the schedule a seed stands for.
   */
  private readonly keyNonceRandom: Prng;
  private readonly clock = new SimClock();
  private readonly trace: TraceRecorder;
  private readonly checker: ShellChecker;
  private readonly slots: Slot[] = [];
  private readonly byNodeId = new Map<string, Slot>();
  private tuning: Tuning;
  private readonly rootSignatures: ReturnType<typeof simRootSignatures>;
  /** Partition group per node name; nodes talk only within a group. */
  private readonly group = new Map<string, number>();
  private chaos = true;
  private writes = 0;
  private events = 0;
  private readonly stats = { simulatedMs: 0, events: 0, committed: 0, elections: 0, crashes: 0, pauses: 0, damaged: 0, diskFull: 0, writes: 0, reconfigurations: 0 };

  constructor(private readonly options: ShellSimulationOptions) {
    if (options.nodes > options.identities.nodes.length) throw new Error(`at most ${options.identities.nodes.length} nodes`);
    this.random = new Prng(options.seed);
    this.keyNonceRandom = new Prng(options.seed ^ 0x6b6e_6f6e);
    this.rootSignatures = simRootSignatures(options.identities);
    const r = this.random;
    this.tuning = {
      tickMs: 10,
      electionTicks: r.pick([5, 10]),
      heartbeatTicks: 2,
      maxEntriesPerAppend: r.pick([1, 4, 16, 64]),
      maxInflightAppends: r.pick([1, 2, 4]),
      signatureTxCount: r.pick([3, 10, 50]),
      signatureDelayMs: r.pick([10, 30, 100]),
      linkDelayMsMax: r.pick([2, 5, 20, 60]),
      lossProbability: r.pick([0, 0.01, 0.05]),
      duplicateProbability: r.pick([0, 0.02]),
      // A stream of its own, so that seeds keep the schedules they stood for before windows existed.
      logWindow: new Prng(options.seed ^ 0x77_696e).pick([undefined, { entriesMax: 4, bytesMax: 1 << 20 }, { entriesMax: 32, bytesMax: 4096 }, { entriesMax: 1000, bytesMax: 1 << 20 }]),
      signatureIndexEntries: new Prng(options.seed ^ 0x73_6967).pick([undefined, 1, 4]),
    };
    this.trace = new TraceRecorder(options.traceCapacity ?? 300, options.echo);
    this.checker = new ShellChecker((line) => this.trace.record(this.clock.now, line));
    const diskLatencyMsMax = r.pick([0, 2, 10]);
    for (let i = 0; i < options.nodes; i++) {
      const nodeId = options.identities.nodes[i]!.nodeId;
      const slot: Slot = { name: `n${i + 1}`, nodeId, disk: new SimDisk(r.fork(), diskLatencyMsMax), live: undefined, started: false };
      slot.disk.onViolation = (message) => this.checker.fail("ledger safety", `${slot.name}: ${message}`);
      this.slots.push(slot);
      this.byNodeId.set(nodeId, slot);
    }
  }

  async run(): Promise<ShellSimulationResult> {
    try {
      this.start(this.slots[0]!);
      this.clock.schedule(0, () => this.step());
      await this.runUntil(this.options.chaosMs);
      await this.quiet();
      return this.result(undefined);
    } catch (error) {
      if (error instanceof ShellViolation) return this.result(error);
      if (error instanceof ConsensusInvariantError) return this.result(new ShellViolation("node invariant", error.message));
      const e = error as Error;
      return this.result(new ShellViolation("node crashed", `${e.message}\n${e.stack ?? ""}`));
    }
  }

  private result(violation: ShellViolation | undefined): ShellSimulationResult {
    this.stats.simulatedMs = this.clock.now;
    this.stats.events = this.events;
    this.stats.committed = this.checker.committedSeqno;
    this.stats.writes = this.writes;
    return {
      seed: this.options.seed, ok: !violation, trace: this.trace.lines(), stats: { ...this.stats },
      ...(violation ? { property: violation.property, message: violation.message } : {}),
    };
  }

  /** Runs events in time order until `untilMs`; after each, the microtasks it queued, then the checks. */
  private async runUntil(untilMs: number, stop?: () => boolean): Promise<void> {
    for (;;) {
      const event = this.clock.next(untilMs);
      if (!event) break;
      if (++this.events > EVENTS_MAX) throw new ShellViolation("runaway", `more than ${EVENTS_MAX} events`);
      event.run();
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.checker.throwIfFailed();
      if (stop?.()) return;
    }
    this.clock.now = Math.max(this.clock.now, untilMs);
  }

  // ---- node processes ---------------------------------------------------------------------

  private start(slot: Slot): void {
    const recovered = slot.disk.recover();
    if (recovered.refused) {
      if (slot.refused === undefined) this.trace.record(this.clock.now, `${slot.name} refuses to start: ${recovered.refused}`);
      slot.refused = recovered.refused;
      return;
    }
    slot.refused = undefined;
    const others = this.slots.some((s) => s !== slot && s.started);
    if (slot === this.slots[0] && !others && recovered.entries.length > 0 && !recovered.entries.some((e) => isSignatureEntry(e))) {
      // A new service that crashed before its genesis was signed starts over (nothing of it
      // can have reached anyone), as a first node restarted with `Start` does.
      slot.disk.wipe();
      slot.disk.recover();
      recovered.entries.length = 0;
    }
    const life = new Lifetime();
    const scheduler = new NodeScheduler(this.clock, life, this.random.int(this.tuning.tickMs));
    const ids = this.options.identities;
    const identity = ids.nodes[this.slots.indexOf(slot)]!;
    const ledger = ThreadedLedger.overPort(slot.disk.port(this.clock, life),
      { lastSeqno: recovered.entries.length, durableSeqno: recovered.entries.length, committedSeqno: slot.disk.committed },
      { logger: quietLogger, timers: { now: () => scheduler.now(), after: (ms, callback) => scheduler.after(ms, callback) }, diskFullRetryMs: 50 });
    const engine = new TransactionEngine(ledger, {
      nodeId: slot.nodeId, serviceCertPem: ids.serviceCertPem, nodePrivateKeyPem: identity.privateKeyPem, nodeCertPem: identity.certPem,
      ledgerSecrets: [{ fromSeqno: 1, raw: ids.ledgerSecret }],
      signatureTxCount: this.tuning.signatureTxCount, signatureDelayMs: this.tuning.signatureDelayMs,
      pendingTransactionsMax: 2_000, entryWorker: false, scheduler, rootSignatures: this.rootSignatures, logger: quietLogger,
      earlySignatureMinMs: SIGNATURE_EARLY_MIN_MS,
      ...(this.tuning.signatureIndexEntries !== undefined ? { signatureIndexEntries: this.tuning.signatureIndexEntries } : {}),
      randomBytes: (size) => prngBytes(this.keyNonceRandom, size),
    });
    const replayed = engine.replay(recovered.entries);
    // A new service: the first node, before anything of it reached another node.
    const first = slot === this.slots[0] && recovered.entries.length === 0 && !others;
    const random = this.random.fork();
    const replicator = new Replicator(engine, replayed, {
      nodeId: slot.nodeId, workspace: "", bootstrapVoters: first ? [slot.nodeId] : [],
      tickMs: this.tuning.tickMs, electionTicks: this.tuning.electionTicks, heartbeatTicks: this.tuning.heartbeatTicks,
      maxEntriesPerAppend: this.tuning.maxEntriesPerAppend, maxInflightAppends: this.tuning.maxInflightAppends,
      maxUncommittedEntries: 4_000, logger: quietLogger, scheduler, hardStateStore: slot.disk.hardStateStore,
      ...(this.tuning.logWindow !== undefined ? { logWindow: this.tuning.logWindow } : {}),
      random: () => random.next(), lostEntries: recovered.lostEntries, commitIndex: slot.disk.committed,
      // The node's real membership rule: Raft hears no retired node that has left the configuration.
      acceptSender: (nodeId: string): boolean => admission.accepts(nodeId),
    });
    const admission: PeerAdmission = new PeerAdmission({
      self: slot.nodeId, store: engine.store, consensus: (): Replicator => replicator, bootstrapPeers: [], soon: (callback) => scheduler.soon(callback),
    });
    const live: Live = { life, engine, replicator };
    slot.live = live;
    replicator.setTransport({ send: (to, type, payload) => this.send(slot, to, type, payload) });
    engine.on("failure", (error: Error) => {
      live.failure = error;
      this.trace.record(this.clock.now, `${slot.name} ledger failure: ${error.message}`);
    });
    // Entries below consensus's in-memory window are checked against what the node's disk holds.
    engine.on("commit", (seqno: number) => this.checker.onCommit(slot.name, seqno, (i) => replicator.raft.entryAt(i)?.payload ?? slot.disk.entry(i)));
    engine.on("rollback", (seqno: number) => this.trace.record(this.clock.now, `${slot.name} rolls back to ${seqno}`));
    const reconcile = () => { if (life.alive) reconcileConfiguration(engine, replicator, quietLogger); };
    replicator.onCommit(reconcile);
    engine.store.onWrite(NODES_INFO_MAP, () => scheduler.soon(reconcile));
    const roleBefore = { role: replicator.role };
    scheduler.every(this.tuning.tickMs, () => {
      if (replicator.role !== roleBefore.role) {
        roleBefore.role = replicator.role;
        this.trace.record(this.clock.now, `${slot.name} is ${replicator.role} in view ${replicator.term} (last ${engine.lastSeqnoLocal}, commit ${engine.commitTxId.seqno})`);
        if (replicator.role === "Primary") this.stats.elections++;
      }
    });
    this.checker.onStart(slot.name, recovered.lostEntries);
    if (this.clock.now > 0 || slot.started) {
      this.trace.record(this.clock.now, `${slot.name} starts from ${recovered.entries.length} entries, view ${slot.disk.hardState.term}${recovered.lostEntries ? ", lost entries" : ""}`);
    }
    replicator.start();
    if (first) this.writeGenesis(engine);
    slot.started = true;
  }

  private writeGenesis(engine: TransactionEngine): void {
    const tx = engine.store.begin();
    for (const slot of this.slots) {
      tx.set(NODES_INFO_MAP, Buffer.from(slot.nodeId), Buffer.from(JSON.stringify({ status: "Trusted", cert: "" })));
    }
    tx.set("public:ccf.internal.consensus_configuration", SINGLETON_KEY, Buffer.from(JSON.stringify([this.slots[0]!.nodeId])));
    engine.commit(tx);
    engine.emitSignature();
  }

  private crash(slot: Slot): void {
    const live = slot.live;
    if (!live) return;
    live.life.alive = false;
    live.replicator.stop();
    slot.live = undefined;
    slot.disk.crash();
    this.checker.onCrash(slot.name);
    this.stats.crashes++;
    // One faulty disk per run at most: the host damages a durable entry.
    // (Only once every node is a voter: moving away the ledger of a node that alone holds the
    // service's history loses it, which no protocol can undo.)
    const primary = this.primary();
    const allVotersCommitted = primary !== undefined && primary.replicator.configuration.length === this.slots.length && primary.replicator.canReconfigure();
    if (this.stats.damaged === 0 && allVotersCommitted && this.random.chance(0.1)) {
      const damaged = slot.disk.damage();
      if (damaged !== undefined) {
        this.stats.damaged++;
        this.trace.record(this.clock.now, `${slot.name} crashes; the host damages its entry ${damaged}`);
        return;
      }
    }
    this.trace.record(this.clock.now, `${slot.name} crashes (${slot.disk.length} entries on disk)`);
  }

  // ---- network ----------------------------------------------------------------------------

  private send(from: Slot, to: string, type: number, payload: Buffer): boolean {
    const target = this.byNodeId.get(to);
    if (!target || type !== FRAME_RAFT) return false;
    const t = this.tuning;
    if (!this.connected(from, target) || this.random.chance(t.lossProbability)) return true;
    const copies = this.random.chance(t.duplicateProbability) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = this.clock.now + 1 + this.random.int(t.linkDelayMsMax);
      this.clock.schedule(at, () => {
        const live = target.live;
        if (live && this.connected(from, target)) live.replicator.receive(from.nodeId, payload);
      }, target.live?.life);
    }
    return true;
  }

  private connected(a: Slot, b: Slot): boolean {
    return (this.group.get(a.name) ?? 0) === (this.group.get(b.name) ?? 0);
  }

  // ---- one step of faults, clients and checks (every STEP_MS while chaos lasts) -----------------

  private step(): void {
    const r = this.random;
    if (this.chaos) {
      this.injectFaults();
      const primary = this.primary();
      if (primary && r.chance(0.7)) for (let i = 1 + r.int(4); i > 0; i--) this.clientWrite(primary);
      if (primary && r.chance(0.01)) this.governance(primary);
    }
    this.checker.pollStatuses(this.liveNodes());
    this.clock.schedule(this.clock.now + STEP_MS, () => this.step());
  }

  private injectFaults(): void {
    const r = this.random;
    if (r.chance(0.006)) {
      const primary = this.primarySlot();
      const victim = primary && r.chance(0.6) ? primary : r.pick(this.slots);
      this.crash(victim);
    }
    for (const slot of this.slots) {
      if (slot.live || !slot.started || !r.chance(0.04)) continue;
      if (slot.refused !== undefined && r.chance(0.5)) {
        this.trace.record(this.clock.now, `operator moves ${slot.name}'s damaged ledger away`);
        slot.disk.wipe();
      }
      this.start(slot);
    }
    for (const slot of this.slots) if (!slot.live && !slot.started && this.isTrusted(slot) && r.chance(0.2)) this.start(slot);
    if (r.chance(0.004)) {
      const primary = this.primarySlot();
      const victim = primary && r.chance(0.7) ? primary : r.pick(this.slots);
      if (victim.live) {
        const pauseMs = 50 + r.int(1_500);
        victim.live.life.pausedUntil = this.clock.now + pauseMs;
        this.stats.pauses++;
        this.trace.record(this.clock.now, `${victim.name} is paused for ${pauseMs} ms`);
      }
    }
    if (r.chance(0.003)) {
      const victim = r.pick(this.slots);
      if (!victim.disk.full) {
        const fullMs = 50 + r.int(1_500);
        victim.disk.full = true;
        this.stats.diskFull++;
        this.trace.record(this.clock.now, `${victim.name}'s disk is full for ${fullMs} ms`);
        this.clock.schedule(this.clock.now + fullMs, () => {
          victim.disk.full = false;
          this.trace.record(this.clock.now, `${victim.name}'s disk has space again`);
        });
      }
    }
    if (r.chance(0.005)) this.partition();
    if (r.chance(0.02) && this.group.size > 0) {
      this.group.clear();
      this.trace.record(this.clock.now, "network heals");
    }
  }

  private partition(): void {
    const names = this.slots.map((s) => s.name);
    for (let i = names.length - 1; i > 0; i--) {
      const j = this.random.int(i + 1);
      [names[i], names[j]] = [names[j]!, names[i]!];
    }
    const cut = 1 + this.random.int(names.length - 1);
    this.group.clear();
    names.forEach((name, i) => this.group.set(name, i < cut ? 0 : 1));
    this.trace.record(this.clock.now, `partition [${names.slice(0, cut).join(",")}] [${names.slice(cut).join(",")}]`);
  }

  /** A node joins once the genesis transaction that trusts it is committed (as a join needs an open service). */
  /**
   * Whether an operator would start this node now: the service's genesis committed (it trusts
   * every node), or a running node's configuration already counts on it (a genesis node whose
   * first commit was lost to a full disk may have added it before anything committed; without it
   * there is no majority, as on a real service whose operator never starts the joiners).
   */
  private isTrusted(slot: Slot): boolean {
    return this.checker.committedSeqno >= 2 || this.slots.some((s) => s.live?.replicator.configuration.includes(slot.nodeId) === true);
  }

  /** Governance retires a voter or trusts a retired node again (the primary's reconciliation follows). */
  private governance(primary: Live): void {
    const voters = primary.replicator.configuration;
    const tx = primary.engine.store.begin();
    const retired = this.slots.filter((s) => {
      const info = tx.get(NODES_INFO_MAP, Buffer.from(s.nodeId));
      return info !== undefined && JSON.parse(info.toString("utf8")).status === "Retired";
    });
    let target: Slot;
    let status: string;
    if (retired.length > 0 && (voters.length <= 3 || this.random.chance(0.5))) {
      target = this.random.pick(retired);
      status = "Trusted";
    } else if (voters.length > 3) {
      target = this.byNodeId.get(this.random.pick(voters))!;
      status = "Retired";
    } else {
      return;
    }
    tx.set(NODES_INFO_MAP, Buffer.from(target.nodeId), Buffer.from(JSON.stringify({ status, cert: "" })));
    try {
      const id = primary.engine.commit(tx);
      this.stats.reconfigurations++;
      this.trace.record(this.clock.now, `governance: ${target.name} ${status} at ${id.view}.${id.seqno}`);
    } catch { /* not writable now */ }
  }

  private clientWrite(primary: Live): void {
    const key = `k${++this.writes}`;
    const value = `v${this.writes}@${this.clock.now}`;
    const tx = primary.engine.store.begin();
    tx.set("records", Buffer.from(key), Buffer.from(value));
    try {
      const id = primary.engine.commit(tx);
      this.checker.onWrite(key, value, id.view, id.seqno);
    } catch { /* refused: not primary any more, back-pressure, ledger failed */ }
  }

  private primarySlot(): Slot | undefined {
    for (const slot of this.slots) {
      const live = slot.live;
      if (live && live.engine.isPrimary && live.life.pausedUntil <= this.clock.now && !live.failure) return slot;
    }
    return undefined;
  }

  private primary(): Live | undefined {
    return this.primarySlot()?.live;
  }

  private liveNodes(): { name: string; engine: TransactionEngine }[] {
    const out: { name: string; engine: TransactionEngine }[] = [];
    for (const slot of this.slots) if (slot.live && slot.live.life.pausedUntil <= this.clock.now) out.push({ name: slot.name, engine: slot.live.engine });
    return out;
  }

  // ---- the healed quiet period ----------------------------------------------------------

  private async quiet(): Promise<void> {
    this.chaos = false;
    this.group.clear();
    for (const slot of this.slots) {
      slot.disk.full = false;
      if (slot.live) slot.live.life.pausedUntil = 0;
      if (slot.live?.failure) this.checker.fail("wedged node", `${slot.name}'s ledger failed: ${slot.live.failure.message}`);
      if (!slot.live && slot.started) this.start(slot);
      if (!slot.live && slot.refused !== undefined) {
        this.trace.record(this.clock.now, `operator moves ${slot.name}'s damaged ledger away`);
        slot.disk.wipe();
        this.start(slot);
      }
    }
    this.trace.record(this.clock.now, "quiet period: network healed, every node up");
    this.tuning = { ...this.tuning, lossProbability: 0, duplicateProbability: 0, linkDelayMsMax: Math.min(this.tuning.linkDelayMsMax, 5) };
    // Enough to elect a primary and to bring the furthest-behind node up, one batch per round trip.
    const longest = Math.max(...this.slots.map((s) => s.disk.length), 0);
    const quietMsMax = QUIET_MS_MAX + Math.ceil(longest / this.tuning.maxEntriesPerAppend) * 30;
    const end = this.clock.now + quietMsMax;
    let probe: { live: Live; view: number; seqno: number; key: string } | undefined;
    let done = false;
    while (!done && this.clock.now < end) {
      await this.runUntil(Math.min(end, this.clock.now + STEP_MS), () => false);
      // A node the service trusts but that never got to start (its genesis was lost, or chaos
      // ended first) joins now: the liveness check is about the whole configuration.
      for (const slot of this.slots) if (!slot.live && !slot.started && this.isTrusted(slot)) this.start(slot);
      const primary = this.primary();
      if (!primary) continue;
      if (!probe || probe.live !== primary || primary.engine.status(probe.view, probe.seqno) === "Invalid") {
        const key = `probe${this.clock.now}`;
        const tx = primary.engine.store.begin();
        tx.set("records", Buffer.from(key), Buffer.from("probe"));
        try {
          const id = primary.engine.commit(tx);
          probe = { live: primary, view: id.view, seqno: id.seqno, key };
        } catch { /* retry next step */ }
        continue;
      }
      const voters = primary.replicator.configuration;
      done = voters.every((id) => this.byNodeId.get(id)?.live?.engine.status(probe!.view, probe!.seqno) === "Committed");
    }
    if (!done) {
      const states = this.slots.map((s) => `${s.name}:${s.live ? `${s.live.replicator.role}/v${s.live.replicator.term}/last${s.live.engine.lastSeqnoLocal}/commit${s.live.engine.commitTxId.seqno}${s.live.failure ? "/FAILED" : ""}` : s.refused ? "refused" : "down"}`);
      throw new ShellViolation("liveness", `no write committed on every voter within ${quietMsMax} ms of healing (${states.join(" ")})`);
    }
    // Voters hold every committed write; a retired node stops hearing from the primary.
    const voters = new Set(this.primary()?.replicator.configuration ?? []);
    this.checker.checkFinal(this.liveNodes().filter((n) => voters.has(this.slots.find((s) => s.name === n.name)!.nodeId)));
  }
}

export async function runShellSeed(options: ShellSimulationOptions): Promise<ShellSimulationResult> {
  return new ShellSimulation(options).run();
}

function isSignatureEntry(bytes: Buffer): boolean {
  return decodeEntry(bytes).isSignature;
}

function prngBytes(random: Prng, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) {
    const word = random.nextUint32();
    for (let j = 0; j < 4 && i + j < size; j++) out[i + j] = (word >>> (8 * j)) & 0xff;
  }
  return out;
}
