// CCF's JSON receipt format (a "proof receipt"): what a node serves for a committed transaction
// and what any verifier checks. The shape lives with the Merkle tree so that the node (which
// builds receipts) and the client (which verifies them) share it without importing each other.

export interface CcfReceiptLeafComponents {
  /** Hex SHA-256 of the serialised write set. */
  write_set_digest: string;
  /** "ce:<view>.<seqno>:<hex secret>"; the secret is revealed only once the transaction commits. */
  commit_evidence: string;
  /** Hex SHA-256 of the application's claims (all zeros when there are none). */
  claims_digest: string;
}

export interface CcfReceipt {
  /** PEM of the signing node's certificate, endorsed by the service key. */
  cert: string;
  /** Hex SHA-256 of the signing node's public key DER. */
  node_id: string;
  /** Base64 DER ECDSA signature over the Merkle root, used as a prehashed SHA-256 digest. */
  signature: string;
  proof: Array<{ left: string } | { right: string }>;
  leaf_components: CcfReceiptLeafComponents;
  /** Certificates of earlier service identities, from the node certificate's issuer towards the current service. */
  service_endorsements?: string[];
  is_signature_transaction?: boolean;
}
