// The one rule for a transaction's status (CCF's get_tx_status): every status a node reports,
// for /node/tx, receipts, the JS API and the simulators, comes from this function, so the rule
// that a status never goes from Invalid to Committed, nor from Committed to anything else, is
// argued once, here.

import type { TransactionStatus } from "./types.js";

/** What the rule needs to know of one node's log. */
export interface StatusLog {
  /** Last index this node holds (its own uncommitted tail included). */
  readonly lastIndex: number;
  /** This node's commit index: every entry up to it is committed. */
  readonly commitIndex: number;
  /** Term (view) of the entry at `index` in this node's log, if it holds it; 0 for index 0. */
  termAt(index: number): number | undefined;
}

/**
 * - At or below the commit index the log is final: Committed if the entry there has this view,
 *   Invalid otherwise.
 * - Above it, a transaction of a view older than the view of the last committed entry is
 *   Invalid: every later primary's log holds that committed entry, and terms never decrease
 *   along a log, so no entry of an older view can ever follow it. (Comparing with the node's
 *   current view instead is wrong: a newer view may start without committing anything, and the
 *   old view's entry may still be elected and committed, which flipped statuses Invalid ->
 *   Committed in the fault tests.)
 * - Otherwise Pending if this node holds it, Unknown if not.
 */
export function transactionStatus(view: number, seqno: number, log: StatusLog): TransactionStatus {
  if (!Number.isSafeInteger(view) || !Number.isSafeInteger(seqno) || view <= 0 || seqno <= 0) return "Unknown";
  const commit = log.commitIndex;
  if (seqno <= commit) return log.termAt(seqno) === view ? "Committed" : "Invalid";
  const commitView = log.termAt(commit) ?? 0;
  if (view < commitView) return "Invalid";
  if (seqno <= log.lastIndex && log.termAt(seqno) === view) return "Pending";
  return "Unknown";
}
