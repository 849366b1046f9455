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

/**
 * Runs a primary whose log starts after a snapshot and a backup holding less (empty: a wiped
 * ledger) until the primary has told the backup to install a snapshot, or `ticks` run out.
 */
function primaryFromSnapshotAndEmptyBackup() {
  const options = { electionTicks: 10, heartbeatTicks: 2, maxEntriesPerAppend: 50, maxInflightAppends: 2, random: () => 0.5 };
  const primary = new RaftNode<string>("l", ["b", "l"], { hardState: { term: 2, votedFor: undefined }, entries: [], base: { index: BASE, term: 1, voters: ["b", "l"] } }, options);
  const backup = new RaftNode<string>("b", ["b", "l"], { hardState: { term: 2, votedFor: undefined }, entries: [] }, options);
  const nodes = new Map([["l", primary], ["b", backup]]);
  const required: { primary: string; index: number }[] = [];
  const sent: Message<string>[] = [];
  const run = (ticks: number) => {
    for (let t = 0; t < ticks; t++) {
      primary.tick();
      // The backup hears the primary; it does not campaign itself (its timer is kept from firing).
      if (primary.currentRole !== "Primary") backup.tick();
      let pending: Message<string>[] = [];
      for (const node of nodes.values()) {
        const ready = node.ready();
        node.advance(ready);
        pending.push(...ready.messages);
        if (ready.snapshotRequired !== undefined) required.push(ready.snapshotRequired);
      }
      while (pending.length > 0) {
        const next: Message<string>[] = [];
        for (const m of pending) {
          sent.push(m);
          nodes.get(m.to)!.step(m);
        }
        for (const node of nodes.values()) {
          const ready = node.ready();
          node.advance(ready);
          next.push(...ready.messages);
          if (ready.snapshotRequired !== undefined) required.push(ready.snapshotRequired);
        }
        pending = next;
      }
    }
  };
  return { primary, backup, required, sent, run };
}

test("a primary whose log starts after a snapshot tells a backup it cannot catch up to install one; the backup's shell hears it", () => {
  const { primary, required, sent, run } = primaryFromSnapshotAndEmptyBackup();
  run(60);
  assert.equal(primary.currentRole, "Primary");
  assert.ok(sent.some((m) => m.type === "InstallSnapshot" && m.to === "b" && m.snapshotIndex === BASE), "InstallSnapshot sent with the heartbeats");
  assert.ok(required.length > 0, "the backup's Ready asks its shell for a snapshot");
  assert.ok(required.every((r) => r.primary === "l" && r.index === BASE));
  // Nothing in consensus changes by itself: the backup still holds nothing, and is still told.
  assert.ok(!sent.some((m) => m.type === "AppendEntries" && m.to === "b" && m.entries.length > 0), "no entries it could not take");
});

test("an InstallSnapshot is ignored from a node that is not this backup's primary, and once the backup's commit reached the snapshot", () => {
  const node = joiner();
  // From its primary, but the backup holds the snapshot's state itself (its own base).
  node.step(append(BASE, 1, BASE + 1, BASE + 1));
  node.advance(node.ready());
  node.step({ type: "InstallSnapshot", from: "l", to: "j", term: 2, snapshotIndex: BASE });
  assert.equal(node.ready().snapshotRequired, undefined, "its commit point is at the base already");
  const fresh = new RaftNode<string>("j", ["l", "j", "x"], { hardState: { term: 2, votedFor: undefined }, entries: [] },
    { electionTicks: 10, heartbeatTicks: 2, maxEntriesPerAppend: 50, maxInflightAppends: 2, random: () => 0.5 });
  fresh.step({ type: "InstallSnapshot", from: "x", to: "j", term: 2, snapshotIndex: BASE });
  assert.equal(fresh.ready().snapshotRequired, undefined, "not from the primary it follows");
});
