// The encoding half of a snapshot taken with SnapshotCapture (snapshot-capture.ts), run on the
// snapshot worker thread: the packed entries are gathered per map, the overrides (the state at
// the version of keys written since) replace them, each map's keys are sorted, and each domain
// is framed exactly as encodeSnapshot frames it (snapshot.ts, format 1): byte for byte what
// encodeSnapshot(stateAt(version)) gives on the main thread. Arrays and one sort per map, no
// Map of every key: this runs on the second core of a two-core machine, so its CPU counts too.
import { assert } from "../util/errors.js";
import { compareMapNames, isPublicMapName, keyStringAt, mapNameBytes } from "./keys.js";
import { PACKED_RECORD_HEADER_BYTES, type PackedState } from "./snapshot-capture.js";
import { snapshotFormatVersion } from "./snapshot.js";
import { varintLength, writeVarint } from "./varint.js";

/**
 * One key's entry: its value stays where it is in the transferred chunk (`bytes`, from `at`,
 * `length` bytes). No Buffer view per key: at 100,000 keys the views were ~10 MB of the worker's
 * heap per snapshot, and the time to make them.
 */
interface Item { readonly k: string; readonly bytes: Buffer; readonly at: number; readonly length: number; readonly version: number }

const byKey = (a: Item, b: Item): number => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0);

/** The public and the private maps of a packed state, each encoded as encodeSnapshot does. */
export function encodePackedSnapshot(packed: PackedState): { publicPart: Buffer; privatePart: Buffer } {
  const items: Item[][] = packed.maps.map(() => []);
  for (const chunk of packed.chunks) readRecords(chunk, items.length, (mapIndex, item) => { items[mapIndex]!.push(item!); });
  const overrides: (Map<string, Item | undefined> | undefined)[] = packed.maps.map(() => undefined);
  readRecords(packed.overrides, items.length, (mapIndex, item, k) => { (overrides[mapIndex] ??= new Map()).set(k, item); });
  const sorted = packed.maps.map((map, index) => {
    let list = items[index]!;
    const replaced = overrides[index];
    if (replaced !== undefined) {
      // A key written after the version (even one visited twice: deleted and re-added while the
      // capture ran) takes its entry at the version from the overrides, or is absent.
      list = list.filter((item) => !replaced.has(item.k));
      for (const item of replaced.values()) if (item !== undefined) list.push(item);
    }
    list.sort(byKey);
    for (let i = 1; i < list.length; i++) assert(list[i - 1]!.k < list[i]!.k, `map ${map.name} holds each key once`);
    return list;
  });
  const encode = (wanted: (name: string) => boolean): Buffer => {
    const indexes = packed.maps.map((_, index) => index).filter((index) => packed.maps[index]!.exists && wanted(packed.maps[index]!.name));
    indexes.sort((a, b) => compareMapNames(packed.maps[a]!.name, packed.maps[b]!.name));
    return frame(packed.version, indexes.map((index) => ({ name: packed.maps[index]!.name, lastWriteVersion: packed.maps[index]!.lastWriteVersion, items: sorted[index]! })));
  };
  return { publicPart: encode(isPublicMapName), privatePart: encode((name) => !isPublicMapName(name)) };
}

function readRecords(buffer: ArrayBuffer, mapCount: number, apply: (mapIndex: number, item: Item | undefined, k: string) => void): void {
  const bytes = Buffer.from(buffer);
  let at = 0;
  while (at < bytes.length) {
    assert(at + PACKED_RECORD_HEADER_BYTES <= bytes.length, "a packed record is whole");
    const present = bytes[at] === 1;
    const mapIndex = bytes.readUInt32LE(at + 1);
    const keyLength = bytes.readUInt32LE(at + 5);
    assert(mapIndex < mapCount, `packed record of map ${mapIndex} of ${mapCount}`);
    at += 9;
    const k = keyStringAt(bytes, at, at + keyLength);
    at += keyLength;
    const version = bytes.readDoubleLE(at);
    const valueLength = bytes.readUInt32LE(at + 8);
    at += 12;
    // The value is read from the transferred chunk, which lives as long as the encoding.
    apply(mapIndex, present ? { k, bytes, at, length: valueLength, version } : undefined, k);
    at += valueLength;
  }
  assert(at === bytes.length, "packed records end at the buffer's end");
}

/** encodeSnapshot's framing (snapshot.ts) over maps already in order with sorted keys. */
function frame(version: number, maps: readonly { name: string; lastWriteVersion: number; items: readonly Item[] }[]): Buffer {
  let total = 1 + varintLength(version) + varintLength(maps.length);
  for (const map of maps) {
    const nameLength = mapNameBytes(map.name).length;
    total += varintLength(nameLength) + nameLength + varintLength(map.lastWriteVersion) + varintLength(map.items.length);
    for (const item of map.items) {
      total += varintLength(item.k.length) + item.k.length + varintLength(item.version) + varintLength(item.length) + item.length;
    }
  }
  const out = Buffer.allocUnsafe(total);
  out[0] = snapshotFormatVersion;
  let offset = writeVarint(out, 1, version);
  offset = writeVarint(out, offset, maps.length);
  for (const map of maps) {
    const nameBytes = mapNameBytes(map.name);
    offset = writeVarint(out, offset, nameBytes.length);
    offset += nameBytes.copy(out, offset);
    offset = writeVarint(out, offset, map.lastWriteVersion);
    offset = writeVarint(out, offset, map.items.length);
    for (const item of map.items) {
      offset = writeVarint(out, offset, item.k.length);
      offset += out.write(item.k, offset, "latin1");
      offset = writeVarint(out, offset, item.version);
      offset = writeVarint(out, offset, item.length);
      offset += item.bytes.copy(out, offset, item.at, item.at + item.length);
    }
  }
  assert(offset === total, `packed snapshot wrote ${offset} of ${total} bytes`);
  return out;
}
