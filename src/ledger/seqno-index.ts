// Where each seqno's entry sits inside its chunk file, in about 2.3 bytes per entry (5M entries:
// ~11 MB; a plain offset and length per entry took 12 bytes, 60 MB).
// Frames follow each other in a chunk, so an entry's offset is the previous entry's offset plus
// its frame: the index keeps every entry's length (2 bytes; longer entries in a small map), the
// exact offset of every 32nd entry, and the offset of each entry that does not follow the one
// before it (the first entry of each chunk). An offset is then at most 31 additions away.
// It covers the newest seqnos only: the ledger drops old committed chunks from it (dropBefore;
// chunk-files.ts pages them in from their index files when read).
import { assert } from "../util/errors.js";
import { FRAME_HEADER_BYTES } from "./files.js";

const INITIAL_CAPACITY = 1024;
/** An exact offset is kept for every CHECKPOINT_EVERY-th entry. */
const CHECKPOINT_SHIFT = 5;
const CHECKPOINT_EVERY = 1 << CHECKPOINT_SHIFT;
/** Lengths at or above this are kept in `#longLengths`; the Uint16 slot holds this marker. */
const LONG_LENGTH = 0xffff;

export class SeqnoIndex {
  /** Seqno of slot 0. */
  firstSeqno: number;
  #count = 0;
  #lengths = new Uint16Array(INITIAL_CAPACITY);
  /** Lengths ≥ LONG_LENGTH, by slot. */
  readonly #longLengths = new Map<number, number>();
  // Float64 so offsets past 4 GiB in one oversized chunk remain exact.
  #checkpoints = new Float64Array(INITIAL_CAPACITY >> CHECKPOINT_SHIFT);
  /** Slots whose entry does not follow the previous one (a chunk's first entry), ascending, and their offsets. */
  #breakSlots: number[] = [];
  #breakOffsets: number[] = [];
  /** Offset of the last slot's entry (NaN when empty): the next append is checked against it. */
  #lastOffset = Number.NaN;

  constructor(firstSeqno: number) {
    this.firstSeqno = firstSeqno;
  }

  get lastSeqno(): number {
    return this.firstSeqno + this.#count - 1;
  }

  push(offset: number, length: number): void {
    this.set(this.firstSeqno + this.#count, offset, length);
  }

  /**
   * Records seqno's frame. Seqnos are set in order; setting one that is already indexed (a write
   * retried after a full disk, or after a truncate) forgets every seqno after it.
   */
  set(seqno: number, offset: number, length: number): void {
    const slot = seqno - this.firstSeqno;
    assert(slot >= 0 && slot <= this.#count, `index slot for seqno ${seqno} is next or existing`);
    assert(Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(length) && length >= 0, `seqno ${seqno}: offset and length are byte counts`);
    if (slot < this.#count) this.#cut(slot);
    if (slot === this.#lengths.length) this.#grow();
    const follows = slot > 0 && offset === this.#lastOffset + FRAME_HEADER_BYTES + this.#lengthAt(slot - 1);
    if (!follows) {
      this.#breakSlots.push(slot);
      this.#breakOffsets.push(offset);
    }
    if ((slot & (CHECKPOINT_EVERY - 1)) === 0) this.#checkpoints[slot >> CHECKPOINT_SHIFT] = offset;
    if (length >= LONG_LENGTH) {
      this.#lengths[slot] = LONG_LENGTH;
      this.#longLengths.set(slot, length);
    } else {
      this.#lengths[slot] = length;
    }
    this.#lastOffset = offset;
    this.#count = slot + 1;
  }

  offset(seqno: number): number {
    const slot = this.#slot(seqno);
    if (slot === this.#count - 1) return this.#lastOffset;
    // Start from the nearer of the slot's checkpoint and the last break at or before it.
    let from = slot & ~(CHECKPOINT_EVERY - 1);
    let offset = this.#checkpoints[from >> CHECKPOINT_SHIFT]!;
    const b = this.#lastBreakAtOrBefore(slot);
    if (b >= 0 && this.#breakSlots[b]! > from) {
      from = this.#breakSlots[b]!;
      offset = this.#breakOffsets[b]!;
    }
    for (let k = from; k < slot; k++) offset += FRAME_HEADER_BYTES + this.#lengthAt(k);
    return offset;
  }

  length(seqno: number): number {
    return this.#lengthAt(this.#slot(seqno));
  }

  /** Forgets every seqno after `seqno`. */
  truncate(seqno: number): void {
    if (seqno < this.firstSeqno - 1) {
      // Rolled back past the start: the next append starts a new range.
      this.firstSeqno = seqno + 1;
      this.#cut(0);
      return;
    }
    const keep = Math.min(this.#count, seqno - this.firstSeqno + 1);
    if (keep < this.#count) this.#cut(keep);
  }

  /** Seqnos indexed (lastSeqno - firstSeqno + 1). */
  get count(): number {
    return this.#count;
  }

  /**
   * Forgets the seqnos before `seqno`, rounded down to a checkpoint so that every offset kept stays
   * exact; always keeps the last seqno. The ledger pages out old committed chunks with it
   * (chunk-files.ts): their entries are then found through their chunk index files.
   */
  dropBefore(seqno: number): void {
    const drop = Math.min(seqno - this.firstSeqno, this.#count - 1) & ~(CHECKPOINT_EVERY - 1);
    if (drop <= 0) return;
    const keep = this.#count - drop;
    let capacity = INITIAL_CAPACITY;
    while (capacity <= keep) capacity *= 2;
    const lengths = new Uint16Array(capacity);
    lengths.set(this.#lengths.subarray(drop, this.#count));
    const checkpoints = new Float64Array(capacity >> CHECKPOINT_SHIFT);
    checkpoints.set(this.#checkpoints.subarray(drop >> CHECKPOINT_SHIFT, (this.#count + CHECKPOINT_EVERY - 1) >> CHECKPOINT_SHIFT));
    let b = 0;
    while (b < this.#breakSlots.length && this.#breakSlots[b]! < drop) b++;
    this.#breakSlots = this.#breakSlots.slice(b).map((slot) => slot - drop);
    this.#breakOffsets = this.#breakOffsets.slice(b);
    const long = [...this.#longLengths].filter(([slot]) => slot >= drop);
    this.#longLengths.clear();
    for (const [slot, length] of long) this.#longLengths.set(slot - drop, length);
    this.#lengths = lengths;
    this.#checkpoints = checkpoints;
    this.#count = keep;
    this.firstSeqno += drop;
  }

  /** Bytes held, for the memory figures (GET /node/memory) and tests. */
  get bytes(): number {
    return this.#lengths.byteLength + this.#checkpoints.byteLength + 16 * (this.#breakSlots.length + this.#longLengths.size);
  }

  /** Keeps slots 0..keep-1. */
  #cut(keep: number): void {
    const lastOffset = keep > 0 ? this.offset(this.firstSeqno + keep - 1) : Number.NaN;
    let b = this.#breakSlots.length;
    while (b > 0 && this.#breakSlots[b - 1]! >= keep) b--;
    this.#breakSlots.length = b;
    this.#breakOffsets.length = b;
    for (const slot of this.#longLengths.keys()) if (slot >= keep) this.#longLengths.delete(slot);
    this.#count = keep;
    this.#lastOffset = lastOffset;
  }

  #lengthAt(slot: number): number {
    const length = this.#lengths[slot]!;
    return length === LONG_LENGTH ? this.#longLengths.get(slot)! : length;
  }

  /** Index in #breakSlots of the last break at or before `slot`, or -1. */
  #lastBreakAtOrBefore(slot: number): number {
    let lo = 0;
    let hi = this.#breakSlots.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.#breakSlots[mid]! <= slot) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  #slot(seqno: number): number {
    const slot = seqno - this.firstSeqno;
    assert(slot >= 0 && slot < this.#count, `seqno ${seqno} is indexed`);
    return slot;
  }

  #grow(): void {
    const lengths = new Uint16Array(this.#lengths.length * 2);
    lengths.set(this.#lengths);
    this.#lengths = lengths;
    const checkpoints = new Float64Array(lengths.length >> CHECKPOINT_SHIFT);
    checkpoints.set(this.#checkpoints);
    this.#checkpoints = checkpoints;
  }
}
