// `coco ledger verify`'s check of CCF 6's COSE signatures (public:ccf.internal.cose_signatures):
// at every signature transaction, a COSE_Sign1 by the service identity in force over the Merkle
// root at that point, naming that transaction. Each forgery below is written into a ledger whose
// Merkle tree, node signatures and crc32s are all computed over it, so the COSE check is the only
// one that can catch it; each is reported at its file, offset and seqno.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { verifyLedger } from "../../../src/audit/index.js";
import { sha256 } from "../../../src/crypto/index.js";
import { COSE_SIGNATURES_MAP, signRootCose } from "../../../src/merkle/index.js";
import { makeServiceFixture, writeSignedLedger, type ServiceFixture, type SignedLedgerOptions } from "../../helpers/signed-ledger.js";

const root = mkdtempSync(join(tmpdir(), "coco-audit-cose-"));
let service: ServiceFixture;
let other: ServiceFixture;
let counter = 0;

before(async () => {
  service = await makeServiceFixture();
  other = await makeServiceFixture();
});
after(() => rmSync(root, { recursive: true, force: true }));

function chunks(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith("ledger_")).sort((a, b) => Number(a.split(/[_-]/)[1]) - Number(b.split(/[_-]/)[1]));
}

/** [file, frame offset] of every entry, in seqno order. */
function frames(dir: string): { file: string; offset: number }[] {
  const out: { file: string; offset: number }[] = [];
  for (const name of chunks(dir)) {
    const buf = readFileSync(join(dir, name));
    for (let offset = 8; offset < buf.length; offset += 8 + buf.readUInt32BE(offset)) out.push({ file: join(dir, name), offset });
  }
  return out;
}

/** A 12-transaction ledger signed every 3, over several chunks, with `forge` applied. */
async function ledgerWith(forge: SignedLedgerOptions["forgeCoseSignature"], extra: Partial<SignedLedgerOptions> = {}) {
  const dir = join(root, `ledger-${++counter}`);
  const written = await writeSignedLedger({ dir, service, transactions: 12, signatureEvery: 3, chunkSizeBytes: 3000, forgeCoseSignature: forge, ...extra });
  return { dir, written };
}

function cose(signer: ServiceFixture, rootHash: Buffer, txid: string): Buffer {
  return signRootCose({ servicePrivateKeyPem: signer.serviceKeys.privateKeyPem, servicePublicKeyPem: signer.serviceKeys.publicKeyPem, root: rootHash, txid, issuedAtSeconds: 1_760_000_000 });
}

async function expectRefused(dir: string, seqno: number, code: string, message: RegExp): Promise<void> {
  const report = await verifyLedger([dir], { serviceCertPem: service.serviceCertPem });
  assert.equal(report.verified, false, "the forgery went unnoticed");
  assert.equal(report.problem!.code, code, report.problem!.message);
  assert.equal(report.problem!.seqno, seqno, report.problem!.message);
  const at = frames(dir)[seqno - 1]!;
  assert.equal(report.problem!.file, at.file);
  assert.equal(report.problem!.offset, at.offset);
  assert.match(report.problem!.message, message);
  assert.match(report.problem!.message, new RegExp(`byte offset ${at.offset}: signature transaction \\d+\\.${seqno}`));
}

test("every signature transaction's COSE signature is checked, and an intact ledger verifies", async () => {
  const { dir, written } = await ledgerWith(undefined);
  assert.ok(chunks(dir).length >= 2, "several chunks");
  const report = await verifyLedger([dir], { serviceCertPem: service.serviceCertPem });
  assert.equal(report.problem, null, report.problem?.message);
  assert.equal(report.signatures, written.signatureSeqnos.length);
  assert.equal(report.coseSignatures, written.signatureSeqnos.length);
  // A ledger from before CCF 6 has none, and still verifies on its node signatures.
  const { dir: old } = await ledgerWith(undefined, { coseSignatures: false });
  const oldReport = await verifyLedger([old]);
  assert.equal(oldReport.problem, null, oldReport.problem?.message);
  assert.equal(oldReport.coseSignatures, 0);
});

test("a COSE signature made with another key, under the real service's kid, is refused", async () => {
  let target = 0;
  const { dir } = await ledgerWith(({ seqno, txid, root: r }) => {
    if (target !== 0) return undefined;
    target = seqno;
    // Same headers as the real one (kid names the real service key), signed by another key.
    return signRootCose({ servicePrivateKeyPem: other.serviceKeys.privateKeyPem, servicePublicKeyPem: service.serviceKeys.publicKeyPem, root: r, txid, issuedAtSeconds: 1 });
  });
  await expectRefused(dir, target, "BadCoseSignature", /does not verify over the Merkle root/);
});

test("a COSE signature by the service key over another root is refused", async () => {
  let target = 0;
  const { dir } = await ledgerWith(({ seqno, txid, signer }) => {
    if (seqno < 8 || target !== 0) return undefined;
    target = seqno;
    return cose(signer, sha256(Buffer.from("not the root")), txid);
  });
  assert.ok(target > 0);
  await expectRefused(dir, target, "BadCoseSignature", /over the Merkle root [0-9a-f]{64}/);
});

test("a COSE signature swapped in from another signature transaction is refused", async () => {
  const real = new Map<number, Buffer>();
  let target = 0;
  const { dir } = await ledgerWith(({ seqno, real: genuine }) => {
    real.set(seqno, genuine);
    if (real.size < 3 || target !== 0) return undefined;
    target = seqno;
    return real.get([...real.keys()][0]!); // the first signature transaction's, genuine
  });
  await expectRefused(dir, target, "CoseSignatureTxIdMismatch", /moved from another signature transaction/);
});

test("a COSE signature by the service key whose kid names another key is refused", async () => {
  let target = 0;
  const { dir } = await ledgerWith(({ seqno, txid, root: r }) => {
    if (target !== 0) return undefined;
    target = seqno;
    return signRootCose({ servicePrivateKeyPem: service.serviceKeys.privateKeyPem, servicePublicKeyPem: other.serviceKeys.publicKeyPem, root: r, txid, issuedAtSeconds: 1 });
  });
  await expectRefused(dir, target, "CoseSignatureKeyMismatch", /kid/);
});

test("a COSE signature that is not a COSE_Sign1 is refused", async () => {
  let target = 0;
  const { dir } = await ledgerWith(({ seqno }) => {
    if (seqno < 5 || target !== 0) return undefined;
    target = seqno;
    return Buffer.from("not cbor at all");
  });
  await expectRefused(dir, target, "InvalidCoseSignature", /COSE/);
});

test("after a change of service identity, a COSE signature by the previous service key is refused", async () => {
  const next = await makeServiceFixture();
  let target = 0;
  const { dir } = await ledgerWith(({ seqno, txid, root: r, signer }) => {
    if (signer !== next || target !== 0) return undefined;
    target = seqno;
    return cose(service, r, txid); // the old service key, still held by a node of the old service
  }, { newIdentity: { afterTransactions: 6, service: next } });
  assert.ok(target > 0);
  // The walk stops there, before any signature of the new identity vouches for its endorsement
  // of the old one: with --service-cert set to the new identity, the first old signature would be
  // reported (untrusted) first; anchored in the ledger, the forgery is the first problem.
  const report = await verifyLedger([dir]);
  assert.equal(report.problem!.code, "CoseSignatureKeyMismatch", report.problem!.message);
  assert.equal(report.problem!.seqno, target);
  // Without the forgery, the same recovery verifies: each epoch's signatures by its own key.
  const { dir: good } = await ledgerWith(undefined, { newIdentity: { afterTransactions: 6, service: next } });
  const fine = await verifyLedger([good], { serviceCertPem: next.serviceCertPem });
  assert.equal(fine.problem, null, fine.problem?.message);
  assert.ok(fine.coseSignatures >= 5);
});

test("the last signature transaction's COSE signature edited on disk, crc32 recomputed, is caught by the COSE check alone", async () => {
  // No later signed root covers the last signature transaction, so neither the Merkle tree nor a
  // node signature can see this edit: the COSE check must.
  const { dir, written } = await ledgerWith(undefined);
  const last = written.signatureSeqnos[written.signatureSeqnos.length - 1]!;
  assert.equal(last, written.lastSeqno);
  const at = frames(dir)[last - 1]!;
  const buf = readFileSync(at.file);
  const length = buf.readUInt32BE(at.offset);
  const entry = buf.subarray(at.offset + 8, at.offset + 8 + length);
  const table = entry.indexOf(COSE_SIGNATURES_MAP);
  assert.ok(table > 0, "the entry writes the COSE table");
  // The last byte of the COSE_Sign1 is the signature's: find the JSON string's closing quote.
  const quote = entry.indexOf(Buffer.from('"', "utf8"), entry.indexOf(Buffer.from('"', "utf8"), table + COSE_SIGNATURES_MAP.length) + 1);
  const base64 = entry.subarray(entry.indexOf(Buffer.from('"'), table + COSE_SIGNATURES_MAP.length) + 1, quote).toString("utf8");
  const message = Buffer.from(base64, "base64");
  message[message.length - 5]! ^= 0x01;
  const edited = message.toString("base64");
  assert.equal(edited.length, base64.length);
  entry.write(edited, quote - base64.length, "utf8");
  buf.writeUInt32BE(crc32(entry), at.offset + 4);
  writeFileSync(at.file, buf);
  await expectRefused(dir, last, "BadCoseSignature", /does not verify/);
});

test("a COSE signature written in an ordinary transaction is refused: only signature transactions write that table", async () => {
  let genuine: Buffer | undefined;
  const { dir, written } = await ledgerWith(({ real }) => { genuine ??= real; return undefined; }, {
    // App transaction 5 also writes the table, with a genuine COSE signature (the first one's).
    extraAppWrites: (i) => (i === 5 ? [{ name: COSE_SIGNATURES_MAP, isPublic: true, writes: [[Buffer.alloc(8), Buffer.from(JSON.stringify(genuine!.toString("base64")))]] }] : []),
  });
  const target = written.appSeqnos[4]!;
  const report = await verifyLedger([dir]);
  assert.equal(report.problem!.code, "InvalidCoseSignature", report.problem!.message);
  assert.equal(report.problem!.seqno, target);
  assert.match(report.problem!.message, /only signature transactions write/);
});
