// Secrets sent to one node (ledger secrets, the service key): RSA-OAEP-SHA256 wraps a fresh
// AES-256 key, which seals the secret with AES-256-GCM. The node's RSA encryption key pair
// exists only for this (CCF: the node's encryption key, published in its nodes.info entry).
import { constants, generateKeyPairSync, privateDecrypt, publicEncrypt } from "node:crypto";
import { AesGcmKey } from "./aead.js";
import { randomBytes } from "./hash.js";
import { CocoError } from "../util/errors.js";
import type { KeyPairPem } from "./keys.js";

const WRAP_AAD = Buffer.from("coco-node-wrap-v1");

export function generateRsaEncryptionKeyPair(bits = 2048): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: bits,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** Seals `plaintext` so only the holder of the private key of `publicKeyPem` can read it (base64). */
export function wrapForKey(publicKeyPem: string, plaintext: Uint8Array): string {
  const aesKey = randomBytes(32);
  const iv = randomBytes(12);
  const wrappedKey = publicEncrypt({ key: publicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, aesKey);
  const sealed = new AesGcmKey(aesKey).seal(iv, plaintext, WRAP_AAD);
  const header = Buffer.alloc(2);
  header.writeUInt16BE(wrappedKey.length);
  return Buffer.concat([header, wrappedKey, iv, sealed]).toString("base64");
}

export function unwrapWithKey(privateKeyPem: string, wrappedBase64: string): Buffer {
  try {
    const blob = Buffer.from(wrappedBase64, "base64");
    const keyLength = blob.readUInt16BE(0);
    const wrappedKey = blob.subarray(2, 2 + keyLength);
    const iv = blob.subarray(2 + keyLength, 14 + keyLength);
    const aesKey = privateDecrypt({ key: privateKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, wrappedKey);
    return new AesGcmKey(aesKey).open(iv, blob.subarray(14 + keyLength), WRAP_AAD);
  } catch (error) {
    throw new CocoError("UnwrapFailed", `Cannot unwrap a secret sent to this node: ${(error as Error).message}`, 400);
  }
}

/**
 * RSA-OAEP-SHA256 decryption of one small secret (a member's recovery share, encrypted to its
 * encryption key as CCF does). A wrong key or altered ciphertext throws CocoError.
 */
export function rsaOaepDecrypt(privateKeyPem: string, ciphertext: Uint8Array): Buffer {
  try {
    return privateDecrypt({ key: privateKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, ciphertext);
  } catch (error) {
    throw new CocoError("DecryptionFailed",
      "Cannot decrypt with this RSA key (RSA-OAEP-SHA256): it is not the private key the data was encrypted to, or the data was altered.", 400, { cause: error });
  }
}
