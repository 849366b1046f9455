// The pieces of disaster recovery that need no processes: every previous ledger secret comes back
// from the latest one through the historical chain; commit evidence follows the secret of each
// transaction; a recovered service opens only for its previous identity, and then waits for shares.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { LedgerSecrets } from "../../../src/ledger/index.js";
import { CommitEvidence, CommitEvidenceKeys } from "../../../src/node/commit-evidence.js";
import { decryptPreviousSecret, encryptPreviousSecret } from "../../../src/node/recovery-shares.js";
import { kvOnlyHooks, TABLES, SINGLETON_KEY } from "../../../src/governance/index.js";
import type { KvAccess } from "../../../src/js/index.js";

test("each previous ledger secret decrypts from the next one, and only from it", () => {
  const s1 = { fromSeqno: 1, raw: randomBytes(32) };
  const s2 = { fromSeqno: 40, raw: randomBytes(32) };
  const s3 = { fromSeqno: 90, raw: randomBytes(32) };
  const r12 = encryptPreviousSecret(s1, s2);
  const r23 = encryptPreviousSecret(s2, s3);
  assert.deepEqual([r12.previous_from_seqno, r12.next_from_seqno], [1, 40]);
  // Walking back from the latest secret alone.
  const back2 = decryptPreviousSecret(r23, s3.raw);
  assert.deepEqual(back2, s2.raw);
  assert.deepEqual(decryptPreviousSecret(r12, back2), s1.raw);
  assert.throws(() => decryptPreviousSecret(r12, s3.raw));
  // The record is bound to its seqnos: moving it elsewhere in the chain fails.
  assert.throws(() => decryptPreviousSecret({ ...r23, previous_from_seqno: 1 }, s3.raw));
});

test("secrets learnt later for earlier seqnos (a recovery) slot in before the service's own", () => {
  const own = randomBytes(32);
  const secrets = new LedgerSecrets([{ fromSeqno: 101, raw: own }]);
  assert.equal(secrets.firstSeqno, 101);
  const old1 = randomBytes(32);
  const old2 = randomBytes(32);
  secrets.addEarlier([{ fromSeqno: 50, raw: old2 }, { fromSeqno: 1, raw: old1 }]);
  assert.equal(secrets.firstSeqno, 1);
  assert.deepEqual(secrets.rangeFor(10), { raw: old1, lastSeqno: 49 });
  assert.deepEqual(secrets.rangeFor(50), { raw: old2, lastSeqno: 100 });
  assert.deepEqual(secrets.rangeFor(500), { raw: own, lastSeqno: Infinity });
  assert.throws(() => secrets.addEarlier([{ fromSeqno: 200, raw: randomBytes(32) }]));
});

test("commit evidence is derived from the secret of each transaction, also across a secret boundary in one batch", () => {
  const a = randomBytes(32);
  const b = randomBytes(32);
  const keys = new CommitEvidenceKeys(new LedgerSecrets([{ fromSeqno: 1, raw: a }, { fromSeqno: 5, raw: b }]));
  const keyNonce = randomBytes(16);
  const batch = keys.nonces(keyNonce, 3, 2, 6); // seqnos 2..7: 2-4 under a, 5-7 under b
  const expected = Buffer.concat([new CommitEvidence(a).nonces(keyNonce, 3, 2, 3), new CommitEvidence(b).nonces(keyNonce, 3, 5, 3)]);
  assert.deepEqual(batch, expected);
  assert.equal(keys.evidence(keyNonce, 3, 6), CommitEvidence.format(3, 6, new CommitEvidence(b).nonces(keyNonce, 3, 6, 1)));
  assert.notEqual(keys.evidence(keyNonce, 3, 6), CommitEvidence.format(3, 6, new CommitEvidence(a).nonces(keyNonce, 3, 6, 1)));
});

function memoryKv(): KvAccess & { json(map: string): unknown } {
  const maps = new Map<string, Map<string, Uint8Array>>();
  const m = (name: string) => { let x = maps.get(name); if (!x) maps.set(name, (x = new Map())); return x; };
  const k = (key: Uint8Array) => Buffer.from(key).toString("latin1");
  return {
    get: (map, key) => m(map).get(k(key)),
    set: (map, key, value) => void m(map).set(k(key), value),
    has: (map, key) => m(map).has(k(key)),
    delete: (map, key) => m(map).delete(k(key)),
    clear: (map) => m(map).clear(),
    size: (map) => m(map).size,
    forEach: (map, cb) => m(map).forEach((v, key) => cb(v, Buffer.from(key, "latin1"))),
    json: (map) => JSON.parse(Buffer.from(m(map).get(k(SINGLETON_KEY))!).toString("utf8")),
  };
}

test("transition_service_to_open on a recovered service needs its previous identity and leads to WaitingForRecoveryShares", () => {
  const kv = memoryKv();
  const next = "-----BEGIN CERTIFICATE-----\nnew\n-----END CERTIFICATE-----\n";
  const previous = "-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n";
  kv.set(TABLES.serviceInfo, SINGLETON_KEY, Buffer.from(JSON.stringify({ cert: next, status: "Recovering", recovery_count: 1 })));
  kv.set(TABLES.previousServiceIdentity, SINGLETON_KEY, Buffer.from(JSON.stringify(previous)));
  const open = kvOnlyHooks(kv).transitionServiceToOpen!;
  assert.throws(() => open(undefined, Buffer.from(next)), /previous service identity/);
  assert.throws(() => open(Buffer.from(next), Buffer.from(next)), /previous service identity/);
  open(Buffer.from(previous), Buffer.from(next));
  assert.deepEqual(kv.json(TABLES.serviceInfo), { cert: next, status: "WaitingForRecoveryShares", recovery_count: 1 });
  assert.throws(() => open(Buffer.from(previous), Buffer.from(next)), /already waits for recovery shares/);
});
