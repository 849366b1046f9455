// Binary encoding of Raft messages on the node-to-node channel. AppendEntries carries the
// ledger entries themselves (the primary's serialised entries, private domains encrypted), so
// replication never puts plaintext private data on the wire, even inside the TLS channel.
//   header: type u8 | term u64 | from (id, length-prefixed) | to (id, length-prefixed) | fields
import type { Entry, Message } from "../consensus/index.js";
import { CocoError } from "../util/index.js";

const TYPES = ["AppendEntries", "AppendEntriesResponse", "RequestVote", "RequestVoteResponse", "TimeoutNow", "InstallSnapshot"] as const;

class Writer {
  private buf: Buffer;
  constructor(capacity = 256) { this.buf = Buffer.allocUnsafe(capacity); }
  private at = 0;
  private ensure(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }
  u8(v: number): void { this.ensure(1); this.buf[this.at++] = v; }
  num(v: number): void { this.ensure(8); this.buf.writeDoubleBE(v, this.at); this.at += 8; }
  bytes(b: Uint8Array): void { this.ensure(4 + b.length); this.buf.writeUInt32BE(b.length, this.at); this.at += 4; this.buf.set(b, this.at); this.at += b.length; }
  str(s: string): void { this.bytes(Buffer.from(s, "utf8")); }
  raw(b: Uint8Array): void { this.ensure(b.length); this.buf.set(b, this.at); this.at += b.length; }
  done(): Buffer { return this.buf.subarray(0, this.at); }
}

/**
 * The entries part of an AppendEntries. In steady state the primary sends the same batch to
 * every backup: the last encoding is reused when the batch is the same (same first and last
 * index and term; entries with the same index and term are the same entries).
 */
let lastEntries: { first: number; last: number; lastTerm: number; bytes: Buffer } | undefined;

function encodeEntries(entries: readonly Entry<Buffer>[]): Buffer {
  if (entries.length === 0) return EMPTY;
  const first = entries[0]!.index;
  const tail = entries[entries.length - 1]!;
  if (lastEntries && lastEntries.first === first && lastEntries.last === tail.index && lastEntries.lastTerm === tail.term) return lastEntries.bytes;
  let size = 0;
  for (const e of entries) size += e.payload.length + 32;
  const w = new Writer(size);
  for (const e of entries) {
    w.num(e.term); w.num(e.index);
    w.u8((e.isSignature ? 1 : 0) | (e.config !== undefined ? 2 : 0));
    if (e.config !== undefined) w.str(JSON.stringify(e.config));
    w.bytes(e.payload);
  }
  const bytes = w.done();
  lastEntries = { first, last: tail.index, lastTerm: tail.term, bytes };
  return bytes;
}

const EMPTY = Buffer.alloc(0);

class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new CocoError("InvalidRaftMessage", "truncated Raft message", 400);
  }
  u8(): number { this.need(1); return this.buf[this.at++]!; }
  num(): number { this.need(8); const v = this.buf.readDoubleBE(this.at); this.at += 8; return v; }
  bytes(): Buffer { this.need(4); const n = this.buf.readUInt32BE(this.at); this.at += 4; this.need(n); const b = this.buf.subarray(this.at, this.at + n); this.at += n; return b; }
  str(): string { return this.bytes().toString("utf8"); }
  /** Everything not read yet, as one copy the caller owns (the reader is then at its end). */
  takeRestCopy(): Buffer { const rest = Buffer.from(this.buf.subarray(this.at)); this.at = this.buf.length; return rest; }
  end(): void { if (this.at !== this.buf.length) throw new CocoError("InvalidRaftMessage", "trailing bytes in Raft message", 400); }
}

export function encodeRaftMessage(m: Message<Buffer>): Buffer {
  const w = new Writer(m.type === "AppendEntries" ? 256 + encodeEntries(m.entries).length : 256);
  w.u8(TYPES.indexOf(m.type));
  w.num(m.term);
  w.str(m.from);
  w.str(m.to);
  switch (m.type) {
    case "AppendEntries":
      w.num(m.prevIndex); w.num(m.prevTerm); w.num(m.leaderCommit); w.num(m.entries.length);
      w.raw(encodeEntries(m.entries));
      break;
    case "AppendEntriesResponse":
      w.u8((m.success ? 1 : 0) | (m.withholdingVoteThroughTerm !== undefined ? 2 : 0)); w.num(m.matchIndex); w.num(m.rejectedIndex); w.num(m.hintIndex);
      if (m.withholdingVoteThroughTerm !== undefined) w.num(m.withholdingVoteThroughTerm);
      break;
    case "RequestVote":
      w.u8((m.preVote ? 1 : 0) | (m.leadershipTransfer ? 2 : 0)); w.num(m.lastSignatureIndex); w.num(m.lastSignatureTerm);
      break;
    case "RequestVoteResponse":
      w.u8((m.preVote ? 1 : 0) | (m.granted ? 2 : 0));
      break;
    case "TimeoutNow":
      break;
    case "InstallSnapshot":
      w.num(m.snapshotIndex);
      break;
  }
  return w.done();
}

/** Decodes a message; `from` must be the authenticated channel peer (a node cannot speak for another). */
export function decodeRaftMessage(buf: Buffer, authenticatedFrom: string): Message<Buffer> {
  const r = new Reader(buf);
  const type = TYPES[r.u8()];
  if (type === undefined) throw new CocoError("InvalidRaftMessage", "unknown Raft message type", 400);
  const term = r.num();
  const from = r.str();
  const to = r.str();
  if (from !== authenticatedFrom) throw new CocoError("InvalidRaftMessage", `Raft message claims to come from ${from} on ${authenticatedFrom}'s channel`, 400);
  const base = { from, to, term };
  let m: Message<Buffer>;
  switch (type) {
    case "AppendEntries": {
      const prevIndex = r.num(); const prevTerm = r.num(); const leaderCommit = r.num(); const count = r.num();
      const entries: Entry<Buffer>[] = [];
      // The frame may share memory with the channel's receive buffers: copy the entries once per
      // frame (not once per entry); each payload is then a view into that copy.
      const body = count > 0 ? new Reader(r.takeRestCopy()) : r;
      for (let i = 0; i < count; i++) {
        const eterm = body.num(); const index = body.num(); const flags = body.u8();
        const config = flags & 2 ? (JSON.parse(body.str()) as string[]) : undefined;
        const payload = body.bytes();
        const entry: Entry<Buffer> = { term: eterm, index, isSignature: (flags & 1) !== 0, payload };
        if (config) (entry as { config?: readonly string[] }).config = config;
        entries.push(entry);
      }
      body.end();
      m = { type, ...base, prevIndex, prevTerm, leaderCommit, entries };
      break;
    }
    case "AppendEntriesResponse": {
      const flags = r.u8();
      m = { type, ...base, success: (flags & 1) !== 0, matchIndex: r.num(), rejectedIndex: r.num(), hintIndex: r.num() };
      if ((flags & 2) !== 0) (m as { withholdingVoteThroughTerm?: number }).withholdingVoteThroughTerm = r.num();
      break;
    }
    case "RequestVote": {
      const flags = r.u8();
      m = { type, ...base, preVote: (flags & 1) !== 0, leadershipTransfer: (flags & 2) !== 0, lastSignatureIndex: r.num(), lastSignatureTerm: r.num() };
      break;
    }
    case "RequestVoteResponse": {
      const flags = r.u8();
      m = { type, ...base, preVote: (flags & 1) !== 0, granted: (flags & 2) !== 0 };
      break;
    }
    case "TimeoutNow":
      m = { type, ...base };
      break;
    case "InstallSnapshot": {
      const snapshotIndex = r.num();
      if (!Number.isSafeInteger(snapshotIndex) || snapshotIndex < 1) throw new CocoError("InvalidRaftMessage", "InstallSnapshot names no valid seqno", 400);
      m = { type, ...base, snapshotIndex };
      break;
    }
  }
  r.end();
  return m;
}
