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

import { mapNameBytes } from "./keys.js";
import { varintLength, writeVarint } from "./varint.js";

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
/** Shared: a zero-length Buffer has no bytes anyone could mutate. */
const emptyDomain = Buffer.alloc(0);

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
  if (total === 0) return emptyDomain;
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
