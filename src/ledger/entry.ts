// Ledger entry codec: one transaction as it sits in a ledger file. The public domain is
// plaintext so auditors can read it; the private domain is AES-256-GCM under a key derived from
// the ledger secret and the entry's key nonce, with the header and public domain as AAD so
// neither can be altered unnoticed. The key nonce is drawn at random by the primary for each
// term it leads, so no (key, IV) pair repeats even if the host restores old files (see
// docs/ledger-format.md).
import { createCipheriv, createDecipheriv, createSecretKey, hash, hkdfSync, type KeyObject } from "node:crypto";
import { inspect } from "node:util";
import { CocoError, assert } from "../util/errors.js";
import { sha256Into } from "../crypto/hash.js";

/** Version byte written in every entry header; bump when the layout changes. */
export const ENTRY_FORMAT_VERSION = 2;
/** Random bytes a primary draws per term to derive its entry key (128 bits: no collision in practice). */
export const ENTRY_KEY_NONCE_BYTES = 16;
/** version u8, flags u8, view u64, seqno u64, claims 32, commit evidence 32, public len u32, private len u32, key nonce 16. */
export const ENTRY_HEADER_BYTES = 1 + 1 + 8 + 8 + 32 + 32 + 4 + 4 + ENTRY_KEY_NONCE_BYTES;
const KEY_NONCE_OFFSET = 90;
export const GCM_TAG_BYTES = 16;
const DIGEST_BYTES = 32;
const FLAG_SIGNATURE = 0x01;
const KNOWN_FLAGS = FLAG_SIGNATURE;
const U32_MAX = 0xffff_ffff;
const TWO_POW_32 = 0x1_0000_0000;

/** What an entry's header and public domain carry, encoded or decoded. */
interface EntryCommon {
  view: number;
  seqno: number;
  isSignature: boolean;
  claimsDigest: Buffer;
  commitEvidenceDigest: Buffer;
  /**
   * Salt of the key that encrypts the private domain (and of the commit-evidence key): drawn at
   * random by the primary for each term it leads, written in every entry of that term.
   */
  keyNonce: Buffer;
  publicDomain: Buffer;
}

export interface EntryFields extends EntryCommon {
  privatePlaintext: Buffer;
}

export interface DecodedEntry extends EntryCommon {
  /** AES-GCM ciphertext followed by the 16-byte tag; empty when the transaction wrote no private data. */
  privateCiphertext: Buffer;
  /** The whole encoded entry (the other Buffers are views into it). */
  bytes: Buffer;
}

/** HKDF info of entry keys: binds derived keys to this use, so no other Coco key can equal one. */
const ENTRY_KEY_LABEL = Buffer.from("coco ledger entry key v2");
/**
 * Derived entry keys kept per ledger secret. A primary uses one key nonce per term and a backup
 * applies one primary's entries at a time, so the first slot almost always hits; a few more
 * cover historical reads that go back over several terms.
 */
const ENTRY_KEYS_PER_SECRET_MAX = 8;

interface SecretKeys {
  /** The ledger secret itself: only ever HKDF input, never an AES key. */
  readonly root: KeyObject;
  /** Most recently used first. */
  readonly derived: { readonly nonce: Buffer; readonly key: KeyObject }[];
}

/** A ledger secret, kept as a KeyObject so the raw bytes are not a plain property that a
 * logger or JSON.stringify could leak into the ledger. */
// Module-private: only this codec can reach the key, so no caller can serialise it by mistake.
const secretKeys = new WeakMap<LedgerSecret, SecretKeys>();

export class LedgerSecret {
  constructor(raw: Buffer) {
    if (!Buffer.isBuffer(raw) || raw.length !== 32) {
      throw new CocoError("InvalidInput", `A ledger secret is 32 bytes (AES-256); got ${raw?.length} bytes.`, 500);
    }
    secretKeys.set(this, { root: createSecretKey(Buffer.from(raw)), derived: [] });
  }

  toJSON(): string {
    return "[LedgerSecret]";
  }

  [inspect.custom](): string {
    return "[LedgerSecret]";
  }
}

/**
 * The AES-256-GCM key of the entries written under `keyNonce`:
 * HKDF-SHA256(ikm = ledger secret, salt = key nonce, info = ENTRY_KEY_LABEL). Derived once per
 * nonce (a term), not per entry: the hot path finds it in the first cache slot.
 */
function entryKey(secret: LedgerSecret, keyNonce: Buffer): KeyObject {
  const keys = secretKeys.get(secret);
  assert(keys !== undefined, "ledger secret was constructed by LedgerSecret");
  const derived = keys.derived;
  for (let i = 0; i < derived.length; i++) {
    const slot = derived[i]!;
    if (!slot.nonce.equals(keyNonce)) continue;
    if (i > 0) derived.unshift(...derived.splice(i, 1));
    return slot.key;
  }
  const bytes = new Uint8Array(hkdfSync("sha256", keys.root, keyNonce, ENTRY_KEY_LABEL, 32));
  const key = createSecretKey(bytes);
  bytes.fill(0); // createSecretKey copied it; leave no stray copy of a key on the heap
  derived.unshift({ nonce: Buffer.from(keyNonce), key });
  if (derived.length > ENTRY_KEYS_PER_SECRET_MAX) derived.pop();
  assert(derived.length <= ENTRY_KEYS_PER_SECRET_MAX, "entry key cache stays bounded");
  return key;
}

function isAllZero(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

function invalid(message: string): CocoError {
  return new CocoError("InvalidLedgerEntry", `Invalid ledger entry: ${message}`, 500);
}

// u64 fields are written as two u32 halves: cheaper than BigInt and every value we accept
// is a safe integer (seqnos and views stay far below 2^53).
function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(value / TWO_POW_32), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

function readU64(buf: Buffer, offset: number, field: string): number {
  const high = buf.readUInt32BE(offset);
  if (high >= 0x20_0000) throw invalid(`${field} does not fit in a safe integer`);
  return high * TWO_POW_32 + buf.readUInt32BE(offset + 4);
}

const ivScratch = Buffer.alloc(12);

/** IV = seqno (u64 BE) || view (u32 BE): unique per entry under one entry key, because one key
 * nonce serves at most one primary term of one process, in which each seqno is encrypted once
 * (the engine asserts it). The view alone would not do: it comes from consensus state that the
 * host can restore to an older copy. */
function entryIv(view: number, seqno: number): Buffer {
  // One scratch buffer: createCipheriv / createDecipheriv copy the IV before returning.
  writeU64(ivScratch, seqno, 0);
  ivScratch.writeUInt32BE(view, 8);
  return ivScratch;
}

function writeHeader(out: Buffer, f: EntryFields, privateLength: number): void {
  out[0] = ENTRY_FORMAT_VERSION;
  out[1] = f.isSignature ? FLAG_SIGNATURE : 0;
  writeU64(out, f.view, 2);
  writeU64(out, f.seqno, 10);
  f.claimsDigest.copy(out, 18);
  f.commitEvidenceDigest.copy(out, 50);
  out.writeUInt32BE(f.publicDomain.length, 82);
  out.writeUInt32BE(privateLength, 86);
  f.keyNonce.copy(out, KEY_NONCE_OFFSET);
}

/** Encodes one transaction. Hot path: one allocation for the whole entry and one cipher pass. */
export function encodeEntry(f: EntryFields, secret: LedgerSecret): Buffer {
  assert(Number.isSafeInteger(f.seqno) && f.seqno >= 0, `seqno ${f.seqno} is a non-negative safe integer`);
  assert(Number.isInteger(f.view) && f.view >= 0 && f.view <= U32_MAX, `view ${f.view} fits in u32 (IV layout)`);
  assert(f.claimsDigest.length === DIGEST_BYTES, "claims digest is 32 bytes");
  assert(f.commitEvidenceDigest.length === DIGEST_BYTES, "commit evidence digest is 32 bytes");
  assert(f.keyNonce.length === ENTRY_KEY_NONCE_BYTES && !isAllZero(f.keyNonce), "the key nonce is 16 random bytes, not left zero");
  const plain = f.privatePlaintext;
  const privateLength = plain.length === 0 ? 0 : plain.length + GCM_TAG_BYTES;
  assert(f.publicDomain.length <= U32_MAX && privateLength <= U32_MAX, "domains fit in u32 lengths");
  const aadLength = ENTRY_HEADER_BYTES + f.publicDomain.length;
  const out = Buffer.allocUnsafe(aadLength + privateLength);
  writeHeader(out, f, privateLength);
  f.publicDomain.copy(out, ENTRY_HEADER_BYTES);
  if (privateLength === 0) return out;

  const cipher = createCipheriv("aes-256-gcm", entryKey(secret, f.keyNonce), entryIv(f.view, f.seqno), { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(out.subarray(0, aadLength));
  // node has no update-into-buffer API, so the ciphertext is copied into place once.
  let offset = aadLength + cipher.update(plain).copy(out, aadLength);
  offset += cipher.final().copy(out, offset);
  cipher.getAuthTag().copy(out, offset);
  return out;
}

/** Parses an entry without the secret. Throws CocoError("InvalidLedgerEntry") and nothing else. */
export function decodeEntry(bytes: Buffer): DecodedEntry {
  if (!Buffer.isBuffer(bytes)) throw invalid("expected a Buffer");
  if (bytes.length < ENTRY_HEADER_BYTES) {
    throw invalid(`${bytes.length} bytes is shorter than the ${ENTRY_HEADER_BYTES}-byte header`);
  }
  if (bytes[0] !== ENTRY_FORMAT_VERSION) throw invalid(`unknown format version ${bytes[0]}`);
  const flags = bytes[1]!;
  if ((flags & ~KNOWN_FLAGS) !== 0) throw invalid(`unknown flags 0x${flags.toString(16)}`);
  const view = readU64(bytes, 2, "view");
  if (view > U32_MAX) throw invalid(`view ${view} exceeds 2^32-1`);
  const seqno = readU64(bytes, 10, "seqno");
  const publicLength = bytes.readUInt32BE(82);
  const privateLength = bytes.readUInt32BE(86);
  if (privateLength !== 0 && privateLength <= GCM_TAG_BYTES) {
    throw invalid(`private domain of ${privateLength} bytes is too short for ciphertext and tag`);
  }
  const expected = ENTRY_HEADER_BYTES + publicLength + privateLength;
  if (expected !== bytes.length) {
    throw invalid(`header announces ${expected} bytes but the entry has ${bytes.length}`);
  }
  const privateStart = ENTRY_HEADER_BYTES + publicLength;
  const keyNonce = bytes.subarray(KEY_NONCE_OFFSET, KEY_NONCE_OFFSET + ENTRY_KEY_NONCE_BYTES);
  // Every entry carries its term's nonce (the commit evidence derives from it too); zero is
  // what a writer that forgot to draw one would leave, and encodeEntry refuses it.
  if (isAllZero(keyNonce)) throw invalid("the key nonce is all zero");
  return {
    view,
    seqno,
    isSignature: (flags & FLAG_SIGNATURE) !== 0,
    claimsDigest: bytes.subarray(18, 50),
    commitEvidenceDigest: bytes.subarray(50, 82),
    keyNonce,
    publicDomain: bytes.subarray(ENTRY_HEADER_BYTES, privateStart),
    privateCiphertext: bytes.subarray(privateStart),
    bytes,
  };
}

/** Decrypts and authenticates the private domain (and, through the AAD, the header and public domain). */
export function decryptPrivate(entry: DecodedEntry, secret: LedgerSecret): Buffer {
  const sealed = entry.privateCiphertext;
  if (sealed.length === 0) return Buffer.alloc(0);
  const aad = entry.bytes.subarray(0, entry.bytes.length - sealed.length);
  const ciphertextLength = sealed.length - GCM_TAG_BYTES;
  try {
    const decipher = createDecipheriv("aes-256-gcm", entryKey(secret, entry.keyNonce), entryIv(entry.view, entry.seqno), {
      authTagLength: GCM_TAG_BYTES,
    });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(ciphertextLength));
    const head = decipher.update(sealed.subarray(0, ciphertextLength));
    const tail = decipher.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch (cause) {
    throw new CocoError(
      "LedgerDecryptionFailed",
      `Cannot decrypt the private domain of ledger entry ${entry.view}.${entry.seqno}: the entry was altered or ` +
        `was encrypted with a different ledger secret. Check the ledger file against another node's copy.`,
      500,
      { cause },
    );
  }
}

/** SHA-256 of the whole encoded entry: the write-set digest that goes into the Merkle leaf.
 * Computed over ciphertext so auditors can recompute it without the ledger secret. */
export function writeSetDigest(entryBytes: Buffer): Buffer {
  return hash("sha256", entryBytes, "buffer");
}

// Leaf input: write-set digest || commit-evidence digest || claims digest (CCF's leaf layout).
const leafScratch = Buffer.alloc(3 * DIGEST_BYTES);
const leafOut = Buffer.alloc(DIGEST_BYTES);

/**
 * Writes the transaction's Merkle leaf, SHA-256(writeSetDigest || commitEvidenceDigest ||
 * claimsDigest), into out[offset, offset + 32), read straight from an encoded entry (header
 * checked by the caller, e.g. with decodeEntry). Hot path on every node: no intermediate views
 * of the header's digests, and the digests come back as latin1 strings, not Buffers (see
 * sha256Into in crypto/hash.ts: half the cost).
 */
export function entryLeafInto(entryBytes: Buffer, out: Buffer, offset: number): void {
  sha256Into(entryBytes, leafScratch, 0);
  entryBytes.copy(leafScratch, DIGEST_BYTES, 50, 82); // commit evidence digest
  entryBytes.copy(leafScratch, 2 * DIGEST_BYTES, 18, 50); // claims digest
  sha256Into(leafScratch, out, offset);
}

/** The leaf of entryLeafInto, in a shared buffer: valid until the next call (copy it to keep it). */
export function entryLeaf(entryBytes: Buffer): Buffer {
  entryLeafInto(entryBytes, leafOut, 0);
  return leafOut;
}
