// The KV store every node holds: named maps of byte keys to byte values, versioned by seqno.
// Writes arrive two ways: commit() of a local transaction, or applySerialised() of a write set
// from the ledger; both go through applyPending(), so both paths build identical state.
// Undo records per seqno allow rolling back the uncommitted tail after an election.

import { assert, CocoError } from "../util/errors.js";
import { compareMapNames, isPublicMapName, keyFromString, keyToString, compareKeys } from "./keys.js";
import { decodeSnapshot, encodeSnapshot } from "./snapshot.js";
import { SnapshotCapture } from "./snapshot-capture.js";
import type { CommittedState, Entry, MapState } from "./state.js";
import { Transaction, type PendingMapWrites } from "./transaction.js";
import { decodeDomainForApply } from "./write-set-decode.js";
import type { KeyWrite, MapWrites, WriteSet } from "./write-set.js";

export type WriteObserver = (seqno: number, writes: ReadonlyMap<string, Buffer | null>) => void;
export type RollbackObserver = (version: number) => void;

/** How to undo one transaction's writes to one map. */
interface MapUndo {
  readonly map: MapState;
  /** The transaction created the map: rollback removes it again. */
  readonly created: boolean;
  readonly previousLastWriteVersion: number;
  /** Pairs (latin1 key, previous entry or undefined if the key was absent). */
  readonly previousEntries: (string | Entry | undefined)[];
}

export class Store implements CommittedState {
  /** @internal Read by transactions; mutated only by this class. */
  readonly maps = new Map<string, MapState>();
  private version = 0;
  private epoch = 0;
  private reservedWrites = 0;
  /** Seqnos taken by reserve() and not yet compacted or rolled back. */
  private readonly reserved = new Set<number>();
  /** Undo information for seqnos <= compactedVersion has been dropped. */
  private compactedVersion = 0;
  /** undoLog[i] undoes seqno compactedVersion + 1 + i. */
  private readonly undoLog: MapUndo[][] = [];
  /** While a snapshot capture runs, undo records after this version are kept (beginCapture). */
  private capturePin: number | undefined;
  private readonly writeObservers = new Map<string, WriteObserver[]>();
  private readonly rollbackObservers: RollbackObserver[] = [];

  /** Seqno of the last applied write transaction (0 initially). */
  get currentVersion(): number {
    return this.version;
  }

  /** @internal Bumped by every rollback; see CommittedState. */
  get rollbackEpoch(): number {
    return this.epoch;
  }

  /** @internal See CommittedState. */
  get reservedWriteCount(): number {
    return this.reservedWrites;
  }

  /** Number of seqnos whose undo information is retained (they can still be rolled back). */
  get undoLogLength(): number {
    return this.undoLog.length;
  }

  begin(): Transaction {
    return new Transaction(this);
  }

  /**
   * Conflict-checks tx, then applies its writes at version seqno (= currentVersion + 1) and
   * returns its write set. Throws ConflictError (409) on a stale read; throws CocoError
   * "TransactionHasNoWrites" for a read-only transaction (check tx.hasWrites first: read-only
   * transactions simply end, they take no seqno). Either way the transaction is closed.
   */
  commit(tx: Transaction, seqno: number): WriteSet {
    assert(seqno === this.version + 1, `commit at seqno ${seqno} but current version is ${this.version}`);
    tx.checkConflicts(this);
    const pending = tx.takeWrites();
    if (pending.length === 0) {
      throw new CocoError("TransactionHasNoWrites", "a transaction without writes cannot be committed; check hasWrites first", 500);
    }
    const maps: MapWrites[] = pending.map((p) => ({ name: p.name, isPublic: isPublicMapName(p.name), writes: sortedWrites(p.writes) }));
    this.applyPending(seqno, pending);
    return { seqno, maps };
  }

  /**
   * Takes `seqno` (= currentVersion + 1) for a transaction whose writes are known only later,
   * and moves the version past it: a signature transaction signs a Merkle root that is still
   * being computed while later transactions commit. writeReserved() then applies its writes.
   */
  reserve(seqno: number): void {
    assert(seqno === this.version + 1, `reserve seqno ${seqno} but current version is ${this.version}`);
    this.undoLog.push([]);
    this.version = seqno;
    this.reserved.add(seqno);
  }

  /**
   * Applies a write of reserved `seqno` now that it is known. The key must not have been
   * written since (the caller reserves one such transaction per map and key at a time).
   * Transactions that read the key meanwhile conflict at commit, as for any write.
   */
  writeReserved(seqno: number, map: string, key: Buffer, value: Buffer): void {
    assert(this.reserved.has(seqno), `seqno ${seqno} was reserved (and not compacted or rolled back since)`);
    const record = this.undoLog[seqno - this.compactedVersion - 1]!;
    let state = this.maps.get(map);
    const created = state === undefined;
    if (state === undefined) {
      state = { name: map, entries: new Map(), lastWriteVersion: 0 };
      this.maps.set(map, state);
    }
    const k = keyToString(key);
    const previous = state.entries.get(k);
    assert(previous === undefined || previous.version < seqno, `key written at ${previous?.version} after reserved seqno ${seqno}`);
    record.push({ map: state, created, previousLastWriteVersion: state.lastWriteVersion, previousEntries: [k, previous] });
    state.entries.set(k, { value, version: seqno });
    state.lastWriteVersion = Math.max(state.lastWriteVersion, seqno);
    this.reservedWrites++;
    const observers = this.writeObservers.get(map);
    if (observers !== undefined) {
      const writes = new Map<string, Buffer | null>([[k, value]]);
      for (const cb of observers) cb(seqno, writes);
    }
  }

  /** Reads the latest local state outside any transaction. The Buffer must not be mutated. */
  get(map: string, key: Uint8Array): Buffer | undefined {
    return this.maps.get(map)?.entries.get(keyToString(key))?.value;
  }

  /** Applies a serialised write set (from the ledger or replication) at seqno = currentVersion + 1. */
  applySerialised(seqno: number, publicDomain: Uint8Array, privateDomain: Uint8Array): void {
    assert(seqno === this.version + 1, `apply at seqno ${seqno} but current version is ${this.version}`);
    // Decode both domains fully before touching state: a malformed entry changes nothing.
    const pending: PendingMapWrites[] = [];
    decodeDomainForApply(publicDomain, "public", pending);
    const publicMapCount = pending.length;
    decodeDomainForApply(privateDomain, "private", pending);
    // Each domain is sorted; merge only when both contribute (rare: most entries are one map).
    if (publicMapCount > 0 && pending.length > publicMapCount) pending.sort((a, b) => compareMapNames(a.name, b.name));
    this.applyPending(seqno, pending);
  }

  /** Undoes every write transaction with seqno > version; version must not precede compact(). */
  rollback(version: number): void {
    assert(Number.isSafeInteger(version), `rollback version ${version} is not an integer`);
    assert(version <= this.version, `rollback to ${version} beyond current version ${this.version}`);
    assert(version >= this.compactedVersion, `rollback to ${version} but seqnos up to ${this.compactedVersion} are compacted`);
    if (version === this.version) return;
    while (this.version > version) {
      const record = this.undoLog.pop()!;
      for (let m = record.length - 1; m >= 0; m--) undoMap(record[m]!, this.maps);
      this.version--;
    }
    this.epoch++;
    for (const seqno of this.reserved) if (seqno > version) this.reserved.delete(seqno);
    for (const cb of this.rollbackObservers) cb(version);
  }

  /** Drops undo information for seqnos <= version: they are committed and never roll back. */
  compact(version: number): void {
    assert(Number.isSafeInteger(version), `compact version ${version} is not an integer`);
    assert(version <= this.version, `compact to ${version} beyond current version ${this.version}`);
    for (const seqno of this.reserved) if (seqno <= version) this.reserved.delete(seqno);
    // A running snapshot capture still needs the undo records after its version.
    const dropTo = this.capturePin === undefined ? version : Math.min(version, this.capturePin);
    if (dropTo <= this.compactedVersion) return;
    this.undoLog.splice(0, dropTo - this.compactedVersion);
    this.compactedVersion = dropTo;
  }

  /** Calls cb after every commit or apply that writes `map`. Observers must not throw. */
  onWrite(map: string, cb: WriteObserver): void {
    const observers = this.writeObservers.get(map);
    if (observers === undefined) this.writeObservers.set(map, [cb]);
    else observers.push(cb);
  }

  /** Calls cb after every rollback that undid at least one seqno, so caches can reload. */
  onRollback(cb: RollbackObserver): void {
    this.rollbackObservers.push(cb);
  }

  /** Names of every map ever written (and not rolled back), sorted. */
  mapNames(): string[] {
    return Array.from(this.maps.keys()).sort(compareMapNames);
  }

  /** The whole state at currentVersion, deterministic bytes (see snapshot.ts). */
  snapshot(): Buffer {
    return encodeSnapshot(this.version, this.maps);
  }

  /**
   * The state as it was at `version` (compactedVersion <= version <= currentVersion), as fresh
   * map objects sharing the (immutable) entries: later writes are undone on the copies with the
   * undo log, so the live store is untouched. A snapshot of a committed seqno is taken this way
   * while the primary has already executed transactions after it.
   */
  stateAt(version: number): Map<string, MapState> {
    assert(Number.isSafeInteger(version), `stateAt version ${version} is not an integer`);
    assert(version >= this.compactedVersion && version <= this.version,
      `stateAt ${version} outside the undoable range ${this.compactedVersion}..${this.version}`);
    const copies = new Map<string, MapState>();
    for (const [name, map] of this.maps) copies.set(name, { name, entries: new Map(map.entries), lastWriteVersion: map.lastWriteVersion });
    for (let seqno = this.version; seqno > version; seqno--) {
      const record = this.undoLog[seqno - this.compactedVersion - 1]!;
      for (let m = record.length - 1; m >= 0; m--) {
        const undo = record[m]!;
        const copy = copies.get(undo.map.name);
        assert(copy !== undefined, `map ${undo.map.name} written at ${seqno} is present`);
        undoMap({ ...undo, map: copy }, copies);
      }
    }
    return copies;
  }

  /**
   * Starts capturing the state at `version` (compactedVersion <= version <= currentVersion) in
   * slices (snapshot-capture.ts): transactions keep committing meanwhile, and the undo records
   * after `version` are kept until the capture finishes or is cancelled. One at a time.
   */
  beginCapture(version: number): SnapshotCapture {
    // The capture reads the live epoch at every step (a rollback meanwhile abandons it).
    const epoch = (): number => this.epoch;
    assert(Number.isSafeInteger(version), `capture version ${version} is not an integer`);
    assert(version >= this.compactedVersion && version <= this.version,
      `capture at ${version} outside the undoable range ${this.compactedVersion}..${this.version}`);
    assert(this.capturePin === undefined, "one snapshot capture at a time");
    this.capturePin = version;
    return new SnapshotCapture({
      maps: this.maps,
      get rollbackEpoch() { return epoch(); },
      undoRecordsAfter: (after) => {
        assert(after >= this.compactedVersion, `undo records after ${after} are kept (compacted to ${this.compactedVersion})`);
        return this.undoLog.slice(after - this.compactedVersion);
      },
      release: () => { this.capturePin = undefined; },
    }, version);
  }

  /**
   * Fills an empty store with the state of snapshot parts taken at one version (the public and
   * the private maps are encoded separately); nothing before that version can be rolled back.
   */
  loadSnapshotParts(parts: readonly Uint8Array[]): void {
    assert(this.version === 0 && this.maps.size === 0, "a snapshot is loaded into an empty store");
    let version: number | undefined;
    for (const part of parts) {
      const decoded = decodeSnapshot(part);
      if (version !== undefined && decoded.version !== version) {
        throw new CocoError("InvalidSnapshot", `Snapshot parts are at different versions (${version} and ${decoded.version}).`, 400);
      }
      version = decoded.version;
      for (const [name, map] of decoded.maps) {
        if (this.maps.has(name)) throw new CocoError("InvalidSnapshot", `Map ${name} appears in two snapshot parts.`, 400);
        this.maps.set(name, map);
      }
    }
    assert(version !== undefined, "at least one snapshot part");
    this.version = version;
    this.compactedVersion = version;
  }

  /** A store at the snapshot's version; nothing before it can be rolled back. */
  static fromSnapshot(buf: Uint8Array): Store {
    const { version, maps } = decodeSnapshot(buf);
    const store = new Store();
    for (const [name, map] of maps) store.maps.set(name, map);
    store.version = version;
    store.compactedVersion = version;
    return store;
  }

  private applyPending(seqno: number, pending: readonly PendingMapWrites[]): void {
    const record: MapUndo[] = [];
    for (const { name, writes } of pending) {
      let map = this.maps.get(name);
      const created = map === undefined;
      if (map === undefined) {
        map = { name, entries: new Map(), lastWriteVersion: 0 };
        this.maps.set(name, map);
      }
      const previousEntries: (string | Entry | undefined)[] = [];
      for (const [k, value] of writes) {
        previousEntries.push(k, map.entries.get(k));
        if (value === null) map.entries.delete(k);
        else map.entries.set(k, { value, version: seqno });
      }
      record.push({ map, created, previousLastWriteVersion: map.lastWriteVersion, previousEntries });
      map.lastWriteVersion = seqno;
    }
    this.undoLog.push(record);
    this.version = seqno;
    for (const { name, writes } of pending) {
      const observers = this.writeObservers.get(name);
      if (observers !== undefined) for (const cb of observers) cb(seqno, writes);
    }
  }
}

function undoMap(undo: MapUndo, maps: Map<string, MapState>): void {
  const { map, previousEntries } = undo;
  for (let i = previousEntries.length - 2; i >= 0; i -= 2) {
    const k = previousEntries[i] as string;
    const previous = previousEntries[i + 1] as Entry | undefined;
    if (previous === undefined) map.entries.delete(k);
    else map.entries.set(k, previous);
  }
  map.lastWriteVersion = undo.previousLastWriteVersion;
  if (undo.created) maps.delete(map.name);
}

function sortedWrites(writes: ReadonlyMap<string, Buffer | null>): KeyWrite[] {
  if (writes.size === 1) {
    // The hot path (one key per transaction): no sort, no intermediate arrays.
    const [k, value] = writes.entries().next().value!;
    return [[keyFromString(k), value]];
  }
  const keys = Array.from(writes.keys()).sort(compareKeys);
  return keys.map((k) => [keyFromString(k), writes.get(k)!] as const);
}
