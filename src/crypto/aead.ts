// AES-256-GCM sealing, used for the private domain of ledger entries (the ledger secret)
// and for wrapping secrets. Output layout is ciphertext || 16-byte tag, as CCF stores it.
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from "node:crypto";
import { CocoError } from "../util/errors.js";

export const AES_GCM_KEY_BYTES = 32;
export const AES_GCM_IV_BYTES = 12;
export const AES_GCM_TAG_BYTES = 16;

export class AesGcmKey {
  // A KeyObject is parsed once; createCipheriv then skips re-validating raw key bytes per call.
  readonly #key: KeyObject;

  constructor(raw: Buffer) {
    if (raw.length !== AES_GCM_KEY_BYTES) {
      throw new CocoError("InvalidInput", `AES-256-GCM key must be ${AES_GCM_KEY_BYTES} bytes, got ${raw.length}.`, 500);
    }
    this.#key = createSecretKey(raw);
  }

  /** Encrypts `plaintext` and authenticates it together with `aad`. Never reuse an IV with the same key. */
  seal(iv: Buffer, plaintext: Uint8Array, aad: Uint8Array): Buffer {
    checkIv(iv);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv, { authTagLength: AES_GCM_TAG_BYTES });
    cipher.setAAD(aad);
    const body = cipher.update(plaintext);
    const tail = cipher.final(); // empty for GCM, kept for correctness
    const tag = cipher.getAuthTag();
    return Buffer.concat([body, tail, tag], body.length + tail.length + tag.length);
  }

  /** Decrypts and authenticates `sealed` (ciphertext || tag); throws DecryptionFailed on any mismatch. */
  open(iv: Buffer, sealed: Uint8Array, aad: Uint8Array): Buffer {
    checkIv(iv);
    if (sealed.length < AES_GCM_TAG_BYTES) {
      throw new CocoError("DecryptionFailed", `Sealed data is ${sealed.length} bytes, shorter than the ${AES_GCM_TAG_BYTES}-byte tag.`, 500);
    }
    const split = sealed.length - AES_GCM_TAG_BYTES;
    const decipher = createDecipheriv("aes-256-gcm", this.#key, iv, { authTagLength: AES_GCM_TAG_BYTES });
    decipher.setAuthTag(sealed.subarray(split));
    decipher.setAAD(aad);
    const body = decipher.update(sealed.subarray(0, split));
    try {
      const tail = decipher.final();
      return tail.length === 0 ? body : Buffer.concat([body, tail]);
    } catch (cause) {
      throw new CocoError(
        "DecryptionFailed",
        "AES-GCM authentication failed: wrong key, IV or additional data, or the data was tampered with.",
        500,
        { cause },
      );
    }
  }
}

function checkIv(iv: Buffer): void {
  if (iv.length !== AES_GCM_IV_BYTES) {
    throw new CocoError("InvalidInput", `AES-GCM IV must be ${AES_GCM_IV_BYTES} bytes, got ${iv.length}.`, 500);
  }
}
