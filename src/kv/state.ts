// The committed state the store holds and transactions read: one MapState per named map.
// Shared by store.ts (which mutates it) and transaction.ts (which only reads it).

/** One committed key: its value and the seqno of the transaction that last wrote it. */
export interface Entry {
  readonly value: Buffer;
  readonly version: number;
}

export interface MapState {
  readonly name: string;
  /** Keyed by latin1 key string (see keys.ts). Deleted keys are removed, no tombstones. */
  readonly entries: Map<string, Entry>;
  /** Seqno of the last transaction that wrote to this map; map-level reads check it. */
  lastWriteVersion: number;
}

/** The part of the store a transaction sees. */
export interface CommittedState {
  readonly maps: ReadonlyMap<string, MapState>;
  readonly currentVersion: number;
  /** Incremented by every rollback: versions are reused after one, so reads taken before it are stale. */
  readonly rollbackEpoch: number;
  /** Incremented by every Store.writeReserved: a write that lands below currentVersion. */
  readonly reservedWriteCount: number;
}
