// Write sets: what one committed transaction changed, and their ledger encoding. The node
// serialises each write set into a public domain (stored in plaintext) and a private domain
// (encrypted by the ledger layer); backups and recovery decode them and apply them to the KV.
//
// Encoding of one domain (format 1). Everything is deterministic: same writes, same bytes.
//   Domain := FormatVersion:u8 (= 1) MapCount:varint Map{MapCount}
//   Map    := NameLength:varint Name:utf8 WriteCount:varint Write{WriteCount}
//   Write  := KeyLength:varint Key:bytes ValueTag:varint Value:bytes{ValueTag - 1}
// ValueTag 0 means the key is deleted; ValueTag n + 1 means a value of n bytes follows.
// Varints are unsigned LEB128, canonical (no redundant trailing zero bytes), at most 2^53 - 1.
// Maps appear in strictly increasing bytewise order of their UTF-8 names, keys in strictly
// increasing bytewise order within a map; MapCount and WriteCount are at least 1. A domain
// with no maps is the empty byte string (no format byte), so most private domains cost nothing.

import { isPublicMapName, mapNameBytes } from "./keys.js";
import { ByteReader, varintLength, writeVarint } from "./varint.js";

/** One key's write: a value, or null for a deletion. */
export type KeyWrite = readonly [key: Buffer, value: Buffer | null];

/** All writes of one transaction to one map, keys sorted bytewise. */
export interface MapWrites {
  readonly name: string;
  readonly isPublic: boolean;
  readonly writes: readonly KeyWrite[];
}

/** What one committed transaction changed; maps sorted by name. */
export interface WriteSet {
  readonly seqno: number;
  readonly maps: readonly MapWrites[];
}

/** A decoded domain: a write set without its seqno (the ledger header carries the tx id). */
export interface DomainWrites {
  readonly maps: readonly MapWrites[];
}

export const writeSetFormatVersion = 1;
const invalidEntry = "InvalidLedgerEntry";

/** Encodes a write set into its two ledger domains. */
export function serialiseWriteSet(writeSet: WriteSet): { publicDomain: Buffer; privateDomain: Buffer } {
  return {
    publicDomain: serialiseDomain(writeSet.maps, true),
    privateDomain: serialiseDomain(writeSet.maps, false),
  };
}

function serialiseDomain(maps: readonly MapWrites[], isPublic: boolean): Buffer {
  // Pass 1 sizes the output exactly, so pass 2 writes into one allocation with no copies.
  let total = 0;
  for (const map of maps) {
    if (map.isPublic !== isPublic) continue;
    const nameLength = mapNameBytes(map.name).length;
    total += varintLength(nameLength) + nameLength + varintLength(map.writes.length);
    for (const [key, value] of map.writes) {
      total += varintLength(key.length) + key.length;
      total += value === null ? 1 : varintLength(value.length + 1) + value.length;
    }
  }
  if (total === 0) return Buffer.alloc(0);
  let mapCount = 0;
  for (const map of maps) if (map.isPublic === isPublic) mapCount++;
  total += 1 + varintLength(mapCount);

  const out = Buffer.allocUnsafe(total);
  out[0] = writeSetFormatVersion;
  let offset = writeVarint(out, 1, mapCount);
  for (const map of maps) {
    if (map.isPublic !== isPublic) continue;
    const name = mapNameBytes(map.name);
    offset = writeVarint(out, offset, name.length);
    offset += name.copy(out, offset);
    offset = writeVarint(out, offset, map.writes.length);
    for (const [key, value] of map.writes) {
      offset = writeVarint(out, offset, key.length);
      offset += key.copy(out, offset);
      if (value === null) {
        out[offset++] = 0;
      } else {
        offset = writeVarint(out, offset, value.length + 1);
        offset += value.copy(out, offset);
      }
    }
  }
  if (offset !== total) throw new Error(`assertion failed: serialised ${offset} of ${total} bytes`);
  return out;
}

/**
 * Decodes one domain, validating everything (format, bounds, canonical order, map names in
 * the expected domain when `domain` is given). Keys and values are views into `buf`: copy them
 * to keep them beyond `buf`'s lifetime. Throws CocoError "InvalidLedgerEntry" on any defect.
 */
export function deserialiseDomain(buf: Uint8Array, domain?: "public" | "private"): DomainWrites {
  const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes.length === 0) return { maps: [] };
  const reader = new ByteReader(bytes, invalidEntry);
  const format = reader.u8();
  if (format !== writeSetFormatVersion) reader.fail(`unknown write set format ${format}`);
  const mapCount = reader.length(3); // a map needs at least name, count and one write
  if (mapCount === 0) reader.fail("a non-empty domain must hold at least one map");
  const maps: MapWrites[] = [];
  let previousName: Buffer | undefined;
  for (let m = 0; m < mapCount; m++) {
    const nameBytes = reader.bytes(reader.length());
    if (previousName !== undefined && Buffer.compare(previousName, nameBytes) >= 0) {
      reader.fail("map names are not in strictly increasing order");
    }
    previousName = nameBytes;
    const name = decodeMapName(reader, nameBytes);
    const isPublic = isPublicMapName(name);
    if (domain !== undefined && isPublic !== (domain === "public")) {
      reader.fail(`map ${JSON.stringify(name)} does not belong in the ${domain} domain`);
    }
    maps.push({ name, isPublic, writes: readWrites(reader) });
  }
  if (reader.remaining !== 0) reader.fail("trailing bytes after the last map");
  return { maps };
}

function decodeMapName(reader: ByteReader, nameBytes: Buffer): string {
  if (nameBytes.length === 0) reader.fail("empty map name");
  const name = nameBytes.toString("utf8");
  // Invalid UTF-8 decodes to U+FFFD, so re-encoding differs: rejects non-canonical names.
  if (!mapNameBytes(name).equals(nameBytes)) reader.fail("map name is not valid UTF-8");
  return name;
}

function readWrites(reader: ByteReader): KeyWrite[] {
  const writeCount = reader.length(2); // a write needs at least a key length and a value tag
  if (writeCount === 0) reader.fail("a map in a write set must hold at least one write");
  const writes: KeyWrite[] = new Array(writeCount);
  let previousKey: Buffer | undefined;
  for (let w = 0; w < writeCount; w++) {
    const key = reader.bytes(reader.length());
    if (previousKey !== undefined && Buffer.compare(previousKey, key) >= 0) {
      reader.fail("keys are not in strictly increasing order");
    }
    previousKey = key;
    const valueTag = reader.varint();
    const value = valueTag === 0 ? null : reader.bytes(valueTag - 1);
    writes[w] = [key, value];
  }
  return writes;
}
