// The simulated disk of one node: the ledger worker's protocol answered from memory, with the
// faults a host can inflict. Requests are handled one at a time, in order, each taking a random
// time; what was written but not yet fsync'd can be lost (or partly kept) by a crash; a byte of
// a durable entry can be damaged; the disk can fill up. The hard state (term, vote) lives here
// too. The node's own ThreadedLedger talks to it exactly as it talks to the real worker.
import { CocoError } from "../../util/index.js";
import {
  describeEntries, packEntries, unpackEntries, type LedgerWorkerPort, type LedgerWorkerReply, type LedgerWorkerRequest,
} from "../../ledger/index.js";
import type { HardState } from "../../consensus/index.js";
import type { Prng } from "../../consensus/sim/index.js";
import type { HardStateStore } from "../replication.js";
import type { Lifetime, SimClock } from "./clock.js";

export interface DiskRecovery {
  readonly entries: Buffer[];
  /** Entries were cut (a damaged tail): the node may have lost entries it acknowledged. */
  readonly lostEntries: boolean;
  /** The ledger cannot be opened: damage at or below the recorded commit point. */
  readonly refused?: string;
}

export class SimDisk {
  /** Written entries (page cache and platter alike), seqno i at index i - 1. */
  private entries: Buffer[] = [];
  /** Entries the worker holds in memory because the disk was full: written by the next flush that can. */
  private unwritten: Buffer[] = [];
  /** How many of them are fsync'd. */
  private durable = 0;
  /** Highest commit the ledger was told of (the real ledger renames committed chunks). */
  committed = 0;
  full = false;
  /** Seqno of an entry whose bytes were damaged, if any. */
  private damaged: number | undefined;
  /** The ledger was moved away since the node last ran: it lost entries it may have acknowledged. */
  private wiped = false;
  hardState: HardState = { term: 0, votedFor: undefined };
  /** Raised when the node's ledger is asked for something the real ledger refuses. */
  onViolation: (message: string) => void = () => {};

  constructor(private readonly random: Prng, private readonly latencyMsMax: number) {}

  get length(): number { return this.entries.length; }
  entry(seqno: number): Buffer | undefined { return this.entries[seqno - 1]; }

  readonly hardStateStore: HardStateStore = {
    read: () => this.hardState,
    write: (state) => { this.hardState = state; },
  };

  /** A crash: everything not fsync'd may be lost, and a prefix of it may survive. */
  crash(): void {
    this.unwritten = [];
    const volatile = this.entries.length - this.durable;
    const kept = volatile > 0 ? this.random.int(volatile + 1) : 0;
    this.entries.length = this.durable + kept;
    this.durable = this.entries.length;
  }

  /** The host damages one byte of a durable entry (the node must be down). */
  damage(): number | undefined {
    if (this.durable === 0) return undefined;
    this.damaged = 1 + this.random.int(this.durable);
    return this.damaged;
  }

  /**
   * What opening the ledger finds, as the real ledger's recovery treats it: a torn tail is the
   * crash model above (never fsync'd, so never acknowledged); a damaged durable entry makes the
   * ledger refuse to open (LedgerCorrupted) until the operator moves it away.
   */
  recover(): DiskRecovery {
    const damaged = this.damaged;
    if (damaged !== undefined && damaged <= this.entries.length) {
      return { entries: [], lostEntries: false, refused: `entry ${damaged} is damaged (committed seqno ${this.committed})` };
    }
    this.damaged = undefined;
    const lostEntries = this.wiped;
    this.wiped = false;
    return { entries: [...this.entries], lostEntries };
  }

  /** The operator moves the ledger away so the node catches up from its peers. */
  wipe(): void {
    this.wiped = true;
    this.unwritten = [];
    this.entries = [];
    this.durable = 0;
    this.committed = 0;
    this.damaged = undefined;
  }

  /** A port for one process lifetime: the ledger worker of that process. */
  port(clock: SimClock, life: Lifetime): LedgerWorkerPort {
    const listeners: ((reply: LedgerWorkerReply) => void)[] = [];
    let busyUntil = clock.now;
    const queue: LedgerWorkerRequest[] = [];
    const reply = (message: LedgerWorkerReply) => { for (const l of listeners) l(message); };
    return {
      postMessage: (request: LedgerWorkerRequest) => {
        // The worker handles requests strictly in arrival order, each taking a while: every
        // event takes the head of the queue, so a paused process cannot reorder them.
        queue.push(request);
        busyUntil = Math.max(busyUntil, clock.now) + this.random.int(this.latencyMsMax + 1);
        clock.schedule(busyUntil, () => reply(this.handle(queue.shift()!)), life);
      },
      on: ((event: string, listener: (reply: LedgerWorkerReply) => void) => {
        if (event === "message") listeners.push(listener);
      }) as LedgerWorkerPort["on"],
      terminate: async () => 0,
    };
  }

  /**
   * Entries first..last, at most `bytesMax` bytes of them (at least one), as the real ledger reads
   * a range; `unwritten`: also those posted but not yet written. Refused if the first is missing.
   */
  private range(first: number, last: number, bytesMax: number, unwritten: boolean): Buffer[] | CocoError {
    const out: Buffer[] = [];
    let bytes = 0;
    for (let seqno = first; seqno <= last; seqno++) {
      const entry = this.entries[seqno - 1] ?? (unwritten ? this.unwritten[seqno - 1 - this.entries.length] : undefined);
      if (!entry) {
        if (out.length > 0) break;
        return new CocoError("LedgerEntryNotFound", `no entry ${seqno}`, 404);
      }
      if (out.length > 0 && bytes + entry.length > bytesMax) break;
      out.push(entry);
      bytes += entry.length;
    }
    return out;
  }

  private handle(request: LedgerWorkerRequest): LedgerWorkerReply {
    const ok = (extra: object = {}): LedgerWorkerReply => ({
      id: request.id, ok: true, durableSeqno: this.durable, lastSeqno: this.entries.length + this.unwritten.length, committedSeqno: this.committed, ...extra,
    });
    const refuse = (error: CocoError): LedgerWorkerReply => ({ id: request.id, ok: false, code: error.code, message: error.message, status: error.status, isCocoError: true });
    switch (request.op) {
      case "append": {
        const last = this.entries.length + this.unwritten.length;
        if (request.lengths.length > 0 && request.firstSeqno !== last + 1) {
          const message = `ledger append at ${request.firstSeqno} after ${last}`;
          this.onViolation(message);
          return { id: request.id, ok: false, code: "LedgerFailure", message, status: 500, isCocoError: false };
        }
        for (const entry of unpackEntries(request.bytes, request.lengths)) this.unwritten.push(Buffer.from(entry));
        // Like the real worker: on a full disk the entries wait in its memory for a later flush.
        if (this.full) return refuse(new CocoError("LedgerDiskFull", "the simulated disk is full", 507));
        for (const entry of this.unwritten) this.entries.push(entry);
        this.unwritten = [];
        if (request.flush) this.durable = this.entries.length;
        return ok();
      }
      case "commit":
        if (this.full) return refuse(new CocoError("LedgerDiskFull", "the simulated disk is full", 507));
        if (request.seqno > this.committed) this.committed = Math.min(request.seqno, this.durable);
        return ok();
      case "truncate":
        if (request.seqno < this.committed) {
          const message = `truncate to ${request.seqno} below the committed seqno ${this.committed}`;
          this.onViolation(message);
          return refuse(new CocoError("LedgerTruncateBelowCommit", message, 500));
        }
        if (request.seqno < this.entries.length) {
          this.entries.length = request.seqno;
          this.unwritten = [];
        } else {
          this.unwritten.length = Math.min(this.unwritten.length, request.seqno - this.entries.length);
        }
        this.durable = Math.min(this.durable, this.entries.length);
        return ok();
      case "read": {
        const entry = this.entries[request.seqno - 1];
        if (!entry) return refuse(new CocoError("LedgerEntryNotFound", `no entry ${request.seqno}`, 404));
        const { bytes, lengths } = packEntries([entry]);
        return ok({ bytes, lengths });
      }
      case "readRange": {
        const out = this.range(request.first, request.last, request.bytesMax, true);
        if (out instanceof CocoError) return refuse(out);
        const { bytes: packed, lengths } = packEntries(out);
        return ok({ bytes: packed, lengths });
      }
      case "describe": {
        const out = this.range(request.first, request.last, request.bytesMax, false);
        if (out instanceof CocoError) return refuse(out);
        return ok({ described: describeEntries(out, request.first, request.marker) });
      }
      case "open":
      case "close":
        return ok();
    }
  }
}
