// Test and benchmark helper: writes a real, signed ledger without running a node. Entries are
// encoded with the ledger's own codec (encodeEntry), written by the real writer (Ledger), and
// signed as the node signs them: a Merkle tree over entryLeaf of every entry, and every few
// transactions a signature transaction carrying the node's prehashed ECDSA signature of the root
// and its certificate, endorsed by the service key, and (as a CCF 6 node) a COSE_Sign1 of the
// same root by the service key in public:ccf.internal.cose_signatures. Optional: recovery
// members (shares as the node issues them) and rekeys (a new ledger secret, announced as the
// node announces it).
import { createHash, randomBytes } from "node:crypto";
import { createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey, signDigest, type KeyPairPem } from "../../src/crypto/index.js";
import { serialiseWriteSet, type MapWrites } from "../../src/kv/index.js";
import { Ledger, LedgerSecret, encodeEntry, entryLeaf, type LedgerSecretVersion } from "../../src/ledger/index.js";
import { COSE_SIGNATURES_MAP, MerkleTree, signRootCose } from "../../src/merkle/index.js";
import { SIGNATURES_MAP, SINGLETON_KEY, encodeSignature } from "../../src/node/signatures.js";
import { RECOVERY_SHARES_MAP, buildRecoveryShares } from "../../src/node/recovery-shares.js";
import { LEDGER_SECRET_SHARES_MAP, PREVIOUS_IDENTITY_ENDORSEMENTS_MAP, PREVIOUS_SERVICE_IDENTITY_MAP, SERVICE_INFO_MAP } from "../../src/audit/tables.js";

export interface ServiceFixture {
  serviceKeys: KeyPairPem;
  serviceCertPem: string;
  nodeKeys: KeyPairPem;
  nodeCertPem: string;
  nodeId: string;
}

/** A service identity and one node endorsed by it. */
export async function makeServiceFixture(): Promise<ServiceFixture> {
  const serviceKeys = generateEcP384KeyPair();
  const serviceCertPem = await createServiceCertificate(serviceKeys);
  const nodeKeys = generateEcP384KeyPair();
  const nodeCertPem = await createNodeCertificate({ nodePublicKeyPem: nodeKeys.publicKeyPem, serviceKeys, serviceCertPem });
  return { serviceKeys, serviceCertPem, nodeKeys, nodeCertPem, nodeId: nodeIdFromPublicKey(nodeKeys.publicKeyPem) };
}

export interface SignedLedgerOptions {
  dir: string;
  service: ServiceFixture;
  /** App transactions after genesis (each writes public:records and records). */
  transactions: number;
  /** A signature transaction after every this many transactions. */
  signatureEvery: number;
  /** True (default): the ledger ends with a signature transaction. */
  endWithSignature?: boolean;
  chunkSizeBytes?: number;
  view?: number;
  /** Bytes of each transaction's public value (default: a short text). */
  publicValueBytes?: number;
  /** False: app transactions write only the public map (no AES-GCM), as a public-only app. */
  privateWrites?: boolean;
  /** Recovery members (id -> RSA encryption public key PEM) and threshold: shares at genesis and after each rekey. */
  recoveryMembers?: Map<string, string>;
  recoveryThreshold?: number;
  /** Rekey after these app transaction numbers (1-based). */
  rekeyAfter?: number[];
  /** False: no fresh recovery shares after a rekey (the new secret is then unrecoverable from the ledger). */
  sharesAfterRekey?: boolean;
  /** Extra writes for app transaction i (1-based): a test's tampering inside an ordinary transaction. */
  extraAppWrites?: (i: number) => MapWrites[];
  /** False: signature transactions carry no COSE signature (a ledger written before CCF 6). Default true. */
  coseSignatures?: boolean;
  /**
   * Replaces the COSE signature of signature transaction `seqno` (return undefined to keep the
   * real one): a test's forgery, written before the Merkle tree and every later signature are
   * computed over it, so that only the COSE check can tell.
   */
  forgeCoseSignature?: (args: { seqno: number; txid: string; root: Buffer; signer: ServiceFixture; real: Buffer }) => Buffer | undefined;
  /** Start as a recovered service: service.info holds `service`, and it endorses this previous identity. */
  previousServiceCertPem?: string;
  /** After this many app transactions the service takes a new identity (as after a disaster
   * recovery): service.info gets the new certificate, which records the previous one unless
   * `endorsePrevious` is false, and the new service's node signs from then on. */
  newIdentity?: {
    afterTransactions: number;
    service: ServiceFixture;
    endorsePrevious?: boolean;
    /** Also write the endorsement record a recovering node writes: this certificate of the previous service key. */
    endorsementCertPem?: string;
  };
}

export interface SignedLedger {
  lastSeqno: number;
  secrets: LedgerSecretVersion[];
  signatureSeqnos: number[];
  /** Seqno of app transaction i (1-based) is appSeqnos[i - 1]. */
  appSeqnos: number[];
}

const FLUSH_ENTRIES = 4096;

export function publicValue(i: number): string {
  return `public value ${i}`;
}

export function privateValue(i: number): string {
  return `secret value ${i}`;
}

export async function writeSignedLedger(options: SignedLedgerOptions): Promise<SignedLedger> {
  const view = options.view ?? 2;
  const { ledger } = await Ledger.open(options.dir, { durability: "none", ...(options.chunkSizeBytes ? { chunkSizeBytes: options.chunkSizeBytes } : {}) });
  const tree = new MerkleTree();
  const secrets: LedgerSecretVersion[] = [{ fromSeqno: 1, raw: randomBytes(32) }];
  let secret = new LedgerSecret(secrets[0]!.raw);
  // One primary term: one random key nonce for every entry (ledger-format.md).
  const keyNonce = randomBytes(16);
  const signatureSeqnos: number[] = [];
  const appSeqnos: number[] = [];
  let seqno = 0;
  let pending = 0;
  const append = async (maps: MapWrites[], isSignature = false): Promise<void> => {
    seqno++;
    const { publicDomain, privateDomain } = serialiseWriteSet({ seqno, maps: [...maps].sort((a, b) => (a.name < b.name ? -1 : 1)) });
    const entry = encodeEntry({
      view, seqno, isSignature,
      claimsDigest: Buffer.alloc(32),
      commitEvidenceDigest: createHash("sha256").update(`ce:${view}.${seqno}`).digest(),
      keyNonce,
      publicDomain, privatePlaintext: privateDomain,
    }, secret);
    ledger.append(entry, seqno, isSignature);
    tree.append(entryLeaf(entry));
    if (++pending >= FLUSH_ENTRIES) {
      pending = 0;
      await ledger.flush();
    }
  };
  let signer = options.service;
  const sign = async (): Promise<void> => {
    const root = tree.root();
    const record = encodeSignature({
      seqno: seqno + 1, view, commit_seqno: seqno, commit_view: view, root: root.toString("hex"),
      sig: signDigest(signer.nodeKeys.privateKeyPem, root).toString("base64"),
      node: signer.nodeId, cert: signer.nodeCertPem,
    });
    const maps: MapWrites[] = [{ name: SIGNATURES_MAP, isPublic: true, writes: [[SINGLETON_KEY, record]] }];
    if (options.coseSignatures !== false) {
      const txid = `${view}.${seqno + 1}`;
      const real = signRootCose({
        servicePrivateKeyPem: signer.serviceKeys.privateKeyPem, servicePublicKeyPem: signer.serviceKeys.publicKeyPem,
        root, txid, issuedAtSeconds: 1_760_000_000 + seqno,
      });
      const cose = options.forgeCoseSignature?.({ seqno: seqno + 1, txid, root, signer, real }) ?? real;
      maps.push({ name: COSE_SIGNATURES_MAP, isPublic: true, writes: [[SINGLETON_KEY, Buffer.from(JSON.stringify(cose.toString("base64")))]] });
    }
    await append(maps, true);
    signatureSeqnos.push(seqno);
  };
  const issueShares = async (): Promise<void> => {
    if (!options.recoveryMembers) return;
    const latest = secrets[secrets.length - 1]!;
    const info = await buildRecoveryShares(options.recoveryMembers, options.recoveryThreshold ?? 1, latest.raw, latest.fromSeqno);
    await append([{ name: RECOVERY_SHARES_MAP, isPublic: true, writes: [[SINGLETON_KEY, Buffer.from(JSON.stringify(info))]] }]);
  };

  const genesis: MapWrites[] = [{ name: SERVICE_INFO_MAP, isPublic: true, writes: [[SINGLETON_KEY, Buffer.from(JSON.stringify({ cert: options.service.serviceCertPem, status: "Opening", recovery_count: options.previousServiceCertPem ? 1 : 0 }))]] }];
  if (options.previousServiceCertPem) {
    genesis.push({ name: PREVIOUS_SERVICE_IDENTITY_MAP, isPublic: true, writes: [[SINGLETON_KEY, Buffer.from(JSON.stringify(options.previousServiceCertPem))]] });
  }
  await append(genesis);
  await issueShares();
  await sign();
  const publicFill = options.publicValueBytes ? Buffer.alloc(options.publicValueBytes, "x") : undefined;
  for (let i = 1; i <= options.transactions; i++) {
    const key = Buffer.from(`k${i}`);
    const maps: MapWrites[] = [{ name: "public:records", isPublic: true, writes: [[key, publicFill ?? Buffer.from(publicValue(i))]] }];
    if (options.privateWrites !== false) maps.push({ name: "records", isPublic: false, writes: [[key, Buffer.from(privateValue(i))]] });
    maps.push(...(options.extraAppWrites?.(i) ?? []));
    await append(maps);
    appSeqnos.push(seqno);
    if (options.rekeyAfter?.includes(i)) {
      // As the node rotates: a transaction announcing the new secret, which encrypts everything after it.
      const raw = randomBytes(32);
      await append([{ name: LEDGER_SECRET_SHARES_MAP, isPublic: true, writes: [[SINGLETON_KEY, Buffer.from(JSON.stringify({ from_seqno: seqno + 2, wrapped: {} }))]] }]);
      secrets.push({ fromSeqno: seqno + 1, raw });
      secret = new LedgerSecret(raw);
      if (options.sharesAfterRekey !== false) await issueShares();
    }
    if (i % options.signatureEvery === 0) await sign();
    if (options.newIdentity?.afterTransactions === i) {
      const next = options.newIdentity.service;
      const maps: MapWrites[] = [{ name: SERVICE_INFO_MAP, isPublic: true, writes: [[SINGLETON_KEY, Buffer.from(JSON.stringify({ cert: next.serviceCertPem, status: "Open", recovery_count: 1 }))]] }];
      if (options.newIdentity.endorsePrevious !== false) {
        maps.push({ name: PREVIOUS_SERVICE_IDENTITY_MAP, isPublic: true, writes: [[SINGLETON_KEY, Buffer.from(JSON.stringify(signer.serviceCertPem))]] });
      }
      if (options.newIdentity.endorsementCertPem !== undefined) {
        const record = { previous_service_identity: signer.serviceCertPem, endorsement: options.newIdentity.endorsementCertPem, previous_last_seqno: seqno };
        maps.push({ name: PREVIOUS_IDENTITY_ENDORSEMENTS_MAP, isPublic: true, writes: [[Buffer.from("1"), Buffer.from(JSON.stringify(record))]] });
      }
      await append(maps);
      signer = next;
    }
  }
  if (options.endWithSignature !== false && signatureSeqnos[signatureSeqnos.length - 1] !== seqno) await sign();
  await ledger.flush();
  await ledger.commit(signatureSeqnos[signatureSeqnos.length - 1]!);
  await ledger.close();
  return { lastSeqno: seqno, secrets, signatureSeqnos, appSeqnos };
}
