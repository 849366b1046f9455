// Properties of what a snapshot is made of: the KV state at a committed version taken while the
// store already holds later transactions (stateAt), and the Merkle frontier. State from a
// snapshot plus the suffix equals state from a full replay; a tree from the frontier plus the
// later leaves has the same roots and paths as the full tree.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Store, encodeSnapshot, encodeSnapshotPieces, isPublicMapName, serialiseWriteSet, type MapState } from "../../../src/kv/index.js";
import { MerkleTree } from "../../../src/merkle/index.js";
import { commitHistory, historyArb } from "./generators.js";

function split(maps: Map<string, MapState>, version: number): Buffer[] {
  const publicMaps = new Map([...maps].filter(([name]) => isPublicMapName(name)));
  const privateMaps = new Map([...maps].filter(([name]) => !isPublicMapName(name)));
  return [encodeSnapshot(version, publicMaps), encodeSnapshot(version, privateMaps)];
}

test("state at a committed version (taken after later commits) plus the suffix equals a full replay", () => {
  fc.assert(
    fc.property(historyArb, historyArb, fc.nat(), (prefix, suffix, extra) => {
      const full = new Store();
      const writeSets = commitHistory(full, [...prefix, ...suffix]);
      fc.pre(writeSets.length > 0);
      const at = Math.min(writeSets.length, 1 + (extra % writeSets.length));
      // The primary's store: committed up to `at`, later transactions executed already.
      const primary = new Store();
      for (const ws of writeSets) {
        const { publicDomain, privateDomain } = serialiseWriteSet(ws);
        primary.applySerialised(ws.seqno, publicDomain, privateDomain);
      }
      primary.compact(at);
      const before = primary.snapshot();
      const parts = split(primary.stateAt(at), at);
      assert.ok(primary.snapshot().equals(before), "taking the state at a version leaves the live store untouched");
      const restored = new Store();
      restored.loadSnapshotParts(parts);
      assert.equal(restored.currentVersion, at);
      for (const ws of writeSets.slice(at)) {
        const { publicDomain, privateDomain } = serialiseWriteSet(ws);
        restored.applySerialised(ws.seqno, publicDomain, privateDomain);
      }
      assert.ok(restored.snapshot().equals(full.snapshot()), "snapshot + suffix = full replay");
    }),
    { numRuns: 300 },
  );
});

test("a Merkle tree rebuilt from its frontier at size k computes the full tree's roots and paths from k on", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 300 }), fc.nat(), (size, more, seed) => {
      const leaf = (i: number) => { const b = Buffer.alloc(32); b.writeUInt32BE(i ^ seed, 0); b.writeUInt32BE(i, 28); return b; };
      const full = new MerkleTree();
      for (let i = 0; i < size + more; i++) full.append(leaf(i));
      const rebuilt = MerkleTree.fromFrontier(size, full.frontierAt(size));
      assert.ok(rebuilt.root().equals(full.rootAt(size)));
      for (let i = size; i < size + more; i++) rebuilt.append(leaf(i));
      assert.ok(rebuilt.root().equals(full.root()));
      for (let s = size; s <= size + more; s += Math.max(1, Math.floor(more / 5))) assert.ok(rebuilt.rootAt(s).equals(full.rootAt(s)), `root at ${s}`);
      for (let i = size; i < size + more; i += Math.max(1, Math.floor(more / 7))) {
        assert.deepEqual(rebuilt.path(i), full.path(i), `path of leaf ${i}`);
      }
      assert.throws(() => rebuilt.path(size - 1), /flushed/, "leaves before the snapshot have no path");
    }),
    { numRuns: 200 },
  );
});

test("a frontier of the wrong length or hash size is refused", () => {
  const tree = new MerkleTree();
  for (let i = 0; i < 5; i++) tree.append(Buffer.alloc(32, i));
  const frontier = tree.frontierAt(5);
  assert.equal(frontier.length, 3);
  assert.throws(() => MerkleTree.fromFrontier(5, frontier.slice(1)), /holds 3 hashes/);
  assert.throws(() => MerkleTree.fromFrontier(5, [Buffer.alloc(31), ...frontier.slice(1)]), /holds 3 hashes of 32 bytes/);
});

test("the snapshot encoded in pieces (a node yields to its event loop between them) is byte for byte the one-piece encoding", () => {
  fc.assert(
    fc.property(historyArb, fc.integer({ min: 1, max: 7 }), (history, perPiece) => {
      const store = new Store();
      commitHistory(store, history);
      const pieces = [...encodeSnapshotPieces(store.currentVersion, store.maps, perPiece)];
      assert.ok(Buffer.concat(pieces).equals(encodeSnapshot(store.currentVersion, store.maps)));
      for (const map of store.maps.values()) assert.ok(pieces.length >= 1 + Math.ceil(map.entries.size / perPiece));
    }),
    { numRuns: 300 },
  );
});
