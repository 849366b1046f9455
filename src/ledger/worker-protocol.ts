// Messages between the node's main thread and the ledger worker thread. Entries travel as one
// concatenated buffer plus their lengths, transferred (not copied) to the other thread. The worker
// handles requests strictly in arrival order, so the main thread's call order is the disk's order.
import type { Durability } from "./recovery.js";

export type WorkerRequest =
  | { id: number; op: "open"; dir: string; chunkSizeBytes?: number; durability?: Durability; returnEntries?: boolean; startAfter?: number }
  | { id: number; op: "append"; firstSeqno: number; bytes: ArrayBuffer; lengths: Uint32Array; signatures: number[]; chunkEnds?: number[]; flush: boolean }
  | { id: number; op: "commit"; seqno: number }
  | { id: number; op: "truncate"; seqno: number }
  | { id: number; op: "read"; seqno: number }
  | { id: number; op: "readRange"; first: number; last: number; bytesMax: number }
  | { id: number; op: "close" };

export interface SuccessReply { id: number; ok: true; durableSeqno: number; lastSeqno: number; committedSeqno?: number; bytes?: ArrayBuffer; lengths?: Uint32Array }
export interface FailureReply { id: number; ok: false; code: string; message: string; status: number; isCocoError: boolean }
export interface LogReply { id: -1; log: "info" | "warn"; obj: object; msg: string }
export type WorkerReply = SuccessReply | FailureReply | LogReply;

/** Packs buffers into one transferable buffer and their lengths. */
export function packEntries(entries: readonly Buffer[]): { bytes: ArrayBuffer; lengths: Uint32Array } {
  let total = 0;
  for (const e of entries) total += e.length;
  const bytes = new ArrayBuffer(total);
  const view = new Uint8Array(bytes);
  const lengths = new Uint32Array(entries.length);
  let offset = 0;
  for (let i = 0; i < entries.length; i++) {
    view.set(entries[i]!, offset);
    offset += entries[i]!.length;
    lengths[i] = entries[i]!.length;
  }
  return { bytes, lengths };
}

export function unpackEntries(bytes: ArrayBuffer, lengths: Uint32Array): Buffer[] {
  const out: Buffer[] = new Array(lengths.length);
  let offset = 0;
  for (let i = 0; i < lengths.length; i++) {
    out[i] = Buffer.from(bytes, offset, lengths[i]!);
    offset += lengths[i]!;
  }
  return out;
}
