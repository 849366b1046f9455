// Merkle inclusion proofs as CCF serialises them: a list of sibling hashes from the leaf
// upward, each tagged with the side it sits on. Pure; shared by the tree and receipt checks.
import { sha256Pair } from "../crypto/hash.js";

/** `left`: parent = H(sibling || current). `right`: parent = H(current || sibling). */
export type ProofStep = { left: Buffer } | { right: Buffer };

export const HASH_BYTES = 32;

/** Interior node: SHA-256 of the two children, with no domain-separation prefix (as in CCF). */
export function hashChildren(left: Uint8Array, right: Uint8Array): Buffer {
  return sha256Pair(left, right);
}

/** Folds `path` over `leaf`; the result equals the signed root iff the proof is valid. */
export function computeRootFromPath(leaf: Uint8Array, path: readonly ProofStep[]): Buffer {
  let current: Uint8Array = leaf;
  for (const step of path) {
    current = "left" in step ? hashChildren(step.left, current) : hashChildren(current, step.right);
  }
  return Buffer.from(current);
}

/**
 * The 64 bytes whose SHA-256 is computeRootFromPath(leaf, path): the last step's two children.
 * Undefined for an empty path (the root is the leaf). Lets OpenSSL check a signature over the
 * root (crypto's verifyDigest with a preimage).
 */
export function rootPreimageFromPath(leaf: Uint8Array, path: readonly ProofStep[]): Buffer | undefined {
  if (path.length === 0) return undefined;
  const below = computeRootFromPath(leaf, path.slice(0, -1));
  const last = path[path.length - 1]!;
  return "left" in last ? Buffer.concat([last.left, below]) : Buffer.concat([below, last.right]);
}
