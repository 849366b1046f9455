// Public face of the ledger layer: the entry codec (header, public domain, encrypted private
// domain) and the chunked append-only files that hold entries on disk.
export {
  ENTRY_FORMAT_VERSION,
  ENTRY_HEADER_BYTES,
  ENTRY_KEY_NONCE_BYTES,
  LedgerSecret,
  decodeEntry,
  decryptPrivate,
  encodeEntry,
  entryLeaf,
  entryLeafInto,
  writeSetDigest,
  type DecodedEntry,
  type EntryFields,
} from "./entry.js";
export {
  CHUNK_MAGIC,
  COMMIT_POINT_FILE,
  FRAME_HEADER_BYTES,
  listLedgerFiles,
  parseChunkName,
  readLedgerDirectory,
  type LedgerFileInfo,
} from "./files.js";
export { LEDGER_DISK_FULL, isLedgerDiskFull, type LedgerEvents } from "./disk-full.js";
export { Ledger, type Durability, type LedgerLogger, type LedgerOptions } from "./ledger.js";
export { ThreadedLedger, type LedgerStore, type LedgerTimers, type LedgerWorkerPort, type ThreadedLedgerOptions } from "./threaded-ledger.js";
export type { WorkerRequest as LedgerWorkerRequest, WorkerReply as LedgerWorkerReply } from "./worker-protocol.js";
export { packEntries, unpackEntries, describeEntries, type EntryDescriptions } from "./worker-protocol.js";
export { LedgerSecrets, type LedgerSecretVersion } from "./secrets.js";
export {
  listSnapshots, parseSnapshotName, pruneSnapshots, openSnapshotFile, readSnapshotFile, removeSnapshotFile, snapshotName, writeFileAtomic,
  temporarySnapshotPath, publishSnapshotFile, writeCommittedSnapshotFile, removeTemporarySnapshotFiles,
  type SnapshotFileInfo,
} from "./snapshot-files.js";
