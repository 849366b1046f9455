// The ledger tables an offline audit reads, and the shapes of their values. The node's own
// modules define most of them (imported here: they are plain data, no runtime); the two
// that only the node's governance shell writes are named here once.
export { SIGNATURES_MAP, decodeSignature, type SignatureRecord } from "../node/signatures.js";
export { SERVICE_INFO_MAP, type ServiceInfo } from "../node/service-status.js";
export { RECOVERY_SHARES_MAP, decryptShare, recoverLatestSecret, type RecoverySharesInfo } from "../node/recovery-shares.js";

/**
 * CCF's record, written by a recovered service, of the service identity it succeeds (a PEM
 * certificate, JSON string or raw). Written under the new identity and covered by its signed
 * Merkle roots, it is the new service's endorsement of the previous one.
 */
export const PREVIOUS_SERVICE_IDENTITY_MAP = "public:ccf.gov.service.previous_service_identity";

/**
 * Written by a rekey (src/node/governance-effects.ts): `{ from_seqno, wrapped }` announces that
 * a new ledger secret encrypts the private domains from `from_seqno` on.
 */
export const LEDGER_SECRET_SHARES_MAP = "public:ccf.internal.ledger_secret_shares";

export interface LedgerSecretSharesRecord {
  from_seqno: number;
  wrapped: Record<string, string>;
}

/**
 * Written by a recovering node (keyed by recovery count): the previous service certificate and
 * `endorsement`, a certificate for the previous service's public key issued by the new service
 * key. CCF keeps COSE endorsements under this name; entries not in this shape are ignored.
 */
export const PREVIOUS_IDENTITY_ENDORSEMENTS_MAP = "public:ccf.internal.previous_service_identity_endorsement";

export interface PreviousIdentityEndorsementRecord {
  previous_service_identity: string;
  endorsement: string;
  previous_last_seqno?: number;
}
