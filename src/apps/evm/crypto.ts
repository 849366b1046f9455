// Sender recovery for Ethereum signatures. Recovery (secp256k1) dominates the cost of accepting
// a transaction: ~1-2 ms in pure JavaScript, ~0.05 ms in libsecp256k1. The native binding of the
// `secp256k1` package is used when it was built (its install script runs node-gyp); otherwise
// @noble/curves, the same code ethereumjs uses by default.
import { createRequire } from "node:module";
import { ecrecover as nobleEcrecover } from "@ethereumjs/util";
import { keccak_256 } from "@noble/hashes/sha3.js";

interface NativeSecp256k1 {
  ecdsaRecover(signature: Uint8Array, recoveryId: number, message: Uint8Array, compressed: boolean): Uint8Array;
}

function loadNative(): NativeSecp256k1 | undefined {
  if (process.env["COCO_EVM_PURE_JS_SECP256K1"] === "1") return undefined;
  try {
    // `secp256k1/bindings` throws when no native build exists (it never falls back to JS).
    return createRequire(import.meta.url)("secp256k1/bindings") as NativeSecp256k1;
  } catch {
    return undefined;
  }
}

const native = loadNative();

/** Which implementation recovers senders: shown in docs and benchmark output. */
export const secp256k1Backend: "libsecp256k1" | "noble" = native === undefined ? "noble" : "libsecp256k1";

function recoveryId(v: bigint, chainId: bigint | undefined): number {
  if (v === 0n || v === 1n) return Number(v);
  if (chainId === undefined) return Number(v - 27n);
  return Number(v - (2n * chainId + 35n));
}

function padTo32(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 32) return bytes;
  if (bytes.length > 32) throw new Error("Invalid signature: r or s longer than 32 bytes");
  const out = new Uint8Array(32);
  out.set(bytes, 32 - bytes.length);
  return out;
}

/** ethereumjs's `ecrecover` contract: returns the 64-byte public key without the 0x04 prefix. */
export function ecrecover(msgHash: Uint8Array, v: bigint, r: Uint8Array, s: Uint8Array, chainId?: bigint): Uint8Array {
  if (native === undefined) return nobleEcrecover(msgHash, v, r, s, chainId);
  const id = recoveryId(v, chainId);
  if (id !== 0 && id !== 1) throw new Error("Invalid signature v value");
  const signature = new Uint8Array(64);
  signature.set(padTo32(r), 0);
  signature.set(padTo32(s), 32);
  return native.ecdsaRecover(signature, id, msgHash, false).slice(1);
}

/** Inputs up to this size are memoised by `keccak256`: addresses, topics, mapping keys (key ‖ slot). */
const KECCAK_MEMO_INPUT_MAX = 64;
const KECCAK_MEMO_ENTRIES_MAX = 16_384;
const keccakMemo = new Map<string, Uint8Array>();

/**
 * keccak-256 for ethereumjs (`customCrypto.keccak256`: SHA3 opcode, log blooms, headers,
 * transaction hashes). Small inputs repeat from one transaction to the next (a token's address,
 * its event signature, the holders' balance slots), and @noble/hashes takes ~8 µs per hash:
 * those are answered from a bounded memo (cleared when full). Pure function, so exact; each
 * answer is a fresh copy, as callers may keep or change it.
 */
export function keccak256(input: Uint8Array): Uint8Array {
  if (input.length > KECCAK_MEMO_INPUT_MAX) return keccak_256(input);
  const key = Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString("latin1");
  let hash = keccakMemo.get(key);
  if (hash === undefined) {
    hash = keccak_256(input);
    if (keccakMemo.size >= KECCAK_MEMO_ENTRIES_MAX) keccakMemo.clear();
    keccakMemo.set(key, hash);
  }
  return hash.slice();
}
