// Signature transactions: what they store (CCF's `public:ccf.internal.signatures` value) and an
// index of every signature in the local ledger, used to find the commit point covering a
// transaction (for receipts) and to roll back the uncommitted tail.
import { assert } from "../util/index.js";

export const SIGNATURES_MAP = "public:ccf.internal.signatures";
/** CCF's single-entry tables use an 8-byte zero key. */
export const SINGLETON_KEY = Buffer.alloc(8);

export interface SignatureRecord {
  /** Seqno of the signature transaction itself. */
  seqno: number;
  view: number;
  commit_seqno: number;
  commit_view: number;
  /** Hex Merkle root over every transaction before this one. */
  root: string;
  /** Base64 DER ECDSA signature (P-384) over the root as a SHA-256 prehash. */
  sig: string;
  node: string;
  cert: string;
}

export function encodeSignature(record: SignatureRecord): Buffer {
  return Buffer.from(JSON.stringify(record));
}

export function decodeSignature(value: Buffer): SignatureRecord {
  return JSON.parse(value.toString("utf8")) as SignatureRecord;
}

/** Signature records kept in memory (the newest); older ones are read back from the ledger. */
export const SIGNATURE_RECORDS_MAX = 1024;

/** Signature seqnos kept in memory, at least (the newest): 512 KB, twice that before a trim. */
export const SIGNATURE_SEQNOS_RESIDENT_DEFAULT = 1 << 16;

/**
 * The newest signature seqnos of the local ledger, packed (8 bytes each), and the records of the
 * newest SIGNATURE_RECORDS_MAX: a receipt for an older transaction reads its signature
 * transaction back from the ledger. A primary signs every 25 ms at most (every 10 ms while
 * commits come back fast), so one record per signature (~1 KB with its certificate) would grow
 * by ~140 MB a day, and even 8 bytes per signature by up to 70 MB a day: once it holds twice
 * `resident` seqnos, the committed ones before the newest `resident` are dropped, and the
 * signature that covers an older transaction is found in the ledger (the engine's receipts).
 */
export class SignatureIndex {
  private seqnos = new Float64Array(1024);
  private count = 0;
  /** The newest signature seqno dropped from memory; 0 while none was. */
  private dropped = 0;
  private readonly records = new Map<number, SignatureRecord>();

  constructor(private readonly resident = SIGNATURE_SEQNOS_RESIDENT_DEFAULT) {
    assert(Number.isSafeInteger(resident) && resident >= 1, "at least one signature seqno stays in memory");
  }

  /**
   * Lookups of seqnos at or above this are answered from memory; below it the answer may have
   * been dropped (seqnoAbove and seqnoAtOrBelow then answer undefined): read the ledger.
   */
  get exactFrom(): number {
    return this.dropped;
  }

  /** Signature seqnos in memory (for tests and GET /node/memory). */
  get residentCount(): number {
    return this.count;
  }

  add(record: SignatureRecord): void {
    const last = this.count === 0 ? this.dropped : this.seqnos[this.count - 1]!;
    assert(record.seqno > last, "signatures are added in seqno order");
    if (this.count === this.seqnos.length) {
      const grown = new Float64Array(this.seqnos.length * 2);
      grown.set(this.seqnos);
      this.seqnos = grown;
    }
    this.seqnos[this.count++] = record.seqno;
    this.records.set(record.seqno, record);
    if (this.records.size > SIGNATURE_RECORDS_MAX) this.records.delete(this.records.keys().next().value!);
    assert(this.records.size <= SIGNATURE_RECORDS_MAX, "signature records stay bounded");
  }

  /**
   * Once twice `resident` seqnos are held, drops the oldest down to the newest `resident`, but
   * only signatures at or below `committedSeqno` (a rollback never reaches them). Amortised: one
   * copy per `resident` signatures.
   */
  trimCommitted(committedSeqno: number): void {
    if (this.count < 2 * this.resident) return;
    let drop = this.count - this.resident;
    while (drop > 0 && this.seqnos[drop - 1]! > committedSeqno) drop--;
    if (drop === 0) return;
    this.dropped = this.seqnos[drop - 1]!;
    for (let i = 0; i < drop; i++) this.records.delete(this.seqnos[i]!);
    this.seqnos.copyWithin(0, drop, this.count);
    this.count -= drop;
  }

  get last(): SignatureRecord | undefined {
    return this.count === 0 ? undefined : this.records.get(this.seqnos[this.count - 1]!);
  }

  /** The record of signature transaction `seqno` if still in memory (the newest are). */
  record(seqno: number): SignatureRecord | undefined {
    return this.records.get(seqno);
  }

  /** Index of the last signature seqno <= `seqno`, or -1. */
  private lastIndexAtOrBelow(seqno: number): number {
    let lo = 0;
    let hi = this.count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.seqnos[mid]! <= seqno) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** Seqno of the last signature at or below `seqno`, if any (undefined below exactFrom). */
  seqnoAtOrBelow(seqno: number): number | undefined {
    if (seqno < this.dropped) return undefined;
    const i = this.lastIndexAtOrBelow(seqno);
    return i === -1 ? (this.dropped === 0 ? undefined : this.dropped) : this.seqnos[i]!;
  }

  /** Seqno of the first signature strictly above `seqno`: the one whose root covers it (undefined below exactFrom). */
  seqnoAbove(seqno: number): number | undefined {
    if (seqno < this.dropped) return undefined;
    const i = this.lastIndexAtOrBelow(seqno) + 1;
    return i < this.count ? this.seqnos[i]! : undefined;
  }

  /** Forgets signatures above `seqno` (rollback; never below a dropped, committed one). */
  truncate(seqno: number): void {
    assert(seqno >= this.dropped, `a rollback to ${seqno} keeps the committed signature ${this.dropped}`);
    while (this.count > 0 && this.seqnos[this.count - 1]! > seqno) this.records.delete(this.seqnos[--this.count]!);
  }
}

/** Which view wrote each seqno, as a compact list of view starts (CCF's "view history"). */
export class ViewHistory {
  private readonly starts: { view: number; seqno: number }[] = [];

  /** Records that `view` wrote `seqno` (cheap when the view is unchanged). */
  note(view: number, seqno: number): void {
    const last = this.starts[this.starts.length - 1];
    if (last && last.view === view) return;
    assert(!last || (view > last.view && seqno > last.seqno), "views and seqnos only grow");
    this.starts.push({ view, seqno });
  }

  /** The first seqno of each view up to `seqno` (what a snapshot carries so that statuses stay known). */
  startsUpTo(seqno: number): { view: number; seqno: number }[] {
    return this.starts.filter((start) => start.seqno <= seqno).map((start) => ({ ...start }));
  }

  viewAt(seqno: number): number | undefined {
    for (let i = this.starts.length - 1; i >= 0; i--) if (this.starts[i]!.seqno <= seqno) return this.starts[i]!.view;
    return undefined;
  }

  truncate(seqno: number): void {
    while (this.starts.length > 0 && this.starts[this.starts.length - 1]!.seqno > seqno) this.starts.pop();
  }
}
