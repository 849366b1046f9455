// How the page names recent transactions (src/explorer/static/recent.js): from commit points and
// /node/tx answers only, it gives each of the latest seqnos its view, across view changes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { staticModule } from "./static-modules.js";

const { RecentTransactions, RECENT_TRANSACTIONS_MAX, parseTxId } = await staticModule("recent.js");

/** A ledger whose seqno i (1-based) was written in views[i - 1]; /node/tx as the node answers it. */
function ledger(views: number[]) {
  const asked: string[] = [];
  const status = async (txid: string) => {
    asked.push(txid);
    const { view, seqno } = parseTxId(txid);
    return views[seqno - 1] === view ? "Committed" : "Invalid";
  };
  return { status, asked };
}

test("the latest seqnos get the views they were written in, across view changes", async () => {
  // seqnos 1-5 in view 1, 6-9 in view 2, view 3 had no entries, 10-30 in view 4.
  const views = [...Array(5).fill(1), ...Array(4).fill(2), ...Array(21).fill(4)];
  const { status } = ledger(views);
  const recent = new RecentTransactions(status);
  const listed = await recent.update("4.30");
  assert.equal(listed.length, RECENT_TRANSACTIONS_MAX);
  assert.deepEqual(listed.map((t: { transactionId: string }) => t.transactionId), Array.from({ length: RECENT_TRANSACTIONS_MAX }, (_, i) => `${views[29 - i]}.${30 - i}`));
  const older = new RecentTransactions(status);
  const early = await older.update("2.9");
  assert.deepEqual(early.map((t: { transactionId: string }) => t.transactionId), ["2.9", "2.8", "2.7", "2.6", "1.5", "1.4", "1.3", "1.2", "1.1"]);
});

test("seqnos between two commit points of one view are named without asking the node", async () => {
  const views = Array(60).fill(2);
  const { status, asked } = ledger(views);
  const recent = new RecentTransactions(status);
  await recent.update("2.10");
  asked.length = 0;
  const listed = await recent.update("2.45");
  assert.deepEqual(asked.filter((t) => Number(t.split(".")[1]) > 10), []);
  assert.equal(listed[0].transactionId, "2.45");
  assert.equal(listed[RECENT_TRANSACTIONS_MAX - 1].transactionId, `2.${45 - RECENT_TRANSACTIONS_MAX + 1}`);
});

test("a seqno whose view is beyond the probes is listed without an id rather than guessed", async () => {
  // seqno 1 in view 1, then seqno 2 in view 9 (many elections without entries).
  const { status } = ledger([1, 9]);
  const listed = await new RecentTransactions(status).update("9.2");
  assert.deepEqual(listed, [{ transactionId: "9.2", seqno: 2 }, { transactionId: null, seqno: 1 }]);
});

test("transaction ids are parsed strictly", () => {
  assert.deepEqual(parseTxId(" 3.17 "), { view: 3, seqno: 17 });
  for (const bad of ["3", "3.", ".3", "a.b", "3.17.1", "-1.2"]) assert.throws(() => parseTxId(bad), /is not a transaction id/);
});
