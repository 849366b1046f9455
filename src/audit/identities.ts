// The service identities a ledger records, in order, and which of them the auditor can trust.
// A service starts with one identity (`public:ccf.gov.service.info`.cert); each disaster recovery
// gives it a new one, which records the identity it succeeds in
// `public:ccf.gov.service.previous_service_identity`. Trust flows backward from the anchor (the
// --service-cert, or else the latest identity in the ledger): identity k is trusted when k + 1 is
// and k + 1 endorsed it in a transaction that a signature under k + 1 covers.
import { certificateFingerprint, isCertificateIssuedBy, nodeIdFromPublicKey, publicKeyDer, publicKeyPemFromCertificate } from "../crypto/index.js";
import { serviceCoseKey, type ServiceCoseKey } from "../merkle/index.js";
import { AuditProblem, type AuditLocation } from "./problem.js";

export interface ServiceIdentity {
  index: number;
  certPem: string;
  /** SHA-256 of the certificate DER, hex. */
  fingerprint: string;
  /** SPKI DER of the service key: identities compare by key (a renewed certificate keeps it). */
  key: Buffer;
  /** Seqno of the transaction that recorded it (0: given by --service-cert, not found in the ledger). */
  fromSeqno: number;
  /** Where its first signature transaction is: a trust problem is reported there. */
  firstSignature?: Required<AuditLocation>;
  /** Seqno at which it endorsed the identity before it (previous_service_identity), if it did. */
  endorsedPreviousAt?: number;
  /** SPKI DER of the identity it endorsed. */
  endorsedPreviousKey?: Buffer;
  /** The service key parsed for COSE checks, once (signature transactions' COSE signatures). */
  coseKey?: ServiceCoseKey;
}

export interface TrustAnchor {
  /** "service-cert": the --service-cert given; "ledger": the latest identity the ledger records. */
  source: "service-cert" | "ledger";
  fingerprint: string;
  /** Index of the identity it matches in the ledger's sequence, or -1. */
  identityIndex: number;
}

export interface TrustResult {
  anchor: TrustAnchor;
  trusted: boolean[];
  /** The first signature made under an identity the anchor does not reach, if any. */
  firstUntrusted?: { identity: ServiceIdentity; location: Required<AuditLocation> };
}

/** Distinct node certificates kept with their checked public key; a service has few nodes. */
const NODE_CERT_CACHE_MAX = 1024;

export class ServiceIdentityChain {
  readonly identities: ServiceIdentity[] = [];
  readonly #anchorPem: string | undefined;
  readonly #anchorKey: Buffer | undefined;
  readonly #nodeKeys = new Map<string, string>();

  constructor(anchorPem?: string) {
    this.#anchorPem = anchorPem;
    this.#anchorKey = anchorPem === undefined ? undefined : publicKeyDer(publicKeyPemFromCertificate(anchorPem));
  }

  get current(): ServiceIdentity | undefined {
    return this.identities[this.identities.length - 1];
  }

  /** A write of service.info at `seqno`: a new identity if its key differs from the current one. */
  noteServiceInfo(certPem: string, seqno: number, at: AuditLocation): void {
    const key = this.#keyOf(certPem, "InvalidServiceIdentity", `the service certificate in service.info at seqno ${seqno}`, at);
    const current = this.current;
    if (current !== undefined && current.key.equals(key)) {
      if (current.fromSeqno === 0) current.fromSeqno = seqno; // the --service-cert stand-in, now recorded
      return;
    }
    this.identities.push({ index: this.identities.length, certPem, fingerprint: certificateFingerprint(certPem), key, fromSeqno: seqno });
  }

  /** A previous_service_identity write at `seqno`, made under the current identity. */
  noteEndorsement(previousCertPem: string, seqno: number, at: AuditLocation): void {
    const current = this.current;
    if (current === undefined) {
      throw new AuditProblem("InvalidServiceIdentity", `seqno ${seqno} records a previous service identity before any service identity.`, at);
    }
    current.endorsedPreviousKey = this.#keyOf(previousCertPem, "InvalidServiceIdentity", `the previous service identity at seqno ${seqno}`, at);
    current.endorsedPreviousAt = seqno;
  }

  /**
   * A certificate-form endorsement at `seqno`: `endorsementPem` must carry the previous identity's
   * key and be issued by the current identity's key; then it counts as that identity's endorsement.
   */
  noteEndorsementCertificate(previousCertPem: string, endorsementPem: string, seqno: number, at: AuditLocation): void {
    const current = this.current;
    const previousKey = this.#keyOf(previousCertPem, "InvalidServiceEndorsement", `the previous service identity in the endorsement at seqno ${seqno}`, at);
    const endorsedKey = this.#keyOf(endorsementPem, "InvalidServiceEndorsement", `the endorsement certificate at seqno ${seqno}`, at);
    if (current === undefined || !endorsedKey.equals(previousKey) || !isCertificateIssuedBy(endorsementPem, current.certPem)) {
      throw new AuditProblem("InvalidServiceEndorsement",
        `the endorsement of the previous service identity at seqno ${seqno} is not a certificate for that identity's key issued by the ` +
          `service identity in force${current ? ` (${current.fingerprint})` : ""}.`, at);
    }
    current.endorsedPreviousKey = previousKey;
    current.endorsedPreviousAt = seqno;
  }

  /**
   * Checks that a signing node's certificate is issued by the identity in force and carries the
   * node id the signature names; returns the node's public key PEM.
   */
  nodePublicKey(certPem: string, nodeId: string, at: Required<AuditLocation>): string {
    const identity = this.#identityInForce(at);
    const cacheKey = `${identity.index}\n${nodeId}\n${certPem}`;
    const cached = this.#nodeKeys.get(cacheKey);
    if (cached !== undefined) return cached;
    if (!isCertificateIssuedBy(certPem, identity.certPem)) {
      throw new AuditProblem("NodeNotEndorsed",
        `signature transaction ${at.seqno} is signed by node ${nodeId}, whose certificate is not endorsed by the service identity in force ` +
          `(${identity.fingerprint}, ${identity.fromSeqno > 0 ? `recorded at seqno ${identity.fromSeqno}` : "given by --service-cert"}).`, at);
    }
    const publicKeyPem = publicKeyPemFromCertificate(certPem);
    if (nodeIdFromPublicKey(publicKeyPem) !== nodeId) {
      throw new AuditProblem("NodeIdMismatch", `signature transaction ${at.seqno} names node ${nodeId} but carries another node's certificate.`, at);
    }
    if (this.#nodeKeys.size >= NODE_CERT_CACHE_MAX) this.#nodeKeys.clear();
    this.#nodeKeys.set(cacheKey, publicKeyPem);
    if (identity.firstSignature === undefined) identity.firstSignature = at;
    return publicKeyPem;
  }

  /**
   * The key of the service identity in force at signature transaction `at`: its COSE signature
   * must be by this key (trust in the identity itself is settled by resolveTrust at the end).
   */
  serviceCoseKey(at: Required<AuditLocation>): ServiceCoseKey {
    const identity = this.#identityInForce(at);
    identity.coseKey ??= serviceCoseKey(identity.certPem);
    return identity.coseKey;
  }

  /** Which identities the anchor reaches, given the last verified signature transaction. */
  resolveTrust(lastSignatureSeqno: number): TrustResult {
    const anchor = this.#anchor(lastSignatureSeqno);
    const trusted = this.identities.map(() => false);
    for (let k = anchor.identityIndex; k >= 0; k--) {
      trusted[k] = true;
      const identity = this.identities[k]!;
      const previous = this.identities[k - 1];
      const endorsed = previous !== undefined && identity.endorsedPreviousKey !== undefined &&
        identity.endorsedPreviousAt! < lastSignatureSeqno &&
        identity.endorsedPreviousKey.equals(previous.key);
      if (!endorsed) break;
    }
    let firstUntrusted: TrustResult["firstUntrusted"];
    for (const identity of this.identities) {
      if (trusted[identity.index] || identity.firstSignature === undefined) continue;
      if (firstUntrusted === undefined || identity.firstSignature.seqno < firstUntrusted.location.seqno) {
        firstUntrusted = { identity, location: identity.firstSignature };
      }
    }
    return { anchor, trusted, ...(firstUntrusted ? { firstUntrusted } : {}) };
  }

  #anchor(lastSignatureSeqno: number): TrustAnchor {
    if (this.#anchorPem !== undefined) {
      const index = this.identities.findIndex((identity) => identity.key.equals(this.#anchorKey!));
      return { source: "service-cert", fingerprint: certificateFingerprint(this.#anchorPem), identityIndex: index };
    }
    // The latest identity whose recording a signature covers (one recorded in the unsigned tail
    // cannot vouch for anything yet).
    let index = -1;
    for (const identity of this.identities) if (identity.fromSeqno < lastSignatureSeqno || index === -1) index = identity.index;
    return { source: "ledger", fingerprint: index >= 0 ? this.identities[index]!.fingerprint : "", identityIndex: index };
  }

  #identityInForce(at: Required<AuditLocation>): ServiceIdentity {
    if (this.current === undefined && this.#anchorPem !== undefined) {
      // No service.info before this signature: only the given certificate can have endorsed the node.
      this.identities.push({ index: 0, certPem: this.#anchorPem, fingerprint: certificateFingerprint(this.#anchorPem), key: this.#anchorKey!, fromSeqno: 0 });
    }
    const identity = this.current;
    if (identity === undefined) {
      throw new AuditProblem("NoServiceIdentity",
        `signature transaction ${at.seqno} comes before any service identity in public:ccf.gov.service.info: give the service certificate with --service-cert.`, at);
    }
    return identity;
  }

  #keyOf(certPem: string, code: string, what: string, at: AuditLocation): Buffer {
    try {
      return publicKeyDer(publicKeyPemFromCertificate(certPem));
    } catch (cause) {
      throw new AuditProblem(code, `${what} is not a valid PEM certificate: ${(cause as Error).message}`, at);
    }
  }
}
