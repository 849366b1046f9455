// How a snapshot body is built (magic, JSON header, public maps, sealed private maps): the part
// of snapshot-format.ts the snapshot worker runs. It imports only what sealing and hashing need,
// so the worker's isolate does not load the X.509, COSE and signature code (~7 MB of heap each
// time a worker starts) that parsing and verifying a snapshot needs on the main thread.
import { AesGcmKey, AES_GCM_IV_BYTES } from "../crypto/aead.js";
import { hkdfSha256, randomBytes } from "../crypto/hash.js";

export const SNAPSHOT_MAGIC = Buffer.from("COCOSNP1");
export const SNAPSHOT_FORMAT = 1;
/** HKDF info of the key that seals a snapshot's private maps: no other Coco key can equal it. */
export const PRIVATE_KEY_LABEL = Buffer.from("coco snapshot private maps v1");
export const KEY_NONCE_BYTES = 32;

export interface SnapshotHeader {
  format: number;
  /** The signature transaction whose committed state this is. */
  seqno: number;
  /** The view that wrote `seqno`. */
  view: number;
  /** The first seqno of each view up to `seqno` (transaction statuses before the snapshot). */
  views: { view: number; seqno: number }[];
  /** MerkleTree.frontierAt(seqno), hex. */
  tree: string[];
  /** Salt of the key sealing the private maps, and the AES-GCM IV (hex, random per snapshot). */
  key_nonce: string;
  iv: string;
  public_bytes: number;
  private_bytes: number;
}

/** Builds a snapshot body: the digest covers all of it. `ledgerSecret` is the raw secret of `seqno`. */
export function encodeSnapshotBody(args: SnapshotBodyInput): Buffer {
  return Buffer.concat(encodeSnapshotBodyParts(args));
}

export interface SnapshotBodyInput {
  seqno: number; view: number; views: readonly { view: number; seqno: number }[]; tree: readonly Uint8Array[]; publicPart: Buffer; privatePart: Buffer; ledgerSecret: Uint8Array;
  /** The key nonce and IV, random unless given (tests compare bytes across encoders with fixed ones). */
  randomness?: { keyNonce: Uint8Array; iv: Uint8Array };
}

/**
 * The snapshot body as two buffers, [everything up to the sealed part, the sealed part], so a
 * writer can hash and write it without one more copy of the whole state.
 */
export function encodeSnapshotBodyParts(args: SnapshotBodyInput): [Buffer, Buffer] {
  const keyNonce = Buffer.from(args.randomness?.keyNonce ?? randomBytes(KEY_NONCE_BYTES));
  const iv = Buffer.from(args.randomness?.iv ?? randomBytes(AES_GCM_IV_BYTES));
  if (keyNonce.length !== KEY_NONCE_BYTES || iv.length !== AES_GCM_IV_BYTES) throw new Error("assertion failed: a snapshot's key nonce is 32 bytes and its IV 12");
  const sealedLength = args.privatePart.length + 16;
  const header: SnapshotHeader = {
    format: SNAPSHOT_FORMAT, seqno: args.seqno, view: args.view, views: args.views.map((v) => ({ view: v.view, seqno: v.seqno })), tree: args.tree.map((h) => Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString("hex")),
    key_nonce: keyNonce.toString("hex"), iv: iv.toString("hex"), public_bytes: args.publicPart.length, private_bytes: sealedLength,
  };
  const headerBytes = Buffer.from(JSON.stringify(header));
  const headerLength = Buffer.alloc(4);
  headerLength.writeUInt32BE(headerBytes.length);
  const aad = Buffer.concat([SNAPSHOT_MAGIC, headerLength, headerBytes, args.publicPart]);
  const key = new AesGcmKey(hkdfSha256(Buffer.from(args.ledgerSecret), keyNonce, PRIVATE_KEY_LABEL, 32));
  const sealed = key.seal(iv, args.privatePart, aad);
  if (sealed.length !== sealedLength) throw new Error("assertion failed: AES-GCM output is plaintext plus a 16-byte tag");
  return [aad, sealed];
}

