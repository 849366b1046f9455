// Public face of the KV layer: the transactional, deterministic in-memory store, its
// transactions, and the write-set codec the ledger layer uses. Import only from here.

export { Store, type WriteObserver, type RollbackObserver } from "./store.js";
export { Transaction } from "./transaction.js";
export { ConflictError } from "./errors.js";
export {
  serialiseWriteSet,
  writeSetFormatVersion,
  type WriteSet,
  type MapWrites,
  type KeyWrite,
  type DomainWrites,
} from "./write-set.js";
export { deserialiseDomain, type Domain } from "./write-set-decode.js";
export { snapshotFormatVersion, encodeSnapshot, encodeSnapshotPieces } from "./snapshot.js";
export { SnapshotCapture, type PackedState } from "./snapshot-capture.js";
export { encodePackedSnapshot } from "./snapshot-packed.js";
export type { MapState } from "./state.js";
export { keyToString, keyFromString, isPublicMapName } from "./keys.js";
