// The snapshot worker thread (see snapshot-writer.ts): takes the packed state the main thread
// captured (kv/snapshot-capture.ts), sorts and frames it (kv/snapshot-packed.ts: the bytes of
// encodeSnapshot), seals the private maps with the ledger secret, hashes the body and writes it
// to a temporary file (fsync'd when durable). A failed write removes its temporary file. It
// keeps nothing between requests; one request at a time, answered in order.
import { open, mkdir, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { parentPort } from "node:worker_threads";
// Imports name the modules themselves, not the packages' index files: an index would load the
// X.509, COSE and consensus code into this isolate for nothing (snapshot-body.ts).
import { sha256 } from "../crypto/hash.js";
import { encodePackedSnapshot } from "../kv/snapshot-packed.js";
import { encodeSnapshotBodyParts } from "./snapshot-body.js";
import type { SnapshotWorkerReply, SnapshotWorkerRequest } from "./snapshot-writer.js";

if (parentPort === null) throw new Error("snapshot-worker.js runs as a worker thread");
const port = parentPort;

async function produce(request: SnapshotWorkerRequest): Promise<SnapshotWorkerReply> {
  const started = performance.now();
  const { publicPart, privatePart } = encodePackedSnapshot(request.packed);
  const encodedMs = performance.now() - started;
  const parts = encodeSnapshotBodyParts({
    seqno: request.packed.version, view: request.view, views: request.views, tree: request.tree,
    publicPart, privatePart, ledgerSecret: request.ledgerSecret,
    ...(request.randomness !== undefined ? { randomness: request.randomness } : {}),
  });
  const digest = sha256(...parts);
  const sealedMs = performance.now() - started - encodedMs;
  await mkdir(dirname(request.temporaryPath), { recursive: true });
  const handle = await open(request.temporaryPath, "w", 0o600);
  try {
    for (const part of parts) await handle.write(part);
    if (request.durable) await handle.sync();
    await handle.close();
  } catch (error) {
    // A full disk (ENOSPC) or any write error: no half-written file stays behind.
    await handle.close().catch(() => undefined);
    await unlink(request.temporaryPath).catch(() => undefined);
    throw error;
  }
  const bytes = parts.reduce((sum, part) => sum + part.length, 0);
  return {
    id: request.id, ok: true, digest: new Uint8Array(digest), bytes,
    timings: { encodeMs: encodedMs, sealMs: sealedMs, writeMs: performance.now() - started - encodedMs - sealedMs },
  };
}

// One at a time: requests queue behind each other (a node takes one snapshot at a time anyway).
let queue: Promise<void> = Promise.resolve();
port.on("message", (request: SnapshotWorkerRequest) => {
  queue = queue.then(async () => {
    let reply: SnapshotWorkerReply;
    try {
      reply = await produce(request);
    } catch (error) {
      const err = error as NodeJS.ErrnoException;
      reply = { id: request.id, ok: false, error: { message: err.message, code: err.code ?? "SnapshotWriteFailed" } };
    }
    port.postMessage(reply);
  });
});
