// Snapshot encoding: the whole committed KV state at one version, deterministic (maps sorted
// by UTF-8 name, keys bytewise), so two stores with equal state produce equal bytes. Used for
// node catch-up and, in tests, as the canonical way to compare states.
//
// Format 1:
//   Snapshot := FormatVersion:u8 (= 1) Version:varint MapCount:varint Map{MapCount}
//   Map      := NameLength:varint Name:utf8 LastWriteVersion:varint EntryCount:varint Entry{EntryCount}
//   Entry    := KeyLength:varint Key:bytes EntryVersion:varint ValueLength:varint Value:bytes
// with 1 <= EntryVersion <= LastWriteVersion <= Version (varints as in write-set.ts).

import { compareKeys, compareMapNames, keyToString, mapNameBytes } from "./keys.js";
import type { Entry, MapState } from "./state.js";
import { ByteReader, varintLength, writeVarint } from "./varint.js";

export const snapshotFormatVersion = 1;

export function encodeSnapshot(version: number, maps: ReadonlyMap<string, MapState>): Buffer {
  const names = Array.from(maps.keys()).sort(compareMapNames);
  const sortedKeys = names.map((name) => Array.from(maps.get(name)!.entries.keys()).sort(compareKeys));
  let total = 1 + varintLength(version) + varintLength(names.length);
  names.forEach((name, i) => {
    const map = maps.get(name)!;
    const nameLength = mapNameBytes(name).length;
    total += varintLength(nameLength) + nameLength + varintLength(map.lastWriteVersion) + varintLength(map.entries.size);
    for (const k of sortedKeys[i]!) {
      const entry = map.entries.get(k)!;
      total += varintLength(k.length) + k.length + varintLength(entry.version);
      total += varintLength(entry.value.length) + entry.value.length;
    }
  });
  const out = Buffer.allocUnsafe(total);
  out[0] = snapshotFormatVersion;
  let offset = writeVarint(out, 1, version);
  offset = writeVarint(out, offset, names.length);
  names.forEach((name, i) => {
    const map = maps.get(name)!;
    const nameBytes = mapNameBytes(name);
    offset = writeVarint(out, offset, nameBytes.length);
    offset += nameBytes.copy(out, offset);
    offset = writeVarint(out, offset, map.lastWriteVersion);
    offset = writeVarint(out, offset, map.entries.size);
    for (const k of sortedKeys[i]!) {
      const entry = map.entries.get(k)!;
      offset = writeVarint(out, offset, k.length);
      offset += out.write(k, offset, "latin1");
      offset = writeVarint(out, offset, entry.version);
      offset = writeVarint(out, offset, entry.value.length);
      offset += entry.value.copy(out, offset);
    }
  });
  if (offset !== total) throw new Error(`assertion failed: snapshot wrote ${offset} of ${total} bytes`);
  return out;
}

/**
 * The same bytes as encodeSnapshot, handed out in pieces of at most `entriesPerPieceMax` entries,
 * so that a caller can yield to the event loop between pieces (a node encoding a large state
 * keeps answering requests). The maps must not change while the generator runs (the node
 * encodes a copy: Store.stateAt). Each map's keys are still sorted in one piece.
 */
export function* encodeSnapshotPieces(version: number, maps: ReadonlyMap<string, MapState>, entriesPerPieceMax: number): Generator<Buffer> {
  if (!Number.isSafeInteger(entriesPerPieceMax) || entriesPerPieceMax < 1) throw new Error("assertion failed: a snapshot piece holds at least one entry");
  const names = Array.from(maps.keys()).sort(compareMapNames);
  const head = Buffer.allocUnsafe(1 + varintLength(version) + varintLength(names.length));
  head[0] = snapshotFormatVersion;
  writeVarint(head, writeVarint(head, 1, version), names.length);
  yield head;
  for (const name of names) {
    const map = maps.get(name)!;
    const nameBytes = mapNameBytes(name);
    const mapHead = Buffer.allocUnsafe(varintLength(nameBytes.length) + nameBytes.length + varintLength(map.lastWriteVersion) + varintLength(map.entries.size));
    let offset = writeVarint(mapHead, 0, nameBytes.length);
    offset += nameBytes.copy(mapHead, offset);
    offset = writeVarint(mapHead, offset, map.lastWriteVersion);
    writeVarint(mapHead, offset, map.entries.size);
    yield mapHead;
    const keys = Array.from(map.entries.keys()).sort(compareKeys);
    for (let first = 0; first < keys.length; first += entriesPerPieceMax) {
      const slice = keys.slice(first, first + entriesPerPieceMax);
      let total = 0;
      for (const k of slice) {
        const entry = map.entries.get(k)!;
        total += varintLength(k.length) + k.length + varintLength(entry.version) + varintLength(entry.value.length) + entry.value.length;
      }
      const piece = Buffer.allocUnsafe(total);
      let at = 0;
      for (const k of slice) {
        const entry = map.entries.get(k)!;
        at = writeVarint(piece, at, k.length);
        at += piece.write(k, at, "latin1");
        at = writeVarint(piece, at, entry.version);
        at = writeVarint(piece, at, entry.value.length);
        at += entry.value.copy(piece, at);
      }
      if (at !== total) throw new Error(`assertion failed: snapshot piece wrote ${at} of ${total} bytes`);
      yield piece;
    }
  }
}

/** Decodes and validates a snapshot; throws CocoError "InvalidSnapshot" on any defect. Values are copied. */
export function decodeSnapshot(buf: Uint8Array): { version: number; maps: Map<string, MapState> } {
  const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const reader = new ByteReader(bytes, "InvalidSnapshot");
  const format = reader.u8();
  if (format !== snapshotFormatVersion) reader.fail(`unknown snapshot format ${format}`);
  const version = reader.varint();
  const mapCount = reader.length(3);
  const maps = new Map<string, MapState>();
  let previousName: Buffer | undefined;
  for (let m = 0; m < mapCount; m++) {
    const nameBytes = reader.bytes(reader.length());
    if (nameBytes.length === 0) reader.fail("empty map name");
    if (previousName !== undefined && Buffer.compare(previousName, nameBytes) >= 0) reader.fail("map names are not in strictly increasing order");
    previousName = nameBytes;
    const name = nameBytes.toString("utf8");
    if (!mapNameBytes(name).equals(nameBytes)) reader.fail("map name is not valid UTF-8");
    const lastWriteVersion = reader.varint();
    if (lastWriteVersion < 1 || lastWriteVersion > version) reader.fail("map version out of range");
    maps.set(name, { name, entries: readEntries(reader, lastWriteVersion), lastWriteVersion });
  }
  if (reader.remaining !== 0) reader.fail("trailing bytes after the last map");
  return { version, maps };
}

function readEntries(reader: ByteReader, lastWriteVersion: number): Map<string, Entry> {
  const entryCount = reader.length(3);
  const entries = new Map<string, Entry>();
  let previousKey: string | undefined;
  for (let e = 0; e < entryCount; e++) {
    const k = keyToString(reader.bytes(reader.length()));
    if (previousKey !== undefined && compareKeys(previousKey, k) >= 0) reader.fail("keys are not in strictly increasing order");
    previousKey = k;
    const version = reader.varint();
    if (version < 1 || version > lastWriteVersion) reader.fail("entry version out of range");
    // Copy: the snapshot buffer is large and should not stay alive through a few values.
    entries.set(k, { value: Buffer.from(reader.bytes(reader.length())), version });
  }
  return entries;
}


