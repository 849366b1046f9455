// The ledger's history tree: an append-only Merkle tree over 32-byte transaction leaves with
// the RFC 6962 shape. The primary signs root() in each signature transaction; receipts carry
// path(); rollback uses retract(); committed history is dropped with flush().
//
// Storage: levels[h][k - bases[h]] is the hash of the complete aligned block of leaves
// [k * 2^h, (k + 1) * 2^h). Every range in the RFC 6962 recursion for a tree of size m starts
// at a multiple of a power of two >= its length, so it is either one aligned block or splits
// into an aligned left block and a smaller right range: roots and paths cost O(log n) hashes.
//
// Why flush(f) may keep only blocks k >= floor(f / 2^h) - 1 at each level h:
// - root(m), m >= f, combines the blocks of the binary decomposition of m. A level-h block k in
//   it is followed only by smaller blocks (total < 2^h), so m < (k + 2) * 2^h, hence
//   k > m / 2^h - 2 >= f / 2^h - 2, i.e. k >= floor(f / 2^h) - 1.
// - path(i, m), i >= f: each sibling is either the aligned neighbour of the level-h block
//   floor(i / 2^h) that holds leaf i (index floor(i / 2^h) - 1 on the left, or + 1 on the right,
//   both >= floor(f / 2^h) - 1), or a range entirely right of that block, made of blocks that
//   start after i >= f, so each has index >= floor(f / 2^h).
// - append of leaf n >= f only combines the block holding n with its left neighbour: same bound.
import { CocoError } from "../util/errors.js";
import { sha256Into } from "../crypto/index.js";
import { HASH_BYTES, hashChildren, type ProofStep } from "./proof.js";

/** Root of the empty tree: 32 zero bytes (RFC 6962 would hash the empty string; CCF never signs it). */
export const EMPTY_ROOT: Buffer = Buffer.alloc(HASH_BYTES);

/**
 * The hashes of one level, packed 32 bytes apart in one growable buffer: a long ledger holds
 * millions of them, and one object per hash would cost ~3x the memory and keep the garbage
 * collector busy. `base` is the block index of the first stored hash (after flushes).
 */
class HashLevel {
  bytes: Buffer = Buffer.allocUnsafe(HASH_BYTES * 1024);
  length = 0;

  /** Appends source[offset, offset + 32). */
  push(source: Buffer, offset: number): void {
    this.#reserve();
    source.copy(this.bytes, this.length * HASH_BYTES, offset, offset + HASH_BYTES);
    this.length++;
  }

  /** Appends SHA-256(input), written in place. */
  pushDigestOf(input: Uint8Array): void {
    this.#reserve();
    sha256Into(input, this.bytes, this.length * HASH_BYTES);
    this.length++;
  }

  #reserve(): void {
    if ((this.length + 1) * HASH_BYTES > this.bytes.length) {
      const grown = Buffer.allocUnsafe(this.bytes.length * 2);
      this.bytes.copy(grown, 0, 0, this.length * HASH_BYTES);
      this.bytes = grown;
    }
  }

  /** A view of stored hash i: valid only until the level changes. */
  view(i: number): Buffer {
    return this.bytes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
  }

  /** Hashes i and i + 1 side by side: the input of their parent. */
  pairView(i: number): Buffer {
    return this.bytes.subarray(i * HASH_BYTES, (i + 2) * HASH_BYTES);
  }

  dropFirst(n: number): void {
    this.bytes.copyWithin(0, n * HASH_BYTES, this.length * HASH_BYTES);
    this.length -= n;
    // Give memory back when a flush leaves the buffer mostly empty.
    if (this.bytes.length > HASH_BYTES * 4096 && this.length * HASH_BYTES * 4 < this.bytes.length) {
      this.bytes = Buffer.from(this.bytes.subarray(0, Math.max(this.length * 2, 1024) * HASH_BYTES));
    }
  }
}

/**
 * Aligned blocks at the tree's retained height, each as a tree of its own leaves (read back from
 * the ledger and appended in order: a block of 2^height leaves, or the first leaves of the block
 * that holds the tree's last leaf): what `pathFromLeaves` takes a flushed path's lower siblings
 * from. Keyed by block index (leaf index / 2^height).
 */
export type RetainedBlockTrees = ReadonlyMap<number, MerkleTree>;

export class MerkleTree {
  readonly #levels: HashLevel[] = [new HashLevel()];
  /** Levels at or above this height are never flushed (a compact summary of the whole history). */
  readonly #retainHeight: number;
  /** Set during pathFromLeaves: trees standing in for flushed blocks below the retained height. */
  #external: RetainedBlockTrees | undefined;

  /**
   * `retainHeight`: flush() keeps every hash at this height and above (2 hashes per 2^height
   * leaves), so that a flushed leaf's path needs only its own block's leaves and those of the
   * tree's last block, read back from the ledger (pathFromLeaves). Default: flush drops all.
   * The height trades memory for the cost of an old receipt: 64 bytes per 2^height leaves stay
   * in memory for good, and a receipt whose leaf was flushed reads and hashes up to two blocks.
   */
  constructor(retainHeight = Infinity) {
    if (retainHeight !== Infinity && (!Number.isInteger(retainHeight) || retainHeight < 1 || retainHeight > 30)) {
      throw new CocoError("InvalidInput", `Merkle retained height must be an integer in 1..30, got ${retainHeight}.`, 500);
    }
    this.#retainHeight = retainHeight;
  }

  get retainHeight(): number {
    return this.#retainHeight;
  }
  readonly #bases: number[] = [0];
  #size = 0;
  #flushedIndex = 0;
  #cachedRoot: Buffer | undefined;

  /** Number of leaves appended (and not retracted). */
  get size(): number {
    return this.#size;
  }

  /** Leaves below this index can no longer be proven; roots exist only for sizes >= it. */
  get flushedIndex(): number {
    return this.#flushedIndex;
  }

  /** Hot path: one push per leaf plus, amortised, one interior hash. */
  append(leaf: Buffer): void {
    if (leaf.length !== HASH_BYTES) {
      throw new CocoError("InvalidInput", `Merkle leaf must be ${HASH_BYTES} bytes, got ${leaf.length}.`, 500);
    }
    this.appendFrom(leaf, 0);
  }

  /** Appends the leaf at leaves[offset, offset + 32): a packed run of leaves needs no view per leaf. */
  appendFrom(leaves: Buffer, offset: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + HASH_BYTES > leaves.length) {
      throw new CocoError("InvalidInput", `No ${HASH_BYTES}-byte Merkle leaf at offset ${offset} of ${leaves.length} bytes.`, 500);
    }
    let index = this.#size;
    this.#levels[0]!.push(leaves, offset);
    // Each odd block index completes its parent: carry upward like a binary counter. The two
    // children sit side by side in the level's buffer, so the parent hashes them in place.
    for (let height = 0; index % 2 === 1; height++) {
      const level = this.#levels[height]!;
      const children = level.pairView(index - 1 - this.#bases[height]!);
      index = (index - 1) / 2;
      if (this.#levels.length === height + 1) {
        // First ever block at this height, so block 0; flushedIndex < size keeps base 0 valid.
        this.#levels.push(new HashLevel());
        this.#bases.push(0);
      }
      this.#levels[height + 1]!.pushDigestOf(children);
    }
    this.#size++;
    this.#cachedRoot = undefined;
  }

  /** Root of the whole tree. Cached until the next append or retract. */
  root(): Buffer {
    this.#cachedRoot ??= this.rootAt(this.#size);
    return this.#cachedRoot;
  }

  /** Root of the first `size` leaves, for flushedIndex <= size <= this.size. */
  rootAt(size: number): Buffer {
    this.#checkSize(size, "rootAt");
    if (size === 0) return EMPTY_ROOT;
    if (size < this.#flushedIndex) {
      throw new CocoError("InvalidInput", `Cannot compute the root at size ${size}: leaves before ${this.#flushedIndex} were flushed.`, 500);
    }
    return this.#rangeHash(0, size);
  }

  /**
   * The 64 bytes whose SHA-256 is rootAt(size): its two children, left ‖ right (RFC 6962's split
   * at the largest power of two below size). A signature over the root can be made and checked
   * by OpenSSL through it (crypto's signDigest / verifyDigest with a preimage). Undefined for
   * fewer than two leaves (the root is no hash of two children), and when a flush dropped a child:
   * only for a power-of-two size (its root is one stored block, its left child may be gone).
   */
  rootPreimageAt(size: number = this.#size): Buffer | undefined {
    this.#checkSize(size, "rootPreimageAt");
    if (size < 2) return undefined;
    if (size < this.#flushedIndex) {
      throw new CocoError("InvalidInput", `Cannot compute the root at size ${size}: leaves before ${this.#flushedIndex} were flushed.`, 500);
    }
    const split = largestPowerOfTwoBelow(size);
    // Every block of a non-power-of-two root's decomposition is kept (see flush); a
    // power-of-two root's left child is block 0 one level down, kept only while nothing there was dropped.
    if (split * 2 === size && (this.#bases[floorLog2(split)] ?? 0) > 0) return undefined;
    return Buffer.concat([this.#rangeHash(0, split), this.#rangeHash(split, size - split)]);
  }

  /** Leaf hash at `index`, for flushedIndex <= index < size. */
  leaf(index: number): Buffer {
    this.#checkIndex(index, this.#size, "leaf");
    return this.#block(0, index);
  }

  /** Inclusion proof of leaf `index` in the tree of the first `size` leaves, from the leaf upward. */
  path(index: number, size: number = this.#size): ProofStep[] {
    this.#checkSize(size, "path");
    this.#checkIndex(index, size, "path");
    const steps: ProofStep[] = [];
    this.#collectPath(index, 0, size, steps);
    return steps.reverse(); // collected top-down
  }

  /** Rolls back to the first `size` leaves (an uncommitted tail lost in an election). */
  retract(size: number): void {
    this.#checkSize(size, "retract");
    if (size < this.#flushedIndex) {
      throw new CocoError("InvalidInput", `Cannot retract to ${size}: leaves up to ${this.#flushedIndex} were flushed as committed.`, 500);
    }
    for (let height = 0; height < this.#levels.length; height++) {
      this.#levels[height]!.length = Math.max(0, Math.floor(size / 2 ** height) - this.#bases[height]!);
    }
    this.#size = size;
    this.#cachedRoot = undefined;
  }

  /** Forgets what only proofs of leaves < index need. Idempotent; never moves backward. */
  flush(index: number): void {
    this.#checkSize(index, "flush");
    if (index <= this.#flushedIndex) return;
    for (let height = 0; height < Math.min(this.#levels.length, this.#retainHeight); height++) {
      const keepFrom = Math.max(0, Math.floor(index / 2 ** height) - 1);
      const drop = keepFrom - this.#bases[height]!;
      if (drop > 0) {
        this.#levels[height]!.dropFirst(drop);
        this.#bases[height] = keepFrom;
      }
    }
    this.#flushedIndex = index;
  }

  /**
   * Inclusion proof of a leaf below flushedIndex, rebuilt with `blocks`: trees of the leaves of
   * the retained-height blocks that hold leaf `index` and leaf `size - 1` (clipped to `size`), as
   * `blocksForPath` names them. Equal to what path() gave before the flush. The block trees
   * answer every sibling below the retained height with a stored hash, so this costs O(log n).
   */
  pathFromLeaves(index: number, size: number, blocks: RetainedBlockTrees): ProofStep[] {
    this.#checkSize(size, "pathFromLeaves");
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new CocoError("InvalidInput", `pathFromLeaves: leaf index ${index} is outside 0..${size - 1}.`, 500);
    }
    if (index >= this.#flushedIndex) return this.path(index, size);
    for (const block of this.blocksForPath(index, size)) {
      const tree = blocks.get(block.blockIndex);
      if (tree === undefined || tree.size !== block.count || tree.flushedIndex !== 0) {
        throw new CocoError("InvalidInput", `pathFromLeaves: block ${block.blockIndex} needs a tree of ${block.count} leaves, got ${tree?.size ?? 0}.`, 500);
      }
    }
    this.#external = blocks;
    try {
      const steps: ProofStep[] = [];
      this.#collectPath(index, 0, size, steps);
      return steps.reverse();
    } finally {
      this.#external = undefined;
    }
  }

  /** Retained-height blocks whose leaves pathFromLeaves(index, size) needs: first leaf and count. */
  blocksForPath(index: number, size: number): { blockIndex: number; firstLeaf: number; count: number }[] {
    if (this.#retainHeight === Infinity) throw new CocoError("InvalidInput", "This Merkle tree retains no height: flushed paths cannot be rebuilt.", 500);
    const width = 2 ** this.#retainHeight;
    const blocks = new Map<number, { blockIndex: number; firstLeaf: number; count: number }>();
    for (const leaf of [index, size - 1]) {
      const blockIndex = Math.floor(leaf / width);
      const firstLeaf = blockIndex * width;
      blocks.set(blockIndex, { blockIndex, firstLeaf, count: Math.min(width, size - firstLeaf) });
    }
    return [...blocks.values()];
  }

  /**
   * What a tree of the first `size` leaves needs to go on from there (a snapshot's tree): at each
   * height h, the aligned block floor(size / 2^h) - 1, when it exists. These are exactly the
   * blocks flush(size) keeps of a tree of that size (see the note at the top), so a tree rebuilt
   * with fromFrontier() computes the same roots, paths and appends for every leaf >= size.
   */
  frontierAt(size: number): Buffer[] {
    this.#checkSize(size, "frontierAt");
    if (size < this.#flushedIndex) {
      throw new CocoError("InvalidInput", `Cannot take the frontier at size ${size}: leaves before ${this.#flushedIndex} were flushed.`, 500);
    }
    const hashes: Buffer[] = [];
    for (let height = 0; Math.floor(size / 2 ** height) >= 1; height++) hashes.push(this.#block(height, Math.floor(size / 2 ** height) - 1));
    return hashes;
  }

  /** A tree of `size` leaves holding only its frontier (frontierAt): leaves < size are flushed. */
  static fromFrontier(size: number, hashes: readonly Buffer[]): MerkleTree {
    if (!Number.isSafeInteger(size) || size < 0) throw new CocoError("InvalidInput", `Merkle frontier size ${size} is not a count.`, 400);
    const heights = size === 0 ? 0 : floorLog2(size) + 1;
    if (hashes.length !== heights || hashes.some((h) => h.length !== HASH_BYTES)) {
      throw new CocoError("InvalidInput", `A Merkle frontier of ${size} leaves holds ${heights} hashes of ${HASH_BYTES} bytes, got ${hashes.length}.`, 400);
    }
    const tree = new MerkleTree();
    for (let height = 0; height < heights; height++) {
      if (height > 0) tree.#levels.push(new HashLevel());
      tree.#levels[height]!.push(hashes[height]!, 0);
      tree.#bases[height] = Math.floor(size / 2 ** height) - 1;
    }
    tree.#size = size;
    tree.#flushedIndex = size;
    return tree;
  }

  /**
   * What a tree of `size` leaves with a retained height keeps of every leaf before `size` once
   * flushed there: its frontier below the retained height (frontierAt's first hashes) and the
   * hashes of every complete block at the retained height, packed (the levels above are made of
   * them). fromRetained() takes them back; a node keeps them beside its ledger so that a restart
   * from a snapshot need not hash the whole ledger before it again (merkle-history.ts).
   */
  retainedAt(size: number): { lowFrontier: Buffer[]; retainedBlocks: Buffer } {
    if (this.#retainHeight === Infinity) throw new CocoError("InvalidInput", "This Merkle tree retains no height.", 500);
    const lowFrontier = this.frontierAt(size).slice(0, this.#retainHeight);
    const count = Math.floor(size / 2 ** this.#retainHeight);
    const retainedBlocks = Buffer.allocUnsafe(HASH_BYTES * count);
    for (let k = 0; k < count; k++) this.#block(this.#retainHeight, k).copy(retainedBlocks, HASH_BYTES * k);
    return { lowFrontier, retainedBlocks };
  }

  /**
   * A tree of `size` leaves, all flushed, retaining `retainHeight`, from what retainedAt(size)
   * gave: the levels above the retained height are hashed again from its blocks. It computes the
   * same roots and appends as the tree it came from, and the same paths (pathFromLeaves for
   * leaves before `size`). Nothing here proves the hashes: the caller checks the root it leads to.
   */
  static fromRetained(size: number, retainHeight: number, lowFrontier: readonly Buffer[], retainedBlocks: Buffer): MerkleTree {
    if (!Number.isSafeInteger(size) || size < 0) throw new CocoError("InvalidInput", `Merkle tree size ${size} is not a count.`, 400);
    const tree = new MerkleTree(retainHeight);
    const heights = size === 0 ? 0 : floorLog2(size) + 1;
    const count = Math.floor(size / 2 ** retainHeight);
    if (lowFrontier.length !== Math.min(heights, retainHeight) || lowFrontier.some((h) => h.length !== HASH_BYTES) || retainedBlocks.length !== HASH_BYTES * count) {
      throw new CocoError("InvalidInput",
        `Retained Merkle hashes of ${size} leaves at height ${retainHeight}: ${Math.min(heights, retainHeight)} frontier hashes and ${count} blocks of ${HASH_BYTES} bytes expected, got ${lowFrontier.length} and ${retainedBlocks.length} bytes.`, 400);
    }
    for (let height = 0; height < heights; height++) {
      if (height > 0) tree.#levels.push(new HashLevel());
      const level = tree.#levels[height]!;
      if (height < retainHeight) {
        level.push(lowFrontier[height]!, 0);
        tree.#bases[height] = Math.floor(size / 2 ** height) - 1;
      } else if (height === retainHeight) {
        for (let k = 0; k < count; k++) level.push(retainedBlocks, HASH_BYTES * k);
        tree.#bases[height] = 0;
      } else {
        const below = tree.#levels[height - 1]!;
        for (let k = 0; 2 * k + 1 < below.length; k++) level.pushDigestOf(below.pairView(2 * k));
        tree.#bases[height] = 0;
      }
    }
    tree.#size = size;
    tree.#flushedIndex = size;
    return tree;
  }

  /** Number of stored hashes; for tests and metrics (memory stays bounded by the unflushed window). */
  get storedHashCount(): number {
    return this.#levels.reduce((total, level) => total + level.length, 0);
  }

  /** MTH of leaves [start, start + length), length >= 1, start a multiple of a power of two >= length. */
  #rangeHash(start: number, length: number): Buffer {
    const split = largestPowerOfTwoAtMost(length);
    if (split === length) return this.#block(floorLog2(length), start / length);
    // Left part is a complete aligned block; the right part recurses on a smaller range.
    return hashChildren(this.#block(floorLog2(split), start / split), this.#rangeHash(start + split, length - split));
  }

  /** Pushes siblings of leaf `index` within range [start, start + length), outermost first. */
  #collectPath(index: number, start: number, length: number, steps: ProofStep[]): void {
    while (length > 1) {
      const split = largestPowerOfTwoBelow(length);
      if (index < start + split) {
        steps.push({ right: this.#rangeHash(start + split, length - split) });
        length = split;
      } else {
        steps.push({ left: this.#block(floorLog2(split), start / split) });
        start += split;
        length -= split;
      }
    }
  }

  /** A copy of a stored block hash (callers keep it; the level's buffer moves on). */
  #block(height: number, blockIndex: number): Buffer {
    const level = this.#levels[height];
    const i = blockIndex - (this.#bases[height] ?? 0);
    if ((level === undefined || i < 0 || i >= level.length) && this.#external !== undefined && height < this.#retainHeight) {
      return this.#externalBlock(height, blockIndex);
    }
    if (level === undefined || i < 0 || i >= level.length) {
      // Only reachable through a bug: every public entry point checks its bounds first.
      throw new Error(`assertion failed: Merkle block ${blockIndex} at height ${height} is not stored`);
    }
    return Buffer.from(level.view(i));
  }

  /** A flushed block's hash, stored by the tree of the retained block that holds it (pathFromLeaves). */
  #externalBlock(height: number, blockIndex: number): Buffer {
    const holder = Math.floor((blockIndex * 2 ** height) / 2 ** this.#retainHeight);
    const local = blockIndex - holder * 2 ** (this.#retainHeight - height);
    const tree = this.#external!.get(holder);
    if (tree === undefined || (local + 1) * 2 ** height > tree.#size) {
      throw new Error(`assertion failed: Merkle block ${blockIndex} at height ${height} is neither stored nor given`);
    }
    return tree.#block(height, local);
  }

  #checkSize(size: number, operation: string): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.#size) {
      throw new CocoError("InvalidInput", `${operation}: size ${size} is outside 0..${this.#size}.`, 500);
    }
  }

  #checkIndex(index: number, size: number, operation: string): void {
    if (!Number.isSafeInteger(index) || index < this.#flushedIndex || index >= size) {
      throw new CocoError(
        "InvalidInput",
        `${operation}: leaf index ${index} is outside ${this.#flushedIndex}..${size - 1} (flushed or not yet appended).`,
        500,
      );
    }
  }
}

/** floor(log2(n)) for 1 <= n <= 2^53, exact (Math.log2 can round up just below a power of two). */
function floorLog2(n: number): number {
  if (n < 2 ** 32) return 31 - Math.clz32(n);
  let height = 32;
  while (2 ** (height + 1) <= n) height++;
  return height;
}

/** Largest power of two <= n, for n >= 1. */
function largestPowerOfTwoAtMost(n: number): number {
  return 2 ** floorLog2(n);
}

/** Largest power of two < n, for n >= 2 (RFC 6962's split point k). */
function largestPowerOfTwoBelow(n: number): number {
  return largestPowerOfTwoAtMost(n - 1);
}
