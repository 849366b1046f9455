// The bytes of a snapshot file and the checks a node makes before it trusts one. A snapshot is
// the committed KV state at one signature seqno plus what a node needs to go on from there (the
// Merkle tree's frontier, the view). Public maps are in the clear; private maps are sealed with
// the ledger secret of that seqno. Once the snapshot's evidence transaction (which records the
// snapshot's SHA-256 as its claims digest) commits, the file also carries the receipt of that
// transaction and the transaction's ledger entry: anyone holding the service certificate can
// then check the digest was recorded by the service. See docs/snapshots.md and ledger-format.md.
import { createHash } from "node:crypto";
import {
  AesGcmKey, AES_GCM_IV_BYTES, hkdfSha256, isCertificateIssuedBy, nodeIdFromPublicKey, publicKeyPemFromCertificate, sha256, verifyDigest,
} from "../crypto/index.js";
import { computeRootFromPath, type CcfReceipt, type ProofStep } from "../merkle/index.js";
import { deserialiseDomain } from "../kv/index.js";
import { decodeEntry, writeSetDigest } from "../ledger/index.js";
import { CocoError } from "../util/index.js";
import { KEY_NONCE_BYTES, PRIVATE_KEY_LABEL, SNAPSHOT_FORMAT, SNAPSHOT_MAGIC, type SnapshotHeader } from "./snapshot-body.js";

export { SNAPSHOT_FORMAT, SNAPSHOT_MAGIC, encodeSnapshotBody, encodeSnapshotBodyParts, type SnapshotBodyInput, type SnapshotHeader } from "./snapshot-body.js";

export const EVIDENCE_MAGIC = Buffer.from("COCOEVD1");
/** The map the evidence transaction writes: `{ hash, version }` (CCF's table and shape). */
export const SNAPSHOT_EVIDENCE_MAP = "public:ccf.internal.snapshot_evidence";
/** A header is small JSON (a few dozen hashes); anything bigger is not a snapshot. */
const HEADER_BYTES_MAX = 64 * 1024;
const RECEIPT_BYTES_MAX = 1024 * 1024;


export interface ParsedSnapshot {
  readonly header: SnapshotHeader;
  /** Everything the digest covers: magic, header, public and sealed private parts. */
  readonly body: Buffer;
  readonly digest: Buffer;
  readonly publicPart: Buffer;
  readonly sealedPrivate: Buffer;
  /** The additional data the private part was sealed with. */
  readonly aad: Buffer;
  readonly evidence?: { receipt: CcfReceipt; entry: Buffer };
}

/** What verifySnapshot needs of a snapshot: its header, its digest and its evidence section. */
export type SnapshotProof = Pick<ParsedSnapshot, "header" | "digest" | "evidence">;

/** The evidence entry is one small transaction (the evidence map's write); anything bigger is not one. */
const EVIDENCE_ENTRY_BYTES_MAX = 1024 * 1024;

function refuse(name: string, message: string): CocoError {
  return new CocoError("InvalidSnapshot", `Snapshot ${name} refused: ${message}`, 400);
}

/** The evidence section appended to a committed snapshot: the receipt and the evidence entry. */
export function encodeEvidence(receipt: CcfReceipt, entry: Buffer): Buffer {
  const receiptBytes = Buffer.from(JSON.stringify(receipt));
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32BE(receiptBytes.length, 0);
  lengths.writeUInt32BE(entry.length, 4);
  return Buffer.concat([EVIDENCE_MAGIC, lengths.subarray(0, 4), receiptBytes, lengths.subarray(4), entry]);
}

/** Splits a snapshot file into its parts; checks framing only (verifySnapshot checks the proof). */
export function parseSnapshot(bytes: Buffer, name: string): ParsedSnapshot {
  if (bytes.length < SNAPSHOT_MAGIC.length + 4 || !bytes.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
    throw refuse(name, "it does not start with the snapshot magic (not a Coco snapshot, or damaged).");
  }
  let offset = SNAPSHOT_MAGIC.length;
  const headerLength = bytes.readUInt32BE(offset);
  offset += 4;
  if (headerLength > HEADER_BYTES_MAX || offset + headerLength > bytes.length) throw refuse(name, "its header is truncated or too large.");
  let header: SnapshotHeader;
  try {
    header = JSON.parse(bytes.subarray(offset, offset + headerLength).toString("utf8")) as SnapshotHeader;
  } catch {
    throw refuse(name, "its header is not JSON (damaged).");
  }
  offset += headerLength;
  checkHeader(header, name);
  const publicEnd = offset + header.public_bytes;
  const privateEnd = publicEnd + header.private_bytes;
  if (privateEnd > bytes.length) throw refuse(name, `it is truncated (${bytes.length} bytes, the header announces ${privateEnd}).`);
  const body = bytes.subarray(0, privateEnd);
  const parsed = {
    header, body, digest: sha256(body), publicPart: bytes.subarray(offset, publicEnd),
    sealedPrivate: bytes.subarray(publicEnd, privateEnd), aad: bytes.subarray(0, publicEnd),
  };
  if (privateEnd === bytes.length) return parsed;
  return { ...parsed, evidence: parseEvidence(bytes.subarray(privateEnd), name) };
}

function checkHeader(header: SnapshotHeader, name: string): void {
  const count = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  if (typeof header !== "object" || header === null || header.format !== SNAPSHOT_FORMAT) throw refuse(name, `unknown snapshot format ${String(header?.format)}.`);
  if (!count(header.seqno) || header.seqno < 1 || !count(header.view) || !count(header.public_bytes) || !count(header.private_bytes) || header.private_bytes < 16) {
    throw refuse(name, "its header's seqno, view or part sizes are not valid counts.");
  }
  if (!Array.isArray(header.views) || !header.views.every((v) => typeof v === "object" && v !== null && count(v.view) && count(v.seqno))) {
    throw refuse(name, "its header's view history is malformed.");
  }
  const hex = (v: unknown, bytes: number) => typeof v === "string" && v.length === 2 * bytes && /^[0-9a-f]*$/.test(v);
  if (!Array.isArray(header.tree) || !header.tree.every((h) => hex(h, 32)) || !hex(header.key_nonce, KEY_NONCE_BYTES) || !hex(header.iv, AES_GCM_IV_BYTES)) {
    throw refuse(name, "its header's Merkle frontier, key nonce or IV is malformed.");
  }
}

function parseEvidence(bytes: Buffer, name: string): { receipt: CcfReceipt; entry: Buffer } {
  if (bytes.length < EVIDENCE_MAGIC.length + 8 || !bytes.subarray(0, EVIDENCE_MAGIC.length).equals(EVIDENCE_MAGIC)) {
    throw refuse(name, "bytes after the snapshot are not its evidence section (damaged).");
  }
  let offset = EVIDENCE_MAGIC.length;
  const receiptLength = bytes.readUInt32BE(offset);
  offset += 4;
  if (receiptLength > RECEIPT_BYTES_MAX || offset + receiptLength + 4 > bytes.length) throw refuse(name, "its receipt is truncated.");
  let receipt: CcfReceipt;
  try {
    receipt = JSON.parse(bytes.subarray(offset, offset + receiptLength).toString("utf8")) as CcfReceipt;
  } catch {
    throw refuse(name, "its receipt is not JSON (damaged).");
  }
  offset += receiptLength;
  const entryLength = bytes.readUInt32BE(offset);
  offset += 4;
  if (offset + entryLength !== bytes.length) throw refuse(name, "its evidence entry is truncated or followed by extra bytes.");
  return { receipt, entry: bytes.subarray(offset) };
}

/**
 * parseSnapshot for a file that arrives in pieces (a download): push() the bytes in order, then
 * finish(). Only the header and the evidence section are kept; the body is hashed as it passes,
 * so memory stays bounded whatever the file's size. Framing errors throw as soon as the bytes
 * show them (a header announcing more than `bytesMax`, bytes past the evidence section's limits),
 * before the rest is written anywhere.
 */
export class SnapshotStreamCheck {
  private readonly hash = createHash("sha256");
  private head: Buffer[] = [];
  private headBytes = 0;
  private header: SnapshotHeader | undefined;
  /** Where the body (what the digest covers) ends, once the header is known. */
  private bodyEnd = Number.POSITIVE_INFINITY;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private received = 0;

  constructor(private readonly name: string, private readonly bytesMax: number) {}

  get bytes(): number {
    return this.received;
  }

  push(chunk: Buffer): void {
    const start = this.received;
    this.received += chunk.length;
    if (this.received > this.bytesMax) throw refuse(this.name, `it is larger than ${this.bytesMax} bytes.`);
    if (this.header === undefined) {
      // Until the header says where the body ends, keep the bytes; then split them.
      this.head.push(chunk);
      this.headBytes += chunk.length;
      this.readHeader();
      if (this.header === undefined) return;
      const head = Buffer.concat(this.head, this.headBytes);
      this.head = [];
      this.hash.update(head.subarray(0, Math.min(this.bodyEnd, head.length)));
      if (head.length > this.bodyEnd) this.addTail(head.subarray(this.bodyEnd));
      return;
    }
    const inBody = Math.max(0, Math.min(chunk.length, this.bodyEnd - start));
    if (inBody > 0) this.hash.update(inBody === chunk.length ? chunk : chunk.subarray(0, inBody));
    if (inBody < chunk.length) this.addTail(chunk.subarray(inBody));
  }

  /** The parts verifySnapshot checks; throws when the file ended early or has no evidence section. */
  finish(): SnapshotProof {
    if (this.header === undefined || this.received < this.bodyEnd) {
      throw refuse(this.name, `it is truncated (${this.received} bytes${this.header === undefined ? ", not even a header" : `, the header announces ${this.bodyEnd}`}).`);
    }
    const proof = { header: this.header, digest: this.hash.digest() };
    if (this.tailBytes === 0) return proof;
    return { ...proof, evidence: parseEvidence(Buffer.concat(this.tail, this.tailBytes), this.name) };
  }

  private readHeader(): void {
    const prefix = SNAPSHOT_MAGIC.length + 4;
    if (this.headBytes < prefix) return;
    const head = Buffer.concat(this.head, this.headBytes);
    this.head = [head];
    if (!head.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
      throw refuse(this.name, "it does not start with the snapshot magic (not a Coco snapshot, or damaged).");
    }
    const headerLength = head.readUInt32BE(SNAPSHOT_MAGIC.length);
    if (headerLength > HEADER_BYTES_MAX) throw refuse(this.name, "its header is truncated or too large.");
    if (this.headBytes < prefix + headerLength) return;
    let header: SnapshotHeader;
    try {
      header = JSON.parse(head.subarray(prefix, prefix + headerLength).toString("utf8")) as SnapshotHeader;
    } catch {
      throw refuse(this.name, "its header is not JSON (damaged).");
    }
    checkHeader(header, this.name);
    const bodyEnd = prefix + headerLength + header.public_bytes + header.private_bytes;
    if (bodyEnd > this.bytesMax) throw refuse(this.name, `its header announces ${bodyEnd} bytes, more than the ${this.bytesMax} accepted.`);
    this.header = header;
    this.bodyEnd = bodyEnd;
  }

  private addTail(bytes: Buffer): void {
    this.tailBytes += bytes.length;
    if (this.tailBytes > EVIDENCE_MAGIC.length + 8 + RECEIPT_BYTES_MAX + EVIDENCE_ENTRY_BYTES_MAX) {
      throw refuse(this.name, "bytes after the snapshot exceed what its evidence section can hold (damaged).");
    }
    this.tail.push(bytes);
  }
}

/**
 * Checks that the service recorded this snapshot: the evidence entry writes the snapshot's
 * digest into SNAPSHOT_EVIDENCE_MAP for its seqno (an app cannot write ccf.internal tables) and
 * binds it as its claims digest; the receipt proves that entry (write set digest, commit
 * evidence, claims digest) under a root signed by a node the service endorsed. Throws a
 * CocoError naming the file and the failed check.
 */
export function verifySnapshot(parsed: SnapshotProof, name: string, serviceCertPems: readonly string[], evidenceSeqno: number): void {
  const evidence = parsed.evidence;
  if (evidence === undefined) throw refuse(name, "it carries no receipt (its evidence transaction was not committed when it was written).");
  const { receipt, entry: entryBytes } = evidence;
  const digestHex = parsed.digest.toString("hex");
  let entry;
  try {
    entry = decodeEntry(entryBytes);
  } catch (cause) {
    throw refuse(name, `its evidence entry does not decode: ${(cause as Error).message}`);
  }
  if (entry.seqno !== evidenceSeqno) throw refuse(name, `its evidence entry is seqno ${entry.seqno}, the file name says ${evidenceSeqno}.`);
  if (!entry.claimsDigest.equals(parsed.digest)) throw refuse(name, `its digest ${digestHex} is not the claims digest of its evidence transaction (the snapshot was altered or is not this transaction's).`);
  const recorded = recordedEvidence(entry.publicDomain);
  if (recorded === undefined || recorded.hash !== digestHex || recorded.version !== parsed.header.seqno) {
    throw refuse(name, `its evidence transaction does not record this snapshot (${SNAPSHOT_EVIDENCE_MAP} should hold hash ${digestHex}, version ${parsed.header.seqno}).`);
  }
  const components = receipt?.leaf_components;
  if (typeof components !== "object" || components === null) throw refuse(name, "its receipt has no leaf components.");
  if (components.write_set_digest !== writeSetDigest(entryBytes).toString("hex")) throw refuse(name, "its receipt is for another transaction than its evidence entry (write set digest).");
  if (components.claims_digest !== digestHex) throw refuse(name, "its receipt's claims digest is not the snapshot's digest.");
  if (typeof components.commit_evidence !== "string" || !components.commit_evidence.startsWith(`ce:${entry.view}.${entry.seqno}:`)
    || !sha256(Buffer.from(components.commit_evidence)).equals(entry.commitEvidenceDigest)) {
    throw refuse(name, "its receipt's commit evidence does not match its evidence entry.");
  }
  const leaf = sha256(Buffer.from(components.write_set_digest, "hex"), sha256(Buffer.from(components.commit_evidence)), parsed.digest);
  if (!Array.isArray(receipt.proof) || !receipt.proof.every((s) => typeof s === "object" && s !== null && (typeof (s as { left?: unknown }).left === "string" || typeof (s as { right?: unknown }).right === "string"))) {
    throw refuse(name, "its receipt's proof is malformed.");
  }
  const path: ProofStep[] = receipt.proof.map((s) => ("left" in s ? { left: Buffer.from(s.left, "hex") } : { right: Buffer.from(s.right, "hex") }));
  const root = computeRootFromPath(leaf, path);
  if (typeof receipt.cert !== "string" || !serviceCertPems.some((service) => safeIssuedBy(receipt.cert, service))) {
    throw refuse(name, "its receipt is signed by a node certificate this service did not endorse (a snapshot of another service?).");
  }
  let publicKey: string;
  try {
    publicKey = publicKeyPemFromCertificate(receipt.cert);
  } catch {
    throw refuse(name, "its receipt's node certificate does not parse.");
  }
  if (receipt.node_id !== nodeIdFromPublicKey(publicKey)) throw refuse(name, "its receipt's node_id does not match its certificate.");
  if (typeof receipt.signature !== "string" || !safeVerify(receipt.cert, root, Buffer.from(receipt.signature, "base64"))) {
    throw refuse(name, "its receipt's signature does not verify over the root its proof leads to.");
  }
}

function safeIssuedBy(cert: string, issuer: string): boolean {
  try { return isCertificateIssuedBy(cert, issuer); } catch { return false; }
}

function safeVerify(cert: string, root: Buffer, signature: Buffer): boolean {
  try { return verifyDigest(cert, root, signature); } catch { return false; }
}

function recordedEvidence(publicDomain: Buffer): { hash: string; version: number } | undefined {
  for (const map of deserialiseDomain(publicDomain).maps) {
    if (map.name !== SNAPSHOT_EVIDENCE_MAP) continue;
    for (const [, value] of map.writes) {
      if (value === null) continue;
      try {
        const parsed = JSON.parse(value.toString("utf8")) as { hash?: unknown; version?: unknown };
        if (typeof parsed.hash === "string" && typeof parsed.version === "number") return { hash: parsed.hash, version: parsed.version };
      } catch { /* not JSON: not evidence */ }
    }
  }
  return undefined;
}

/** The private maps in the clear; throws when the key is wrong or the sealed part was altered. */
export function openPrivatePart(parsed: ParsedSnapshot, name: string, ledgerSecret: Buffer): Buffer {
  const key = new AesGcmKey(hkdfSha256(ledgerSecret, Buffer.from(parsed.header.key_nonce, "hex"), PRIVATE_KEY_LABEL, 32));
  try {
    return key.open(Buffer.from(parsed.header.iv, "hex"), parsed.sealedPrivate, parsed.aad);
  } catch {
    throw refuse(name, "its private maps do not decrypt with the ledger secret of its seqno (damaged, or another service's).");
  }
}
