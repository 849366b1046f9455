// A CBOR encoder (RFC 8949) for what a COSE_Sign1 governance request holds: integers, text and
// byte strings, arrays, maps (in the order given), one tag and null. Always the shortest head,
// as cbor-x writes it on the node, so that what the page signs is what the node re-encodes.
import { concat, utf8 } from "./bytes.js";

/** A tagged item (major type 6). */
export class Tagged {
  constructor(/** @type {number} */ tag, /** @type {unknown} */ value) {
    this.tag = tag;
    this.value = value;
  }
}

/** Initial byte(s) of an item of major type `major` and argument `n` (a non-negative integer). @returns {import("./bytes.js").Bytes} */
function head(/** @type {number} */ major, /** @type {number | bigint} */ n) {
  const value = BigInt(n);
  if (value < 0n || value >= 1n << 64n) throw new Error(`CBOR: argument out of range: ${value}`);
  const type = major << 5;
  if (value < 24n) return Uint8Array.of(type | Number(value));
  if (value < 0x100n) return Uint8Array.of(type | 24, Number(value));
  const width = value < 0x10000n ? 2 : value < 0x100000000n ? 4 : 8;
  const out = new Uint8Array(1 + width);
  out[0] = type | { 2: 25, 4: 26, 8: 27 }[width];
  for (let i = width, v = value; i >= 1; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** @param {unknown} value @returns {import("./bytes.js").Bytes} */
export function encodeCbor(value) {
  if (value === null) return Uint8Array.of(0xf6);
  if (typeof value === "number" || typeof value === "bigint") {
    if (typeof value === "number" && !Number.isSafeInteger(value)) throw new Error(`CBOR: only integers are encoded, got ${value}`);
    const n = BigInt(value);
    return n >= 0n ? head(0, n) : head(1, -1n - n);
  }
  if (typeof value === "string") {
    const bytes = utf8(value);
    return concat(head(3, bytes.length), bytes);
  }
  if (value instanceof Uint8Array) return concat(head(2, value.length), value);
  if (Array.isArray(value)) return concat(head(4, value.length), ...value.map(encodeCbor));
  if (value instanceof Map) {
    const parts = [head(5, value.size)];
    for (const [k, v] of value) parts.push(encodeCbor(k), encodeCbor(v));
    return concat(...parts);
  }
  if (value instanceof Tagged) return concat(head(6, value.tag), encodeCbor(value.value));
  throw new Error(`CBOR: cannot encode ${typeof value}`);
}
