// The in-memory Raft log plus the bookkeeping of which suffix the shell has not yet persisted.
// Indices are 1-based (index 0 is the empty prefix, term 0). Signature and reconfiguration
// positions are indexed so elections, commits and configuration lookups never scan the log.

import type { Entry, NodeId } from "./types.js";
import { invariant } from "./errors.js";

export interface TxId {
  readonly term: number;
  readonly index: number;
}

/**
 * Where a log starts when the node started from a snapshot: the snapshot's seqno (a committed
 * signature), its term, and the voters in effect there. Entries at or below it are not held.
 */
export interface LogBase {
  readonly index: number;
  readonly term: number;
  readonly voters: readonly NodeId[];
}

export class RaftLog<Payload = unknown> {
  private readonly entries: Entry<Payload>[] = [];
  /** Index of the last entry not held (0: the log starts at 1). entries[i] has index base + 1 + i. */
  private readonly base: number;
  private readonly baseTerm: number;
  private readonly baseVoters: readonly NodeId[] | undefined;
  private readonly signatureIndices: number[] = [];
  private readonly configIndices: number[] = [];
  /** Lowest index not yet handed to (and acknowledged by) the shell's storage. */
  unstableFrom: number;
  /** Lowest truncation point since the last Ready, if any truncation happened. */
  private truncatedTo: number | undefined;
  /** Last index the shell reports durable (<= unstableFrom - 1). */
  private durable: number;

  constructor(persisted: readonly Entry<Payload>[] = [], base?: LogBase) {
    invariant(base === undefined || (base.index > 0 && base.term > 0), () => `a log base is a committed signature (${base?.index}, ${base?.term})`);
    this.base = base?.index ?? 0;
    this.baseTerm = base?.term ?? 0;
    this.baseVoters = base?.voters;
    if (base !== undefined) {
      // The snapshot's seqno is a committed signature: elections and commits compare with it.
      this.signatureIndices.push(base.index);
      this.configIndices.push(base.index);
    }
    for (const entry of persisted) this.append(entry);
    this.unstableFrom = this.lastIndex() + 1;
    this.durable = this.lastIndex();
  }

  lastIndex(): number {
    return this.base + this.entries.length;
  }

  /** First index this log can hand out (entries before it came with a snapshot). */
  firstIndex(): number {
    return this.base + 1;
  }

  /** Term of the entry at `index`; 0 for index 0; undefined when the log is shorter or starts after it. */
  term(index: number): number | undefined {
    if (index === 0) return 0;
    if (index === this.base) return this.baseTerm;
    if (index < this.base) return undefined;
    return this.entries[index - this.base - 1]?.term;
  }

  entry(index: number): Entry<Payload> | undefined {
    return index > this.base ? this.entries[index - this.base - 1] : undefined;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** Entries in [from, from + maxCount), clipped to the log. */
  slice(from: number, maxCount: number): Entry<Payload>[] {
    invariant(from > this.base, () => `entries from ${from} asked of a log starting after ${this.base}`);
    return this.entries.slice(from - this.base - 1, from - this.base - 1 + maxCount);
  }

  append(entry: Entry<Payload>): void {
    invariant(entry.index === this.lastIndex() + 1, () => `append at ${entry.index} after ${this.lastIndex()}`);
    invariant(entry.term >= this.lastTerm(), () => `term ${entry.term} after ${this.lastTerm()} at ${entry.index}`);
    this.entries.push(entry);
    if (entry.isSignature) this.signatureIndices.push(entry.index);
    if (entry.config !== undefined) this.configIndices.push(entry.index);
  }

  /** Drops every entry after `index`. The caller checks it never drops a committed entry. */
  truncateAfter(index: number): void {
    if (index >= this.lastIndex()) return;
    invariant(index >= this.base, () => `truncating below the snapshot base ${this.base}`);
    this.entries.length = index - this.base;
    popAbove(this.signatureIndices, index);
    popAbove(this.configIndices, index);
    this.truncatedTo = Math.min(this.truncatedTo ?? index, index);
    this.unstableFrom = Math.min(this.unstableFrom, index + 1);
    this.durable = Math.min(this.durable, index);
  }

  /** The last committable transaction: CCF's unit of comparison in elections. */
  lastSignature(): TxId {
    const index = this.signatureIndices[this.signatureIndices.length - 1] ?? 0;
    return { index, term: this.term(index) ?? 0 };
  }

  /** Highest signature index <= `index` (0 if none). */
  signatureAtOrBefore(index: number): number {
    const sigs = this.signatureIndices;
    for (let i = sigs.length - 1; i >= 0; i--) if (sigs[i]! <= index) return sigs[i]!;
    return 0;
  }

  /** The configuration in effect: the latest reconfiguration entry in the log (Raft: on append). */
  latestConfig(): { index: number; voters: readonly NodeId[] } | undefined {
    const index = this.configIndices[this.configIndices.length - 1];
    if (index === undefined) return undefined;
    return { index, voters: this.votersAt(index) };
  }

  /** The configuration in effect at `index`: the latest reconfiguration entry at or before it. */
  configAt(index: number): { index: number; voters: readonly NodeId[] } | undefined {
    const indices = this.configIndices;
    for (let i = indices.length - 1; i >= 0; i--) {
      if (indices[i]! <= index) return { index: indices[i]!, voters: this.votersAt(indices[i]!) };
    }
    return undefined;
  }

  /** First index of the run of entries sharing the term of the entry at `index`. */
  firstIndexOfTermAt(index: number): number {
    const term = this.term(index);
    let first = index;
    while (first > this.base + 1 && this.term(first - 1) === term) first--;
    return first;
  }

  /** Voters of the reconfiguration at `index` (or of the snapshot base). */
  private votersAt(index: number): readonly NodeId[] {
    if (index === this.base && this.baseVoters !== undefined) return this.baseVoters;
    return this.entries[index - this.base - 1]!.config!;
  }

  /** Takes what the shell must persist now; `markStable` is called once it has. */
  unstable(): { truncateAfter: number | undefined; entries: Entry<Payload>[] } {
    const truncateAfter = this.truncatedTo === undefined ? undefined : this.unstableFrom - 1;
    return { truncateAfter, entries: this.entries.slice(this.unstableFrom - this.base - 1) };
  }

  /** The shell took everything up to `upToIndex`; `durable` says whether it is already on disk. */
  markStable(upToIndex: number, durable = true): void {
    this.truncatedTo = undefined;
    this.unstableFrom = upToIndex + 1;
    if (durable) this.durable = upToIndex;
    else this.durable = Math.min(this.durable, upToIndex);
  }

  /**
   * The shell's storage made the entry (term, index) and everything before it durable. Ignored
   * when that entry is no longer in the log (truncated and replaced since it was written).
   */
  markDurable(term: number, index: number): boolean {
    if (index <= this.durable || index >= this.unstableFrom || this.term(index) !== term) return false;
    this.durable = index;
    return true;
  }

  /** Index of the last entry the shell has durably stored. */
  persistedIndex(): number {
    return this.durable;
  }
}

function popAbove(sorted: number[], index: number): void {
  while (sorted.length > 0 && sorted[sorted.length - 1]! > index) sorted.pop();
}
