// Limits for the node's worker threads (entry encoder, ledger writer). Each worker is its own V8
// isolate with its own heap; left alone, V8 grows a busy worker's young generation to 3 × 16 MiB
// (Node 20's semi-space default on 64-bit), which adds ~50 MB of RSS for two workers that keep
// almost nothing alive between messages (measured: docs/architecture.md, "Memory").
import type { ResourceLimits } from "node:worker_threads";

/** Young generation of a worker: its messages are short-lived; 4 MiB semi-spaces hold a busy turn. */
const WORKER_YOUNG_GENERATION_MB = 12;

export const WORKER_RESOURCE_LIMITS: ResourceLimits = { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB };
