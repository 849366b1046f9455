// Key encoding for the KV store: keys are bytes, but JS Maps index by string. A latin1
// string has one UTF-16 code unit per byte, so the conversion is cheap, reversible, and
// ordinary string comparison (`<`) is exactly bytewise comparison of the keys.

import { CocoError } from "../util/errors.js";

// Node's undocumented-but-stable fast path behind buf.toString("latin1"); ~20% cheaper
// because it skips encoding-name dispatch. Not in @types/node, hence the cast.
type Latin1Sliceable = Buffer & { latin1Slice(start: number, end: number): string };

/** Converts key bytes to the store's internal latin1 string form (measured ~55 ns for 10 bytes). */
export function keyToString(key: Uint8Array): string {
  if (Buffer.isBuffer(key)) return (key as Latin1Sliceable).latin1Slice(0, key.length);
  if (!(key instanceof Uint8Array)) throw new CocoError("InvalidInput", "KV keys must be bytes (Uint8Array or Buffer)", 400);
  // Wrapping a plain Uint8Array in a Buffer view costs ~100 ns; for short keys building
  // the string from the code units directly is cheaper.
  if (key.length <= 64) return String.fromCharCode.apply(null, key as unknown as number[]);
  const view = Buffer.from(key.buffer, key.byteOffset, key.byteLength) as Latin1Sliceable;
  return view.latin1Slice(0, key.byteLength);
}

/** The latin1 key string of buf[start, end), without creating a Buffer view. */
export function keyStringAt(buf: Buffer, start: number, end: number): string {
  return (buf as Latin1Sliceable).latin1Slice(start, end);
}

/** Converts an internal latin1 key string back to its bytes (a fresh Buffer). */
export function keyFromString(key: string): Buffer {
  return Buffer.from(key, "latin1");
}

/** Bytewise order of latin1 key strings; equal to Buffer.compare on the decoded bytes. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const mapNameBytesCache = new Map<string, Buffer>();
const mapNameBytesCacheMax = 4096;

/** UTF-8 bytes of a map name, cached: the set of map names is small and stable. */
export function mapNameBytes(name: string): Buffer {
  let bytes = mapNameBytesCache.get(name);
  if (bytes === undefined) {
    bytes = Buffer.from(name, "utf8");
    // Bounded: an app creating endless map names must not grow this cache forever.
    if (mapNameBytesCache.size < mapNameBytesCacheMax) mapNameBytesCache.set(name, bytes);
  }
  return bytes;
}

/** Map order in write sets and snapshots: bytewise on the UTF-8 names, language-neutral. */
export function compareMapNames(a: string, b: string): number {
  return Buffer.compare(mapNameBytes(a), mapNameBytes(b));
}

/** Map names starting with `public:` are stored in plaintext in the ledger (CCF convention). */
export function isPublicMapName(name: string): boolean {
  return name.startsWith("public:");
}
