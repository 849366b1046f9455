// Commit evidence keyed per primary term: the same transaction id under another key nonce (a
// node restarted from restored old files) gets unrelated evidence; receipts can recompute it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { COMMIT_NONCE_BYTES, CommitEvidence } from "../../../src/node/commit-evidence.js";

const secret = randomBytes(32);

test("the same view and seqno under another key nonce give other commit evidence", () => {
  const evidence = new CommitEvidence(secret);
  const first = randomBytes(16);
  const second = randomBytes(16);
  const a = evidence.evidence(first, 3, 42);
  assert.equal(evidence.evidence(first, 3, 42), a, "deterministic under one key nonce, so receipts can rebuild it");
  assert.equal(new CommitEvidence(secret).evidence(first, 3, 42), a, "a fresh instance (after a restart) rebuilds it from the entry's nonce");
  assert.notEqual(evidence.evidence(second, 3, 42), a);
  assert.match(a, /^ce:3\.42:[0-9a-f]{32}$/);
});

test("a batch's nonces are those of its transactions one by one, whatever other nonces were derived in between", () => {
  const evidence = new CommitEvidence(secret);
  const nonces = Array.from({ length: 12 }, () => randomBytes(16));
  for (const keyNonce of nonces) {
    const batch = Buffer.from(evidence.nonces(keyNonce, 7, 100, 5));
    evidence.nonces(randomBytes(16), 7, 100, 1); // pushes other keys through the cache
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(batch.subarray(i * COMMIT_NONCE_BYTES, (i + 1) * COMMIT_NONCE_BYTES), evidence.nonces(keyNonce, 7, 100 + i, 1));
    }
  }
});

test("another ledger secret gives other commit evidence under the same key nonce", () => {
  const keyNonce = randomBytes(16);
  assert.notEqual(new CommitEvidence(secret).evidence(keyNonce, 1, 1), new CommitEvidence(randomBytes(32)).evidence(keyNonce, 1, 1));
});
