// The one transaction-status rule (CCF's): Committed and Invalid are final, and Invalid is only
// said of what can never commit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { transactionStatus } from "../../../src/consensus/index.js";

/** A log given as the view of each seqno (index 0 is seqno 1). */
function log(views: number[], commitIndex: number) {
  return { lastIndex: views.length, commitIndex, termAt: (i: number) => (i === 0 ? 0 : views[i - 1]) };
}

test("at or below the commit index a transaction is Committed if its view is there, Invalid otherwise", () => {
  const l = log([1, 1, 2, 2], 4);
  assert.equal(transactionStatus(2, 3, l), "Committed");
  assert.equal(transactionStatus(1, 3, l), "Invalid");
  assert.equal(transactionStatus(3, 4, l), "Invalid");
});

test("an older view's transaction above the commit index is not Invalid while no newer view has committed", () => {
  // This node is in view 3 (it voted in an election) but nothing of view 3 committed: the old
  // primary's 2.5 may still be elected and committed. The node must not say Invalid.
  const l = log([1, 1, 2, 2, 3], 4);
  assert.equal(transactionStatus(2, 5, l), "Unknown");
  assert.equal(transactionStatus(2, 6, l), "Unknown");
});

test("once a newer view commits, every older view's transaction above it is Invalid", () => {
  const l = log([1, 1, 2, 3, 3], 5);
  assert.equal(transactionStatus(2, 6, l), "Invalid");
  assert.equal(transactionStatus(3, 6, l), "Unknown");
});

test("a transaction this node holds uncommitted in its view is Pending", () => {
  const l = log([1, 1, 2, 2], 2);
  assert.equal(transactionStatus(2, 4, l), "Pending");
  assert.equal(transactionStatus(3, 4, l), "Unknown");
});

test("malformed ids are Unknown", () => {
  const l = log([1], 1);
  for (const [v, s] of [[0, 1], [1, 0], [-1, 1], [1.5, 1], [Number.NaN, 1]] as const) assert.equal(transactionStatus(v, s, l), "Unknown");
});
