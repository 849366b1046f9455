// What a snapshot costs the node's main thread, old way against new, on one state:
//   main thread (before): Store.stateAt (a Map copy per map + undo) in the commit event, then
//     encodeSnapshotPieces (key sort per map in one step, varint framing in 20k-entry pieces)
//     and the AES-GCM seal + SHA-256 of the body;
//   main thread (now): SnapshotCapture.step in 4,096-entry slices + finish; the worker encodes,
//     seals, hashes and writes (its time is reported apart: it runs on the other core).
// Half the keys in a public map, half in a private one, 64-byte values, 16-byte keys.
// Run: node dist/bench/snapshot-micro.js [keys=500000] [--out FILE]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { sha256 } from "../src/crypto/index.js";
import { Store, encodePackedSnapshot, encodeSnapshotPieces, isPublicMapName, type MapState, type PackedState } from "../src/kv/index.js";
import { temporarySnapshotPath } from "../src/ledger/index.js";
import { encodeSnapshotBody } from "../src/node/snapshot-format.js";
import { SnapshotWriter } from "../src/node/snapshot-writer.js";

const ENTRIES_PER_PIECE_BEFORE = 20_000;
const ENTRIES_PER_SLICE_NOW = 4_096;

function buildStore(keys: number): Store {
  const store = new Store();
  const value = Buffer.alloc(64, 7);
  for (let i = 0; i < keys; i += 1000) {
    const tx = store.begin();
    for (let j = i; j < Math.min(keys, i + 1000); j++) {
      const key = Buffer.alloc(16);
      key.writeUInt32BE((j * 2654435761) >>> 0, 0);
      key.writeUInt32BE(j, 12);
      tx.set(j % 2 === 0 ? "public:records" : "records", key, value);
    }
    store.commit(tx, store.currentVersion + 1);
  }
  // Transactions after the snapshot's seqno, as on a primary that kept executing.
  for (let i = 0; i < 2000; i++) {
    const tx = store.begin();
    tx.set("records", Buffer.from(`later-${i}`), value);
    store.commit(tx, store.currentVersion + 1);
  }
  return store;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const outIndex = args.indexOf("--out");
  const out = outIndex >= 0 ? args[outIndex + 1] : undefined;
  const keys = Number(args.find((a, i) => !a.startsWith("--") && (outIndex < 0 || i !== outIndex + 1)) ?? 500_000);
  const store = buildStore(keys);
  const version = store.currentVersion - 2000;
  const secret = Buffer.alloc(32, 1);
  const tree = [Buffer.alloc(32, 2)];
  const views = [{ view: 1, seqno: 1 }];

  // Before: everything on the main thread.
  let started = performance.now();
  const maps = store.stateAt(version);
  const captureMs = performance.now() - started;
  let longestStepMs = captureMs;
  let encodeMs = 0;
  const encode = (filter: (name: string) => boolean): Buffer => {
    const pieces: Buffer[] = [];
    let pieceStarted = performance.now();
    for (const piece of encodeSnapshotPieces(version, new Map<string, MapState>([...maps].filter(([name]) => filter(name))), ENTRIES_PER_PIECE_BEFORE)) {
      pieces.push(piece);
      const ms = performance.now() - pieceStarted;
      encodeMs += ms;
      longestStepMs = Math.max(longestStepMs, ms);
      pieceStarted = performance.now();
    }
    return Buffer.concat(pieces);
  };
  const publicPart = encode(isPublicMapName);
  const privatePart = encode((name) => !isPublicMapName(name));
  started = performance.now();
  const body = encodeSnapshotBody({ seqno: version, view: 1, views, tree, ledgerSecret: secret, publicPart, privatePart });
  sha256(body);
  const sealMs = performance.now() - started;
  longestStepMs = Math.max(longestStepMs, sealMs);
  const before = { mainThreadMs: captureMs + encodeMs + sealMs, captureMs, encodeMs, sealMs, longestStepMs, bytes: body.length };

  // Now: slices on the main thread, the rest on the worker.
  const dir = mkdtempSync(join(tmpdir(), "coco-snapshot-micro-"));
  const writer = new SnapshotWriter();
  try {
    // Warm the worker (its start is paid once per node, not per snapshot).
    const warm = store.beginCapture(version);
    while (!warm.step(ENTRIES_PER_SLICE_NOW)) { /* slices */ }
    await writer.write({ packed: warm.finish(), view: 1, views, tree, ledgerSecret: secret, temporaryPath: temporarySnapshotPath(dir, version), durable: false });
    let mainThreadMs = 0;
    let longestSliceMs = 0;
    let slices = 0;
    const wallStarted = performance.now();
    const capture = store.beginCapture(version);
    for (;;) {
      const sliceStarted = performance.now();
      const done = capture.step(ENTRIES_PER_SLICE_NOW);
      const ms = performance.now() - sliceStarted;
      mainThreadMs += ms;
      longestSliceMs = Math.max(longestSliceMs, ms);
      slices++;
      if (done) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const finishStarted = performance.now();
    const packed = capture.finish();
    const finishMs = performance.now() - finishStarted;
    mainThreadMs += finishMs;
    const packedMiB = (packed.chunks.reduce((sum, c) => sum + c.byteLength, 0) + packed.overrides.byteLength) / 2 ** 20;
    const written = await writer.write({ packed, view: 1, views, tree, ledgerSecret: secret, temporaryPath: temporarySnapshotPath(dir, version), durable: false });
    const now = {
      mainThreadMs, slices, longestSliceMs: Math.max(longestSliceMs, finishMs), finishMs, packedMiB,
      worker: written.timings, wallMs: performance.now() - wallStarted, bytes: written.bytes,
    };
    const result = { benchmark: "snapshot-micro", keys, machine: { cores: cpus().length, loadAverage: loadavg() }, before, now, encodeHeap: encodeHeapGrowth(captureAll(store, version)) };
    console.log(JSON.stringify(result, (_, v: unknown) => (typeof v === "number" ? Math.round(v * 10) / 10 : v), 2));
    if (out !== undefined) writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function captureAll(store: Store, version: number): PackedState {
  const capture = store.beginCapture(version);
  while (!capture.step(ENTRIES_PER_SLICE_NOW)) { /* slices */ }
  return capture.finish();
}

/**
 * What the worker's encoding (encodePackedSnapshot) adds to a heap, run here in-process: heap
 * used and committed right after it, against right before it after a full collection; three
 * runs (the first warms the code).
 */
function encodeHeapGrowth(packed: PackedState): { usedMiB: number; committedMiB: number; bytes: number }[] {
  v8.setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const runs = [];
  for (let run = 0; run < 3; run++) {
    gc();
    const before = v8.getHeapStatistics();
    const encoded = encodePackedSnapshot(packed);
    const after = v8.getHeapStatistics();
    runs.push({ usedMiB: (after.used_heap_size - before.used_heap_size) / 2 ** 20, committedMiB: (after.total_heap_size - before.total_heap_size) / 2 ** 20, bytes: encoded.publicPart.length + encoded.privatePart.length });
  }
  return runs;
}

await main();
