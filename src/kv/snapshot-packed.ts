// The encoding half of a snapshot taken with SnapshotCapture (snapshot-capture.ts), run on the
// snapshot worker thread: the packed entries are gathered per map, the overrides (the state at
// the version of keys written since) replace them, and each domain is encoded with
// encodeSnapshot: byte for byte what encodeSnapshot(stateAt(version)) gives on the main thread.
import { assert } from "../util/errors.js";
import { isPublicMapName, keyStringAt } from "./keys.js";
import { PACKED_RECORD_HEADER_BYTES, type PackedState } from "./snapshot-capture.js";
import { encodeSnapshot } from "./snapshot.js";
import type { Entry, MapState } from "./state.js";

/** The public and the private maps of a packed state, each encoded as encodeSnapshot does. */
export function encodePackedSnapshot(packed: PackedState): { publicPart: Buffer; privatePart: Buffer } {
  const entries = packed.maps.map(() => new Map<string, Entry>());
  const read = (buffer: ArrayBuffer, apply: (map: Map<string, Entry>, k: string, entry: Entry | undefined) => void) => {
    const bytes = Buffer.from(buffer);
    let at = 0;
    while (at < bytes.length) {
      assert(at + PACKED_RECORD_HEADER_BYTES <= bytes.length, "a packed record is whole");
      const present = bytes[at] === 1;
      const mapIndex = bytes.readUInt32LE(at + 1);
      const keyLength = bytes.readUInt32LE(at + 5);
      at += 9;
      const k = keyStringAt(bytes, at, at + keyLength);
      at += keyLength;
      const version = bytes.readDoubleLE(at);
      const valueLength = bytes.readUInt32LE(at + 8);
      at += 12;
      const map = entries[mapIndex];
      assert(map !== undefined, `packed record of map ${mapIndex} of ${entries.length}`);
      // A view into the transferred chunk: no copy; the chunk lives as long as the encoding.
      apply(map, k, present ? { value: bytes.subarray(at, at + valueLength), version } : undefined);
      at += valueLength;
    }
    assert(at === bytes.length, "packed records end at the buffer's end");
  };
  for (const chunk of packed.chunks) read(chunk, (map, k, entry) => { map.set(k, entry!); });
  read(packed.overrides, (map, k, entry) => {
    if (entry === undefined) map.delete(k);
    else map.set(k, entry);
  });
  const publicMaps = new Map<string, MapState>();
  const privateMaps = new Map<string, MapState>();
  packed.maps.forEach((map, index) => {
    if (!map.exists) return;
    const state: MapState = { name: map.name, entries: entries[index]!, lastWriteVersion: map.lastWriteVersion };
    (isPublicMapName(map.name) ? publicMaps : privateMaps).set(map.name, state);
  });
  return { publicPart: encodeSnapshot(packed.version, publicMaps), privatePart: encodeSnapshot(packed.version, privateMaps) };
}
