// The retained Merkle hashes file is a cache: it round-trips, and a torn, damaged or foreign file
// is refused by its checksum or shape, never half-read.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { MerkleTree } from "../../../src/merkle/index.js";
import {
  MERKLE_RETAINED_FILE, decodeRetainedHashes, encodeRetainedHashes, readRetainedHashes, writeRetainedHashes,
} from "../../../src/node/merkle-retained-file.js";
import { leafAt } from "../merkle/reference.js";

function hashesOf(size: number, retainHeight: number) {
  const tree = new MerkleTree(retainHeight);
  for (let i = 0; i < size; i++) tree.append(leafAt(i));
  return { size, retainHeight, ...tree.retainedAt(size) };
}

test("retained hashes round-trip through the file, and rebuild the same tree", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-retained-"));
  try {
    assert.equal(await readRetainedHashes(dir), undefined, "no file: nothing, not an error");
    const hashes = hashesOf(1000, 4);
    await writeRetainedHashes(dir, hashes);
    assert.deepEqual(readdirSync(dir), [MERKLE_RETAINED_FILE], "no temporary file left");
    const read = await readRetainedHashes(dir);
    assert.ok(read !== undefined && !("refused" in read));
    assert.deepEqual(read, hashes);
    const tree = MerkleTree.fromRetained(read.size, read.retainHeight, read.lowFrontier, read.retainedBlocks);
    const full = new MerkleTree();
    for (let i = 0; i < 1000; i++) full.append(leafAt(i));
    assert.deepEqual(tree.root(), full.root());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a torn, damaged or foreign file is refused by name", async () => {
  const bytes = encodeRetainedHashes(hashesOf(300, 3));
  const refused = (b: Buffer): string => {
    const r = decodeRetainedHashes(b);
    assert.ok("refused" in r, "refused");
    return r.refused;
  };
  assert.match(refused(bytes.subarray(0, bytes.length - 40)), /checksum/);
  assert.match(refused(bytes.subarray(0, 20)), /shorter than any such file/);
  for (const at of [9, 20, bytes.length - 100, bytes.length - 1]) {
    const damaged = Buffer.from(bytes);
    damaged[at]! ^= 0x10;
    assert.match(refused(damaged), /checksum|magic/, `a flipped byte at ${at}`);
  }
  const foreign = Buffer.from(bytes);
  foreign.write("NOTMERKL", 0, "latin1");
  assert.match(refused(foreign), /magic/);
  const dir = mkdtempSync(join(tmpdir(), "coco-retained-"));
  try {
    writeFileSync(join(dir, MERKLE_RETAINED_FILE), bytes.subarray(0, bytes.length - 1));
    const read = await readRetainedHashes(dir);
    assert.ok(read !== undefined && "refused" in read && /checksum/.test(read.refused));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a temporary file a crash left mid-write is removed when the file is next read, and the file itself still reads", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-retained-"));
  try {
    const hashes = hashesOf(300, 4);
    await writeRetainedHashes(dir, hashes);
    writeFileSync(join(dir, `${MERKLE_RETAINED_FILE}.tmp`), encodeRetainedHashes(hashes).subarray(0, 40));
    const read = await readRetainedHashes(dir);
    assert.deepEqual(read, hashes);
    // The removal runs in turn with this process's writes (none here): soon only the file is left.
    const deadline = Date.now() + 2_000;
    while (readdirSync(dir).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(readdirSync(dir), [MERKLE_RETAINED_FILE]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
