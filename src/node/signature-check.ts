// A backup's check of every signature transaction the primary sends it, before the entry is
// applied, persisted or acknowledged (CCF: HashedTxHistory::verify_root_signatures, called when a
// follower deserialises a signature): the signed root must be this node's own Merkle root at
// that point; the signing node's certificate must be endorsed by the service and name that
// node; its ECDSA signature over the root must verify; and CCF 6's COSE signature of the same
// root must be by the service key in force and name this transaction. Any failure refuses the
// entry loudly: logged with seqno and signer, then thrown (the replication shell stops rather
// than acknowledge it). Runs once per signature transaction (every few tens of ms under load):
// keys are parsed once and cached, the root is the one the tree already holds.
import { isCertificateIssuedBy, nodeIdFromPublicKey, publicKeyPemFromCertificate } from "../crypto/index.js";
import { checkRootCoseSignature, decodeCoseSignatureValue, serviceCoseKey, type ServiceCoseKey } from "../merkle/index.js";
import { CocoError, assert, formatTxId } from "../util/index.js";
import type { SignatureRecord } from "./signatures.js";

/**
 * How root signatures are checked: ECDSA P-384 over the root as a prehash (or the simulator's
 * stand-in); with the root's preimage (its two children), by OpenSSL, several times faster.
 */
export interface RootSignatureVerifier {
  verify(publicKeyPem: string, root: Buffer, signature: Buffer, rootPreimage?: Buffer): boolean;
}

/**
 * Replaying its own ledger at start-up (recovery, the suffix after a snapshot), a node checks
 * every root but the signatures (~1 ms of ECDSA and COSE each) only for the first signature of each
 * signer and then at most this often: each signed root covers the whole history before it, so
 * a later verified signature vouches for everything an unchecked earlier one did, and a ledger
 * of a million signatures replays in seconds rather than hours. Replicated entries are always
 * checked in full.
 */
export const REPLAY_SIGNATURE_CHECK_MS = 1000;

/** Distinct node certificates and service keys kept parsed; a service has few of each. */
const NODE_CERTS_CACHED_MAX = 64;
const SERVICE_KEYS_CACHED_MAX = 16;

export interface SignatureToCheck {
  record: SignatureRecord;
  /** The raw `public:ccf.internal.cose_signatures` value the entry writes, if any. */
  coseValue: Buffer | undefined;
  /** Seqno and view of the signature transaction (from its ledger entry header). */
  seqno: number;
  view: number;
  /** This node's Merkle root over every entry before it. */
  root: Buffer;
  /** The root's two children (undefined below two entries): lets OpenSSL check the signature. */
  rootPreimage: Buffer | undefined;
}

export interface ServiceCertificates {
  /** Every service certificate whose nodes may sign (this service's and earlier ones'). */
  all: Iterable<string>;
  /** The service certificate in force at this point (service.info as applied so far). */
  current: string;
}

export class BackupSignatureCheck {
  readonly #endorsedNodeKeys = new Map<string, string>();
  readonly #serviceKeys = new Map<string, ServiceCoseKey>();

  constructor(
    private readonly verifier: RootSignatureVerifier,
    private readonly logger: { error(o: object, msg: string): void },
  ) {}

  #lastCheckedSigner = "";
  #lastCheckedAtMs = -Infinity;

  /**
   * Throws CocoError "ReplicationDiverged" (after logging it) unless every check holds. With
   * `replayAtMs` (a start-up replay, at that time), the signatures are checked as
   * REPLAY_SIGNATURE_CHECK_MS says; without it (a replicated entry), always.
   */
  check(signature: SignatureToCheck, services: ServiceCertificates, replayAtMs?: number): void {
    const { record, seqno, view, root } = signature;
    assert(root.length === 32, "a Merkle root is 32 bytes");
    const refuse = (check: string, detail: string): never => {
      const message = `Refused signature transaction ${formatTxId(view, seqno)} from node ${record.node}: ${detail}`;
      this.logger.error({ seqno, view, signer: record.node, check }, message);
      throw new CocoError("ReplicationDiverged", message, 500);
    };
    if (record.seqno !== seqno || record.view !== view) refuse("txid", `its record names ${record.view}.${record.seqno}.`);
    if (record.root !== root.toString("hex")) {
      refuse("root", `it signs root ${record.root} but this node's Merkle root is ${root.toString("hex")}: the ledgers diverged.`);
    }
    const publicKey = this.#nodeKey(record, services.all, refuse);
    if (replayAtMs !== undefined) {
      if (record.cert === this.#lastCheckedSigner && replayAtMs - this.#lastCheckedAtMs < REPLAY_SIGNATURE_CHECK_MS) return;
      this.#lastCheckedSigner = record.cert;
      this.#lastCheckedAtMs = replayAtMs;
    }
    let verified = false;
    try {
      verified = this.verifier.verify(publicKey, root, Buffer.from(record.sig, "base64"), signature.rootPreimage);
    } catch { /* a key of the wrong kind: refused below */ }
    if (!verified) refuse("node-signature", "the node's signature over the Merkle root does not verify.");
    if (signature.coseValue !== undefined) {
      let cose: Buffer | undefined;
      try {
        cose = decodeCoseSignatureValue(signature.coseValue);
      } catch (error) {
        refuse("cose-signature", (error as Error).message);
      }
      const problem = checkRootCoseSignature(cose!, { root, txid: formatTxId(view, seqno), serviceKey: this.#serviceKey(services.current) });
      if (problem !== null) refuse("cose-signature", `its COSE signature is refused (${problem.code}): ${problem.reason}.`);
    }
  }

  /** The signer's public key, once its certificate is known to be endorsed by a service and to name it. */
  #nodeKey(record: SignatureRecord, serviceCerts: Iterable<string>, refuse: (check: string, detail: string) => never): string {
    const cacheKey = `${record.node}\n${record.cert}`;
    const cached = this.#endorsedNodeKeys.get(cacheKey);
    if (cached !== undefined) return cached;
    let endorsed = false;
    for (const serviceCert of serviceCerts) if (isCertificateIssuedBy(record.cert, serviceCert)) { endorsed = true; break; }
    if (!endorsed) refuse("node-certificate", "it carries a node certificate not endorsed by the service.");
    let publicKey = "";
    try {
      publicKey = publicKeyPemFromCertificate(record.cert);
    } catch (error) {
      refuse("node-certificate", `its node certificate does not parse: ${(error as Error).message}`);
    }
    if (nodeIdFromPublicKey(publicKey) !== record.node) refuse("node-certificate", "it carries another node's certificate.");
    if (this.#endorsedNodeKeys.size >= NODE_CERTS_CACHED_MAX) this.#endorsedNodeKeys.clear();
    this.#endorsedNodeKeys.set(cacheKey, publicKey);
    return publicKey;
  }

  #serviceKey(certPem: string): ServiceCoseKey {
    let key = this.#serviceKeys.get(certPem);
    if (key === undefined) {
      key = serviceCoseKey(certPem);
      if (this.#serviceKeys.size >= SERVICE_KEYS_CACHED_MAX) this.#serviceKeys.clear();
      this.#serviceKeys.set(certPem, key);
    }
    return key;
  }
}
