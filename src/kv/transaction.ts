// A KV transaction: reads see the latest committed state plus the transaction's own writes,
// and every read records the version it observed. Store.commit later re-checks those versions
// (optimistic concurrency): async handlers interleave, and a stale read means re-execution.

import { assert, CocoError } from "../util/errors.js";
import { ConflictError } from "./errors.js";
import { compareKeys, compareMapNames, keyFromString, keyToString } from "./keys.js";
import type { CommittedState, Entry, MapState } from "./state.js";

/** What the transaction did to one map. */
interface TxMap {
  readonly name: string;
  /** Own writes by latin1 key; null = deleted. Created on first write. */
  writes: Map<string, Buffer | null> | undefined;
  /** Versions observed by key reads (0 = absent). Created on first read. */
  reads: Map<string, number> | undefined;
  /** lastWriteVersion observed by the first map-level read (forEach, size, clear), or -1. */
  mapReadVersion: number;
  /** After clear(), committed entries are invisible to this transaction. */
  cleared: boolean;
}

/** Writes of one map ready to apply; the store's commit and apply paths share this shape. */
export interface PendingMapWrites {
  readonly name: string;
  readonly writes: ReadonlyMap<string, Buffer | null>;
}

export class Transaction {
  private readonly txMaps = new Map<string, TxMap>();
  private finished = false;
  /** Store version when the transaction began: if unchanged at commit, no read can be stale. */
  private readonly beginVersion: number;
  private readonly beginRollbackEpoch: number;
  private readonly beginReservedWrites: number;

  /** Created by Store.begin(). */
  constructor(private readonly state: CommittedState) {
    this.beginVersion = state.currentVersion;
    this.beginRollbackEpoch = state.rollbackEpoch;
    this.beginReservedWrites = state.reservedWriteCount;
  }

  /** Own writes first, then committed state. The returned Buffer must not be mutated. */
  get(map: string, key: Uint8Array): Buffer | undefined {
    this.assertOpen();
    const k = keyToString(key);
    const txMap = this.txMap(map);
    if (txMap.writes !== undefined) {
      const own = txMap.writes.get(k);
      if (own !== undefined) return own ?? undefined;
    }
    if (txMap.cleared) return undefined;
    const entry = this.committedEntry(map, k);
    this.recordRead(txMap, k, entry);
    return entry?.value;
  }

  has(map: string, key: Uint8Array): boolean {
    return this.get(map, key) !== undefined;
  }

  /** Blind write: never causes a conflict by itself. The value is copied. */
  set(map: string, key: Uint8Array, value: Uint8Array): void {
    this.assertOpen();
    if (!(value instanceof Uint8Array)) throw new CocoError("InvalidInput", "KV values must be bytes", 400);
    // Copy into the Buffer pool (~60 ns for 100 bytes); the caller may reuse its buffer.
    const copy = Buffer.allocUnsafe(value.length);
    copy.set(value);
    this.writesOf(this.txMap(map)).set(keyToString(key), copy);
  }

  /**
   * Deletes the key; returns whether it existed as seen by this transaction. Because the result
   * reveals state, a delete of a key the transaction has not written records a read of it.
   */
  delete(map: string, key: Uint8Array): boolean {
    this.assertOpen();
    const k = keyToString(key);
    const txMap = this.txMap(map);
    const own = txMap.writes?.get(k);
    let existed: boolean;
    if (own !== undefined) existed = own !== null;
    else if (txMap.cleared) existed = false;
    else {
      const entry = this.committedEntry(map, k);
      this.recordRead(txMap, k, entry);
      existed = entry !== undefined;
    }
    // Always a deletion write (never "undo my own set"): a concurrent creation of the key
    // must still end up deleted, exactly as if this transaction ran after it.
    this.writesOf(txMap).set(k, null);
    return existed;
  }

  /** Deletes every key of the map; a map-level read, so any concurrent write to it conflicts. */
  clear(map: string): void {
    this.assertOpen();
    const txMap = this.txMap(map);
    const mapState = this.recordMapRead(txMap);
    txMap.cleared = true;
    const writes = new Map<string, Buffer | null>();
    // Deletions of the committed keys seen now; the map-level read guarantees they are
    // still exactly the committed keys at commit, so the write set is final here.
    if (mapState !== undefined) for (const k of mapState.entries.keys()) writes.set(k, null);
    txMap.writes = writes;
  }

  /**
   * Visits the merged view (committed + own writes) in bytewise key order, so iteration is
   * deterministic on every node whatever its history. Return false from cb to stop early.
   */
  forEach(map: string, cb: (value: Buffer, key: Buffer) => void | boolean): void {
    this.assertOpen();
    const txMap = this.txMap(map);
    const mapState = this.recordMapRead(txMap);
    const keys: string[] = [];
    if (mapState !== undefined && !txMap.cleared) {
      for (const k of mapState.entries.keys()) if (txMap.writes?.has(k) !== true) keys.push(k);
    }
    if (txMap.writes !== undefined) for (const [k, v] of txMap.writes) if (v !== null) keys.push(k);
    keys.sort(compareKeys);
    for (const k of keys) {
      const value = txMap.writes?.get(k) ?? mapState!.entries.get(k)!.value;
      if (cb(value, keyFromString(k)) === false) return;
    }
  }

  /** Number of keys in the merged view; a map-level read. */
  size(map: string): number {
    this.assertOpen();
    const txMap = this.txMap(map);
    const mapState = this.recordMapRead(txMap);
    const committed = txMap.cleared || mapState === undefined ? undefined : mapState.entries;
    let size = committed?.size ?? 0;
    if (txMap.writes !== undefined) {
      for (const [k, v] of txMap.writes) {
        const inCommitted = committed?.has(k) === true;
        if (v === null && inCommitted) size--;
        else if (v !== null && !inCommitted) size++;
      }
    }
    return size;
  }

  /**
   * CCF semantics: the seqno at which the key was last written in the committed state,
   * ignoring this transaction's own writes; undefined if the key is absent. Records a read.
   */
  getVersionOfPreviousWrite(map: string, key: Uint8Array): number | undefined {
    this.assertOpen();
    const k = keyToString(key);
    const entry = this.committedEntry(map, k);
    this.recordRead(this.txMap(map), k, entry);
    return entry?.version;
  }

  get hasWrites(): boolean {
    for (const txMap of this.txMaps.values()) if (txMap.writes !== undefined && txMap.writes.size > 0) return true;
    return false;
  }

  /**
   * Whether a read of this transaction no longer matches the committed state (commit would
   * throw a conflict), without closing it. A read-only handler that awaited between reads (the
   * EVM app's eth_call on a worker thread) asks this to know its reads formed one snapshot.
   */
  hasStaleReads(): boolean {
    this.assertOpen();
    const state = this.state;
    if (state.rollbackEpoch !== this.beginRollbackEpoch) return true;
    if (state.currentVersion === this.beginVersion && state.reservedWriteCount === this.beginReservedWrites) return false;
    for (const txMap of this.txMaps.values()) {
      const mapState = state.maps.get(txMap.name);
      if (txMap.mapReadVersion >= 0 && (mapState?.lastWriteVersion ?? 0) !== txMap.mapReadVersion) return true;
      if (txMap.reads === undefined) continue;
      for (const [k, observed] of txMap.reads) if ((mapState?.entries.get(k)?.version ?? 0) !== observed) return true;
    }
    return false;
  }

  /** @internal Store.commit: throws ConflictError if any read is stale. */
  checkConflicts(state: CommittedState): void {
    assert(state === this.state, "transaction committed to a store other than the one that began it");
    this.assertOpen();
    if (state.rollbackEpoch !== this.beginRollbackEpoch) {
      this.finished = true;
      throw new ConflictError("the store was rolled back while the transaction ran");
    }
    // Nothing committed since begin (a reserved seqno's late write does not move the version).
    if (state.currentVersion === this.beginVersion && state.reservedWriteCount === this.beginReservedWrites) return;
    for (const txMap of this.txMaps.values()) {
      const mapState = state.maps.get(txMap.name);
      if (txMap.mapReadVersion >= 0 && (mapState?.lastWriteVersion ?? 0) !== txMap.mapReadVersion) {
        this.finished = true;
        throw new ConflictError(`map ${JSON.stringify(txMap.name)} was written after this transaction read it`);
      }
      if (txMap.reads === undefined) continue;
      for (const [k, observed] of txMap.reads) {
        if ((mapState?.entries.get(k)?.version ?? 0) !== observed) {
          this.finished = true;
          throw new ConflictError(`a key of map ${JSON.stringify(txMap.name)} changed after this transaction read it`);
        }
      }
    }
  }

  /** @internal Store.commit: closes the transaction and hands over its writes, maps sorted by name. */
  takeWrites(): PendingMapWrites[] {
    this.assertOpen();
    this.finished = true;
    const pending: PendingMapWrites[] = [];
    for (const txMap of this.txMaps.values()) {
      if (txMap.writes !== undefined && txMap.writes.size > 0) pending.push({ name: txMap.name, writes: txMap.writes });
    }
    if (pending.length > 1) pending.sort((a, b) => compareMapNames(a.name, b.name));
    return pending;
  }

  private assertOpen(): void {
    if (this.finished) throw new CocoError("TransactionClosed", "the transaction was already committed or aborted; begin a new one", 500);
  }

  private txMap(name: string): TxMap {
    let txMap = this.txMaps.get(name);
    if (txMap === undefined) {
      if (typeof name !== "string" || name.length === 0) throw new CocoError("InvalidInput", "a map name must be a non-empty string", 400);
      txMap = { name, writes: undefined, reads: undefined, mapReadVersion: -1, cleared: false };
      this.txMaps.set(name, txMap);
    }
    return txMap;
  }

  private writesOf(txMap: TxMap): Map<string, Buffer | null> {
    return (txMap.writes ??= new Map());
  }

  private committedEntry(map: string, k: string): Entry | undefined {
    return this.state.maps.get(map)?.entries.get(k);
  }

  private recordRead(txMap: TxMap, k: string, entry: Entry | undefined): void {
    const reads = (txMap.reads ??= new Map());
    // Keep the first observation: if the key changed since, the commit must conflict.
    if (!reads.has(k)) reads.set(k, entry?.version ?? 0);
  }

  private recordMapRead(txMap: TxMap): MapState | undefined {
    const mapState = this.state.maps.get(txMap.name);
    if (txMap.mapReadVersion < 0) txMap.mapReadVersion = mapState?.lastWriteVersion ?? 0;
    return mapState;
  }
}
