// The ledger worker thread: owns the ledger files. Its event loop does nothing else, so a
// group commit (write + fdatasync) is never delayed behind the main thread's request parsing;
// under load the main thread's loop turns take tens of milliseconds, and every await in an
// fs.promises write would wait for one.
import { parentPort } from "node:worker_threads";
import { CocoError } from "../util/errors.js";
import { Ledger } from "./ledger.js";
import { describeEntries, packEntries, unpackEntries, type WorkerReply, type WorkerRequest } from "./worker-protocol.js";

const port = parentPort;
if (!port) throw new Error("ledger worker must run in a worker thread");

let ledger: Ledger | undefined;
const logger = {
  info: (obj: object, msg: string) => port.postMessage({ id: -1, log: "info", obj, msg } satisfies WorkerReply),
  warn: (obj: object, msg: string) => port.postMessage({ id: -1, log: "warn", obj, msg } satisfies WorkerReply),
};

function opened(): Ledger {
  if (!ledger) throw new Error("ledger worker: not opened");
  return ledger;
}

async function handle(request: WorkerRequest): Promise<WorkerReply> {
  switch (request.op) {
    case "open": {
      const result = await Ledger.open(request.dir, { chunkSizeBytes: request.chunkSizeBytes, durability: request.durability, logger, returnEntries: request.returnEntries ?? true, startAfter: request.startAfter, residentIndexEntries: request.residentIndexEntries });
      ledger = result.ledger;
      const { bytes, lengths } = packEntries(result.entries);
      return { id: request.id, ok: true, durableSeqno: ledger.durableSeqno, lastSeqno: ledger.lastSeqno, committedSeqno: ledger.committedSeqno, bytes, lengths };
    }
    case "append": {
      const l = opened();
      const entries = unpackEntries(request.bytes, request.lengths);
      let s = 0;
      for (let i = 0; i < entries.length; i++) {
        const seqno = request.firstSeqno + i;
        while (s < request.signatures.length && request.signatures[s]! < seqno) s++;
        l.append(entries[i]!, seqno, request.signatures[s] === seqno, request.chunkEnds?.includes(seqno) === true);
      }
      if (request.flush) await l.flush();
      return { id: request.id, ok: true, durableSeqno: l.durableSeqno, lastSeqno: l.lastSeqno, indexedSeqnos: l.residentIndexSeqnos };
    }
    case "commit": {
      const l = opened();
      await l.commit(request.seqno);
      return { id: request.id, ok: true, durableSeqno: l.durableSeqno, lastSeqno: l.lastSeqno, committedSeqno: l.recordedCommitSeqno, indexedSeqnos: l.residentIndexSeqnos };
    }
    case "truncate":
      await opened().truncate(request.seqno);
      break;
    case "read": {
      const entry = await opened().read(request.seqno);
      const { bytes, lengths } = packEntries([entry]);
      return { id: request.id, ok: true, durableSeqno: opened().durableSeqno, lastSeqno: opened().lastSeqno, bytes, lengths };
    }
    case "readRange": {
      const entries = await opened().readRange(request.first, request.last, request.bytesMax);
      const { bytes, lengths } = packEntries(entries);
      return { id: request.id, ok: true, durableSeqno: opened().durableSeqno, lastSeqno: opened().lastSeqno, bytes, lengths };
    }
    case "describe": {
      // Hashing here, not on the main thread: a restart from a snapshot describes every entry it covers.
      const entries = await opened().readRange(request.first, request.last, request.bytesMax);
      const described = describeEntries(entries, request.first, request.marker);
      return { id: request.id, ok: true, durableSeqno: opened().durableSeqno, lastSeqno: opened().lastSeqno, described };
    }
    case "close":
      await ledger?.close();
      ledger = undefined;
      return { id: request.id, ok: true, durableSeqno: 0, lastSeqno: 0 };
  }
  return { id: request.id, ok: true, durableSeqno: opened().durableSeqno, lastSeqno: opened().lastSeqno };
}

// Requests take effect strictly in arrival order, the order the main thread relies on. Writes
// (append, commit, truncate) are handed to the Ledger as they arrive: it applies them in call
// order itself (buffering appends, queueing disk steps), so appends that arrive while a group
// commit is under way share the next one (one write and one fdatasync for all of them) instead
// of each waiting for its own. Every other request (open, reads, close) starts once the writes
// before it are done.
let writesDone: Promise<unknown> = Promise.resolve();
let queue: Promise<unknown> = Promise.resolve();
const WRITES = new Set<WorkerRequest["op"]>(["append", "commit", "truncate"]);

function settle(request: WorkerRequest, result: Promise<WorkerReply>): Promise<void> {
  return result.then((reply) => reply, (error: unknown) => {
    const e = error as Error;
    return error instanceof CocoError
      ? { id: request.id, ok: false, code: error.code, message: error.message, status: error.status, isCocoError: true } satisfies WorkerReply
      : { id: request.id, ok: false, code: "LedgerFailure", message: e?.message ?? String(error), status: 500, isCocoError: false } satisfies WorkerReply;
  }).then((reply) => {
    const transfer = "bytes" in reply && reply.bytes ? [reply.bytes] : "described" in reply && reply.described ? [reply.described.leaves] : [];
    port!.postMessage(reply, transfer);
  });
}

port.on("message", (request: WorkerRequest) => {
  if (WRITES.has(request.op)) {
    // Not after `queue`: an open, read or close in flight never holds a write back (the main
    // thread posts writes only once the ledger is open, and close after its last write).
    const done = settle(request, queue.then(() => handle(request)));
    writesDone = Promise.all([writesDone, done]);
    return;
  }
  const after = Promise.all([writesDone, queue]);
  queue = after.then(() => settle(request, handle(request)));
});
