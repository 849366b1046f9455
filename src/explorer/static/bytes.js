// Byte helpers shared by the explorer's modules: hex, base64, UTF-8 and PEM. Pure, no DOM, so
// that Node runs the same code in the unit tests.

const HEX_DIGITS = "0123456789abcdef";

/** Bytes over an ordinary ArrayBuffer: what WebCrypto and fetch take. @typedef {Uint8Array<ArrayBuffer>} Bytes */

/** @param {Uint8Array} bytes @returns {string} lowercase hex */
export function toHex(bytes) {
  let out = "";
  for (const byte of bytes) out += HEX_DIGITS[byte >> 4] + HEX_DIGITS[byte & 15];
  return out;
}

/** @param {string} hex @returns {Bytes} */
export function fromHex(hex) {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new Error(`not hex: ${hex.slice(0, 20)}...`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** @param {string} text @returns {Bytes} */
export function fromBase64(text) {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** @param {Uint8Array} bytes @returns {string} */
export function toBase64(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** @param {string} text @returns {Bytes} */
export const utf8 = (text) => new TextEncoder().encode(text);

/** @param {Uint8Array[]} parts @returns {Bytes} */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** @param {Uint8Array} a @param {Uint8Array} b @returns {number} bytewise order, as memcmp */
export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** @param {Uint8Array} a @param {Uint8Array} b */
export const equalBytes = (a, b) => compareBytes(a, b) === 0;

/**
 * The DER inside each PEM block of `pem` with the given label ("CERTIFICATE", "PRIVATE KEY", ...).
 * @param {string} pem @param {string} label @returns {Bytes[]}
 */
export function pemBlocks(pem, label) {
  const out = [];
  const pattern = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`, "g");
  for (const match of pem.matchAll(pattern)) out.push(fromBase64(match[1].replace(/\s+/g, "")));
  return out;
}

/** @param {Uint8Array} der @param {string} label @returns {string} */
export function toPem(der, label) {
  const lines = toBase64(der).match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** SHA-256 with WebCrypto. @param {Bytes} bytes @returns {Promise<Bytes>} */
export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}
