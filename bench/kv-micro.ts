// Micro-benchmark of the KV hot path for the benchmark workload's shape: a 1-key transaction
// (8-byte key, 100-byte value, one private map). Prints ns per operation, best of 3 rounds.
// Run: node dist/bench/kv-micro.js [transactions]
import { Store, serialiseWriteSet, keyToString, type Transaction, type WriteSet } from "../src/kv/index.js";

const txCount = Number(process.argv[2] ?? 200_000);
const map = "records";
const keys = Array.from({ length: txCount }, (_, i) => Buffer.from(`id${String(i).padStart(6, "0")}`));
const value = Buffer.alloc(100, 7);

function timeNs(body: () => void): number {
  const started = process.hrtime.bigint();
  body();
  return Number(process.hrtime.bigint() - started) / txCount;
}

function round(): Record<string, number> {
  const store = new Store();
  // Pre-populate so reads hit existing keys (one bulk transaction).
  const init = store.begin();
  for (const key of keys) init.set(map, key, value);
  store.commit(init, 1);
  store.compact(1);

  const txs: Transaction[] = new Array(txCount);
  const writeSets: WriteSet[] = new Array(txCount);
  const serialised: { publicDomain: Buffer; privateDomain: Buffer }[] = new Array(txCount);
  const figures: Record<string, number> = {};
  let sink = 0;
  figures.keyToString = timeNs(() => {
    for (let i = 0; i < txCount; i++) sink += keyToString(keys[i]!).length;
  });
  figures.begin = timeNs(() => {
    for (let i = 0; i < txCount; i++) txs[i] = store.begin();
  });
  figures.get = timeNs(() => {
    for (let i = 0; i < txCount; i++) sink += txs[i]!.get(map, keys[i]!)!.length;
  });
  figures.set = timeNs(() => {
    for (let i = 0; i < txCount; i++) txs[i]!.set(map, keys[i]!, value);
  });
  // Every commit after the first runs the conflict check (the store moved since begin).
  figures.commit = timeNs(() => {
    for (let i = 0; i < txCount; i++) {
      writeSets[i] = store.commit(txs[i]!, store.currentVersion + 1);
      if (i % 1000 === 999) store.compact(store.currentVersion);
    }
  });
  figures.serialise = timeNs(() => {
    for (let i = 0; i < txCount; i++) serialised[i] = serialiseWriteSet(writeSets[i]!);
  });
  const replica = new Store();
  replica.applySerialised(1, Buffer.alloc(0), serialiseWriteSet({ seqno: 1, maps: [{ name: map, isPublic: false, writes: [[keys[0]!, value]] }] }).privateDomain);
  figures.applySerialised = timeNs(() => {
    for (let i = 0; i < txCount; i++) {
      replica.applySerialised(i + 2, serialised[i]!.publicDomain, serialised[i]!.privateDomain);
      if (i % 1000 === 999) replica.compact(replica.currentVersion);
    }
  });
  figures.endToEnd = timeNs(() => {
    for (let i = 0; i < txCount; i++) {
      const tx = store.begin();
      sink += tx.get(map, keys[i]!)!.length;
      tx.set(map, keys[i]!, value);
      serialiseWriteSet(store.commit(tx, store.currentVersion + 1));
      if (i % 1000 === 999) store.compact(store.currentVersion);
    }
  });
  if (sink === -1) console.log("unreachable");
  return figures;
}

const best: Record<string, number> = {};
for (let r = 0; r < 3; r++) {
  for (const [name, ns] of Object.entries(round())) best[name] = Math.min(best[name] ?? Infinity, ns);
}
console.log(`KV micro-benchmark, ${txCount} one-key transactions (8-byte key, 100-byte value), best of 3:`);
for (const [name, ns] of Object.entries(best)) console.log(`  ${name.padEnd(16)} ${ns.toFixed(0).padStart(6)} ns/op`);
