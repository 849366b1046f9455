// Offline verification of a whole ledger (`coco ledger verify`): every chunk and frame, the Merkle
// tree rebuilt from every entry's leaf exactly as the node builds it, every signature
// transaction's root and ECDSA signature, every signing node's certificate against the service
// identities, CCF 6's COSE signature of each root by the service key, and seqno/view
// continuity. Needs no running node and no ledger secret: leaves are computed over the
// ciphertext. Cost per entry: two SHA-256 of the entry and leaf, about one interior hash, and a
// decode of the public domain; per signature transaction one prehashed ECDSA check (node key,
// @noble/curves) and one COSE ES384 check (service key, node:crypto).
import { readFile, stat } from "node:fs/promises";
import { verifyDigest } from "../crypto/index.js";
import { deserialiseDomain, type MapWrites } from "../kv/index.js";
import { entryLeafInto, type DecodedEntry, type LedgerFileInfo } from "../ledger/index.js";
import { COSE_SIGNATURES_MAP, MerkleTree, checkRootCoseSignature, decodeCoseSignatureValue } from "../merkle/index.js";
import { assert, formatTxId } from "../util/index.js";
import { checkChunkStart, listChunks, walkChunk } from "./chunks.js";
import { ServiceIdentityChain, type TrustAnchor } from "./identities.js";
import { AuditProblem, type AuditLocation, type AuditProblemInfo } from "./problem.js";
import {
  PREVIOUS_IDENTITY_ENDORSEMENTS_MAP,
  PREVIOUS_SERVICE_IDENTITY_MAP,
  SERVICE_INFO_MAP,
  SIGNATURES_MAP,
  type PreviousIdentityEndorsementRecord,
  type SignatureRecord,
} from "./tables.js";

export interface VerifyProgress {
  bytesDone: number;
  bytesTotal: number;
  entries: number;
  file: string;
}

export interface VerifyOptions {
  /** PEM of the service certificate to trust; without it, the latest identity the ledger records. */
  serviceCertPem?: string;
  /** Called after each chunk and every `progressEntries` entries. */
  onProgress?: (progress: VerifyProgress) => void;
  progressEntries?: number;
}

export interface VerifyReport {
  /** True when every entry up to the last signature transaction verified (see unsignedTail). */
  verified: boolean;
  problem: AuditProblemInfo | null;
  trustAnchor: TrustAnchor & { description: string };
  serviceIdentities: { fingerprint: string; fromSeqno: number; trusted: boolean; endorsedPreviousAt?: number }[];
  files: number;
  bytes: number;
  entries: number;
  /** Last seqno read (0 for an empty ledger). */
  lastSeqno: number;
  signatures: number;
  /** Signature transactions that also carried a COSE signature (CCF 6), each checked. */
  coseSignatures: number;
  /** Seqno of the last signature transaction that verified: entries 1..this are proven. */
  verifiedThroughSeqno: number;
  /** Entries after the last signature transaction: no signed root covers them. */
  unsignedTail: { count: number; fromSeqno: number; toSeqno: number } | null;
  seconds: number;
}

const PROGRESS_ENTRIES_DEFAULT = 100_000;
const ZERO_DIGEST = Buffer.alloc(32);

/** Verifies the ledger held by `dirs`; never throws for a ledger problem (it is in the report), only for IO errors. */
export async function verifyLedger(dirs: readonly string[], options: VerifyOptions = {}): Promise<VerifyReport> {
  const started = process.hrtime.bigint();
  const verifier = new LedgerVerifier(options.serviceCertPem);
  let files: LedgerFileInfo[] = [];
  let bytesTotal = 0;
  let bytesDone = 0;
  try {
    files = await listChunks(dirs);
    const sizes = await Promise.all(files.map(async (f) => (await stat(f.path)).size));
    bytesTotal = sizes.reduce((a, b) => a + b, 0);
    const progressEntries = options.progressEntries ?? PROGRESS_ENTRIES_DEFAULT;
    // Read one chunk ahead, so the disk works while the CPU hashes (at most two chunks in memory).
    let next: Promise<Buffer> | undefined = files.length > 0 ? readFile(files[0]!.path) : undefined;
    for (let i = 0; i < files.length; i++) {
      const file = files[i]!;
      const buf = await next!;
      next = i + 1 < files.length ? readFile(files[i + 1]!.path) : undefined;
      next?.catch(() => undefined); // awaited (and so reported) on the next turn, unless a problem stops the walk first
      checkChunkStart(file, files[i - 1], verifier.lastSeqno + 1);
      walkChunk(file, buf, (offset, entry) => {
        verifier.entry(file.path, offset, entry);
        if (options.onProgress && verifier.entries % progressEntries === 0) {
          options.onProgress({ bytesDone: bytesDone + offset, bytesTotal, entries: verifier.entries, file: file.path });
        }
      });
      bytesDone += buf.length;
      options.onProgress?.({ bytesDone, bytesTotal, entries: verifier.entries, file: file.path });
    }
  } catch (error) {
    if (!(error instanceof AuditProblem)) throw error;
    verifier.problem = error;
  }
  return verifier.report(files.length, bytesTotal, Number(process.hrtime.bigint() - started) / 1e9);
}

/** The state of one verification walk: fed entries in seqno order. */
class LedgerVerifier {
  readonly #tree = new MerkleTree();
  readonly #identities: ServiceIdentityChain;
  readonly #leaf = Buffer.alloc(32);
  lastSeqno = 0;
  entries = 0;
  signatures = 0;
  coseSignatures = 0;
  #lastView = 0;
  #lastSignatureSeqno = 0;
  problem: AuditProblem | null = null;

  constructor(serviceCertPem: string | undefined) {
    this.#identities = new ServiceIdentityChain(serviceCertPem);
  }

  entry(file: string, offset: number, entry: DecodedEntry): void {
    // The chunk walker hands over consecutive seqnos from 1; leaf i of the tree is seqno i + 1.
    assert(entry.seqno === this.lastSeqno + 1, `entries reach the verifier in order (${entry.seqno} after ${this.lastSeqno})`);
    assert(this.#tree.size === this.lastSeqno, "one Merkle leaf per entry read");
    const at = { file, offset, seqno: entry.seqno };
    if (entry.view < this.#lastView) {
      throw new AuditProblem("ViewDecreased", `${file} at byte offset ${offset}: entry ${entry.view}.${entry.seqno} has a lower view than the entry before it (view ${this.#lastView}).`, at);
    }
    let maps: readonly MapWrites[];
    try {
      maps = deserialiseDomain(entry.publicDomain, "public").maps;
    } catch (error) {
      throw new AuditProblem("InvalidEntry", `${file} at byte offset ${offset} (seqno ${entry.seqno}): public domain: ${(error as Error).message}`, at);
    }
    let signature: SignatureRecord | undefined;
    let coseSignature: MapWrites | undefined;
    let endorsements: MapWrites[] | undefined;
    for (const map of maps) {
      if (map.name === SIGNATURES_MAP) signature = this.#signatureRecord(map, entry, at);
      else if (map.name === COSE_SIGNATURES_MAP) coseSignature = map;
      else if (map.name === SERVICE_INFO_MAP) this.#serviceInfo(map, entry.seqno, at);
      else if (map.name === PREVIOUS_SERVICE_IDENTITY_MAP || map.name === PREVIOUS_IDENTITY_ENDORSEMENTS_MAP) (endorsements ??= []).push(map);
    }
    // After service.info, whatever the map order: a recovery writes both in one transaction, and
    // the endorsement is the new identity's.
    for (const map of endorsements ?? []) this.#previousIdentity(map, entry.seqno, at);
    if (entry.isSignature !== (signature !== undefined)) {
      throw new AuditProblem("SignatureFlagMismatch", entry.isSignature
        ? `${file} at byte offset ${offset}: entry ${entry.seqno} is flagged as a signature transaction but writes no ${SIGNATURES_MAP}.`
        : `${file} at byte offset ${offset}: entry ${entry.seqno} writes ${SIGNATURES_MAP} but is not flagged as a signature transaction.`, at);
    }
    if (coseSignature !== undefined && signature === undefined) {
      throw new AuditProblem("InvalidCoseSignature",
        `${file} at byte offset ${offset}: entry ${entry.seqno} writes ${COSE_SIGNATURES_MAP}, which only signature transactions write.`, at);
    }
    if (signature !== undefined) this.#checkSignature(signature, entry, at);
    if (coseSignature !== undefined) this.#checkCoseSignature(coseSignature, entry, at);
    // The leaf goes in after the check: a signature signs the root of everything before it.
    entryLeafInto(entry.bytes, this.#leaf, 0);
    this.#tree.appendFrom(this.#leaf, 0);
    this.#lastView = entry.view;
    this.lastSeqno = entry.seqno;
    this.entries++;
    if (signature !== undefined) {
      this.#lastSignatureSeqno = entry.seqno;
      this.signatures++;
      // Only roots from here on are needed: keeps memory bounded by the signature interval.
      this.#tree.flush(entry.seqno - 1);
    }
  }

  #signatureRecord(map: MapWrites, entry: DecodedEntry, at: Required<AuditLocation>): SignatureRecord {
    const value = map.writes.length === 1 ? map.writes[0]![1] : null;
    let record: SignatureRecord | undefined;
    try {
      record = value === null ? undefined : (JSON.parse(value.toString("utf8")) as SignatureRecord);
    } catch { /* reported below */ }
    const wellFormed = record !== undefined && typeof record === "object" && record !== null &&
      Number.isSafeInteger(record.seqno) && Number.isSafeInteger(record.view) && typeof record.root === "string" &&
      typeof record.sig === "string" && typeof record.node === "string" && typeof record.cert === "string";
    if (!wellFormed) {
      throw new AuditProblem("InvalidSignature", `${at.file} at byte offset ${at.offset}: signature transaction ${entry.seqno} does not hold one well-formed signature record.`, at);
    }
    return record!;
  }

  #checkSignature(record: SignatureRecord, entry: DecodedEntry, at: Required<AuditLocation>): void {
    const where = `${at.file} at byte offset ${at.offset}: signature transaction ${entry.view}.${entry.seqno}`;
    if (record.seqno !== entry.seqno || record.view !== entry.view) {
      throw new AuditProblem("SignatureTxIdMismatch", `${where} carries a record for ${record.view}.${record.seqno}.`, at);
    }
    if (!entry.claimsDigest.equals(ZERO_DIGEST) || entry.privateCiphertext.length !== 0) {
      throw new AuditProblem("InvalidSignature", `${where} has a claims digest or private data; signature transactions have neither.`, at);
    }
    const root = this.#tree.root();
    if (record.root !== root.toString("hex")) {
      throw new AuditProblem("MerkleRootMismatch",
        `${where} signs Merkle root ${record.root}, but the root rebuilt from entries 1..${entry.seqno - 1} is ${root.toString("hex")}: ` +
          `an entry in ${this.#lastSignatureSeqno || 1}..${entry.seqno - 1} was altered, removed or replaced (the signature before it covered the rest).`, at);
    }
    const publicKeyPem = this.#identities.nodePublicKey(record.cert, record.node, at);
    if (!verifyDigest(publicKeyPem, root, Buffer.from(record.sig, "base64"), this.#tree.rootPreimageAt())) {
      throw new AuditProblem("BadSignature", `${where}: node ${record.node}'s signature over the Merkle root does not verify.`, at);
    }
  }

  /**
   * CCF 6's COSE signature of the same root by the service key in force (the key COSE receipts
   * are verified against): a node that could sign with its own key but not the service's, or a
   * COSE signature copied from another signature transaction or made over another root, is
   * caught here even when the entry's bytes, crc32 and the Merkle tree were all recomputed.
   */
  #checkCoseSignature(map: MapWrites, entry: DecodedEntry, at: Required<AuditLocation>): void {
    const where = `${at.file} at byte offset ${at.offset}: signature transaction ${entry.view}.${entry.seqno}`;
    const value = map.writes.length === 1 ? map.writes[0]![1] : null;
    if (value === null) throw new AuditProblem("InvalidCoseSignature", `${where} does not hold one COSE signature in ${COSE_SIGNATURES_MAP}.`, at);
    let cose: Buffer;
    try {
      cose = decodeCoseSignatureValue(value);
    } catch (error) {
      throw new AuditProblem("InvalidCoseSignature", `${where}: ${(error as Error).message}.`, at);
    }
    const serviceKey = this.#identities.serviceCoseKey(at);
    const problem = checkRootCoseSignature(cose, { root: this.#tree.root(), txid: formatTxId(entry.view, entry.seqno), serviceKey });
    if (problem !== null) throw new AuditProblem(problem.code, `${where}: its COSE signature is refused: ${problem.reason}.`, at);
    this.coseSignatures++;
  }

  #serviceInfo(map: MapWrites, seqno: number, at: Required<AuditLocation>): void {
    for (const [, value] of map.writes) {
      if (value === null) continue;
      let cert: unknown;
      try {
        cert = (JSON.parse(value.toString("utf8")) as { cert?: unknown }).cert;
      } catch { /* reported below */ }
      if (typeof cert !== "string") {
        throw new AuditProblem("InvalidServiceIdentity", `${at.file} at byte offset ${at.offset}: ${SERVICE_INFO_MAP} at seqno ${seqno} has no certificate.`, at);
      }
      this.#identities.noteServiceInfo(cert, seqno, at);
    }
  }

  #previousIdentity(map: MapWrites, seqno: number, at: Required<AuditLocation>): void {
    for (const [, value] of map.writes) {
      if (value === null) continue;
      const text = value.toString("utf8");
      if (map.name === PREVIOUS_IDENTITY_ENDORSEMENTS_MAP) {
        let record: Partial<PreviousIdentityEndorsementRecord> | undefined;
        try {
          record = JSON.parse(text) as Partial<PreviousIdentityEndorsementRecord>;
        } catch { /* another shape (CCF's COSE endorsements): not ours to check */ }
        if (typeof record?.previous_service_identity === "string" && typeof record.endorsement === "string") {
          this.#identities.noteEndorsementCertificate(record.previous_service_identity, record.endorsement, seqno, at);
        }
        continue;
      }
      let pem = text;
      try {
        if (text.startsWith('"')) pem = JSON.parse(text) as string;
      } catch { /* not JSON: the PEM check reports it */ }
      this.#identities.noteEndorsement(pem, seqno, at);
    }
  }

  report(files: number, bytes: number, seconds: number): VerifyReport {
    const trust = this.#identities.resolveTrust(this.#lastSignatureSeqno);
    let problem = this.problem;
    const untrusted = trust.firstUntrusted;
    if (untrusted !== undefined && (problem === null || (problem.location.seqno ?? Infinity) > untrusted.location.seqno)) {
      const anchorText = trust.anchor.source === "service-cert" ? `the --service-cert (${trust.anchor.fingerprint})` : `the ledger's latest service identity (${trust.anchor.fingerprint})`;
      problem = new AuditProblem("UntrustedServiceIdentity",
        `${untrusted.location.file} at byte offset ${untrusted.location.offset}: signature transaction ${untrusted.location.seqno} is by a node of ` +
          `service identity ${untrusted.identity.fingerprint} (recorded at seqno ${untrusted.identity.fromSeqno}), which ${anchorText} does not endorse` +
          `${trust.anchor.identityIndex === -1 ? " (that certificate is not one of the service identities this ledger records)" : ""}.`, untrusted.location);
    }
    const verifiedThrough = problem === null ? this.#lastSignatureSeqno : 0;
    const tailFrom = this.#lastSignatureSeqno + 1;
    return {
      verified: problem === null,
      problem: problem === null ? null : problem.toJSON(),
      trustAnchor: { ...trust.anchor, description: describeAnchor(trust.anchor, this.#identities.identities[trust.anchor.identityIndex]?.fromSeqno) },
      serviceIdentities: this.#identities.identities.map((identity) => ({
        fingerprint: identity.fingerprint,
        fromSeqno: identity.fromSeqno,
        trusted: trust.trusted[identity.index] ?? false,
        ...(identity.endorsedPreviousAt !== undefined ? { endorsedPreviousAt: identity.endorsedPreviousAt } : {}),
      })),
      files,
      bytes,
      entries: this.entries,
      lastSeqno: this.lastSeqno,
      signatures: this.signatures,
      coseSignatures: this.coseSignatures,
      verifiedThroughSeqno: verifiedThrough,
      unsignedTail: problem === null && this.lastSeqno >= tailFrom ? { count: this.lastSeqno - tailFrom + 1, fromSeqno: tailFrom, toSeqno: this.lastSeqno } : null,
      seconds,
    };
  }
}

function describeAnchor(anchor: TrustAnchor, fromSeqno: number | undefined): string {
  if (anchor.source === "service-cert") {
    return `the service certificate given with --service-cert (SHA-256 ${anchor.fingerprint})` +
      (anchor.identityIndex >= 0 ? `, recorded in the ledger${fromSeqno ? ` at seqno ${fromSeqno}` : ""}` : ", not found among the ledger's service identities");
  }
  if (anchor.identityIndex < 0) return "none: the ledger records no service identity (give --service-cert)";
  return `the service identity recorded in the ledger itself at seqno ${fromSeqno} (SHA-256 ${anchor.fingerprint}); ` +
    "this only proves the ledger is consistent with itself: compare that fingerprint with the service certificate you expect, or pass --service-cert";
}
