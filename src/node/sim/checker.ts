// What the shell simulator asserts after every event, over the real engines' own answers:
// - a committed seqno holds the same entry on every node, forever (no committed write lost,
//   rolled back or changed; every pair of ledgers agrees on its committed prefix);
// - a status never goes from Invalid to Committed, nor from Committed to anything else, on any
//   node, across its restarts too (unless an operator wiped its ledger), and no transaction is
//   Committed on one node and Invalid on another;
// - at the end, every write a client saw Committed reads back with its value on every node.
import { createHash } from "node:crypto";
import type { TransactionEngine } from "../engine.js";

export class ShellViolation extends Error {
  constructor(readonly property: string, message: string) {
    super(`${property}: ${message}`);
  }
}

interface TrackedWrite {
  readonly key: string;
  readonly value: string;
  readonly view: number;
  readonly seqno: number;
  committed: boolean;
  invalid: boolean;
  /** Last status per node lifetime (node name -> status). */
  readonly seen: Map<string, string>;
}

const TRACKED_MAX = 256;

export class ShellChecker {
  private readonly committedDigests: string[] = [];
  private readonly commitSeen = new Map<string, number>();
  private readonly writes: TrackedWrite[] = [];
  private readonly settled: TrackedWrite[] = [];
  private failure: ShellViolation | undefined;

  constructor(private readonly note: (line: string) => void) {}

  get committedSeqno(): number { return this.committedDigests.length; }

  fail(property: string, message: string): void {
    this.failure ??= new ShellViolation(property, message);
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  /**
   * A node (re)starts. What it reported before a crash still binds it: a restart must not turn a
   * Committed answer into Pending (its commit point on disk covers every Committed it gave). Only
   * an operator wiping its ledger (`lostEntries`) releases it.
   */
  onStart(node: string, lostEntries: boolean): void {
    this.commitSeen.set(node, 0);
    if (lostEntries) for (const w of this.writes) w.seen.delete(node);
  }

  onCrash(node: string): void {
    this.commitSeen.delete(node);
  }

  /** A node's engine committed up to `seqno`: each newly committed entry must match every other node's. */
  onCommit(node: string, seqno: number, entryAt: (seqno: number) => Buffer | undefined): void {
    const from = this.commitSeen.get(node) ?? 0;
    if (seqno < from) this.fail("commit monotonic", `${node} commit went back from ${from} to ${seqno}`);
    for (let i = from + 1; i <= seqno; i++) {
      const entry = entryAt(i);
      if (!entry) { this.fail("committed entry held", `${node} committed ${i} without holding it`); return; }
      const digest = createHash("sha256").update(entry).digest("hex");
      const known = this.committedDigests[i - 1];
      if (known === undefined) {
        if (i !== this.committedDigests.length + 1) this.fail("committed prefix", `${node} committed ${i} before anyone committed ${this.committedDigests.length + 1}`);
        this.committedDigests.push(digest);
      } else if (known !== digest) {
        this.fail("committed entry agreement", `${node} committed a different entry at seqno ${i}`);
        return;
      }
    }
    this.commitSeen.set(node, Math.max(from, seqno));
    this.note(`${node} commit ${from} -> ${seqno}`);
  }

  onWrite(key: string, value: string, view: number, seqno: number): void {
    this.writes.push({ key, value, view, seqno, committed: false, invalid: false, seen: new Map() });
    if (this.writes.length > TRACKED_MAX) this.writes.shift();
  }

  /** Asks every live node for the status of every tracked write. */
  pollStatuses(nodes: readonly { name: string; engine: TransactionEngine }[]): void {
    for (let i = this.writes.length - 1; i >= 0; i--) {
      const w = this.writes[i]!;
      let everywhere = nodes.length > 0;
      for (const { name, engine } of nodes) {
        const status = engine.status(w.view, w.seqno);
        const before = w.seen.get(name);
        if (before === "Committed" && status !== "Committed") this.fail("status flip", `${name} reported ${w.view}.${w.seqno} Committed, then ${status}`);
        if (before === "Invalid" && status !== "Invalid") this.fail("status flip", `${name} reported ${w.view}.${w.seqno} Invalid, then ${status}`);
        w.seen.set(name, status);
        if (status === "Committed") w.committed = true;
        if (status === "Invalid") w.invalid = true;
        if (status !== "Committed" && status !== "Invalid") everywhere = false;
        if (w.committed && w.invalid) this.fail("status agreement", `${w.view}.${w.seqno} was reported both Committed and Invalid (last by ${name})`);
      }
      if (everywhere) {
        this.writes.splice(i, 1);
        if (w.committed) this.settled.push(w);
      }
    }
  }

  /** After the quiet period: every write seen Committed reads back on every node. */
  checkFinal(nodes: readonly { name: string; engine: TransactionEngine }[]): void {
    this.pollStatuses(nodes);
    for (const w of [...this.settled, ...this.writes.filter((x) => x.committed)]) {
      for (const { name, engine } of nodes) {
        const status = engine.status(w.view, w.seqno);
        if (status !== "Committed") this.fail("committed write lost", `${name} reports ${w.view}.${w.seqno} ${status}`);
        const value = engine.store.begin().get("records", Buffer.from(w.key));
        if (value?.toString("utf8") !== w.value) this.fail("committed write lost", `${name} reads ${w.key} as ${value?.toString("utf8")}, not ${w.value}`);
      }
    }
    this.throwIfFailed();
  }
}
