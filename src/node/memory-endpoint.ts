// GET /node/memory: CCF's heap figures for this node, plus what Coco bounds (docs/architecture.md,
// "Memory"): the consensus log's in-memory window, the Merkle tree's stored hashes, the signature
// seqnos and the
// process's resident size. The long-run benchmark samples it to show memory stays flat.
import v8 from "node:v8";
import type { ThreadedLedger } from "../ledger/index.js";
import type { EndpointRegistry } from "../rpc/index.js";
import type { TransactionEngine } from "./engine.js";
import type { Replicator } from "./replication.js";

export function installMemoryEndpoint(registry: EndpointRegistry, engine: TransactionEngine, replicator: () => Replicator, ledger: Pick<ThreadedLedger, "indexedSeqnos">): void {
  registry.install({
    method: "GET", path: "/node/memory", summary: "This node's memory use: heap (CCF's fields) and Coco's bounded windows",
    mode: "readonly", forwarding: "never", authPolicies: ["no_auth"],
    handler: () => {
      const usage = process.memoryUsage();
      const window = replicator().raft.logWindowState;
      return {
        body: {
          // CCF's fields (bytes).
          current_allocated_heap_size: usage.heapUsed,
          peak_allocated_heap_size: usage.heapTotal,
          max_total_heap_size: usage.heapTotal,
          // Coco's additions.
          rss: usage.rss,
          external: usage.external,
          array_buffers: usage.arrayBuffers,
          // The main thread's V8 heap by space (bytes committed and in use): where heapTotal goes.
          heap_spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((space) => [space.space_name, { size: space.space_size, used: space.space_used_size }])),
          consensus_window: { compacted_seqno: window.compactedIndex, entries: window.entries, payload_bytes: window.payloadBytes },
          merkle: { stored_hashes: engine.tree.storedHashCount, flushed_below: engine.tree.flushedIndex, leaves: engine.tree.size },
          // Signature seqnos in memory (coco.memory.signature_index_entries; older ones are found in the ledger).
          signatures: { seqnos: engine.signatureSeqnosResident, exact_from: engine.signatureSeqnosExactFrom },
          // The ledger worker's seqno index (coco.memory.ledger_index_entries pages old chunks out).
          ledger_index: { seqnos: ledger.indexedSeqnos },
        },
      };
    },
  });
}
