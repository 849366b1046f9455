// Micro-benchmark of the KV hot path for the benchmark workload's shape: a 1-key transaction
// (8-byte key, 100-byte value, one private map, 10k keys in the store). Phases are timed over
// batches of 1000 transactions so objects die young, as in the node. Prints ns per operation.
// Run: node dist/bench/kv-micro.js [transactions]
import { Store, serialiseWriteSet, keyToString, type Transaction, type WriteSet } from "../src/kv/index.js";

const txCount = Number(process.argv[2] ?? 300_000);
const batch = 1000;
const keyCount = 10_000;
const map = "records";
const keys = Array.from({ length: keyCount }, (_, i) => Buffer.from(`id${String(i).padStart(6, "0")}`));
const value = Buffer.alloc(100, 7);
const phases = ["keyToString", "begin", "get", "set", "commit", "serialise", "applySerialised", "endToEnd"] as const;
type Phase = (typeof phases)[number];

function run(): Record<Phase, number> {
  const totalNs = Object.fromEntries(phases.map((p) => [p, 0])) as Record<Phase, number>;
  const time = (phase: Phase, body: () => void): void => {
    const started = process.hrtime.bigint();
    body();
    totalNs[phase] += Number(process.hrtime.bigint() - started);
  };
  const store = new Store();
  const replica = new Store();
  const init = store.begin();
  for (const key of keys) init.set(map, key, value);
  const { publicDomain, privateDomain } = serialiseWriteSet(store.commit(init, 1));
  replica.applySerialised(1, publicDomain, privateDomain);

  const txs: Transaction[] = new Array(batch);
  const writeSets: WriteSet[] = new Array(batch);
  const serialised: { publicDomain: Buffer; privateDomain: Buffer }[] = new Array(batch);
  let sink = 0;
  for (let done = 0; done < txCount; done += batch) {
    const key = (i: number): Buffer => keys[(done + i) % keyCount]!;
    time("keyToString", () => {
      for (let i = 0; i < batch; i++) sink += keyToString(key(i)).length;
    });
    time("begin", () => {
      for (let i = 0; i < batch; i++) txs[i] = store.begin();
    });
    time("get", () => {
      for (let i = 0; i < batch; i++) sink += txs[i]!.get(map, key(i))!.length;
    });
    time("set", () => {
      for (let i = 0; i < batch; i++) txs[i]!.set(map, key(i), value);
    });
    // All but the first commit of a batch run the full conflict check (the store moved on).
    time("commit", () => {
      for (let i = 0; i < batch; i++) writeSets[i] = store.commit(txs[i]!, store.currentVersion + 1);
      store.compact(store.currentVersion);
    });
    time("serialise", () => {
      for (let i = 0; i < batch; i++) serialised[i] = serialiseWriteSet(writeSets[i]!);
    });
    time("applySerialised", () => {
      for (let i = 0; i < batch; i++) replica.applySerialised(replica.currentVersion + 1, serialised[i]!.publicDomain, serialised[i]!.privateDomain);
      replica.compact(replica.currentVersion);
    });
    time("endToEnd", () => {
      for (let i = 0; i < batch; i++) {
        const tx = store.begin();
        sink += tx.get(map, key(i))!.length;
        tx.set(map, key(i), value);
        serialiseWriteSet(store.commit(tx, store.currentVersion + 1));
      }
      store.compact(store.currentVersion);
    });
  }
  if (sink === -1) console.log("unreachable");
  return Object.fromEntries(phases.map((p) => [p, totalNs[p] / txCount])) as Record<Phase, number>;
}

const best = Object.fromEntries(phases.map((p) => [p, Infinity])) as Record<Phase, number>;
for (let r = 0; r < 3; r++) {
  const figures = run();
  for (const p of phases) best[p] = Math.min(best[p], figures[p]);
}
console.log(`KV micro-benchmark: ${txCount} one-key transactions (8-byte key, 100-byte value), best of 3 rounds`);
for (const p of phases) console.log(`  ${p.padEnd(16)} ${best[p].toFixed(0).padStart(6)} ns/op`);
