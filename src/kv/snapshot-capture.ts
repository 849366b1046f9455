// Taking the committed state at one version out of the live store, cheaply and in slices, so a
// snapshot costs the node's main thread next to nothing: the capture copies each map's entries
// (key, version, value: already bytes) into transferable buffers a few thousand per event-loop
// turn, with no sorting and no per-entry objects. The store keeps executing transactions in
// between; it keeps its undo records from the captured version on (a pin) until the capture
// finishes, and the keys they touched are recorded as overrides: their state AT the version
// wins over whatever the live maps held when they were visited. A worker thread then sorts
// and frames the result (snapshot-packed.ts): the same bytes as encodeSnapshot of stateAt.
//
// Packed record, little endian (a transient, in-process format; never on disk):
//   Kind:u8 (1 = entry, 0 = absent at the version) MapIndex:u32 KeyLength:u32 Key:bytes
//   EntryVersion:f64 ValueLength:u32 Value:bytes        (absent records carry version 0, no value)
import { CocoError, assert } from "../util/errors.js";
import type { Entry, MapState } from "./state.js";

export const PACKED_RECORD_HEADER_BYTES = 1 + 4 + 4 + 8 + 4;

/** What a capture hands to the encoder: maps, packed entries, and the overrides that win over them. */
export interface PackedState {
  readonly version: number;
  /** Every map the capture visited, by MapIndex; `exists` false for maps created after the version. */
  readonly maps: readonly { name: string; lastWriteVersion: number; exists: boolean }[];
  /** Entries as the live maps held them when visited (a key may appear twice: re-added meanwhile). */
  readonly chunks: readonly ArrayBuffer[];
  /** Keys written after the version: their entry (or absence) at the version. */
  readonly overrides: ArrayBuffer;
  /** Entries in the chunks (for logs). */
  readonly entryCount: number;
}

/** One transaction's undo record for one map, as the store keeps it (store.ts). */
export interface CaptureUndo {
  readonly map: MapState;
  readonly created: boolean;
  readonly previousLastWriteVersion: number;
  readonly previousEntries: readonly (string | Entry | undefined)[];
}

/** What a capture needs of the store; the store implements it (Store.beginCapture). */
export interface CaptureSource {
  readonly maps: ReadonlyMap<string, MapState>;
  readonly rollbackEpoch: number;
  /** Undo records of the seqnos after `version`, oldest first (each a list in application order). */
  undoRecordsAfter(version: number): readonly (readonly CaptureUndo[])[];
  /** Ends the capture: the store may drop undo records up to its commit point again. */
  release(): void;
}

export class SnapshotCapture {
  private readonly mapList: MapState[];
  private mapIndex = 0;
  private iterator: Iterator<[string, Entry]> | undefined;
  private readonly chunks: ArrayBuffer[] = [];
  private readonly epoch: number;
  private entryCount = 0;
  private closed = false;
  /** Scratch of one slice: [key, entry] pairs, reused. */
  private readonly keys: string[] = [];
  private readonly entries: Entry[] = [];

  constructor(private readonly source: CaptureSource, readonly version: number) {
    this.mapList = Array.from(source.maps.values());
    this.epoch = source.rollbackEpoch;
  }

  get done(): boolean {
    return this.mapIndex >= this.mapList.length;
  }

  /** Packs up to `entriesMax` more entries into one chunk; returns true once every map is packed. */
  step(entriesMax: number): boolean {
    assert(!this.closed, "a finished or cancelled capture takes no more steps");
    assert(Number.isSafeInteger(entriesMax) && entriesMax >= 1, "a capture step packs at least one entry");
    this.checkNoRollback();
    const keys = this.keys;
    const entries = this.entries;
    keys.length = 0;
    entries.length = 0;
    const firstMap = this.mapIndex;
    const mapIndexOf: number[] = [];
    let bytes = 0;
    while (keys.length < entriesMax && this.mapIndex < this.mapList.length) {
      this.iterator ??= this.mapList[this.mapIndex]!.entries.entries();
      const next = this.iterator.next();
      if (next.done === true) {
        this.iterator = undefined;
        this.mapIndex++;
        continue;
      }
      const [k, entry] = next.value;
      keys.push(k);
      entries.push(entry);
      mapIndexOf.push(this.mapIndex);
      bytes += PACKED_RECORD_HEADER_BYTES + k.length + entry.value.length;
    }
    if (keys.length > 0) {
      const chunk = new ArrayBuffer(bytes);
      const out = Buffer.from(chunk);
      let at = 0;
      for (let i = 0; i < keys.length; i++) at = writeRecord(out, at, mapIndexOf[i]!, keys[i]!, entries[i]!);
      assert(at === bytes, `capture chunk wrote ${at} of ${bytes} bytes`);
      this.chunks.push(chunk);
      this.entryCount += keys.length;
    }
    assert(this.mapIndex >= firstMap, "maps are visited in order");
    keys.length = 0;
    entries.length = 0;
    return this.done;
  }

  /**
   * The packed state at the version: the keys written since (found in the pinned undo records)
   * become overrides holding their entry at the version; maps created since are marked absent.
   * Releases the store's pin.
   */
  finish(): PackedState {
    assert(this.done, "every map is packed before the capture finishes");
    assert(!this.closed, "a capture finishes once");
    try {
      this.checkNoRollback();
      // Walk back from the newest record, undo order within each: the last assignment per key is
      // its entry at the version, as Store.rollback would leave it.
      const overrides = new Map<string, Map<string, Entry | undefined>>();
      const lastWriteAt = new Map<string, number>();
      const createdAfter = new Map<string, boolean>();
      const records = this.source.undoRecordsAfter(this.version);
      for (let r = records.length - 1; r >= 0; r--) {
        const record = records[r]!;
        for (let m = record.length - 1; m >= 0; m--) {
          const undo = record[m]!;
          const name = undo.map.name;
          let keys = overrides.get(name);
          if (keys === undefined) overrides.set(name, keys = new Map());
          const previous = undo.previousEntries;
          for (let i = previous.length - 2; i >= 0; i -= 2) keys.set(previous[i] as string, previous[i + 1] as Entry | undefined);
          lastWriteAt.set(name, undo.previousLastWriteVersion);
          createdAfter.set(name, undo.created);
        }
      }
      const maps = this.mapList.map((map) => ({
        name: map.name, lastWriteVersion: lastWriteAt.get(map.name) ?? map.lastWriteVersion, exists: createdAfter.get(map.name) !== true,
      }));
      let bytes = 0;
      const pairs: [number, string, Entry | undefined][] = [];
      this.mapList.forEach((map, index) => {
        for (const [k, entry] of overrides.get(map.name) ?? []) {
          pairs.push([index, k, entry]);
          bytes += PACKED_RECORD_HEADER_BYTES + k.length + (entry?.value.length ?? 0);
        }
      });
      const overridesBuffer = new ArrayBuffer(bytes);
      const out = Buffer.from(overridesBuffer);
      let at = 0;
      for (const [index, k, entry] of pairs) at = writeRecord(out, at, index, k, entry);
      assert(at === bytes, `capture overrides wrote ${at} of ${bytes} bytes`);
      return { version: this.version, maps, chunks: this.chunks, overrides: overridesBuffer, entryCount: this.entryCount };
    } finally {
      this.close();
    }
  }

  /** Abandons the capture (the node stopped, or a rollback made it stale); releases the pin. */
  cancel(): void {
    if (!this.closed) this.close();
  }

  private close(): void {
    this.closed = true;
    this.iterator = undefined;
    this.source.release();
  }

  private checkNoRollback(): void {
    // A rollback pops undo records the capture relies on (writes after the version that were
    // visited already): the capture cannot tell the state at its version any more.
    if (this.source.rollbackEpoch !== this.epoch) {
      this.cancel();
      throw new CocoError("SnapshotAbandoned", `The capture of the state at seqno ${this.version} was abandoned: a rollback happened while it ran; the next committed signature takes one.`, 500);
    }
  }
}

function writeRecord(out: Buffer, at: number, mapIndex: number, k: string, entry: Entry | undefined): number {
  out[at] = entry === undefined ? 0 : 1;
  out.writeUInt32LE(mapIndex, at + 1);
  out.writeUInt32LE(k.length, at + 5);
  at += 9;
  at += out.write(k, at, "latin1");
  out.writeDoubleLE(entry?.version ?? 0, at);
  out.writeUInt32LE(entry?.value.length ?? 0, at + 8);
  at += 12;
  if (entry !== undefined) {
    out.set(entry.value, at);
    at += entry.value.length;
  }
  return at;
}
