// The Raft log plus the bookkeeping of which suffix the shell has not yet persisted.
// Indices are 1-based (index 0 is the empty prefix, term 0). Signature and reconfiguration
// positions are indexed so elections, commits and configuration lookups never scan the log.
//
// Bounded memory: only a window of entries keeps its payload here. Entries at or below
// `compactedIndex` were committed and persisted; the shell holds them (the ledger files) and
// fetches them when a backup needs them (Ready.fetches). What stays for the whole log is
// compact: one record per run of equal terms, one number per recent signature and one record
// per reconfiguration.

import type { Entry, NodeId } from "./types.js";
import { invariant } from "./errors.js";

export interface TxId {
  readonly term: number;
  readonly index: number;
}

/** What a log keeps about entries whose payloads it dropped (or never held, after a restart). */
export interface LogPrefix {
  /** Highest index the prefix covers; entries in memory start at lastIndex + 1. */
  readonly lastIndex: number;
  /** First index of each run of entries with the same term, in order (covers 1..lastIndex). */
  readonly termStarts: readonly TxId[];
  /** Signature indices in the prefix (the latest ones at least; older ones may be dropped). */
  readonly signatures: readonly number[];
  /** Reconfiguration entries in the prefix (every one: a few per node ever added). */
  readonly configs: readonly { index: number; voters: readonly NodeId[] }[];
}

/**
 * Where a log starts when the node started from a snapshot: the snapshot's seqno (a committed
 * signature), its term, and the voters in effect there. Entries at or below it are not held,
 * not even by the shell's storage: firstIndex() is index + 1.
 */
export interface LogBase {
  readonly index: number;
  readonly term: number;
  readonly voters: readonly NodeId[];
}

/** Limits of the in-memory window: payloads beyond both are dropped once committed and persisted. */
export interface LogWindow {
  /** Committed entries beyond this many (newest first) lose their payload. */
  readonly entriesMax: number;
  /** Committed entries beyond this many payload bytes (newest first) lose their payload. */
  readonly bytesMax: number;
  /** Payload size in bytes (the shell's Buffer length); entries count 0 bytes without it. */
  readonly payloadBytes?: (payload: unknown) => number;
}

/** Signatures kept below the compaction point: only the newest few are ever asked for there. */
const COMPACTED_SIGNATURES_KEPT = 64;

export class RaftLog<Payload = unknown> {
  /** entries[i] has index compacted + 1 + i. */
  private entries: Entry<Payload>[] = [];
  private compacted = 0;
  /** Entries at or below it came with a snapshot: neither here nor in the shell's storage. */
  private readonly base: number;
  private entryBytes: number[] = [];
  private bytesInMemory = 0;
  private readonly termStarts: TxId[] = [];
  private signatureIndices: number[] = [];
  private readonly configs: { index: number; voters: readonly NodeId[] }[] = [];
  /** Lowest index not yet handed to (and acknowledged by) the shell's storage. */
  unstableFrom: number;
  /** Lowest truncation point since the last Ready, if any truncation happened. */
  private truncatedTo: number | undefined;
  /** Last index the shell reports durable (<= unstableFrom - 1). */
  private durable: number;

  constructor(persisted: readonly Entry<Payload>[] = [], prefix?: LogPrefix, private readonly window?: LogWindow, base?: LogBase) {
    invariant(base === undefined || (base.index > 0 && base.term > 0), () => `a log base is a committed signature (${base?.index}, ${base?.term})`);
    this.base = base?.index ?? 0;
    if (base !== undefined) {
      // The snapshot's seqno is a committed signature: elections and commits compare with it.
      this.compacted = base.index;
      this.termStarts.push({ term: base.term, index: base.index });
      this.signatureIndices.push(base.index);
      this.configs.push({ index: base.index, voters: base.voters });
    }
    if (prefix !== undefined && prefix.lastIndex > this.base) {
      invariant(prefix.termStarts.length > 0 && prefix.termStarts[0]!.index <= this.base + 1, "a log prefix starts at index 1 (or after the snapshot base)");
      this.compacted = prefix.lastIndex;
      this.termStarts.push(...prefix.termStarts);
      this.signatureIndices.push(...prefix.signatures);
      this.configs.push(...prefix.configs);
    }
    for (const entry of persisted) this.append(entry);
    this.unstableFrom = this.lastIndex() + 1;
    this.durable = this.lastIndex();
  }

  lastIndex(): number {
    return this.compacted + this.entries.length;
  }

  /** First index this log (or the shell's storage) can hand out: entries before it came with a snapshot. */
  firstIndex(): number {
    return this.base + 1;
  }

  /** Entries at or below this index have no payload here any more (the shell's ledger has them). */
  get compactedIndex(): number {
    return this.compacted;
  }

  /** Payload bytes held in memory (0 without a window's payloadBytes). */
  get payloadBytesInMemory(): number {
    return this.bytesInMemory;
  }

  /** Entries held with their payload. */
  get entriesInMemory(): number {
    return this.entries.length;
  }

  /** Term of the entry at `index`; 0 for index 0; undefined when the log is shorter. */
  term(index: number): number | undefined {
    if (index === 0) return 0;
    if (index > this.compacted) return this.entries[index - this.compacted - 1]?.term;
    if (index < this.base || !Number.isInteger(index)) return undefined;
    return this.termStarts[this.termRunAt(index)]?.term;
  }

  /** Position in termStarts of the run holding `index` (1 <= index <= lastIndex). */
  private termRunAt(index: number): number {
    let lo = 0;
    let hi = this.termStarts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.termStarts[mid]!.index <= index) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** The entry at `index` with its payload; undefined if compacted or beyond the log. */
  entry(index: number): Entry<Payload> | undefined {
    return index > this.compacted ? this.entries[index - this.compacted - 1] : undefined;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** Entries in [from, from + maxCount), clipped to the log; `from` must be above compactedIndex. */
  slice(from: number, maxCount: number): Entry<Payload>[] {
    invariant(from > this.compacted, () => `slice from ${from} at or below the compacted index ${this.compacted}`);
    const start = from - this.compacted - 1;
    return this.entries.slice(start, start + maxCount);
  }

  append(entry: Entry<Payload>): void {
    invariant(entry.index === this.lastIndex() + 1, () => `append at ${entry.index} after ${this.lastIndex()}`);
    invariant(entry.term >= this.lastTerm(), () => `term ${entry.term} after ${this.lastTerm()} at ${entry.index}`);
    this.entries.push(entry);
    const bytes = this.window?.payloadBytes?.(entry.payload) ?? 0;
    this.entryBytes.push(bytes);
    this.bytesInMemory += bytes;
    const lastRun = this.termStarts[this.termStarts.length - 1];
    if (lastRun === undefined || lastRun.term !== entry.term) this.termStarts.push({ term: entry.term, index: entry.index });
    if (entry.isSignature) this.signatureIndices.push(entry.index);
    if (entry.config !== undefined) this.configs.push({ index: entry.index, voters: entry.config });
  }

  /** Drops every entry after `index`. The caller checks it never drops a committed entry. */
  truncateAfter(index: number): void {
    if (index >= this.lastIndex()) return;
    invariant(index >= this.base, () => `truncating below the snapshot base ${this.base}`);
    if (index < this.compacted) {
      // Uncommitted entries read back from the ledger at start may sit below the window.
      this.entries = [];
      this.entryBytes = [];
      this.bytesInMemory = 0;
      this.compacted = index;
    } else {
      const keep = index - this.compacted;
      for (let i = keep; i < this.entryBytes.length; i++) this.bytesInMemory -= this.entryBytes[i]!;
      this.entries.length = keep;
      this.entryBytes.length = keep;
    }
    while (this.termStarts.length > 0 && this.termStarts[this.termStarts.length - 1]!.index > index) this.termStarts.pop();
    popAbove(this.signatureIndices, index);
    while (this.configs.length > 0 && this.configs[this.configs.length - 1]!.index > index) this.configs.pop();
    this.truncatedTo = Math.min(this.truncatedTo ?? index, index);
    this.unstableFrom = Math.min(this.unstableFrom, index + 1);
    this.durable = Math.min(this.durable, index);
  }

  /**
   * Drops payloads of entries up to `upTo` (committed and persisted: the caller checks) while
   * the log holds more than the window's limits, oldest first, once it holds a quarter more
   * than them (so at most 1.25 windows stay, plus what is uncommitted, which always stays).
   */
  compact(upTo: number): void {
    const window = this.window;
    if (window === undefined) return;
    invariant(upTo <= this.durable, () => `compacting to ${upTo} above the durable index ${this.durable}`);
    // Trim only past a quarter over the window: each trim copies the window once.
    if (this.entries.length <= window.entriesMax + (window.entriesMax >> 2) && this.bytesInMemory <= window.bytesMax + window.bytesMax / 4) return;
    let drop = 0;
    let bytes = this.bytesInMemory;
    const droppable = Math.min(upTo, this.lastIndex()) - this.compacted;
    while (drop < droppable && (this.entries.length - drop > window.entriesMax || bytes > window.bytesMax)) {
      bytes -= this.entryBytes[drop]!;
      drop++;
    }
    if (drop === 0) return;
    this.entries = this.entries.slice(drop);
    this.entryBytes = this.entryBytes.slice(drop);
    this.bytesInMemory = bytes;
    this.compacted += drop;
    // Old signatures are only asked for at or above the commit index; keep a few below the window.
    const below = lowerBound(this.signatureIndices, this.compacted + 1);
    if (below > COMPACTED_SIGNATURES_KEPT) this.signatureIndices = this.signatureIndices.slice(below - COMPACTED_SIGNATURES_KEPT);
    invariant(this.lastIndex() >= this.compacted, "compaction keeps the log's end");
  }

  /** The last committable transaction: CCF's unit of comparison in elections. */
  lastSignature(): TxId {
    const index = this.signatureIndices[this.signatureIndices.length - 1] ?? 0;
    return { index, term: this.term(index) ?? 0 };
  }

  /** Highest signature index <= `index` (0 if none known). */
  signatureAtOrBefore(index: number): number {
    const sigs = this.signatureIndices;
    for (let i = sigs.length - 1; i >= 0; i--) if (sigs[i]! <= index) return sigs[i]!;
    return 0;
  }

  /** The configuration in effect: the latest reconfiguration entry in the log (Raft: on append). */
  latestConfig(): { index: number; voters: readonly NodeId[] } | undefined {
    return this.configs[this.configs.length - 1];
  }

  /** The configuration in effect at `index`: the latest reconfiguration entry at or before it. */
  configAt(index: number): { index: number; voters: readonly NodeId[] } | undefined {
    for (let i = this.configs.length - 1; i >= 0; i--) if (this.configs[i]!.index <= index) return this.configs[i];
    return undefined;
  }

  /** First index of the run of entries sharing the term of the entry at `index`. */
  firstIndexOfTermAt(index: number): number {
    if (index < 1) return index;
    const run = this.termRunAt(Math.min(index, this.lastIndex()));
    return run < 0 ? index : Math.min(index, this.termStarts[run]!.index);
  }

  /** Takes what the shell must persist now; `markStable` is called once it has. */
  unstable(): { truncateAfter: number | undefined; entries: Entry<Payload>[] } {
    const truncateAfter = this.truncatedTo === undefined ? undefined : this.unstableFrom - 1;
    invariant(this.unstableFrom > this.compacted, "unpersisted entries are never compacted");
    return { truncateAfter, entries: this.entries.slice(this.unstableFrom - this.compacted - 1) };
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

/** First position in `sorted` whose value is >= `value`. */
function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Builds a log from entries read back one at a time (a ledger replayed chunk by chunk): keeps
 * the compact prefix of every entry and the payloads of the newest `keepEntries` only.
 */
export class LogPrefixBuilder<Payload = unknown> {
  private readonly termStarts: TxId[] = [];
  private readonly signatures: number[] = [];
  private readonly configs: { index: number; voters: readonly NodeId[] }[] = [];
  private tail: Entry<Payload>[] = [];
  private last = 0;

  /** Keeps the payloads of the newest `keepEntries` entries and of every entry above `keepAbove` (uncommitted). */
  constructor(private readonly keepEntries: number, private readonly keepAbove: number) {
    invariant(keepEntries >= 1, "a log keeps at least one entry's payload");
  }

  /**
   * Goes on after `prefix` (entries 1..prefix.lastIndex known only by their compact record, e.g.
   * a snapshot's view history): the next entry added is prefix.lastIndex + 1.
   */
  static after<Payload>(prefix: LogPrefix, keepEntries: number, keepAbove: number): LogPrefixBuilder<Payload> {
    invariant(prefix.lastIndex === 0 || (prefix.termStarts.length > 0 && prefix.termStarts[0]!.index === 1), "a log prefix starts at index 1");
    const builder = new LogPrefixBuilder<Payload>(keepEntries, keepAbove);
    builder.termStarts.push(...prefix.termStarts);
    builder.signatures.push(...prefix.signatures);
    builder.configs.push(...prefix.configs);
    builder.last = prefix.lastIndex;
    return builder;
  }

  add(entry: Entry<Payload>): void {
    invariant(entry.index === this.last + 1, () => `entry ${entry.index} after ${this.last}`);
    this.last = entry.index;
    this.tail.push(entry);
    // Dropped in batches: slicing the tail costs a copy of the window.
    if (this.tail.length >= 2 * this.keepEntries) this.dropOldest();
  }

  result(): { prefix: LogPrefix; entries: Entry<Payload>[] } {
    this.dropOldest();
    const prefix: LogPrefix = { lastIndex: this.last - this.tail.length, termStarts: this.termStarts, signatures: this.signatures, configs: this.configs };
    return { prefix, entries: this.tail };
  }

  private dropOldest(): void {
    const firstInTail = this.last - this.tail.length + 1;
    const count = Math.min(Math.max(0, this.tail.length - this.keepEntries), Math.max(0, this.keepAbove - firstInTail + 1));
    for (let i = 0; i < count; i++) {
      const entry = this.tail[i]!;
      const lastRun = this.termStarts[this.termStarts.length - 1];
      if (lastRun === undefined || lastRun.term !== entry.term) this.termStarts.push({ term: entry.term, index: entry.index });
      if (entry.isSignature) {
        this.signatures.push(entry.index);
        if (this.signatures.length > 2 * COMPACTED_SIGNATURES_KEPT) this.signatures.splice(0, COMPACTED_SIGNATURES_KEPT);
      }
      if (entry.config !== undefined) this.configs.push({ index: entry.index, voters: entry.config });
    }
    if (count > 0) this.tail = this.tail.slice(count);
  }
}
