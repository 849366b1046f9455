// Specification of the history tree: hand-computed small trees, then properties against the
// naive RFC 6962 reference for roots, paths, retract, flush and random operation sequences.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { MerkleTree, EMPTY_ROOT, computeRootFromPath, rootPreimageFromPath } from "../../../src/merkle/index.js";
import { h, leafAt, referencePath, referenceRoot } from "./reference.js";

function treeOf(count: number): { tree: MerkleTree; leaves: Buffer[] } {
  const tree = new MerkleTree();
  const leaves: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    leaves.push(leafAt(i));
    tree.append(leafAt(i));
  }
  return { tree, leaves };
}

test("the empty tree has a root of 32 zero bytes", () => {
  const tree = new MerkleTree();
  assert.equal(tree.size, 0);
  assert.deepEqual(tree.root(), Buffer.alloc(32));
  assert.deepEqual(EMPTY_ROOT, Buffer.alloc(32));
});

test("a one-leaf tree's root is the leaf itself, with an empty path", () => {
  const { tree, leaves } = treeOf(1);
  assert.deepEqual(tree.root(), leaves[0]);
  assert.deepEqual(tree.path(0), []);
});

test("small trees match roots computed by hand", () => {
  const [a, b, c, d, e, f, g, k] = Array.from({ length: 8 }, (_, i) => leafAt(i)) as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
  const expected: Record<number, Buffer> = {
    2: h(a, b),
    3: h(h(a, b), c),
    5: h(h(h(a, b), h(c, d)), e),
    8: h(h(h(a, b), h(c, d)), h(h(e, f), h(g, k))),
  };
  for (const [size, root] of Object.entries(expected)) {
    assert.deepEqual(treeOf(Number(size)).tree.root(), root, `size ${size}`);
  }
});

test("paths in a 5-leaf tree list siblings from the leaf upward with their sides", () => {
  const { tree, leaves } = treeOf(5);
  const [a, b, c, d, e] = leaves as [Buffer, Buffer, Buffer, Buffer, Buffer];
  assert.deepEqual(tree.path(2), [{ right: d }, { left: h(a, b) }, { right: e }]);
  assert.deepEqual(tree.path(4), [{ left: h(h(a, b), h(c, d)) }]);
  assert.deepEqual(computeRootFromPath(c, tree.path(2)), tree.root());
});

test("rootAt and path with an explicit size describe the historical tree", () => {
  const { tree, leaves } = treeOf(13);
  for (let size = 1; size <= 13; size++) {
    assert.deepEqual(tree.rootAt(size), referenceRoot(leaves.slice(0, size)));
    for (let i = 0; i < size; i++) assert.deepEqual(tree.path(i, size), referencePath(leaves.slice(0, size), i));
  }
});

test("out-of-range requests are rejected with a CocoError", () => {
  const { tree } = treeOf(4);
  assert.throws(() => tree.path(4), { name: "CocoError", code: "InvalidInput" });
  assert.throws(() => tree.rootAt(5), { name: "CocoError" });
  assert.throws(() => tree.append(Buffer.alloc(31)), /32 bytes/);
  tree.flush(2);
  assert.throws(() => tree.path(1), /flushed/);
  assert.throws(() => tree.rootAt(1), /flushed/);
  assert.throws(() => tree.retract(1), /flushed/);
  assert.throws(() => tree.leaf(1), /flushed/);
});

test("root() is cached but refreshed by append and retract", () => {
  const { tree, leaves } = treeOf(6);
  const before = tree.root();
  assert.equal(tree.root(), before);
  tree.append(leafAt(6));
  assert.deepEqual(tree.root(), referenceRoot([...leaves, leafAt(6)]));
  tree.retract(6);
  assert.deepEqual(tree.root(), before);
});

test("flush keeps memory bounded to the unflushed window", () => {
  const tree = new MerkleTree();
  for (let i = 0; i < 10_000; i++) {
    tree.append(leafAt(i));
    if (i % 100 === 99) tree.flush(i - 10);
  }
  // Window of ~110 leaves: at most ~2 * window + 2 per level.
  assert.ok(tree.storedHashCount < 400, `stored ${tree.storedHashCount}`);
});

const LEAF_COUNT_MAX = 70;
const sizes = fc.integer({ min: 0, max: LEAF_COUNT_MAX });

test("property: root at every size and every path match the reference", () => {
  fc.assert(
    fc.property(sizes, (count) => {
      const { tree, leaves } = treeOf(count);
      assert.deepEqual(tree.root(), referenceRoot(leaves));
      for (let i = 0; i < count; i++) {
        const path = tree.path(i);
        assert.deepEqual(path, referencePath(leaves, i));
        assert.deepEqual(computeRootFromPath(leaves[i]!, path), tree.root());
        assert.deepEqual(tree.leaf(i), leaves[i]);
      }
    }),
    { numRuns: 60 },
  );
});

test("property: retract then append equals a tree built directly", () => {
  fc.assert(
    fc.property(sizes, sizes, fc.integer({ min: 0, max: 30 }), (count, retractTo, extra) => {
      fc.pre(retractTo <= count);
      const { tree, leaves } = treeOf(count);
      tree.retract(retractTo);
      const replacement = Array.from({ length: extra }, (_, i) => leafAt(1000 + i));
      for (const leaf of replacement) tree.append(leaf);
      const expected = [...leaves.slice(0, retractTo), ...replacement];
      assert.equal(tree.size, expected.length);
      assert.deepEqual(tree.root(), referenceRoot(expected));
      for (let i = 0; i < expected.length; i++) assert.deepEqual(tree.path(i), referencePath(expected, i));
    }),
    { numRuns: 100 },
  );
});

test("property: after flush(f), roots of sizes >= f and paths of leaves >= f are unchanged", () => {
  fc.assert(
    fc.property(sizes, sizes, (count, flushAt) => {
      fc.pre(flushAt <= count);
      const { tree, leaves } = treeOf(count);
      tree.flush(flushAt);
      assert.equal(tree.flushedIndex, flushAt);
      for (let size = Math.max(flushAt, 1); size <= count; size++) {
        assert.deepEqual(tree.rootAt(size), referenceRoot(leaves.slice(0, size)));
        for (let i = flushAt; i < size; i++) assert.deepEqual(tree.path(i, size), referencePath(leaves.slice(0, size), i));
      }
    }),
    { numRuns: 30 },
  );
});

type Operation = { kind: "append"; count: number } | { kind: "retract"; back: number } | { kind: "flush"; fraction: number };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constant("append" as const), count: fc.integer({ min: 1, max: 9 }) }),
  fc.record({ kind: fc.constant("retract" as const), back: fc.integer({ min: 0, max: 6 }) }),
  fc.record({ kind: fc.constant("flush" as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
);

test("property: random interleavings of append, retract and flush agree with the reference", () => {
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 40 }), (operations) => {
      const tree = new MerkleTree();
      const leaves: Buffer[] = [];
      let flushed = 0;
      let next = 0;
      for (const op of operations) {
        if (op.kind === "append") {
          for (let i = 0; i < op.count; i++) {
            const leaf = leafAt(next++);
            leaves.push(leaf);
            tree.append(leaf);
          }
        } else if (op.kind === "retract") {
          const to = Math.max(flushed, leaves.length - op.back);
          tree.retract(to);
          leaves.length = to;
        } else {
          const to = Math.max(flushed, Math.floor(flushed + (leaves.length - flushed) * op.fraction));
          tree.flush(to);
          flushed = to;
        }
        assert.equal(tree.size, leaves.length);
        assert.equal(tree.flushedIndex, flushed);
        assert.deepEqual(tree.root(), referenceRoot(leaves));
        for (let i = flushed; i < leaves.length; i++) {
          assert.deepEqual(computeRootFromPath(leaves[i]!, tree.path(i)), referenceRoot(leaves));
        }
      }
      for (let size = Math.max(flushed, 1); size <= leaves.length; size++) {
        assert.deepEqual(tree.rootAt(size), referenceRoot(leaves.slice(0, size)));
      }
    }),
    { numRuns: 200 },
  );
});

test("appendFrom takes leaves from a packed buffer exactly as append does, and refuses a short one", () => {
  const leaves = Buffer.concat(Array.from({ length: 37 }, (_, i) => createHash("sha256").update(`leaf ${i}`).digest()));
  const one = new MerkleTree();
  const packed = new MerkleTree();
  for (let i = 0; i < 37; i++) {
    one.append(leaves.subarray(32 * i, 32 * i + 32));
    packed.appendFrom(leaves, 32 * i);
    assert.deepEqual(packed.root(), one.root());
  }
  assert.throws(() => packed.appendFrom(leaves, leaves.length - 31), /No 32-byte Merkle leaf/);
  assert.throws(() => packed.appendFrom(leaves, -1), /No 32-byte Merkle leaf/);
  assert.equal(packed.size, 37);
});

test("property: the root's preimage is its two children, at every size and after a flush", () => {
  fc.assert(
    fc.property(sizes, fc.integer({ min: 0, max: LEAF_COUNT_MAX }), (count, flushAt) => {
      const { tree } = treeOf(count);
      assert.equal(tree.rootPreimageAt(0), undefined);
      if (count >= 1) assert.equal(tree.rootPreimageAt(1), undefined, "one leaf: the root is the leaf, no hash of two children");
      tree.flush(Math.min(flushAt, count));
      for (let size = Math.max(2, tree.flushedIndex); size <= count; size++) {
        const preimage = tree.rootPreimageAt(size);
        const powerOfTwo = (size & (size - 1)) === 0;
        // Only a power-of-two root, whose left child a flush may have dropped, can lack one.
        if (preimage === undefined && powerOfTwo && tree.flushedIndex > 0) continue;
        assert.ok(preimage !== undefined, `a preimage at size ${size} (flushed to ${tree.flushedIndex})`);
        assert.equal(preimage.length, 64);
        assert.deepEqual(createHash("sha256").update(preimage).digest(), tree.rootAt(size));
      }
      if (count >= 2) assert.deepEqual(tree.rootPreimageAt(), tree.rootPreimageAt(count));
      // Unflushed, every root of two or more leaves has one, and every inclusion proof leads to it.
      const { tree: whole, leaves } = treeOf(count);
      for (let size = 2; size <= count; size++) assert.ok(whole.rootPreimageAt(size) !== undefined);
      for (let i = 0; i < count; i++) {
        const fromPath = rootPreimageFromPath(leaves[i]!, whole.path(i));
        if (count < 2) assert.equal(fromPath, undefined);
        else assert.deepEqual(fromPath, whole.rootPreimageAt());
      }
    }),
    { numRuns: 60 },
  );
});
