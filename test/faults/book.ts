// Client-side bookkeeping of the fault suite: every write (unique key and value, its transaction id),
// every /node/tx status observed per node, the safety violations these imply, and the fault instants
// from which availability gaps are measured.

export type TxStatus = "Unknown" | "Pending" | "Committed" | "Invalid";
export type Table = "private" | "public";

export interface WriteRecord {
  key: number;
  value: string;
  table: Table;
  viaNode: number;
  round: string;
  startedMs: number;
  endedMs?: number;
  httpStatus?: number;
  txid?: string;
  error?: string;
}

export interface Violation {
  kind: "lost" | "wrong-value" | "flip" | "wedged" | "unavailable" | "unclear-refusal" | "setup";
  round: string;
  node?: number;
  txid?: string;
  detail: string;
}

export interface FaultRecord {
  kind: string;
  round: string;
  node: number | "all";
  atMs: number;
  /** From the fault instant to the end of the first successful write started after it. */
  gapMs?: number;
}

interface TxState {
  write: WriteRecord;
  committedSeen: boolean;
  invalidSeen: boolean;
  /** Last status per node, tagged with the node's process incarnation (a restart resets monotonicity of lag). */
  lastByNode: Map<number, { incarnation: number; status: TxStatus }>;
  /** Status changes only (per node and process), so the evidence of a flip fits in a line. */
  history: string[];
  flipped: boolean;
}

const HISTORY_PER_TX_MAX = 24;

export class WriteBook {
  readonly writes: WriteRecord[] = [];
  readonly violations: Violation[] = [];
  readonly faults: FaultRecord[] = [];
  private readonly byTxid = new Map<string, TxState>();
  private openFaults: FaultRecord[] = [];
  private nextKey = 1;
  private flips = 0;

  constructor(private readonly runTag: string, private readonly random: () => number) {}

  newWrite(viaNode: number, round: string): WriteRecord {
    const key = this.nextKey++;
    const table: Table = key % 2 === 0 ? "private" : "public";
    const value = `${this.runTag}-k${key}-${Math.floor(this.random() * 0xffffffff).toString(16)}`;
    const record: WriteRecord = { key, value, table, viaNode, round, startedMs: Date.now() };
    this.writes.push(record);
    return record;
  }

  /** A write answered 200 with a transaction id: tracked from now on, and closes open availability gaps. */
  acknowledged(record: WriteRecord, txid: string): void {
    record.txid = txid;
    this.byTxid.set(txid, { write: record, committedSeen: false, invalidSeen: false, lastByNode: new Map(), history: [], flipped: false });
    for (const fault of this.openFaults) {
      if (record.startedMs >= fault.atMs) fault.gapMs = record.endedMs! - fault.atMs;
    }
    this.openFaults = this.openFaults.filter((f) => f.gapMs === undefined);
  }

  faultInjected(kind: string, round: string, node: number | "all"): FaultRecord {
    const fault: FaultRecord = { kind, round, node, atMs: Date.now() };
    this.faults.push(fault);
    this.openFaults.push(fault);
    return fault;
  }

  violation(v: Violation): void {
    this.violations.push(v);
  }

  /** Records one /node/tx answer and flags any flip it implies. */
  observe(txid: string, node: number, incarnation: number, status: TxStatus, round: string): void {
    const state = this.byTxid.get(txid);
    if (!state) return;
    const last = state.lastByNode.get(node);
    const changed = !last || last.incarnation !== incarnation || last.status !== status;
    if (changed && state.history.length < HISTORY_PER_TX_MAX) state.history.push(`node${node}#${incarnation}:${status}@${new Date().toISOString().slice(11, 23)}`);
    // One violation per flipped transaction id (later contradictions on other nodes add nothing).
    const flip = (detail: string) => {
      if (state.flipped) return;
      state.flipped = true;
      this.flips++;
      this.violation({ kind: "flip", round, node, txid, detail: `${detail} (written via node ${state.write.viaNode} in ${state.write.round}); status changes node#process:status@time: ${state.history.join(" ")}` });
    };
    if (last && last.incarnation === incarnation && last.status === "Committed" && status !== "Committed") flip(`node ${node} said Committed, then ${status}`);
    else if (status === "Committed" && state.invalidSeen) flip(`Invalid (on some node) then Committed on node ${node}`);
    else if (status === "Invalid" && state.committedSeen) flip(`Committed (on some node) then Invalid on node ${node}`);
    if (status === "Committed") state.committedSeen = true;
    if (status === "Invalid") state.invalidSeen = true;
    state.lastByNode.set(node, { incarnation, status });
  }

  everCommitted(txid: string): boolean {
    return this.byTxid.get(txid)?.committedSeen ?? false;
  }

  /** Transaction ids of acknowledged writes whose fate (Committed or Invalid) no node has reported yet. */
  unresolved(): string[] {
    const out: string[] = [];
    for (const [txid, s] of this.byTxid) if (!s.committedSeen && !s.invalidSeen) out.push(txid);
    return out;
  }

  committedWrites(round?: string): WriteRecord[] {
    const out: WriteRecord[] = [];
    for (const s of this.byTxid.values()) if (s.committedSeen && (round === undefined || s.write.round === round)) out.push(s.write);
    return out;
  }

  history(txid: string): string {
    return this.byTxid.get(txid)?.history.join(" ") ?? "";
  }

  counts(): Record<string, number> {
    let acknowledged = 0, committed = 0, invalid = 0, unresolved = 0;
    for (const s of this.byTxid.values()) {
      acknowledged++;
      if (s.committedSeen) committed++;
      else if (s.invalidSeen) invalid++;
      else unresolved++;
    }
    const lost = this.violations.filter((v) => v.kind === "lost" || v.kind === "wrong-value").length;
    // A node wedged in a round counts once, however many symptoms it showed.
    const wedged = new Set(this.violations.filter((v) => v.kind === "wedged").map((v) => `${v.round}/${v.node ?? "all"}`)).size;
    // Writes with no answer within the client's timeout (e.g. forwarded to a primary that is gone).
    const timedOut = this.writes.filter((w) => w.error?.startsWith("timeout")).length;
    return { attempted: this.writes.length, acknowledged, committed, invalid, unresolved, failed: this.writes.length - acknowledged, timedOut, lost, flips: this.flips, wedged, violations: this.violations.length };
  }
}

export function summary(values: number[]): { count: number; minMs?: number; medianMs?: number; maxMs?: number } {
  if (values.length === 0) return { count: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, minMs: sorted[0]!, medianMs: sorted[Math.floor(sorted.length / 2)]!, maxMs: sorted[sorted.length - 1]! };
}

/** A small seeded PRNG (mulberry32): the same seed gives the same choices of nodes, keys and damage. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
