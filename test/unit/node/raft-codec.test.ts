// The binary encoding of Raft messages on the node-to-node channel.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeRaftMessage, encodeRaftMessage } from "../../../src/node/raft-codec.js";
import type { Message } from "../../../src/consensus/index.js";

const A = "a".repeat(64);
const B = "b".repeat(64);

test("every message type round-trips", () => {
  const messages: Message<Buffer>[] = [
    {
      type: "AppendEntries", from: A, to: B, term: 7, prevIndex: 41, prevTerm: 6, leaderCommit: 40,
      entries: [
        { term: 7, index: 42, isSignature: false, payload: Buffer.from("entry 42") },
        { term: 7, index: 43, isSignature: false, config: [A, B], payload: Buffer.from("reconfiguration") },
        { term: 7, index: 44, isSignature: true, payload: Buffer.alloc(0) },
      ],
    },
    { type: "AppendEntries", from: A, to: B, term: 7, prevIndex: 44, prevTerm: 7, leaderCommit: 44, entries: [] },
    { type: "AppendEntriesResponse", from: A, to: B, term: 7, success: true, matchIndex: 44, rejectedIndex: 0, hintIndex: 0 },
    { type: "AppendEntriesResponse", from: A, to: B, term: 7, success: false, matchIndex: 0, rejectedIndex: 44, hintIndex: 12 },
    { type: "RequestVote", from: A, to: B, term: 8, preVote: true, leadershipTransfer: false, lastSignatureIndex: 44, lastSignatureTerm: 7 },
    { type: "RequestVote", from: A, to: B, term: 8, preVote: false, leadershipTransfer: true, lastSignatureIndex: 44, lastSignatureTerm: 7 },
    { type: "RequestVoteResponse", from: A, to: B, term: 8, preVote: true, granted: true },
    { type: "RequestVoteResponse", from: A, to: B, term: 8, preVote: false, granted: false },
    { type: "TimeoutNow", from: A, to: B, term: 8 },
    { type: "InstallSnapshot", from: A, to: B, term: 8, snapshotIndex: 5000 },
  ];
  for (const m of messages) assert.deepEqual(decodeRaftMessage(encodeRaftMessage(m), A), m);
});

test("the same batch to two backups is encoded once and decodes to the same entries", () => {
  const entries = [{ term: 3, index: 10, isSignature: true, payload: Buffer.from("sig") }];
  const toB = encodeRaftMessage({ type: "AppendEntries", from: A, to: B, term: 3, prevIndex: 9, prevTerm: 3, leaderCommit: 9, entries });
  const toC = encodeRaftMessage({ type: "AppendEntries", from: A, to: "c".repeat(64), term: 3, prevIndex: 9, prevTerm: 3, leaderCommit: 9, entries });
  assert.deepEqual((decodeRaftMessage(toB, A) as any).entries, entries);
  assert.deepEqual((decodeRaftMessage(toC, A) as any).entries, entries);
});

test("a node cannot speak for another, and malformed frames are refused", () => {
  const bytes = encodeRaftMessage({ type: "TimeoutNow", from: A, to: B, term: 1 });
  assert.throws(() => decodeRaftMessage(bytes, B), /claims to come from/);
  assert.throws(() => decodeRaftMessage(bytes.subarray(0, bytes.length - 3), A), /truncated/);
  assert.throws(() => decodeRaftMessage(Buffer.concat([bytes, Buffer.from([0])]), A), /trailing/);
  assert.throws(() => decodeRaftMessage(Buffer.from([99]), A), /unknown Raft message type/);
  const install = encodeRaftMessage({ type: "InstallSnapshot", from: A, to: B, term: 1, snapshotIndex: 1.5 });
  assert.throws(() => decodeRaftMessage(install, A), /InstallSnapshot names no valid seqno/);
  assert.throws(() => decodeRaftMessage(Buffer.alloc(0), A), /truncated/);
});
