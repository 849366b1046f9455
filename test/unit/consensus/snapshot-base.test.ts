// A backup whose log starts after a snapshot (it joined from one) holds nothing at or below the
// snapshot's seqno, but those entries are committed and so the same as the primary's. A primary
// that has not heard from it yet sends heartbeats at its matchIndex, 0: the backup must answer
// from its base, or the primary goes back to entry 1, which the backup can never take (a join
// that never caught up, found by the 1M-transaction join bench).
import { test } from "node:test";
import assert from "node:assert/strict";
import { RaftNode, type AppendEntries, type AppendEntriesResponse, type Message } from "../../../src/consensus/index.js";

const BASE = 100;

function joiner(): RaftNode<string> {
  return new RaftNode<string>("j", ["l", "j"], {
    hardState: { term: 2, votedFor: undefined }, entries: [], base: { index: BASE, term: 1, voters: ["l", "j"] },
  }, { electionTicks: 10, heartbeatTicks: 2, maxEntriesPerAppend: 50, maxInflightAppends: 2, random: () => 0.5 });
}

function append(prevIndex: number, prevTerm: number, from: number, to: number): AppendEntries<string> {
  const entries = [];
  for (let index = from; index <= to; index++) entries.push({ term: index <= BASE ? 1 : 2, index, isSignature: false, payload: `e${index}` });
  return { type: "AppendEntries", from: "l", to: "j", term: 2, prevIndex, prevTerm, entries, leaderCommit: 0 };
}

/** Steps one message and returns the backup's answer to it. */
function answer(node: RaftNode<string>, message: Message<string>): AppendEntriesResponse {
  node.step(message);
  const ready = node.ready();
  node.advance(ready);
  const responses = ready.messages.filter((m): m is AppendEntriesResponse => m.type === "AppendEntriesResponse");
  assert.equal(responses.length, 1);
  return responses[0]!;
}

test("a heartbeat below the snapshot base is answered from the base, not with a match at 0", () => {
  const node = joiner();
  const response = answer(node, append(0, 0, 1, 0));
  assert.equal(response.success, true);
  assert.equal(response.matchIndex, BASE, "the primary goes on from the entry after the snapshot");
});

test("entries at or below the snapshot base are skipped and those after it appended", () => {
  const node = joiner();
  const response = answer(node, append(BASE - 3, 1, BASE - 2, BASE + 2));
  assert.equal(response.success, true);
  assert.equal(response.matchIndex, BASE + 2);
  assert.equal(node.lastIndex, BASE + 2);
});

test("entries from 1 are not an error for a backup that joined from a snapshot", () => {
  const node = joiner();
  const response = answer(node, append(0, 0, 1, 3));
  assert.equal(response.success, true);
  assert.equal(response.matchIndex, BASE);
});
