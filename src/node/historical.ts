// Historical queries, as CCF's historical state cache serves them: the state of one committed
// transaction is rebuilt from that transaction's own ledger entry (CCF deserialises the entry
// into a fresh store), so its maps hold exactly the writes of that transaction, with the
// transaction's receipt. Serves JS apps' `"mode": "historical"` endpoints and
// `ccf.historical.getStateRange`. Everything is bounded: an LRU of states, a number of range
// handles, a range length and the states all handles hold together.
import { deserialiseDomain } from "../kv/index.js";
import type { CcfReceipt } from "../merkle/index.js";
import type { HistoricalState } from "../js/index.js";
import { CocoError, formatTxId } from "../util/index.js";
import { SIGNATURES_MAP, decodeSignature } from "./signatures.js";

/** What historical queries need from the transaction engine. */
export interface HistoricalSource {
  readonly commitTxId: { view: number; seqno: number };
  viewAt(seqno: number): number | null;
  readEntry(seqno: number): Promise<{
    view: number; seqno: number; isSignature: boolean; publicDomain: Buffer; privatePlain: Buffer; claimsDigest: Buffer;
  }>;
  receipt(view: number, seqno: number): Promise<CcfReceipt>;
}

export interface HistoricalLimits {
  /** States kept in the LRU cache. */
  statesCachedMax: number;
  /** Bytes of states kept in the LRU cache (keys, values and receipts; see stateBytes). */
  statesCachedBytesMax: number;
  /** Longest range one `getStateRange` call may ask for (CCF's sample pages by 2,001). */
  rangeSeqnosMax: number;
  /** Range handles alive at once; the least recently used is dropped beyond it. */
  handlesMax: number;
  /** States held by all range handles together. */
  rangeStatesTotalMax: number;
  /** Bytes of the states held by all range handles together. */
  rangeBytesTotalMax: number;
  /** Ledger entries read at once while fetching a range. */
  fetchConcurrency: number;
  /** Expiry of a handle whose caller gave none (CCF's sample uses 1,800 s). */
  expiryDefaultSeconds: number;
}

/**
 * Counts alone did not bound memory: 4,096 cached states of 1 MB transactions (the default
 * max_body_size) are 4 GB. The byte limits hold ~60k typical states (~1 KB) and a handful of
 * maximal ones.
 */
export const HISTORICAL_LIMITS_DEFAULT: HistoricalLimits = {
  statesCachedMax: 4096,
  statesCachedBytesMax: 64 * 1024 * 1024,
  rangeSeqnosMax: 5000,
  handlesMax: 64,
  rangeStatesTotalMax: 20_000,
  rangeBytesTotalMax: 128 * 1024 * 1024,
  fetchConcurrency: 8,
  expiryDefaultSeconds: 1800,
};

interface RangeHandle {
  readonly start: number;
  readonly end: number;
  expiresAtMs: number;
  states?: readonly HistoricalState[];
  /** Bytes of `states` (stateBytes), once fetched. */
  bytes?: number;
  /** Why the range cannot be served (too large); the next call for it throws this. */
  refused?: string;
  fetching?: Promise<void>;
  failed?: boolean;
}

/** What a state is counted as beyond its keys and values: its receipt, the maps, the objects. */
const STATE_OVERHEAD_BYTES = 1024;
const WRITE_OVERHEAD_BYTES = 64;

/** The memory a state holds, roughly: its keys and values, plus fixed overheads. */
export function stateBytes(state: HistoricalState): number {
  let bytes = STATE_OVERHEAD_BYTES;
  for (const [name, writes] of state.maps) {
    bytes += name.length + WRITE_OVERHEAD_BYTES;
    for (const [key, value] of writes) bytes += key.length + (value?.length ?? 0) + WRITE_OVERHEAD_BYTES;
  }
  return bytes;
}

export class HistoricalStates {
  private readonly cache = new Map<number, Promise<HistoricalState>>();
  /** Bytes of each loaded state in `cache`, and their sum. */
  private readonly cachedBytes = new Map<number, number>();
  private cachedBytesTotal = 0;
  private readonly handles = new Map<number, RangeHandle>();
  private readonly limits: HistoricalLimits;

  constructor(
    private readonly source: HistoricalSource,
    limits: Partial<HistoricalLimits> = {},
    private readonly nowMs: () => number = Date.now,
  ) {
    this.limits = { ...HISTORICAL_LIMITS_DEFAULT, ...limits };
  }

  /**
   * The state written by committed transaction `view.seqno`. The caller checks the status
   * first (CCF's 404s for pending, unknown and invalid ids); this throws the same if it is not.
   */
  stateAt(view: number, seqno: number): Promise<HistoricalState> {
    const actual = this.source.viewAt(seqno);
    if (seqno > this.source.commitTxId.seqno || actual === null) {
      return Promise.reject(new CocoError("TransactionPendingOrUnknown",
        `Only committed transactions can be queried. Transaction ${formatTxId(view, seqno)} is not committed.`, 404));
    }
    if (actual !== view) {
      return Promise.reject(new CocoError("TransactionInvalid",
        `Only committed transactions can be queried. Transaction ${formatTxId(view, seqno)} is Invalid.`, 404));
    }
    const cached = this.cache.get(seqno);
    if (cached !== undefined) {
      this.cache.delete(seqno);
      this.cache.set(seqno, cached);
      return cached;
    }
    const loading = this.load(view, seqno);
    this.cache.set(seqno, loading);
    loading.then((state) => {
      if (this.cache.get(seqno) !== loading) return;
      const bytes = stateBytes(state);
      this.cachedBytes.set(seqno, bytes);
      this.cachedBytesTotal += bytes;
      this.evict();
    }, () => this.cache.get(seqno) === loading && this.uncache(seqno));
    this.evict();
    return loading;
  }

  /** Bytes of the states in the LRU cache (for tests and the memory figures). */
  get cachedStatesBytes(): number {
    return this.cachedBytesTotal;
  }

  /** Drops least recently used states until both cache limits hold. */
  private evict(): void {
    while (this.cache.size > this.limits.statesCachedMax || (this.cachedBytesTotal > this.limits.statesCachedBytesMax && this.cache.size > 0)) {
      this.uncache(this.cache.keys().next().value as number);
    }
  }

  private uncache(seqno: number): void {
    this.cache.delete(seqno);
    const bytes = this.cachedBytes.get(seqno);
    if (bytes === undefined) return;
    this.cachedBytes.delete(seqno);
    this.cachedBytesTotal -= bytes;
  }

  /**
   * CCF's `getStateRange`: the states of `start..end` (inclusive) once fetched, else null and
   * the fetch starts. A handle keeps one range until it expires, is dropped, or asks for
   * another range. A range that is not wholly committed is null (CCF: "not known to the node").
   */
  getStateRange(handle: number, start: number, end: number, secondsUntilExpiry: number | undefined): readonly HistoricalState[] | null {
    for (const [name, value] of [["handle", handle], ["startSeqno", start], ["endSeqno", end]] as const) {
      if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`ccf.historical.getStateRange: ${name} must be a non-negative integer, got ${value}`);
    }
    const expiry = secondsUntilExpiry ?? this.limits.expiryDefaultSeconds;
    if (!(typeof expiry === "number" && expiry >= 0)) throw new RangeError(`ccf.historical.getStateRange: secondsUntilExpiry must be a non-negative number, got ${String(expiry)}`);
    if (end < start) throw new RangeError(`ccf.historical.getStateRange: endSeqno ${end} is before startSeqno ${start}`);
    if (end - start + 1 > this.limits.rangeSeqnosMax) {
      throw new RangeError(`ccf.historical.getStateRange: at most ${this.limits.rangeSeqnosMax} seqnos per call (asked ${end - start + 1}); page through longer ranges`);
    }
    this.dropExpired();
    if (start < 1 || end > this.source.commitTxId.seqno) return null;
    let entry = this.handles.get(handle);
    if (entry !== undefined && entry.refused !== undefined && entry.start === start && entry.end === end) {
      this.handles.delete(handle);
      throw new RangeError(entry.refused);
    }
    if (entry !== undefined && (entry.start !== start || entry.end !== end || entry.failed === true || entry.refused !== undefined)) {
      this.handles.delete(handle);
      entry = undefined;
    }
    const expiresAtMs = this.nowMs() + expiry * 1000;
    if (entry === undefined) {
      entry = { start, end, expiresAtMs };
      this.makeRoom(end - start + 1);
      this.handles.set(handle, entry);
      entry.fetching = this.fetchRange(entry);
      return null;
    }
    this.handles.delete(handle); // most recently used last
    this.handles.set(handle, entry);
    entry.expiresAtMs = expiresAtMs;
    return entry.states ?? null;
  }

  /** CCF's `dropCachedStates`: true if the handle existed. */
  dropCachedStates(handle: number): boolean {
    return this.handles.delete(handle);
  }

  /** Resolves once the handle's fetch ended (successfully or not); undefined if nothing is fetching. */
  whenFetched(handle: number): Promise<void> | undefined {
    return this.handles.get(handle)?.fetching;
  }

  private async fetchRange(entry: RangeHandle): Promise<void> {
    const states: HistoricalState[] = new Array(entry.end - entry.start + 1);
    let next = entry.start;
    const worker = async () => {
      while (next <= entry.end) {
        const seqno = next++;
        const view = this.source.viewAt(seqno);
        if (view === null) throw new CocoError("TransactionPendingOrUnknown", `Seqno ${seqno} is not known to this node.`, 404);
        states[seqno - entry.start] = await this.stateAt(view, seqno);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.limits.fetchConcurrency, states.length) }, worker));
      const bytes = states.reduce((sum, state) => sum + stateBytes(state), 0);
      if (bytes > this.limits.rangeBytesTotalMax) {
        entry.refused = `ccf.historical.getStateRange: the states of seqnos ${entry.start}..${entry.end} take ${bytes} bytes, ` +
          `more than the ${this.limits.rangeBytesTotalMax} bytes all ranges may hold; ask for a shorter range`;
        return;
      }
      entry.states = states;
      entry.bytes = bytes;
      this.makeRoom(0, entry);
    } catch {
      entry.failed = true; // the next call for this handle starts over
    } finally {
      delete entry.fetching;
    }
  }

  private async load(view: number, seqno: number): Promise<HistoricalState> {
    const entry = await this.source.readEntry(seqno);
    const maps = new Map<string, Map<string, Buffer | null>>();
    for (const domain of [entry.publicDomain, entry.privatePlain]) {
      if (domain.length === 0) continue;
      for (const map of deserialiseDomain(domain).maps) {
        const writes = new Map<string, Buffer | null>();
        for (const [key, value] of map.writes) writes.set(key.toString("latin1"), value);
        maps.set(map.name, writes);
      }
    }
    const receipt = entry.isSignature ? signatureReceipt(maps) : { ...(await this.source.receipt(view, seqno)), is_signature_transaction: false };
    return { transactionId: formatTxId(view, seqno), seqno, receipt, maps };
  }

  private dropExpired(): void {
    const now = this.nowMs();
    for (const [handle, entry] of this.handles) if (entry.expiresAtMs < now) this.handles.delete(handle);
  }

  /**
   * Drops least recently used handles until `incoming` more states fit the bounds on handles,
   * states and bytes (bytes are known once a range is fetched). `keep` is never dropped.
   */
  private makeRoom(incoming: number, keep?: RangeHandle): void {
    let held = 0;
    let heldBytes = 0;
    for (const entry of this.handles.values()) {
      held += entry.end - entry.start + 1;
      heldBytes += entry.bytes ?? 0;
    }
    const handlesMax = keep === undefined ? this.limits.handlesMax - 1 : this.limits.handlesMax;
    for (const [handle, entry] of this.handles) {
      if (this.handles.size <= handlesMax && held + incoming <= this.limits.rangeStatesTotalMax && heldBytes <= this.limits.rangeBytesTotalMax) break;
      if (entry === keep) continue;
      this.handles.delete(handle);
      held -= entry.end - entry.start + 1;
      heldBytes -= entry.bytes ?? 0;
    }
  }
}

/** CCF's receipt of a signature transaction: the signed root, no proof (the signature is the leaf). */
function signatureReceipt(maps: ReadonlyMap<string, ReadonlyMap<string, Buffer | null>>): object {
  const value = [...(maps.get(SIGNATURES_MAP)?.values() ?? [])][0];
  if (value === undefined || value === null) throw new CocoError("InternalError", "A signature transaction's ledger entry holds no signature record.", 500);
  const record = decodeSignature(value);
  return { signature: record.sig, cert: record.cert, node_id: record.node, is_signature_transaction: true, root_hex: record.root };
}
