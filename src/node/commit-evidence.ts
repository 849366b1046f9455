// Commit evidence, as CCF defines it: the string `ce:<view>.<seqno>:<hex nonce>` whose digest is
// bound into each transaction's Merkle leaf. The nonce is derived from a secret that only the
// service holds (HKDF of the ledger secret), so nobody can produce the evidence, and hence a
// receipt, for a transaction before the service reveals it, which it does only once committed.
import { hkdfSha256, hmacSha256, sha256 } from "../crypto/index.js";

export class CommitEvidence {
  private readonly secret: Buffer;

  constructor(ledgerSecret: Buffer) {
    this.secret = hkdfSha256(ledgerSecret, Buffer.alloc(0), Buffer.from("coco commit evidence v1"), 32);
  }

  evidence(view: number, seqno: number): string {
    const nonce = hmacSha256(this.secret, Buffer.from(`${view}.${seqno}`));
    return `ce:${view}.${seqno}:${nonce.toString("hex")}`;
  }

  digest(view: number, seqno: number): Buffer {
    return sha256(Buffer.from(this.evidence(view, seqno)));
  }
}
