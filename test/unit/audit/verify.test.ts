// The offline ledger verifier (`coco ledger verify`) against ledgers written by the real writer
// and signed as the node signs them: every single-byte change is found and located, an edit
// with a recomputed crc32 is caught by the Merkle root, and chunk-level damage (cut, missing,
// foreign, swapped) and untrusted signers are reported at the first place they occur.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { verifyLedger } from "../../../src/audit/index.js";
import { createNodeCertificate } from "../../../src/crypto/index.js";
import { makeServiceFixture, publicValue, writeSignedLedger, type ServiceFixture, type SignedLedger } from "../../helpers/signed-ledger.js";

const root = mkdtempSync(join(tmpdir(), "coco-audit-verify-"));
let service: ServiceFixture;
let other: ServiceFixture;
let base: string;
let baseLedger: SignedLedger;

/** A copy of the base ledger to damage. */
function copyBase(name: string): string {
  const dir = join(root, name);
  cpSync(base, dir, { recursive: true });
  return dir;
}

function chunks(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith("ledger_")).sort((a, b) => Number(a.split(/[_-]/)[1]) - Number(b.split(/[_-]/)[1]));
}

/** Frame start offsets of a chunk file (after the 8-byte magic). */
function frameStarts(buf: Buffer): number[] {
  const starts: number[] = [];
  for (let offset = 8; offset < buf.length; offset += 8 + buf.readUInt32BE(offset)) starts.push(offset);
  return starts;
}

before(async () => {
  service = await makeServiceFixture();
  other = await makeServiceFixture();
  base = join(root, "base");
  // Small chunks so that the ledger spans several files; ends at a signature transaction.
  baseLedger = await writeSignedLedger({ dir: base, service, transactions: 12, signatureEvery: 3, chunkSizeBytes: 2000 });
});
after(() => rmSync(root, { recursive: true, force: true }));

test("an intact ledger verifies against the identity it records and against the given service certificate", async () => {
  assert.ok(chunks(base).length >= 3, `several chunks: ${chunks(base).join(", ")}`);
  const report = await verifyLedger([base]);
  assert.equal(report.problem, null);
  assert.equal(report.verified, true);
  assert.equal(report.lastSeqno, baseLedger.lastSeqno);
  assert.equal(report.entries, baseLedger.lastSeqno);
  assert.equal(report.signatures, baseLedger.signatureSeqnos.length);
  assert.equal(report.verifiedThroughSeqno, baseLedger.lastSeqno);
  assert.equal(report.unsignedTail, null);
  assert.equal(report.trustAnchor.source, "ledger");
  assert.match(report.trustAnchor.description, /recorded in the ledger itself at seqno 1/);
  const withCert = await verifyLedger([base], { serviceCertPem: service.serviceCertPem });
  assert.equal(withCert.problem, null);
  assert.equal(withCert.trustAnchor.source, "service-cert");
  assert.deepEqual(withCert.serviceIdentities.map((i) => i.trusted), [true]);
});

test("every single-byte change anywhere in the ledger is detected and located at its frame", async (t) => {
  // Smaller than the base ledger (each flip verifies the whole ledger again), still several
  // chunks, ending at a signature transaction.
  const dir = join(root, "flip");
  await writeSignedLedger({ dir, service, transactions: 2, signatureEvery: 2, chunkSizeBytes: 1200 });
  assert.ok(chunks(dir).length >= 2, `several chunks: ${chunks(dir).join(", ")}`);
  let flips = 0;
  for (const name of chunks(dir)) {
    const path = join(dir, name);
    const original = readFileSync(path);
    const starts = frameStarts(original);
    const frameOf = (i: number): number => (i < 8 ? 0 : starts.filter((s) => s <= i).pop()!);
    const firstSeqno = Number(name.split(/[_-]/)[1]);
    for (let i = 0; i < original.length; i++) {
      const damaged = Buffer.from(original);
      damaged[i]! ^= 0x01 << (i % 8);
      writeFileSync(path, damaged);
      const report = await verifyLedger([dir]);
      assert.equal(report.verified, false, `flip at ${name}:${i} went unnoticed`);
      assert.equal(report.problem!.file, path, `flip at ${name}:${i}: ${report.problem!.message}`);
      assert.equal(report.problem!.offset, frameOf(i), `flip at ${name}:${i}: ${report.problem!.message}`);
      assert.equal(report.problem!.seqno, i < 8 ? firstSeqno : firstSeqno + starts.indexOf(frameOf(i)), `flip at ${name}:${i}`);
      flips++;
    }
    writeFileSync(path, original);
  }
  assert.ok(flips > 1500, `${flips} flips`);
  t.diagnostic(`${flips} single-byte flips, all detected`);
  assert.equal((await verifyLedger([dir])).verified, true, "the restored copy verifies again");
});

test("an entry edited with its crc32 recomputed as the writer computes it is caught by the Merkle root", async () => {
  const dir = copyBase("crc-recomputed");
  const target = baseLedger.appSeqnos[4]!; // app transaction 5, between two signatures
  const nextSignature = baseLedger.signatureSeqnos.find((s) => s > target)!;
  let edited = false;
  for (const name of chunks(dir)) {
    const path = join(dir, name);
    const buf = readFileSync(path);
    const firstSeqno = Number(name.split(/[_-]/)[1]);
    frameStarts(buf).forEach((start, k) => {
      if (firstSeqno + k !== target) return;
      const length = buf.readUInt32BE(start);
      const entry = buf.subarray(start + 8, start + 8 + length);
      const at = entry.indexOf(publicValue(5));
      assert.ok(at > 0, "the public value is in the entry");
      entry.write("PUBLIC", at); // same length: the frame stays well-formed
      buf.writeUInt32BE(crc32(entry), start + 4);
      edited = true;
    });
    writeFileSync(path, buf);
  }
  assert.ok(edited);
  const report = await verifyLedger([dir]);
  assert.equal(report.verified, false);
  assert.equal(report.problem!.code, "MerkleRootMismatch", report.problem!.message);
  assert.equal(report.problem!.seqno, nextSignature);
  assert.match(report.problem!.message, new RegExp(`in \\d+\\.\\.${nextSignature - 1}`));
});

test("a chunk cut short is reported at the cut", async () => {
  const dir = copyBase("truncated");
  const name = chunks(dir)[1]!;
  const path = join(dir, name);
  const size = readFileSync(path).length;
  truncateSync(path, size - 10);
  const report = await verifyLedger([dir]);
  assert.equal(report.problem!.code, "TruncatedFrame", report.problem!.message);
  assert.equal(report.problem!.file, path);
});

test("a chunk cut at a frame boundary no longer matches the range in its name", async () => {
  const dir = copyBase("truncated-boundary");
  const name = chunks(dir)[1]!;
  const path = join(dir, name);
  const buf = readFileSync(path);
  const starts = frameStarts(buf);
  writeFileSync(path, buf.subarray(0, starts[starts.length - 1]));
  const report = await verifyLedger([dir]);
  assert.equal(report.problem!.code, "ChunkRangeMismatch", report.problem!.message);
  assert.equal(report.problem!.file, path);
});

test("a missing middle chunk is reported with the missing seqnos", async () => {
  const dir = copyBase("missing");
  const names = chunks(dir);
  unlinkSync(join(dir, names[1]!));
  const report = await verifyLedger([dir]);
  assert.equal(report.problem!.code, "MissingChunk");
  const missingFrom = Number(names[1]!.split(/[_-]/)[1]);
  assert.equal(report.problem!.seqno, missingFrom);
  assert.equal(report.problem!.file, join(dir, names[2]!));
  assert.match(report.problem!.message, new RegExp(`seqnos ${missingFrom}\\.\\.`));
});

test("a ledger that does not start at seqno 1 cannot be verified", async () => {
  const dir = copyBase("no-start");
  unlinkSync(join(dir, chunks(dir)[0]!));
  const report = await verifyLedger([dir]);
  assert.equal(report.problem!.code, "MissingChunk");
  assert.equal(report.problem!.seqno, 1);
});

test("a chunk taken from another service's ledger with the same shape is caught", async () => {
  const foreignDir = join(root, "foreign-source");
  await writeSignedLedger({ dir: foreignDir, service: other, transactions: 12, signatureEvery: 3, chunkSizeBytes: 2000 });
  const dir = copyBase("foreign");
  const name = chunks(dir)[1]!;
  assert.ok(chunks(foreignDir).includes(name), "both ledgers have the same chunk names");
  copyFileSync(join(foreignDir, name), join(dir, name));
  const report = await verifyLedger([dir]);
  assert.equal(report.verified, false);
  assert.equal(report.problem!.file, join(dir, name));
  assert.ok(["MerkleRootMismatch", "NodeNotEndorsed"].includes(report.problem!.code), report.problem!.message);
});

test("two chunks with swapped contents are caught at the first misplaced entry", async () => {
  const dir = copyBase("swapped");
  const [, second, third] = chunks(dir);
  const a = readFileSync(join(dir, second!));
  writeFileSync(join(dir, second!), readFileSync(join(dir, third!)));
  writeFileSync(join(dir, third!), a);
  const report = await verifyLedger([dir]);
  assert.equal(report.problem!.code, "SeqnoOutOfOrder", report.problem!.message);
  assert.equal(report.problem!.file, join(dir, second!));
  assert.equal(report.problem!.offset, 8);
});

test("signatures by nodes of a service the given certificate does not endorse are rejected", async () => {
  const report = await verifyLedger([base], { serviceCertPem: other.serviceCertPem });
  assert.equal(report.verified, false);
  assert.equal(report.problem!.code, "UntrustedServiceIdentity", report.problem!.message);
  assert.equal(report.problem!.seqno, baseLedger.signatureSeqnos[0]);
  assert.equal(report.trustAnchor.identityIndex, -1);
});

test("a signature by a node whose certificate another service issued is rejected", async () => {
  const dir = join(root, "rogue-node");
  const rogue: ServiceFixture = { ...service, nodeKeys: other.nodeKeys, nodeCertPem: other.nodeCertPem, nodeId: other.nodeId };
  const written = await writeSignedLedger({ dir, service: rogue, transactions: 3, signatureEvery: 3 });
  const report = await verifyLedger([dir], { serviceCertPem: service.serviceCertPem });
  assert.equal(report.problem!.code, "NodeNotEndorsed", report.problem!.message);
  assert.equal(report.problem!.seqno, written.signatureSeqnos[0]);
});

test("entries after the last signature transaction are reported as an unsigned tail, not as verified", async () => {
  const dir = join(root, "tail");
  const written = await writeSignedLedger({ dir, service, transactions: 5, signatureEvery: 3, endWithSignature: false });
  const report = await verifyLedger([dir]);
  assert.equal(report.problem, null);
  const lastSignature = written.signatureSeqnos[written.signatureSeqnos.length - 1]!;
  assert.equal(report.verifiedThroughSeqno, lastSignature);
  assert.deepEqual(report.unsignedTail, { count: written.lastSeqno - lastSignature, fromSeqno: lastSignature + 1, toSeqno: written.lastSeqno });
});

test("a ledger split over several directories verifies as one", async () => {
  const a = join(root, "split-a");
  const b = join(root, "split-b");
  cpSync(base, a, { recursive: true });
  cpSync(base, b, { recursive: true });
  const names = chunks(base);
  names.forEach((name, i) => unlinkSync(join(i % 2 === 0 ? b : a, name)));
  const report = await verifyLedger([a, b]);
  assert.equal(report.problem, null, report.problem?.message);
  assert.equal(report.lastSeqno, baseLedger.lastSeqno);
});

test("across a change of service identity, trust follows the new identity's endorsement of the previous one", async () => {
  const next = await makeServiceFixture();
  const dir = join(root, "recovered");
  await writeSignedLedger({ dir, service, transactions: 6, signatureEvery: 3, newIdentity: { afterTransactions: 3, service: next } });
  const fromLedger = await verifyLedger([dir]);
  assert.equal(fromLedger.problem, null, fromLedger.problem?.message);
  assert.deepEqual(fromLedger.serviceIdentities.map((i) => i.trusted), [true, true]);
  assert.equal(fromLedger.trustAnchor.identityIndex, 1);
  const fromNew = await verifyLedger([dir], { serviceCertPem: next.serviceCertPem });
  assert.equal(fromNew.problem, null, fromNew.problem?.message);
  // The old certificate does not vouch for its successor.
  const fromOld = await verifyLedger([dir], { serviceCertPem: service.serviceCertPem });
  assert.equal(fromOld.problem!.code, "UntrustedServiceIdentity");
  assert.ok(fromOld.problem!.seqno! > 5);

  const unendorsed = join(root, "recovered-unendorsed");
  await writeSignedLedger({ dir: unendorsed, service, transactions: 6, signatureEvery: 3, newIdentity: { afterTransactions: 3, service: next, endorsePrevious: false } });
  const report = await verifyLedger([unendorsed]);
  assert.equal(report.problem!.code, "UntrustedServiceIdentity", report.problem?.message);
  assert.equal(report.problem!.seqno, 2, "the first signature, made under the identity nobody endorsed");
});

test("a recovery's endorsement certificate must be the previous service key issued by the new service key", async () => {
  const next = await makeServiceFixture();
  const previousKey = service.serviceKeys.publicKeyPem;
  const endorsement = await createNodeCertificate({ nodePublicKeyPem: previousKey, serviceKeys: next.serviceKeys, serviceCertPem: next.serviceCertPem });
  const good = join(root, "endorsed-by-certificate");
  // Only the certificate form: no previous_service_identity write, so trust rests on the certificate.
  await writeSignedLedger({ dir: good, service, transactions: 6, signatureEvery: 3, newIdentity: { afterTransactions: 3, service: next, endorsePrevious: false, endorsementCertPem: endorsement } });
  const report = await verifyLedger([good], { serviceCertPem: next.serviceCertPem });
  assert.equal(report.problem, null, report.problem?.message);
  assert.deepEqual(report.serviceIdentities.map((i) => i.trusted), [true, true]);

  const forged = await createNodeCertificate({ nodePublicKeyPem: previousKey, serviceKeys: other.serviceKeys, serviceCertPem: other.serviceCertPem });
  const bad = join(root, "endorsed-by-forgery");
  await writeSignedLedger({ dir: bad, service, transactions: 6, signatureEvery: 3, newIdentity: { afterTransactions: 3, service: next, endorsementCertPem: forged } });
  const rejected = await verifyLedger([bad]);
  assert.equal(rejected.problem!.code, "InvalidServiceEndorsement", rejected.problem?.message);
});
