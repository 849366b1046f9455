// Unsigned LEB128 varints and a bounds-checked byte reader shared by the write-set and
// snapshot codecs. Values go up to 2^53 - 1 (seqnos outgrow 32 bits after days at 20k tx/s).
// Every malformed input becomes a CocoError with the caller's code, never a RangeError.

import { CocoError } from "../util/errors.js";

/** Longest encoding of a value <= Number.MAX_SAFE_INTEGER (53 bits / 7 bits per byte). */
const varintBytesMax = 8;

/** Bytes needed to encode n as a varint. */
export function varintLength(n: number): number {
  if (n < 0x80) return 1; // the common case: lengths of keys, values and counts
  let length = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    length++;
  }
  return length;
}

/** Writes n at offset; returns the offset after it. Caller sized the buffer with varintLength. */
export function writeVarint(buf: Buffer, offset: number, n: number): number {
  // Division rather than >>> keeps values above 2^32 exact.
  while (n >= 0x80) {
    buf[offset++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[offset++] = n;
  return offset;
}

/** Sequential reader over untrusted bytes; every overrun throws CocoError(errorCode, 400). */
export class ByteReader {
  offset = 0;
  constructor(
    readonly buf: Buffer,
    private readonly errorCode: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  fail(message: string): never {
    throw new CocoError(this.errorCode, `${message} at byte ${this.offset}`, 400);
  }

  u8(): number {
    if (this.offset >= this.buf.length) this.fail("unexpected end of input");
    return this.buf[this.offset++]!;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < varintBytesMax; i++) {
      const byte = this.u8();
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        // Canonical form only: a trailing zero byte would give two encodings of one value.
        if (byte === 0 && i > 0) this.fail("non-canonical varint");
        if (result > Number.MAX_SAFE_INTEGER) this.fail("varint too large");
        return result;
      }
      scale *= 0x80;
    }
    return this.fail("varint too long");
  }

  /** A length or count: additionally bounded by the bytes left, so no huge allocations. */
  length(minBytesEach = 1): number {
    const n = this.varint();
    if (n * minBytesEach > this.remaining) this.fail("length exceeds remaining input");
    return n;
  }

  /** Skips the next n bytes; returns their start offset (avoids creating a view). */
  skip(n: number): number {
    if (n > this.remaining) this.fail("unexpected end of input");
    const start = this.offset;
    this.offset += n;
    return start;
  }

  /** A view (no copy) of the next n bytes. */
  bytes(n: number): Buffer {
    if (n > this.remaining) this.fail("unexpected end of input");
    const view = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return view;
  }
}
