// The ledger secrets of a service over time. Governance rotates the ledger secret
// (`trigger_ledger_rekey`); each secret encrypts the private domains of the transactions from
// its starting seqno until the next secret's. Readers pick the secret by seqno.
import { assert } from "../util/errors.js";
import { LedgerSecret } from "./entry.js";

export interface LedgerSecretVersion {
  /** First seqno whose private domain this secret encrypts. */
  readonly fromSeqno: number;
  readonly raw: Buffer;
}

export class LedgerSecrets {
  private readonly versions: { fromSeqno: number; raw: Buffer; secret: LedgerSecret }[] = [];

  constructor(versions: readonly LedgerSecretVersion[]) {
    assert(versions.length > 0, "at least one ledger secret");
    for (const v of [...versions].sort((a, b) => a.fromSeqno - b.fromSeqno)) this.add(v.fromSeqno, v.raw);
  }

  /** Adds a secret used from `fromSeqno` on; seqnos only grow. */
  add(fromSeqno: number, raw: Buffer): void {
    const last = this.versions[this.versions.length - 1];
    assert(last === undefined || fromSeqno > last.fromSeqno, "ledger secrets start at increasing seqnos");
    this.versions.push({ fromSeqno, raw, secret: new LedgerSecret(raw) });
  }

  /** The secret for a transaction's seqno: the latest one starting at or before it. */
  forSeqno(seqno: number): LedgerSecret {
    for (let i = this.versions.length - 1; i > 0; i--) {
      if (this.versions[i]!.fromSeqno <= seqno) return this.versions[i]!.secret;
    }
    return this.versions[0]!.secret;
  }

  /** Drops secrets whose rekey transaction (the one just before their first seqno) was rolled back. */
  truncate(seqno: number): void {
    while (this.versions.length > 1 && this.versions[this.versions.length - 1]!.fromSeqno - 1 > seqno) this.versions.pop();
  }

  get first(): Buffer {
    return this.versions[0]!.raw;
  }

  /**
   * The raw secret for `seqno` and the last seqno it covers (Infinity for the latest): callers
   * that derive per-secret material for a run of seqnos split the run there.
   */
  rangeFor(seqno: number): { raw: Buffer; lastSeqno: number } {
    for (let i = this.versions.length - 1; i > 0; i--) {
      if (this.versions[i]!.fromSeqno <= seqno) {
        const next = this.versions[i + 1];
        return { raw: this.versions[i]!.raw, lastSeqno: next === undefined ? Infinity : next.fromSeqno - 1 };
      }
    }
    const next = this.versions[1];
    return { raw: this.versions[0]!.raw, lastSeqno: next === undefined ? Infinity : next.fromSeqno - 1 };
  }

  /**
   * Adds secrets that start before every secret held (a recovered service learns its previous
   * services' secrets only once members have submitted their shares).
   */
  addEarlier(versions: readonly LedgerSecretVersion[]): void {
    const first = this.versions[0]!.fromSeqno;
    const sorted = [...versions].sort((a, b) => a.fromSeqno - b.fromSeqno);
    for (const v of sorted) assert(v.fromSeqno < first, "earlier secrets start before every secret held");
    for (let i = 1; i < sorted.length; i++) assert(sorted[i]!.fromSeqno > sorted[i - 1]!.fromSeqno, "earlier secrets start at distinct seqnos");
    this.versions.unshift(...sorted.map((v) => ({ fromSeqno: v.fromSeqno, raw: v.raw, secret: new LedgerSecret(v.raw) })));
  }

  /** First seqno any secret held encrypts (after seqno 1 on a recovered service still waiting for its shares). */
  get firstSeqno(): number {
    return this.versions[0]!.fromSeqno;
  }

  get count(): number {
    return this.versions.length;
  }

  list(): LedgerSecretVersion[] {
    return this.versions.map(({ fromSeqno, raw }) => ({ fromSeqno, raw }));
  }
}
