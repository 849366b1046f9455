// Micro-benchmark of the ledger's hot path: append + group-commit flush of 300-byte entries,
// with durability "none" and "fsync". Run: node dist/bench/ledger-micro.js [entries] [batch]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ledger, LedgerSecret, encodeEntry, type Durability } from "../src/ledger/index.js";

const ENTRY_BYTES = 300;
const totalEntries = Number(process.argv[2] ?? 200_000);
const batchEntries = Number(process.argv[3] ?? 300);
const secret = new LedgerSecret(Buffer.alloc(32, 1));
const digest = Buffer.alloc(32);
const keyNonce = Buffer.alloc(16, 3);

function makeEntry(seqno: number): Buffer {
  // Header is 106 bytes; split the rest between public and private (+16 tag) domains.
  return encodeEntry(
    {
      view: 1,
      seqno,
      isSignature: seqno % 1000 === 0,
      claimsDigest: digest,
      commitEvidenceDigest: digest,
      keyNonce,
      publicDomain: Buffer.alloc(100, 2),
      privatePlaintext: Buffer.alloc(ENTRY_BYTES - 106 - 100 - 16, 3),
    },
    secret,
  );
}

async function run(durability: Durability): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "coco-ledger-bench-"));
  const entries = Array.from({ length: totalEntries }, (_, i) => makeEntry(i + 1));
  const { ledger } = await Ledger.open(dir, { durability });
  const started = process.hrtime.bigint();
  let flushes = 0;
  for (let seqno = 1; seqno <= totalEntries; ) {
    const end = Math.min(totalEntries, seqno + batchEntries - 1);
    for (; seqno <= end; seqno++) ledger.append(entries[seqno - 1]!, seqno, seqno % 1000 === 0);
    await ledger.flush();
    flushes++;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await ledger.close();
  await rm(dir, { recursive: true, force: true });
  const perSecond = Math.round(totalEntries / seconds);
  console.log(
    `durability=${durability} entries=${totalEntries} batch=${batchEntries} flushes=${flushes} ` +
      `-> ${perSecond} entries/s, ${((perSecond * ENTRY_BYTES) / 1e6).toFixed(1)} MB/s, ` +
      `${((seconds / flushes) * 1e3).toFixed(2)} ms/flush`,
  );
}

function encodeRate(): void {
  const n = 100_000;
  const started = process.hrtime.bigint();
  for (let i = 1; i <= n; i++) makeEntry(i);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`encodeEntry (${ENTRY_BYTES} B, AES-GCM private domain): ${Math.round(n / seconds)} entries/s`);
}

encodeRate();
await run("none");
await run("fsync");
