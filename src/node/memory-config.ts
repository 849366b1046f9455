// How much of a long ledger a node keeps in memory (`coco.memory` in the configuration file).
// Everything here is a window over the ledger files, which hold the rest: a node's memory
// stays flat as its ledger grows (docs/architecture.md, "Memory").
import * as v8 from "node:v8";
import { CocoError } from "../util/index.js";

export interface MemoryConfigFile {
  /** Committed consensus entries kept in memory (newest first); older ones are read from the ledger. */
  consensus_window_entries?: number;
  /** Bytes of committed consensus entries kept in memory ("32MiB", or bytes). */
  consensus_window_size?: number | string;
  /** Merkle tree leaves kept below the commit point; older paths are rebuilt from the ledger. */
  merkle_window_leaves?: number;
  /** Ledger reads kept for receipts and historical queries ("16MiB", or bytes; LRU). */
  historical_cache_size?: number | string;
  /** Newest seqnos whose place in the ledger files stays in memory; older chunks are paged in from their index files. */
  ledger_index_entries?: number;
  /** Newest signature seqnos kept in memory; the signature covering an older transaction is found in the ledger. */
  signature_index_entries?: number;
  /**
   * How far V8 lets the JS heap grow past what survived its last full collection, in percent
   * (V8's --heap-growing-percent; 0: V8's own factor, up to 300 % on a busy node).
   */
  heap_growing_percent?: number;
}

export interface MemorySettings {
  consensusWindowEntries: number;
  consensusWindowBytes: number;
  merkleWindowLeaves: number;
  historicalCacheBytes: number;
  ledgerIndexEntries: number;
  signatureIndexEntries: number;
  /** 0: V8's adaptive default. Applies to the whole process (see applyHeapGrowth). */
  heapGrowingPercent: number;
}

/**
 * Defaults, with the reason for each. A backup more than the consensus window behind the commit
 * point is served from the ledger files (one worker read per append batch), which is slower
 * than memory: 20,000 entries is a few seconds of full load, far more than a healthy backup lags.
 * 32 MiB bounds the same window for large transactions. Merkle: 50,000 leaves (3.2 MB of
 * hashes, twice that before a trim) keep receipts of recent transactions free of ledger reads.
 * The historical cache of 16 MiB holds the leaves of ~2,000 Merkle blocks or a few thousand
 * entries for historical queries. The ledger's seqno index: 2^18 seqnos (~0.6 MB; at most twice
 * that before old chunks are paged out) cover the consensus window, recent receipts and a
 * snapshot interval's suffix many times over. Signature seqnos: 2^16 (512 KB, twice that before
 * a trim) are ~11 minutes of signatures at the fastest cadence (one per 10 ms) and hours at full
 * load; an older receipt finds its signature in the ledger (a few thousand entries described).
 * Heap growth of 100 %: a busy node's live JS heap is ~70 MB (the KV state and what is in
 * flight), but V8, seeing a high allocation rate, lets garbage pile up to 3-4 times that before
 * a full collection, so RSS rose with load to 500-600 MB. Capping the growth at 2× keeps the heap
 * near twice its live size for a few percent more CPU (docs/architecture.md, "Memory").
 */
export const MEMORY_DEFAULTS: MemorySettings = {
  consensusWindowEntries: 20_000,
  consensusWindowBytes: 32 * 1024 * 1024,
  merkleWindowLeaves: 50_000,
  historicalCacheBytes: 16 * 1024 * 1024,
  ledgerIndexEntries: 1 << 18,
  signatureIndexEntries: 1 << 16,
  heapGrowingPercent: 100,
};

/** Beyond this V8's own factor is no smaller: the setting would only hide a typo. */
const HEAP_GROWING_PERCENT_MAX = 400;

export function resolveMemory(file: MemoryConfigFile | undefined, parseSize: (value: number | string, field: string) => number): MemorySettings {
  const count = (value: number | undefined, field: string, fallback: number): number => {
    if (value === undefined) return fallback;
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new CocoError("InvalidConfiguration", `Invalid configuration: coco.memory.${field}: expected a positive integer, got ${JSON.stringify(value)}`, 400);
    }
    return value;
  };
  return {
    consensusWindowEntries: count(file?.consensus_window_entries, "consensus_window_entries", MEMORY_DEFAULTS.consensusWindowEntries),
    consensusWindowBytes: file?.consensus_window_size === undefined ? MEMORY_DEFAULTS.consensusWindowBytes
      : parseSize(file.consensus_window_size, "coco.memory.consensus_window_size"),
    merkleWindowLeaves: count(file?.merkle_window_leaves, "merkle_window_leaves", MEMORY_DEFAULTS.merkleWindowLeaves),
    historicalCacheBytes: file?.historical_cache_size === undefined ? MEMORY_DEFAULTS.historicalCacheBytes
      : parseSize(file.historical_cache_size, "coco.memory.historical_cache_size"),
    ledgerIndexEntries: count(file?.ledger_index_entries, "ledger_index_entries", MEMORY_DEFAULTS.ledgerIndexEntries),
    signatureIndexEntries: count(file?.signature_index_entries, "signature_index_entries", MEMORY_DEFAULTS.signatureIndexEntries),
    heapGrowingPercent: heapGrowingPercent(file?.heap_growing_percent),
  };
}

function heapGrowingPercent(value: number | undefined): number {
  if (value === undefined) return MEMORY_DEFAULTS.heapGrowingPercent;
  if (!Number.isSafeInteger(value) || value < 0 || value > HEAP_GROWING_PERCENT_MAX) {
    throw new CocoError("InvalidConfiguration",
      `Invalid configuration: coco.memory.heap_growing_percent: expected an integer from 0 (V8's default) to ${HEAP_GROWING_PERCENT_MAX}, got ${JSON.stringify(value)}`, 400);
  }
  return value;
}

/**
 * Sets V8's heap growth for this process before the node starts its workers (they are isolates
 * of the same process and read the flag when they collect). Process-wide: with several nodes in
 * one process (tests, the sandbox's first node) the last setting wins; they all use the same one.
 */
export function applyHeapGrowth(percent: number): void {
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
