// Recovery shares: a threshold of members' decrypted shares rebuilds the wrapping key and
// unwraps the ledger secret; fewer cannot; each share opens only with its member's key.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { buildRecoveryShares, decryptShare, recoverLatestSecret } from "../../../src/node/recovery-shares.js";

function member() {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { pub: publicKey.export({ format: "pem", type: "spki" }).toString(), priv: privateKey.export({ format: "pem", type: "pkcs8" }).toString() };
}

test("two of three recovery members rebuild the ledger secret; one cannot", async () => {
  const members = { a: member(), b: member(), c: member() };
  const secret = randomBytes(32);
  const info = (await buildRecoveryShares(new Map(Object.entries(members).map(([id, m]) => [id, m.pub])), 2, secret, 7))!;
  assert.equal(info.recovery_threshold, 2);
  assert.deepEqual(Object.keys(info.encrypted_shares).sort(), ["a", "b", "c"]);
  const shareA = decryptShare(info.encrypted_shares["a"]!, members.a.priv);
  const shareC = decryptShare(info.encrypted_shares["c"]!, members.c.priv);
  assert.deepEqual(await recoverLatestSecret(info, [shareA, shareC]), secret);
  await assert.rejects(recoverLatestSecret(info, [shareA]));
  assert.throws(() => decryptShare(info.encrypted_shares["a"]!, members.b.priv));
});

test("with threshold one, any single share rebuilds the secret", async () => {
  const m = member();
  const secret = randomBytes(32);
  const info = (await buildRecoveryShares(new Map([["solo", m.pub]]), 1, secret, 1))!;
  assert.deepEqual(await recoverLatestSecret(info, [decryptShare(info.encrypted_shares["solo"]!, m.priv)]), secret);
});

test("a threshold above the number of recovery members is refused; no members means no shares", async () => {
  await assert.rejects(buildRecoveryShares(new Map([["x", member().pub]]), 2, randomBytes(32), 1), /InvalidRecoveryThreshold|between 1/);
  assert.equal(await buildRecoveryShares(new Map(), 1, randomBytes(32), 1), undefined);
});
