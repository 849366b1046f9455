// A flushed history tree keeps the frontier (its right-most blocks), the unflushed window and
// every hash at its retained height and above; a flushed leaf's path is rebuilt from the trees of
// the leaves of at most two retained blocks (read back from the ledger by the node). Roots and
// paths must equal the full tree's, checked against the naive RFC 6962 reference.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { MerkleTree, computeRootFromPath } from "../../../src/merkle/index.js";
import { leafAt, referencePath, referenceRoot } from "./reference.js";

function treeOf(leaves: readonly Buffer[]): MerkleTree {
  const tree = new MerkleTree();
  for (const leaf of leaves) tree.append(leaf);
  return tree;
}

function leavesFor(tree: MerkleTree, index: number, size: number, all: Buffer[]): Map<number, MerkleTree> {
  const blocks = new Map<number, MerkleTree>();
  for (const b of tree.blocksForPath(index, size)) blocks.set(b.blockIndex, treeOf(all.slice(b.firstLeaf, b.firstLeaf + b.count)));
  return blocks;
}

test("paths of flushed leaves, rebuilt from two retained blocks, equal the full tree's (property)", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 5 }), fc.integer({ min: 2, max: 300 }), fc.nat(), fc.nat(), fc.nat(),
    (retainHeight, n, flushSeed, indexSeed, sizeSeed) => {
      const tree = new MerkleTree(retainHeight);
      const all: Buffer[] = [];
      for (let i = 0; i < n; i++) {
        all.push(leafAt(i));
        tree.append(leafAt(i));
      }
      const flushed = 1 + (flushSeed % n);
      tree.flush(flushed);
      const index = indexSeed % n;
      const size = index + 1 + (sizeSeed % (n - index));
      const path = tree.pathFromLeaves(index, size, leavesFor(tree, index, size, all));
      assert.deepEqual(path, referencePath(all.slice(0, size), index));
      // Roots at or above the flush point still come from memory alone.
      for (const m of [flushed, n]) assert.deepEqual(tree.rootAt(m), referenceRoot(all.slice(0, m)));
      assert.deepEqual(computeRootFromPath(all[index]!, path), referenceRoot(all.slice(0, size)));
    },
  ), { numRuns: 300 });
});

test("appends, roots and in-memory paths after repeated flushes equal the full tree's (property)", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 12 }), (retainHeight, steps) => {
    const tree = new MerkleTree(retainHeight);
    const all: Buffer[] = [];
    for (const step of steps) {
      for (let i = 0; i < step; i++) {
        all.push(leafAt(all.length));
        tree.append(all[all.length - 1]!);
      }
      tree.flush(Math.max(tree.flushedIndex, all.length - 5));
      assert.deepEqual(tree.root(), referenceRoot(all));
      const index = Math.max(tree.flushedIndex, all.length - 3);
      if (index < all.length) assert.deepEqual(tree.path(index), referencePath(all, index));
    }
  }), { numRuns: 200 });
});

test("a flushed tree stores the window plus about two hashes per retained block, not the whole history", () => {
  const retainHeight = 6;
  const tree = new MerkleTree(retainHeight);
  const n = 100_000;
  const window = 1000;
  for (let i = 0; i < n; i++) {
    tree.append(leafAt(i));
    if (i % window === 0 && i > window) tree.flush(i - window);
  }
  const bound = 2 * (n / 2 ** retainHeight) + 4 * window + 64;
  assert.ok(tree.storedHashCount < bound, `stored ${tree.storedHashCount} hashes (bound ${bound}; the full tree holds ${2 * n})`);
  const full = new MerkleTree();
  for (let i = 0; i < n; i++) full.append(leafAt(i));
  assert.deepEqual(tree.root(), full.root());
});

test("a flushed path needs the leaves of its blocks: too few are refused", () => {
  const tree = new MerkleTree(3);
  const all = Array.from({ length: 40 }, (_, i) => leafAt(i));
  for (const leaf of all) tree.append(leaf);
  tree.flush(30);
  const blocks = leavesFor(tree, 2, 37, all);
  const [first] = blocks.keys();
  blocks.set(first!, treeOf(all.slice(1, 8)));
  assert.throws(() => tree.pathFromLeaves(2, 37, blocks), /needs a tree of 8 leaves, got 7/);
  // A block tree that was itself flushed cannot answer for its lower levels.
  const flushedBlock = treeOf(all.slice(0, 8));
  flushedBlock.flush(4);
  blocks.set(first!, flushedBlock);
  assert.throws(() => tree.pathFromLeaves(2, 37, blocks), /needs a tree of 8 leaves/);
  assert.throws(() => new MerkleTree().blocksForPath(0, 1), /retains no height/);
});

test("a tree rebuilt from its retained hashes (retainedAt → fromRetained) goes on exactly as the tree it came from (property)", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 260 }), fc.integer({ min: 0, max: 80 }), fc.nat(), fc.nat(),
    (retainHeight, cut, more, indexSeed, sizeSeed) => {
      const n = cut + more;
      const all = Array.from({ length: n }, (_, i) => leafAt(i));
      const original = new MerkleTree(retainHeight);
      for (let i = 0; i < cut; i++) original.append(all[i]!);
      const { lowFrontier, retainedBlocks } = original.retainedAt(cut);
      assert.equal(retainedBlocks.length, 32 * Math.floor(cut / 2 ** retainHeight));
      const rebuilt = MerkleTree.fromRetained(cut, retainHeight, lowFrontier, retainedBlocks);
      assert.equal(rebuilt.flushedIndex, cut);
      for (let i = cut; i < n; i++) rebuilt.append(all[i]!);
      assert.deepEqual(rebuilt.root(), referenceRoot(all));
      for (let m = Math.max(cut, 1); m <= n; m += 1 + (sizeSeed % 17)) assert.deepEqual(rebuilt.rootAt(m), referenceRoot(all.slice(0, m)));
      if (n === 0) return;
      // A leaf after the cut from memory; one before it from the trees of its blocks.
      const index = indexSeed % n;
      const size = index + 1 + (sizeSeed % (n - index));
      const path = index >= cut ? rebuilt.path(index, size) : rebuilt.pathFromLeaves(index, size, leavesFor(rebuilt, index, size, all));
      assert.deepEqual(path, referencePath(all.slice(0, size), index));
    },
  ), { numRuns: 400 });
});

test("retained hashes of the wrong shape are refused", () => {
  const tree = new MerkleTree(2);
  for (let i = 0; i < 11; i++) tree.append(leafAt(i));
  const { lowFrontier, retainedBlocks } = tree.retainedAt(11);
  assert.throws(() => MerkleTree.fromRetained(11, 2, lowFrontier.slice(1), retainedBlocks), /frontier hashes/);
  assert.throws(() => MerkleTree.fromRetained(11, 2, lowFrontier, retainedBlocks.subarray(32)), /2 blocks of 32 bytes expected/);
  assert.throws(() => MerkleTree.fromRetained(12, 2, lowFrontier, retainedBlocks), /expected/);
  assert.throws(() => new MerkleTree().retainedAt(3), /retains no height/);
});
