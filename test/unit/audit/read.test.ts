// Reading a ledger offline (`coco ledger read` / `export`): public domains map by map, private
// domains decrypted with ledger secrets recovered from the ledger's own recovery shares and
// members' encryption keys, and the exact seqno ranges that cannot be decrypted named.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeBytes, readLedger, recoverLedgerSecrets, type ReadEntry, type ReadOptions } from "../../../src/audit/index.js";
import { makeServiceFixture, privateValue, publicValue, writeSignedLedger, type ServiceFixture, type SignedLedger } from "../../helpers/signed-ledger.js";

const root = mkdtempSync(join(tmpdir(), "coco-audit-read-"));
let service: ServiceFixture;
const keys = [0, 1, 2].map(() => generateKeyPairSync("rsa", { modulusLength: 2048 }));
const publicPem = (i: number): string => keys[i]!.publicKey.export({ format: "pem", type: "spki" }).toString();
const privatePem = (i: number): string => keys[i]!.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
let dir: string;
let written: SignedLedger;

async function readAll(dirs: string[], options: ReadOptions = {}): Promise<ReadEntry[]> {
  const out: ReadEntry[] = [];
  for await (const entry of readLedger(dirs, options)) out.push(entry);
  return out;
}

function privateText(entry: ReadEntry): string | undefined {
  const write = entry.private?.get("records")?.[0];
  return write?.value && "text" in write.value ? write.value.text : undefined;
}

before(async () => {
  service = await makeServiceFixture();
  dir = join(root, "rekeyed");
  // Three recovery members, any two of whom can recover; a rekey after app transaction 3.
  const members = new Map([["m0", publicPem(0)], ["m1", publicPem(1)], ["m2", publicPem(2)]]);
  written = await writeSignedLedger({ dir, service, transactions: 6, signatureEvery: 2, recoveryMembers: members, recoveryThreshold: 2, rekeyAfter: [3] });
  assert.equal(written.secrets.length, 2);
});
after(() => rmSync(root, { recursive: true, force: true }));

test("a threshold of members' keys recovers every ledger secret, across a rekey, and decrypts every private write", async () => {
  const recovered = await recoverLedgerSecrets([dir], [privatePem(2), privatePem(0)]);
  assert.deepEqual(recovered.ranges.map((r) => [r.fromSeqno, r.recovered]), written.secrets.map((s) => [s.fromSeqno, true]));
  assert.deepEqual(recovered.secrets!.list().map((v) => v.raw.toString("hex")), written.secrets.map((s) => s.raw.toString("hex")));
  const entries = await readAll([dir], { secrets: recovered.secrets!, secretRanges: recovered.ranges });
  assert.deepEqual(entries.map((e) => e.seqno), entries.map((_, i) => i + 1));
  written.appSeqnos.forEach((seqno, i) => {
    const entry = entries[seqno - 1]!;
    assert.equal(privateText(entry), privateValue(i + 1), `seqno ${seqno}`);
    assert.deepEqual(entry.public.get("public:records"), [{ key: { text: `k${i + 1}` }, value: { text: publicValue(i + 1) } }]);
  });
});

test("fewer keys than the threshold decrypt nothing, and each undecryptable range is named with the reason", async () => {
  const recovered = await recoverLedgerSecrets([dir], [privatePem(1)]);
  assert.equal(recovered.secrets, undefined);
  assert.equal(recovered.ranges.length, 2);
  assert.equal(recovered.ranges[0]!.fromSeqno, 1);
  assert.equal(recovered.ranges[1]!.fromSeqno, written.secrets[1]!.fromSeqno);
  assert.equal(recovered.ranges[0]!.toSeqno, written.secrets[1]!.fromSeqno - 1);
  assert.equal(recovered.ranges[1]!.toSeqno, written.lastSeqno);
  for (const range of recovered.ranges) {
    assert.equal(range.recovered, false);
    assert.match(range.reason!, /open 1 of the 2 recovery shares/);
  }
  const entries = await readAll([dir], { secretRanges: recovered.ranges });
  const first = entries[written.appSeqnos[0]! - 1]!;
  assert.equal(first.private, undefined);
  assert.ok(first.privateBytes > 0);
});

test("a secret that no recovery share set covers leaves exactly its seqno range undecrypted", async () => {
  const noShares = join(root, "no-shares-after-rekey");
  const members = new Map([["m0", publicPem(0)]]);
  const w = await writeSignedLedger({ dir: noShares, service, transactions: 6, signatureEvery: 2, recoveryMembers: members, rekeyAfter: [3], sharesAfterRekey: false });
  const recovered = await recoverLedgerSecrets([noShares], [privatePem(0)]);
  assert.deepEqual(recovered.ranges.map((r) => [r.fromSeqno, r.toSeqno, r.recovered]), [
    [1, w.secrets[1]!.fromSeqno - 1, true],
    [w.secrets[1]!.fromSeqno, w.lastSeqno, false],
  ]);
  assert.match(recovered.ranges[1]!.reason!, /no recovery shares/);
  const entries = await readAll([noShares], { secrets: recovered.secrets!, secretRanges: recovered.ranges });
  assert.equal(privateText(entries[w.appSeqnos[0]! - 1]!), privateValue(1));
  const after = entries[w.appSeqnos[4]! - 1]!;
  assert.equal(after.private, undefined);
  assert.match(after.privateError!, new RegExp(`no ledger secret recovered for seqnos ${w.secrets[1]!.fromSeqno}\\.\\.${w.lastSeqno}`));
});

test("the seqno range and table filter select what is read", async () => {
  const entries = await readAll([dir], { fromSeqno: 3, toSeqno: 5, tables: new Set(["public:records"]) });
  assert.deepEqual(entries.map((e) => e.seqno), [3, 4, 5]);
  for (const entry of entries) assert.deepEqual([...entry.public.keys()].filter((n) => n !== "public:records"), []);
});

test("keys and values are UTF-8 text when valid, base64 otherwise", () => {
  assert.deepEqual(encodeBytes(Buffer.from("héllo")), { text: "héllo" });
  assert.deepEqual(encodeBytes(Buffer.from([0xff, 0xfe, 0x00])), { base64: Buffer.from([0xff, 0xfe, 0x00]).toString("base64") });
  assert.deepEqual(encodeBytes(Buffer.from([0xc3])), { base64: "ww==" }, "a truncated multi-byte sequence is not text");
});
