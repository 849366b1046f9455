// How much of a long ledger a node keeps in memory (`coco.memory` in the configuration file).
// Everything here is a window over the ledger files, which hold the rest: a node's memory
// stays flat as its ledger grows (docs/architecture.md, "Memory").
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
}

export interface MemorySettings {
  consensusWindowEntries: number;
  consensusWindowBytes: number;
  merkleWindowLeaves: number;
  historicalCacheBytes: number;
}

/**
 * Defaults, with the reason for each. A backup more than the consensus window behind the commit
 * point is served from the ledger files (one worker read per append batch), which is slower
 * than memory: 20,000 entries is a few seconds of full load, far more than a healthy backup lags.
 * 32 MiB bounds the same window for large transactions. Merkle: 50,000 leaves (3.2 MB of
 * hashes, twice that before a trim) keep receipts of recent transactions free of ledger reads.
 * The historical cache of 16 MiB holds the leaves of ~2,000 Merkle blocks or a few thousand
 * entries for historical queries.
 */
export const MEMORY_DEFAULTS: MemorySettings = {
  consensusWindowEntries: 20_000,
  consensusWindowBytes: 32 * 1024 * 1024,
  merkleWindowLeaves: 50_000,
  historicalCacheBytes: 16 * 1024 * 1024,
};

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
  };
}
