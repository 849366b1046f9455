// Historical states (src/node/historical.ts) over a fake engine: a state holds exactly the
// writes of its transaction, ranges are fetched once and served per handle, and every cache
// is bounded. The real engine and ledger are covered end to end in test/e2e/js-app.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Store, serialiseWriteSet } from "../../../src/kv/index.js";
import { HistoricalStates, stateBytes, type HistoricalSource } from "../../../src/node/historical.js";
import { SIGNATURES_MAP, SINGLETON_KEY, encodeSignature } from "../../../src/node/signatures.js";

const ZERO = Buffer.alloc(32);

/** A committed ledger of `count` transactions; seqno s writes records[s % 3] = "v<s>"; every 5th is a signature. */
class FakeEngine implements HistoricalSource {
  readonly store = new Store();
  readonly entries = new Map<number, { isSignature: boolean; publicDomain: Buffer; privatePlain: Buffer }>();
  reads = 0;

  constructor(count: number, readonly view = 2) {
    for (let seqno = 1; seqno <= count; seqno++) {
      const tx = this.store.begin();
      const isSignature = seqno % 5 === 0;
      if (isSignature) {
        tx.set(SIGNATURES_MAP, SINGLETON_KEY, encodeSignature({
          seqno, view, commit_seqno: seqno - 1, commit_view: view, root: "ab".repeat(32), sig: "c2ln", node: "n1", cert: "CERT",
        }));
      } else {
        tx.set("records", Buffer.from(`k${seqno % 3}`), Buffer.from(`v${seqno}`));
        if (seqno === 4) tx.delete("records", Buffer.from("k2"));
        tx.set("public:records", Buffer.from("last"), Buffer.from(String(seqno)));
      }
      const { publicDomain, privateDomain } = serialiseWriteSet(this.store.commit(tx, seqno));
      this.entries.set(seqno, { isSignature, publicDomain, privatePlain: privateDomain });
    }
  }

  get commitTxId() { return { view: this.view, seqno: this.entries.size }; }
  viewAt(seqno: number) { return this.entries.has(seqno) ? this.view : null; }
  async readEntry(seqno: number) {
    this.reads++;
    const entry = this.entries.get(seqno);
    if (entry === undefined) throw new Error(`no seqno ${seqno}`);
    return { view: this.view, seqno, claimsDigest: ZERO, ...entry };
  }
  async receipt(view: number, seqno: number) {
    return {
      cert: "CERT", node_id: "n1", signature: "c2ln", proof: [],
      leaf_components: { write_set_digest: "00", commit_evidence: `ce:${view}.${seqno}:00`, claims_digest: "00" },
    };
  }
}

const text = (b: Buffer | null | undefined) => (b === null || b === undefined ? b : b.toString());

test("a state holds exactly the writes of its transaction, deletions included, with its receipt", async () => {
  const states = new HistoricalStates(new FakeEngine(9));
  const state = await states.stateAt(2, 4);
  assert.equal(state.transactionId, "2.4");
  assert.equal(state.seqno, 4);
  assert.deepEqual([...state.maps.keys()].sort(), ["public:records", "records"]);
  const records = state.maps.get("records")!;
  assert.equal(text(records.get("k1")), "v4");
  assert.equal(records.get("k2"), null, "a deletion by this transaction");
  assert.equal(records.has("k0"), false, "written by other transactions only");
  assert.equal((state.receipt as { is_signature_transaction: boolean }).is_signature_transaction, false);
});

test("a signature transaction's receipt is CCF's signature receipt: the signed root, no proof", async () => {
  const state = await new HistoricalStates(new FakeEngine(9)).stateAt(2, 5);
  assert.deepEqual(state.receipt, { signature: "c2ln", cert: "CERT", node_id: "n1", is_signature_transaction: true, root_hex: "ab".repeat(32) });
});

test("stateAt refuses uncommitted seqnos and the wrong view, and caches what it read", async () => {
  const engine = new FakeEngine(9);
  const states = new HistoricalStates(engine, { statesCachedMax: 2 });
  await assert.rejects(states.stateAt(2, 10), { code: "TransactionPendingOrUnknown" });
  await assert.rejects(states.stateAt(1, 3), { code: "TransactionInvalid" });
  await states.stateAt(2, 1);
  await states.stateAt(2, 1);
  assert.equal(engine.reads, 1);
  await states.stateAt(2, 2);
  await states.stateAt(2, 3); // evicts seqno 1, the least recently used
  await states.stateAt(2, 1);
  assert.equal(engine.reads, 4);
});

test("getStateRange answers null while it fetches, then the whole range, until the handle is dropped", async () => {
  const states = new HistoricalStates(new FakeEngine(12));
  assert.equal(states.getStateRange(7, 2, 11, 60), null);
  await states.whenFetched(7);
  const range = states.getStateRange(7, 2, 11, 60)!;
  assert.deepEqual(range.map((s) => s.transactionId), ["2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "2.9", "2.10", "2.11"]);
  assert.equal(states.dropCachedStates(7), true);
  assert.equal(states.dropCachedStates(7), false);
  assert.equal(states.getStateRange(7, 2, 11, 60), null, "dropped: fetched again");
});

test("a handle asking for another range starts over; an uncommitted range is null without fetching", async () => {
  const states = new HistoricalStates(new FakeEngine(12));
  states.getStateRange(1, 1, 3, 60);
  await states.whenFetched(1);
  assert.equal(states.getStateRange(1, 1, 4, 60), null);
  assert.equal(states.getStateRange(2, 10, 13, 60), null);
  assert.equal(states.whenFetched(2), undefined);
});

test("handles expire after secondsUntilExpiry without a call", async () => {
  let now = 0;
  const states = new HistoricalStates(new FakeEngine(6), {}, () => now);
  states.getStateRange(1, 1, 2, 10);
  await states.whenFetched(1);
  now = 9_000;
  assert.equal(states.getStateRange(1, 1, 2, 10)?.length, 2, "each call renews the expiry");
  now = 19_001;
  assert.equal(states.getStateRange(1, 1, 2, 10), null);
});

test("ranges are bounded: length per call, handles alive, states held together", async () => {
  const states = new HistoricalStates(new FakeEngine(40), { rangeSeqnosMax: 10, handlesMax: 3, rangeStatesTotalMax: 15 });
  assert.throws(() => states.getStateRange(1, 1, 11, 60), /at most 10 seqnos/);
  assert.throws(() => states.getStateRange(1, 5, 4, 60), /before startSeqno/);
  assert.throws(() => states.getStateRange(-1, 1, 2, 60), RangeError);
  states.getStateRange(1, 10, 15, 60);
  states.getStateRange(2, 20, 25, 60);
  states.getStateRange(3, 1, 2, 60); // 3 handles, 14 states: all fit
  states.getStateRange(4, 30, 39, 60); // a 4th handle drops the least recently used (1); 10 more states drop 2 as well
  assert.equal(states.dropCachedStates(1), false);
  assert.equal(states.dropCachedStates(2), false);
  assert.equal(states.dropCachedStates(3), true);
  assert.equal(states.dropCachedStates(4), true);
});

test("the state cache is bounded in bytes too: large states push out the least recently used", async () => {
  const engine = new FakeEngine(9);
  const one = stateBytes(await new HistoricalStates(new FakeEngine(9)).stateAt(2, 1));
  // Room for two states of this size, whatever the count limit.
  const states = new HistoricalStates(engine, { statesCachedMax: 100, statesCachedBytesMax: 2 * one + one / 2 });
  await states.stateAt(2, 1);
  await states.stateAt(2, 2);
  assert.equal(engine.reads, 2);
  await states.stateAt(2, 3); // a third: seqno 1, the least recently used, goes
  assert.ok(states.cachedStatesBytes <= 2 * one + one / 2, `${states.cachedStatesBytes} bytes cached`);
  await states.stateAt(2, 3);
  await states.stateAt(2, 2);
  assert.equal(engine.reads, 3, "2 and 3 were still cached");
  await states.stateAt(2, 1);
  assert.equal(engine.reads, 4, "1 had been evicted");
});

test("a range whose states exceed the bytes all ranges may hold is refused by name; ranges together stay under it", async () => {
  const sizer = new HistoricalStates(new FakeEngine(40));
  const bytesOf = async (start: number, end: number) => {
    let total = 0;
    for (let seqno = start; seqno <= end; seqno++) total += stateBytes(await sizer.stateAt(2, seqno));
    return total;
  };
  const limit = (await bytesOf(1, 10)) + 10;
  const states = new HistoricalStates(new FakeEngine(40), { rangeBytesTotalMax: limit });
  assert.equal(states.getStateRange(1, 1, 20, 60), null);
  await states.whenFetched(1);
  assert.throws(() => states.getStateRange(1, 1, 20, 60), /seqnos 1\.\.20 take \d+ bytes, more than the \d+ bytes all ranges may hold; ask for a shorter range/);
  assert.equal(states.getStateRange(1, 1, 20, 60), null, "asked again: fetched again");
  states.getStateRange(2, 1, 6, 60);
  await states.whenFetched(2);
  states.getStateRange(3, 11, 16, 60); // together over the limit: handle 2, the least recently used, goes
  await states.whenFetched(3);
  assert.equal(states.getStateRange(3, 11, 16, 60)?.length, 6);
  assert.equal(states.dropCachedStates(2), false);
});
