// Where each seqno's entry sits inside its chunk file. Two growable typed arrays instead of an
// object per entry: a node holding millions of transactions keeps 12 bytes per entry.
import { assert } from "../util/errors.js";

const INITIAL_CAPACITY = 1024;

export class SeqnoIndex {
  /** Seqno of slot 0. */
  firstSeqno: number;
  #count = 0;
  // Float64 so offsets past 4 GiB in one oversized chunk remain exact.
  #offsets = new Float64Array(INITIAL_CAPACITY);
  #lengths = new Uint32Array(INITIAL_CAPACITY);

  constructor(firstSeqno: number) {
    this.firstSeqno = firstSeqno;
  }

  get lastSeqno(): number {
    return this.firstSeqno + this.#count - 1;
  }

  push(offset: number, length: number): void {
    this.set(this.firstSeqno + this.#count, offset, length);
  }

  /** Records seqno's frame; seqnos are set in order (or overwritten after a truncate). */
  set(seqno: number, offset: number, length: number): void {
    const slot = seqno - this.firstSeqno;
    assert(slot >= 0 && slot <= this.#count, `index slot for seqno ${seqno} is next or existing`);
    if (slot === this.#offsets.length) this.#grow();
    this.#offsets[slot] = offset;
    this.#lengths[slot] = length;
    if (slot === this.#count) this.#count++;
  }

  offset(seqno: number): number {
    return this.#offsets[this.#slot(seqno)]!;
  }

  length(seqno: number): number {
    return this.#lengths[this.#slot(seqno)]!;
  }

  /** Forgets every seqno after `seqno`. */
  truncate(seqno: number): void {
    if (seqno < this.firstSeqno - 1) {
      // Rolled back past the start: the next append starts a new range.
      this.firstSeqno = seqno + 1;
      this.#count = 0;
      return;
    }
    this.#count = Math.min(this.#count, seqno - this.firstSeqno + 1);
  }

  #slot(seqno: number): number {
    const slot = seqno - this.firstSeqno;
    assert(slot >= 0 && slot < this.#count, `seqno ${seqno} is indexed`);
    return slot;
  }

  #grow(): void {
    const offsets = new Float64Array(this.#offsets.length * 2);
    offsets.set(this.#offsets);
    this.#offsets = offsets;
    const lengths = new Uint32Array(this.#lengths.length * 2);
    lengths.set(this.#lengths);
    this.#lengths = lengths;
  }
}
