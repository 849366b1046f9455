// Naive reference for the history tree: RFC 6962's MTH and PATH recomputed from the full
// leaf list on every call. Slow and obviously correct; the property tests compare against it.
import { createHash } from "node:crypto";
import type { ProofStep } from "../../../src/merkle/index.js";

export function h(left: Buffer, right: Buffer): Buffer {
  return createHash("sha256").update(left).update(right).digest();
}

function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export function referenceRoot(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return Buffer.alloc(32);
  if (leaves.length === 1) return leaves[0]!;
  const k = split(leaves.length);
  return h(referenceRoot(leaves.slice(0, k)), referenceRoot(leaves.slice(k)));
}

/** Leaf-upward path of leaf `index` in the tree over `leaves`. */
export function referencePath(leaves: Buffer[], index: number): ProofStep[] {
  if (leaves.length <= 1) return [];
  const k = split(leaves.length);
  if (index < k) return [...referencePath(leaves.slice(0, k), index), { right: referenceRoot(leaves.slice(k)) }];
  return [...referencePath(leaves.slice(k), index - k), { left: referenceRoot(leaves.slice(0, k)) }];
}

export function leafAt(i: number): Buffer {
  return createHash("sha256").update(`leaf ${i}`).digest();
}
