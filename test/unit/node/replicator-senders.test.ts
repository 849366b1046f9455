// The Replicator's sender filter: Raft hears only nodes its membership rule admits, so a retired
// node's huge-term RequestVote or AppendEntries cannot bump the view of a running primary.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { TransactionEngine } from "../../../src/node/engine.js";
import { Replicator } from "../../../src/node/replication.js";
import { encodeRaftMessage } from "../../../src/node/raft-codec.js";
import { PeerAdmission } from "../../../src/node/membership.js";
import { NODES_INFO_MAP } from "../../../src/node/join.js";
import { Ledger } from "../../../src/ledger/index.js";
import { createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey, randomBytes } from "../../../src/crypto/index.js";

const HUGE_VIEW = 1000;

async function primaryWithAdmission(dir: string) {
  const serviceKeys = generateEcP384KeyPair();
  const serviceCertPem = await createServiceCertificate(serviceKeys, {});
  const nodeKeys = generateEcP384KeyPair();
  const nodeCertPem = await createNodeCertificate({ nodePublicKeyPem: nodeKeys.publicKeyPem, serviceKeys, serviceCertPem, ipAddresses: ["127.0.0.1"] });
  const nodeId = nodeIdFromPublicKey(nodeKeys.publicKeyPem);
  const { ledger } = await Ledger.open(join(dir, "ledger"), { durability: "none" });
  const engine = new TransactionEngine(ledger, {
    nodeId, serviceCertPem, nodePrivateKeyPem: nodeKeys.privateKeyPem, nodeCertPem, ledgerSecrets: [{ fromSeqno: 1, raw: randomBytes(32) }],
    signatureTxCount: 1_000_000, signatureDelayMs: 1_000_000, pendingTransactionsMax: 1000, entryWorker: false, logger: { info() {}, warn() {}, error() {} },
  });
  const debugLines: object[] = [];
  const warnLines: string[] = [];
  const logger = { info() {}, warn: (_fields: object, msg: string) => void warnLines.push(msg), error() {}, debug: (fields: object) => debugLines.push(fields) };
  const replicator: Replicator = new Replicator(engine, engine.replay([]), {
    nodeId, workspace: dir, bootstrapVoters: [nodeId], tickMs: 10, electionTicks: 1000, heartbeatTicks: 2,
    maxEntriesPerAppend: 100, maxInflightAppends: 4, maxUncommittedEntries: 10_000, logger,
    acceptSender: (peer: string): boolean => admission.accepts(peer),
  });
  const admission: PeerAdmission = new PeerAdmission({ self: nodeId, store: engine.store, consensus: () => replicator, bootstrapPeers: [] });
  replicator.start();
  assert.equal(replicator.role, "Primary", "a lone voter leads at once");
  const tx = engine.store.begin();
  for (const [id, status] of [[nodeId, "Trusted"], ["retired-node", "Retired"], ["trusted-node", "Trusted"]]) {
    tx.set(NODES_INFO_MAP, Buffer.from(id!), Buffer.from(JSON.stringify({ status, cert: "" })));
  }
  engine.commit(tx);
  return { engine, ledger, replicator, nodeId, debugLines, warnLines };
}

function hugeVote(from: string, to: string): Buffer {
  return encodeRaftMessage({ type: "RequestVote", from, to, term: HUGE_VIEW, preVote: false, leadershipTransfer: true, lastSignatureIndex: 1e9, lastSignatureTerm: HUGE_VIEW });
}

test("a retired node's huge-term RequestVote and AppendEntries are dropped (and logged once), a trusted node's are not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-senders-"));
  try {
    const { engine, ledger, replicator, nodeId, debugLines } = await primaryWithAdmission(dir);
    const viewBefore = replicator.term;
    replicator.receive("retired-node", hugeVote("retired-node", nodeId));
    replicator.receive("retired-node", encodeRaftMessage({ type: "AppendEntries", from: "retired-node", to: nodeId, term: HUGE_VIEW, prevIndex: 0, prevTerm: 0, leaderCommit: 0, entries: [] }));
    assert.equal(replicator.term, viewBefore, "the view does not move");
    assert.equal(replicator.role, "Primary");
    assert.equal(replicator.droppedOutsiderMessages, 2);
    assert.equal(debugLines.length, 1, "one debug line for a burst from the same sender (rate-limited)");
    assert.equal((debugLines[0] as { from: string }).from, "retired-node");

    // The same message from a trusted node does move the view: the filter, not the message, made the difference.
    replicator.receive("trusted-node", hugeVote("trusted-node", nodeId));
    assert.equal(replicator.term, HUGE_VIEW);
    assert.equal(replicator.role, "Backup");
    assert.equal(replicator.droppedOutsiderMessages, 2);
    replicator.stop();
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("malformed Raft messages (a peer on another version, or a broken one) are refused and logged at most once per interval", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-senders-"));
  try {
    const { engine, ledger, replicator, nodeId, warnLines } = await primaryWithAdmission(dir);
    const unknownType = Buffer.from(encodeRaftMessage({ type: "TimeoutNow", from: "trusted-node", to: nodeId, term: 1 }));
    unknownType[0] = 42;
    for (let i = 0; i < 50; i++) replicator.receive("trusted-node", unknownType);
    assert.equal(warnLines.filter((m) => m === "refused a malformed Raft message").length, 1);
    assert.equal(replicator.role, "Primary", "nothing else happens");
    replicator.stop();
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
