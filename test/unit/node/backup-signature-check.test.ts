// A backup checks every signature transaction the primary replicates before applying it (CCF's
// verify_root_signatures on followers): the node's signature over the backup's own Merkle root,
// and CCF 6's COSE signature by the service key. A forged one is refused (not applied, not
// persisted, not acknowledged; logged with seqno and signer), even right after a genuine one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { TransactionEngine, type EngineOptions } from "../../../src/node/engine.js";
import { Replicator } from "../../../src/node/replication.js";
import { encodeRaftMessage, decodeRaftMessage } from "../../../src/node/raft-codec.js";
import { SIGNATURES_MAP, SINGLETON_KEY, decodeSignature, encodeSignature } from "../../../src/node/signatures.js";
import { Ledger, LedgerSecrets, decodeEntry, encodeEntry } from "../../../src/ledger/index.js";
import { deserialiseDomain, serialiseWriteSet, type MapWrites } from "../../../src/kv/index.js";
import { COSE_SIGNATURES_MAP, signRootCose } from "../../../src/merkle/index.js";
import { createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey, randomBytes, sha256, signDigest } from "../../../src/crypto/index.js";

const quiet = { info() {}, warn() {}, error() {} };

async function service() {
  const serviceKeys = generateEcP384KeyPair();
  const serviceCertPem = await createServiceCertificate(serviceKeys, {});
  const node = async () => {
    const keys = generateEcP384KeyPair();
    const certPem = await createNodeCertificate({ nodePublicKeyPem: keys.publicKeyPem, serviceKeys, serviceCertPem, ipAddresses: ["127.0.0.1"] });
    return { keys, certPem, id: nodeIdFromPublicKey(keys.publicKeyPem) };
  };
  return { serviceKeys, serviceCertPem, primary: await node(), backup: await node(), secret: randomBytes(32) };
}
type Service = Awaited<ReturnType<typeof service>>;

function engineOptions(s: Service, node: Service["primary"], logger: EngineOptions["logger"] = quiet): EngineOptions {
  return {
    nodeId: node.id, serviceCertPem: s.serviceCertPem, nodePrivateKeyPem: node.keys.privateKeyPem, nodeCertPem: node.certPem,
    ledgerSecrets: [{ fromSeqno: 1, raw: s.secret }], signatureTxCount: 1_000_000, signatureDelayMs: 1_000_000, pendingTransactionsMax: 1000,
    entryWorker: false, logger, coseSignatures: { servicePrivateKeyPem: s.serviceKeys.privateKeyPem, servicePublicKeyPem: s.serviceKeys.publicKeyPem },
  };
}

/** The primary's entries for: 2 writes, a signature, 2 writes, a signature (as it proposes them to consensus). */
async function primaryEntries(s: Service, dir: string): Promise<Buffer[]> {
  const { ledger } = await Ledger.open(join(dir, "primary"), { durability: "none" });
  const engine = new TransactionEngine(ledger, engineOptions(s, s.primary));
  const entries: Buffer[] = [];
  engine.setSink({ propose: (entry) => void entries.push(entry), acceptsWrites: () => true });
  engine.becomePrimary(2);
  for (const round of [1, 2]) {
    for (const key of ["a", "b"]) {
      const tx = engine.store.begin();
      tx.set("public:records", Buffer.from(`${key}${round}`), Buffer.from("value"));
      engine.commit(tx);
    }
    engine.drain();
    engine.emitSignature();
    engine.drain();
  }
  engine.becomeBackup(2);
  await ledger.close();
  assert.equal(entries.length, 6);
  assert.ok(decodeEntry(entries[2]!).isSignature && decodeEntry(entries[5]!).isSignature);
  return entries;
}

/** `entry` (a signature transaction) re-encoded with its public maps changed by `change`. */
function reencode(s: Service, entry: Buffer, change: (maps: MapWrites[]) => MapWrites[]): Buffer {
  const decoded = decodeEntry(entry);
  const maps = change(deserialiseDomain(decoded.publicDomain, "public").maps.map((m) => ({ ...m, writes: [...m.writes] })));
  const { publicDomain } = serialiseWriteSet({ seqno: decoded.seqno, maps });
  return encodeEntry({
    view: decoded.view, seqno: decoded.seqno, isSignature: true, claimsDigest: decoded.claimsDigest, commitEvidenceDigest: decoded.commitEvidenceDigest,
    keyNonce: decoded.keyNonce, publicDomain, privatePlaintext: Buffer.alloc(0),
  }, new LedgerSecrets([{ fromSeqno: 1, raw: s.secret }]).forSeqno(decoded.seqno));
}

function replace(maps: MapWrites[], name: string, value: Buffer): MapWrites[] {
  return maps.map((m) => (m.name === name ? { ...m, writes: [[SINGLETON_KEY, value]] } : m));
}

/** The root the entry's signature record signs. */
function signedRoot(entry: Buffer): Buffer {
  const maps = deserialiseDomain(decodeEntry(entry).publicDomain, "public").maps;
  return Buffer.from(decodeSignature(maps.find((m) => m.name === SIGNATURES_MAP)!.writes[0]![1]!).root, "hex");
}

const forgeries: { name: string; forge: (s: Service, entry: Buffer) => Buffer; check: RegExp }[] = [
  {
    name: "a node signature by a key other than the signer's certificate",
    forge: (s, entry) => reencode(s, entry, (maps) => {
      const record = decodeSignature(maps.find((m) => m.name === SIGNATURES_MAP)!.writes[0]![1]!);
      const forged = { ...record, sig: signDigest(generateEcP384KeyPair().privateKeyPem, signedRoot(entry)).toString("base64") };
      return replace(maps, SIGNATURES_MAP, encodeSignature(forged));
    }),
    check: /node's signature over the Merkle root does not verify/,
  },
  {
    name: "a COSE signature by a key other than the service's",
    forge: (s, entry) => reencode(s, entry, (maps) => {
      const decoded = decodeEntry(entry);
      const cose = signRootCose({ servicePrivateKeyPem: generateEcP384KeyPair().privateKeyPem, servicePublicKeyPem: s.serviceKeys.publicKeyPem,
        root: signedRoot(entry), txid: `${decoded.view}.${decoded.seqno}`, issuedAtSeconds: 1 });
      return replace(maps, COSE_SIGNATURES_MAP, Buffer.from(JSON.stringify(cose.toString("base64"))));
    }),
    check: /COSE signature is refused \(BadCoseSignature\)/,
  },
  {
    name: "a COSE signature by the service key over another root",
    forge: (s, entry) => reencode(s, entry, (maps) => {
      const decoded = decodeEntry(entry);
      const cose = signRootCose({ servicePrivateKeyPem: s.serviceKeys.privateKeyPem, servicePublicKeyPem: s.serviceKeys.publicKeyPem,
        root: sha256(Buffer.from("another root")), txid: `${decoded.view}.${decoded.seqno}`, issuedAtSeconds: 1 });
      return replace(maps, COSE_SIGNATURES_MAP, Buffer.from(JSON.stringify(cose.toString("base64"))));
    }),
    check: /COSE signature is refused \(BadCoseSignature\)/,
  },
  {
    name: "the previous signature transaction's COSE signature",
    forge: () => Buffer.alloc(0), // replaced in the test: needs both signature entries
    check: /COSE signature is refused \(CoseSignatureTxIdMismatch\)/,
  },
];

for (const { name, forge, check } of forgeries) {
  test(`a backup refuses a replicated signature transaction carrying ${name}, right after a genuine one`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "coco-backup-sig-"));
    try {
      const s = await service();
      const entries = await primaryEntries(s, dir);
      const errors: object[] = [];
      const { ledger } = await Ledger.open(join(dir, "backup"), { durability: "none" });
      const backup = new TransactionEngine(ledger, engineOptions(s, s.backup, { info() {}, warn() {}, error: (o) => void errors.push(o) }));
      backup.becomeBackup(2);
      for (const entry of entries.slice(0, 5)) backup.applyReplicated(entry);
      assert.equal(backup.lastSeqnoLocal, 5, "the genuine entries, first signature included, apply");
      const forged = name.startsWith("the previous")
        ? reencode(s, entries[5]!, (maps) => replace(maps, COSE_SIGNATURES_MAP,
          deserialiseDomain(decodeEntry(entries[2]!).publicDomain, "public").maps.find((m) => m.name === COSE_SIGNATURES_MAP)!.writes[0]![1]!))
        : forge(s, entries[5]!);
      const rootBefore = backup.tree.root();
      assert.throws(() => backup.applyReplicated(forged), (error: Error & { code?: string }) => {
        assert.equal(error.code, "ReplicationDiverged");
        assert.match(error.message, check);
        assert.match(error.message, new RegExp(`signature transaction 2\\.6 from node ${s.primary.id}`));
        return true;
      });
      assert.equal(backup.lastSeqnoLocal, 5, "not applied");
      assert.ok(backup.tree.root().equals(rootBefore), "no Merkle leaf for it");
      assert.deepEqual(errors, [{ seqno: 6, view: 2, signer: s.primary.id, check: check.source.includes("COSE") ? "cose-signature" : "node-signature" }]);
      // The genuine entry is still accepted: the refusal changed nothing.
      backup.applyReplicated(entries[5]!);
      assert.equal(backup.lastSeqnoLocal, 6);
      await ledger.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("a backup's replication shell neither persists nor acknowledges a forged signature transaction", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-backup-sig-shell-"));
  try {
    const s = await service();
    const entries = await primaryEntries(s, dir);
    const { ledger } = await Ledger.open(join(dir, "backup"), { durability: "none" });
    const backup = new TransactionEngine(ledger, engineOptions(s, s.backup));
    const sent: ReturnType<typeof decodeRaftMessage>[] = [];
    const replicator = new Replicator(backup, backup.replay([]), {
      nodeId: s.backup.id, workspace: dir, bootstrapVoters: [s.primary.id, s.backup.id], tickMs: 10_000, electionTicks: 1000, heartbeatTicks: 2,
      maxEntriesPerAppend: 100, maxInflightAppends: 4, maxUncommittedEntries: 10_000, logger: quiet,
    });
    replicator.setTransport({ send: (_to, _type, payload) => { sent.push(decodeRaftMessage(payload, s.backup.id)); return true; } });
    const forged = reencode(s, entries[5]!, (maps) => {
      const record = decodeSignature(maps.find((m) => m.name === SIGNATURES_MAP)!.writes[0]![1]!);
      return replace(maps, SIGNATURES_MAP, encodeSignature({ ...record, sig: signDigest(generateEcP384KeyPair().privateKeyPem, signedRoot(entries[5]!)).toString("base64") }));
    });
    const raftEntries = [...entries.slice(0, 5), forged].map((payload, i) => ({ term: 2, index: i + 1, isSignature: decodeEntry(payload).isSignature, payload }));
    replicator.receive(s.primary.id, encodeRaftMessage({ type: "AppendEntries", from: s.primary.id, to: s.backup.id, term: 2, prevIndex: 0, prevTerm: 0, leaderCommit: 0, entries: raftEntries }));
    await ledger.flush();
    assert.equal(backup.lastSeqnoLocal, 5, "the entries before the forgery are applied, not the forgery");
    assert.equal(ledger.lastSeqno, 5, "the forgery is not in the ledger");
    assert.ok(!sent.some((m) => m.type === "AppendEntriesResponse" && m.success && m.matchIndex >= 6), `no acknowledgement of it: ${JSON.stringify(sent)}`);
    replicator.stop();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("history the primary reports committed is still refused when its signed root is not the backup's own", async () => {
  // Catching up on committed history, a backup checks the two signatures at most once a second
  // (a later verified root vouches for everything before it), but every root, every time.
  const dir = mkdtempSync(join(tmpdir(), "coco-backup-sig-committed-"));
  try {
    const s = await service();
    const entries = await primaryEntries(s, dir);
    const { ledger } = await Ledger.open(join(dir, "backup"), { durability: "none" });
    const backup = new TransactionEngine(ledger, engineOptions(s, s.backup));
    backup.becomeBackup(2);
    for (const entry of entries.slice(0, 5)) backup.applyReplicated(entry, true);
    const wrongRoot = sha256(Buffer.from("not this backup's root"));
    const forged = reencode(s, entries[5]!, (maps) => {
      const record = decodeSignature(maps.find((m) => m.name === SIGNATURES_MAP)!.writes[0]![1]!);
      return replace(maps, SIGNATURES_MAP, encodeSignature({ ...record, root: wrongRoot.toString("hex"), sig: signDigest(s.primary.keys.privateKeyPem, wrongRoot).toString("base64") }));
    });
    assert.throws(() => backup.applyReplicated(forged, true), /signs root [0-9a-f]{64} but this node's Merkle root is/);
    assert.equal(backup.lastSeqnoLocal, 5);
    backup.applyReplicated(entries[5]!, true);
    assert.equal(backup.lastSeqnoLocal, 6);
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
