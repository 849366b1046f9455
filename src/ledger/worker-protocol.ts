// Messages between the node's main thread and the ledger worker thread. Entries travel as one
// concatenated buffer plus their lengths, transferred (not copied) to the other thread. The worker
// handles requests strictly in arrival order, so the main thread's call order is the disk's order.
import { decodeEntry, entryLeafInto } from "./entry.js";
import type { Durability } from "./recovery.js";

export type WorkerRequest =
  | { id: number; op: "open"; dir: string; chunkSizeBytes?: number; durability?: Durability; returnEntries?: boolean; startAfter?: number; residentIndexEntries?: number }
  | { id: number; op: "append"; firstSeqno: number; bytes: ArrayBuffer; lengths: Uint32Array; signatures: number[]; chunkEnds?: number[]; flush: boolean }
  | { id: number; op: "commit"; seqno: number }
  | { id: number; op: "truncate"; seqno: number }
  | { id: number; op: "read"; seqno: number }
  | { id: number; op: "readRange"; first: number; last: number; bytesMax: number }
  /** What a restart from a snapshot needs of the entries it covers: leaves, views, flags (see EntryDescriptions). */
  | { id: number; op: "describe"; first: number; last: number; bytesMax: number; marker: Uint8Array }
  | { id: number; op: "close" };

export interface SuccessReply {
  id: number; ok: true; durableSeqno: number; lastSeqno: number; committedSeqno?: number; bytes?: ArrayBuffer; lengths?: Uint32Array; described?: EntryDescriptions;
  /** Seqnos the worker's in-memory index holds (with the replies to appends and commits, which change it). */
  indexedSeqnos?: number;
}

/**
 * Entries first..first + count - 1 described without handing them over: each one's Merkle leaf
 * (32 bytes, entryLeafInto), its view, and flags: bit 0 a signature transaction, bit 1 its public
 * domain contains the request's marker bytes (the caller reads such entries in full).
 */
export interface EntryDescriptions { first: number; leaves: ArrayBuffer; views: Float64Array; flags: Uint8Array }

/** Describes entries (worker side of "describe"); checks their headers and contiguity. */
export function describeEntries(entries: readonly Buffer[], first: number, marker: Uint8Array): EntryDescriptions {
  const count = entries.length;
  const leaves = new ArrayBuffer(32 * count);
  const out = Buffer.from(leaves);
  const views = new Float64Array(count);
  const flags = new Uint8Array(count);
  const markerBytes = Buffer.from(marker.buffer, marker.byteOffset, marker.byteLength);
  for (let i = 0; i < count; i++) {
    const entry = decodeEntry(entries[i]!);
    if (entry.seqno !== first + i) throw new Error(`assertion failed: ledger entries are contiguous (expected ${first + i}, found ${entry.seqno})`);
    entryLeafInto(entries[i]!, out, 32 * i);
    views[i] = entry.view;
    flags[i] = (entry.isSignature ? 1 : 0) | (entry.publicDomain.includes(markerBytes) ? 2 : 0);
  }
  return { first, leaves, views, flags };
}
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
