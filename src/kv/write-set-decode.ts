// Decoding of write-set domains (format in write-set.ts). One validating parser serves two
// consumers: deserialiseDomain() (public API: Buffers, views into the input) and the store's
// apply path, which wants latin1 key strings and owned value copies without intermediate views.

import { isPublicMapName, keyStringAt, mapNameBytes } from "./keys.js";
import type { PendingMapWrites } from "./transaction.js";
import { ByteReader } from "./varint.js";
import { writeSetFormatVersion, type DomainWrites, type KeyWrite, type MapWrites } from "./write-set.js";

export type Domain = "public" | "private";

/** Receives the parsed content; valueStart -1 marks a deletion. */
interface DomainVisitor {
  map(name: string, isPublic: boolean, writeCount: number): void;
  write(bytes: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number): void;
}

const invalidEntry = "InvalidLedgerEntry";

/**
 * Decodes one domain, validating everything (format, bounds, canonical order, map names in
 * the expected domain when `domain` is given). Keys and values are views into `buf`: copy them
 * to keep them beyond `buf`'s lifetime. Throws CocoError "InvalidLedgerEntry" on any defect.
 */
export function deserialiseDomain(buf: Uint8Array, domain?: Domain): DomainWrites {
  const maps: MapWrites[] = [];
  let writes: KeyWrite[] = [];
  parseDomain(toBuffer(buf), domain, {
    map(name, isPublic) {
      writes = [];
      maps.push({ name, isPublic, writes });
    },
    write(bytes, keyStart, keyEnd, valueStart, valueEnd) {
      writes.push([bytes.subarray(keyStart, keyEnd), valueStart < 0 ? null : bytes.subarray(valueStart, valueEnd)]);
    },
  });
  return { maps };
}

/** @internal The store's apply path: appends the domain's maps to `out` as pending writes. */
export function decodeDomainForApply(buf: Uint8Array, domain: Domain, out: PendingMapWrites[]): void {
  let writes = new Map<string, Buffer | null>();
  parseDomain(toBuffer(buf), domain, {
    map(name) {
      writes = new Map();
      out.push({ name, writes });
    },
    write(bytes, keyStart, keyEnd, valueStart, valueEnd) {
      let value: Buffer | null = null;
      if (valueStart >= 0) {
        // Copy: views would keep whole ledger entries alive for as long as one value lives.
        value = Buffer.allocUnsafe(valueEnd - valueStart);
        bytes.copy(value, 0, valueStart, valueEnd);
      }
      writes.set(keyStringAt(bytes, keyStart, keyEnd), value);
    },
  });
}

function toBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function parseDomain(bytes: Buffer, domain: Domain | undefined, visitor: DomainVisitor): void {
  if (bytes.length === 0) return;
  const reader = new ByteReader(bytes, invalidEntry);
  const format = reader.u8();
  if (format !== writeSetFormatVersion) reader.fail(`unknown write set format ${format}`);
  const mapCount = reader.length(3); // a map needs at least name, count and one write
  if (mapCount === 0) reader.fail("a non-empty domain must hold at least one map");
  let previousNameStart = -1;
  let previousNameEnd = -1;
  for (let m = 0; m < mapCount; m++) {
    const nameLength = reader.length();
    const nameStart = reader.skip(nameLength);
    const nameEnd = nameStart + nameLength;
    // Strictly increasing: source (this name) must sort after target (the previous one).
    if (previousNameStart >= 0 && bytes.compare(bytes, previousNameStart, previousNameEnd, nameStart, nameEnd) <= 0) {
      reader.fail("map names are not in strictly increasing order");
    }
    previousNameStart = nameStart;
    previousNameEnd = nameEnd;
    const name = mapNameAt(reader, bytes, nameStart, nameEnd);
    const isPublic = isPublicMapName(name);
    if (domain !== undefined && isPublic !== (domain === "public")) {
      reader.fail(`map ${JSON.stringify(name)} does not belong in the ${domain} domain`);
    }
    const writeCount = reader.length(2); // a write needs at least a key length and a value tag
    if (writeCount === 0) reader.fail("a map in a write set must hold at least one write");
    visitor.map(name, isPublic, writeCount);
    parseWrites(reader, bytes, writeCount, visitor);
  }
  if (reader.remaining !== 0) reader.fail("trailing bytes after the last map");
}

function parseWrites(reader: ByteReader, bytes: Buffer, writeCount: number, visitor: DomainVisitor): void {
  let previousKeyStart = -1;
  let previousKeyEnd = -1;
  for (let w = 0; w < writeCount; w++) {
    const keyLength = reader.length();
    const keyStart = reader.skip(keyLength);
    const keyEnd = keyStart + keyLength;
    if (previousKeyStart >= 0 && bytes.compare(bytes, previousKeyStart, previousKeyEnd, keyStart, keyEnd) <= 0) {
      reader.fail("keys are not in strictly increasing order");
    }
    previousKeyStart = keyStart;
    previousKeyEnd = keyEnd;
    const valueTag = reader.varint();
    if (valueTag === 0) visitor.write(bytes, keyStart, keyEnd, -1, -1);
    else {
      const valueStart = reader.skip(valueTag - 1);
      visitor.write(bytes, keyStart, keyEnd, valueStart, valueStart + valueTag - 1);
    }
  }
}

// Map names repeat in every entry: cache validated names by their raw bytes (as latin1).
const namesByBytes = new Map<string, string>();
const namesByBytesMax = 4096;

function mapNameAt(reader: ByteReader, bytes: Buffer, start: number, end: number): string {
  if (start === end) reader.fail("empty map name");
  const raw = keyStringAt(bytes, start, end);
  const cached = namesByBytes.get(raw);
  if (cached !== undefined) return cached;
  const name = bytes.toString("utf8", start, end);
  // Invalid UTF-8 decodes to U+FFFD, so re-encoding differs: rejects non-canonical names.
  if (!mapNameBytes(name).equals(bytes.subarray(start, end))) reader.fail("map name is not valid UTF-8");
  if (namesByBytes.size < namesByBytesMax) namesByBytes.set(raw, name);
  return name;
}
