// The safety properties the simulator enforces, checked as each state change happens:
// election safety, log matching, leader completeness, state machine safety, commit durability
// and the client-visible promise that a transaction reported Committed is never lost or changed.

import type { Entry, NodeId } from "../types.js";

export class SafetyViolation extends Error {
  override readonly name = "SafetyViolation";
  constructor(readonly property: string, message: string) {
    super(`${property}: ${message}`);
  }
}

/** Everything that identifies an entry: equal identities mean the same transaction. */
export function identity(entry: Entry<string>): string {
  const config = entry.config ? `C[${entry.config.join(",")}]` : "";
  return `${entry.term}:${entry.isSignature ? "S" : ""}${config}:${entry.payload}`;
}

export class SafetyChecker {
  constructor(private readonly checkDurability = true) {}

  /** term -> the one node that became primary in it. */
  private readonly primaries = new Map<number, NodeId>();
  /** "index:term" -> the entry first seen there and the term of the entry before it. */
  private readonly seen = new Map<string, { identity: string; prevTerm: number }>();
  /** committed[index] = identity of the entry committed there, for ever. */
  private readonly committed: string[] = [""];
  /** Client transactions reported Invalid: they must never become committed. */
  private readonly reportedInvalid = new Map<number, Set<string>>();

  get committedIndex(): number {
    return this.committed.length - 1;
  }

  committedIdentity(index: number): string | undefined {
    return this.committed[index];
  }

  onBecamePrimary(node: NodeId, term: number, log: readonly Entry<string>[]): void {
    const previous = this.primaries.get(term);
    if (previous !== undefined && previous !== node) {
      throw new SafetyViolation("election safety", `${previous} and ${node} both became primary in term ${term}`);
    }
    this.primaries.set(term, node);
    for (let index = 1; index <= this.committedIndex; index++) {
      const entry = log[index - 1];
      if (!entry || identity(entry) !== this.committed[index]) {
        throw new SafetyViolation("leader completeness", `primary ${node} of term ${term} lacks committed ${index} (${this.committed[index]}), has ${entry ? identity(entry) : "nothing"}`);
      }
    }
  }

  /** `log` is the node's persisted log; entries from `fromIndex` on were just written. */
  onPersisted(node: NodeId, log: readonly Entry<string>[], fromIndex: number): void {
    for (let index = fromIndex; index <= log.length; index++) {
      const entry = log[index - 1]!;
      if (entry.index !== index) throw new SafetyViolation("log matching", `${node} stored entry ${entry.index} at position ${index}`);
      const prevTerm = index === 1 ? 0 : log[index - 2]!.term;
      const key = `${index}:${entry.term}`;
      const first = this.seen.get(key);
      if (!first) {
        this.seen.set(key, { identity: identity(entry), prevTerm });
      } else if (first.identity !== identity(entry) || first.prevTerm !== prevTerm) {
        throw new SafetyViolation("log matching", `${node} holds ${identity(entry)} after term ${prevTerm} at ${index}, elsewhere ${first.identity} after term ${first.prevTerm}`);
      }
    }
  }

  /**
   * `node` advanced its commit index from `from` to `to` over its persisted `log`. `stores`
   * and `voters` let us check that a newly committed signature really is on a majority.
   */
  onCommitted(node: NodeId, log: readonly Entry<string>[], from: number, to: number, voters: readonly NodeId[], stores: ReadonlyMap<NodeId, readonly Entry<string>[]>): void {
    if (to < from) throw new SafetyViolation("state machine safety", `${node} commit index went back from ${from} to ${to}`);
    const top = log[to - 1];
    if (to > 0 && (!top || !top.isSignature)) throw new SafetyViolation("commit at signatures", `${node} committed ${to}, which is not a signature`);
    const newlyGlobal = to > this.committedIndex;
    for (let index = from + 1; index <= to; index++) {
      const entry = log[index - 1];
      if (!entry) throw new SafetyViolation("state machine safety", `${node} committed ${index} which it has not persisted`);
      const id = identity(entry);
      const known = this.committed[index];
      if (known === undefined) {
        this.committed[index] = id;
        if (this.reportedInvalid.get(index)?.has(id)) throw new SafetyViolation("committed never lost", `${id} at ${index} was reported Invalid, then committed`);
      } else if (known !== id) {
        throw new SafetyViolation("state machine safety", `${node} committed ${id} at ${index}, but ${known} was committed there`);
      }
    }
    if (newlyGlobal && this.checkDurability) this.checkDurable(node, to, voters, stores);
  }

  private checkDurable(node: NodeId, index: number, voters: readonly NodeId[], stores: ReadonlyMap<NodeId, readonly Entry<string>[]>): void {
    const want = this.committed[index];
    const holders = voters.filter((v) => {
      const entry = stores.get(v)?.[index - 1];
      return entry !== undefined && identity(entry) === want;
    });
    if (holders.length < Math.floor(voters.length / 2) + 1) {
      throw new SafetyViolation("commit durability", `${node} committed ${index} (${want}) persisted only by [${holders.join(",")}] of [${voters.join(",")}]`);
    }
  }

  /** A client was told `status` for its transaction `entry`. */
  onClientReport(entry: Entry<string>, status: "Committed" | "Invalid"): void {
    const id = identity(entry);
    const known = this.committed[entry.index];
    if (status === "Committed" && known !== id) {
      throw new SafetyViolation("committed never lost", `client told ${entry.term}.${entry.index} (${entry.payload}) is Committed, but ${known ?? "nothing"} is committed there`);
    }
    if (status === "Invalid") {
      if (known === id) throw new SafetyViolation("committed never lost", `client told committed ${entry.term}.${entry.index} (${entry.payload}) is Invalid`);
      let set = this.reportedInvalid.get(entry.index);
      if (!set) this.reportedInvalid.set(entry.index, (set = new Set()));
      set.add(id);
    }
  }

  /** At the end: a primary's committed log still holds every committed transaction unchanged. */
  checkFinal(node: NodeId, log: readonly Entry<string>[], commitIndex: number): void {
    if (commitIndex < this.committedIndex) {
      throw new SafetyViolation("committed never lost", `final primary ${node} commit ${commitIndex} is behind ${this.committedIndex}`);
    }
    for (let index = 1; index <= this.committedIndex; index++) {
      const entry = log[index - 1];
      if (!entry || identity(entry) !== this.committed[index]) {
        throw new SafetyViolation("committed never lost", `final primary ${node} has ${entry ? identity(entry) : "nothing"} at committed ${index} (${this.committed[index]})`);
      }
    }
  }
}
