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

export class SignatureIndex {
  private readonly seqnos: number[] = [];
  private readonly records = new Map<number, SignatureRecord>();

  add(record: SignatureRecord): void {
    const last = this.seqnos[this.seqnos.length - 1];
    assert(last === undefined || record.seqno > last, "signatures are added in seqno order");
    this.seqnos.push(record.seqno);
    this.records.set(record.seqno, record);
  }

  get last(): SignatureRecord | undefined {
    const s = this.seqnos[this.seqnos.length - 1];
    return s === undefined ? undefined : this.records.get(s);
  }

  /** Index of the last signature seqno <= `seqno`, or -1. */
  private lastIndexAtOrBelow(seqno: number): number {
    let lo = 0;
    let hi = this.seqnos.length - 1;
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

  /** The last signature at or below `seqno`. */
  atOrBelow(seqno: number): SignatureRecord | undefined {
    const i = this.lastIndexAtOrBelow(seqno);
    return i === -1 ? undefined : this.records.get(this.seqnos[i]!);
  }

  /** The first signature strictly above `seqno`: the one whose root covers it. */
  firstAbove(seqno: number): SignatureRecord | undefined {
    const s = this.seqnos[this.lastIndexAtOrBelow(seqno) + 1];
    return s === undefined ? undefined : this.records.get(s);
  }

  /** Forgets signatures above `seqno` (rollback). */
  truncate(seqno: number): void {
    while (this.seqnos.length > 0 && this.seqnos[this.seqnos.length - 1]! > seqno) {
      this.records.delete(this.seqnos.pop()!);
    }
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
