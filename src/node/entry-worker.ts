// The entry encoder's worker thread (see entry-encoder.ts): commit-evidence nonces and digests,
// AES-256-GCM encryption of private domains (under the key nonce the main thread drew for the
// term and sends with each batch) and Merkle leaves for batches of the primary's
// transactions, and ECDSA signatures of Merkle roots with the node key. Stateless apart from
// the ledger secrets and the key; answers strictly in request order.
import { workerData, type MessagePort } from "node:worker_threads";
// Modules by name, not the packages' index files, so this isolate loads only what it runs (not
// the ledger writer, the X.509 code or the Merkle tree): less heap in every node process.
import { encodeEntry, entryLeafInto } from "../ledger/entry.js";
import { LedgerSecrets } from "../ledger/secrets.js";
import { signDigest } from "../crypto/signatures.js";
import { signRootCose, type CoseSignatureKeys } from "../merkle/cose-receipt.js";
import { COMMIT_NONCE_BYTES, CommitEvidence, CommitEvidenceKeys } from "./commit-evidence.js";
import { ITEM_HEADER_BYTES, type EncoderReply, type EncoderRequest } from "./entry-encoder.js";

const { port, posted } = workerData as { port: MessagePort; posted: Int32Array };
let secrets: LedgerSecrets | undefined;
let commitEvidence: CommitEvidenceKeys | undefined;
let nodePrivateKeyPem: string | undefined;
let coseKeys: CoseSignatureKeys | undefined;

function encode(keyNonce: Buffer, view: number, firstSeqno: number, count: number, input: ArrayBuffer): { id: number; ok: true; entries: ArrayBuffer; lengths: Uint32Array; leaves: ArrayBuffer } {
  if (!secrets || !commitEvidence) throw new Error("no ledger secrets yet");
  const bytes = Buffer.from(input);
  const nonces = commitEvidence.nonces(keyNonce, view, firstSeqno, count);
  const entries: Buffer[] = new Array(count);
  const leaves = new ArrayBuffer(32 * count);
  const leafBytes = Buffer.from(leaves);
  let at = 0;
  let total = 0;
  for (let i = 0; i < count; i++) {
    const seqno = firstSeqno + i;
    const claimsDigest = bytes.subarray(at, at + 32);
    const publicLength = bytes.readUInt32BE(at + 32);
    const privateLength = bytes.readUInt32BE(at + 36);
    at += ITEM_HEADER_BYTES;
    const publicDomain = bytes.subarray(at, at + publicLength);
    at += publicLength;
    const privatePlaintext = bytes.subarray(at, at + privateLength);
    at += privateLength;
    const commitEvidenceDigest = CommitEvidence.digestShared(view, seqno, nonces.subarray(i * COMMIT_NONCE_BYTES, (i + 1) * COMMIT_NONCE_BYTES));
    const entry = encodeEntry({ view, seqno, isSignature: false, claimsDigest, commitEvidenceDigest, keyNonce, publicDomain, privatePlaintext }, secrets.forSeqno(seqno));
    entryLeafInto(entry, leafBytes, 32 * i);
    entries[i] = entry;
    total += entry.length;
  }
  const out = new ArrayBuffer(total);
  const outBytes = new Uint8Array(out);
  const lengths = new Uint32Array(count);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    outBytes.set(entries[i]!, offset);
    offset += entries[i]!.length;
    lengths[i] = entries[i]!.length;
  }
  return { id: 0, ok: true, entries: out, lengths, leaves };
}

port.on("message", (request: EncoderRequest) => {
  if (request.op === "secrets") {
    secrets = new LedgerSecrets(request.secrets.map((s) => ({ fromSeqno: s.fromSeqno, raw: Buffer.from(s.raw) })));
    if (commitEvidence === undefined) commitEvidence = new CommitEvidenceKeys(secrets);
    else commitEvidence.setSecrets(secrets);
    return;
  }
  if (request.op === "key") {
    nodePrivateKeyPem = request.privateKeyPem;
    coseKeys = request.cose;
    return;
  }
  let reply: EncoderReply;
  let transfer: ArrayBuffer[] = [];
  try {
    if (request.op === "sign") {
      if (nodePrivateKeyPem === undefined) throw new Error("no node key");
      const signature = new Uint8Array(signDigest(nodePrivateKeyPem, request.root, request.rootPreimage));
      if (request.cose !== undefined && coseKeys === undefined) throw new Error("no service key for COSE signatures");
      const coseSignature = request.cose === undefined ? undefined
        : new Uint8Array(signRootCose({ ...coseKeys!, root: request.root, txid: request.cose.txid, issuedAtSeconds: request.cose.issuedAtSeconds }));
      reply = { id: request.id, ok: true, signature, ...(coseSignature === undefined ? {} : { coseSignature }) };
    } else {
      const encoded = encode(Buffer.from(request.keyNonce), request.view, request.firstSeqno, request.count, request.input);
      reply = { ...encoded, id: request.id };
      transfer = [encoded.entries, encoded.leaves];
    }
  } catch (error) {
    reply = { id: request.id, ok: false, message: (error as Error)?.message ?? String(error) };
  }
  port.postMessage(reply, transfer);
  // After the post: a main thread woken by this finds the reply already queued on its port.
  Atomics.add(posted, 0, 1);
  Atomics.notify(posted, 0);
});
