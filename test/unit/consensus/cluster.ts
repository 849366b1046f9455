// A hand-driven cluster for scenario tests: the test decides which node ticks, which messages
// are delivered and who is cut off, so each story below plays out exactly as written.

import { RaftNode, ConsensusError, type Entry, type HardState, type Message, type RaftOptions } from "../../../src/consensus/index.js";

export const electionTicks = 10;

export interface Store {
  hardState: HardState;
  entries: Entry<string>[];
}

export class Cluster {
  readonly nodes = new Map<string, RaftNode<string>>();
  readonly stores = new Map<string, Store>();
  readonly queue: Message<string>[] = [];
  readonly isolated = new Set<string>();
  /** Every message ever sent, for assertions about traffic. */
  readonly sent: Message<string>[] = [];
  /** Entries served from a node's store because they were below its in-memory window. */
  fetchedEntries = 0;

  constructor(readonly bootstrap: string[], private readonly tuning: Partial<RaftOptions> = {}) {
    for (const id of bootstrap) this.start(id);
  }

  node(id: string): RaftNode<string> {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`${id} is not running`);
    return node;
  }

  /** Starts (or restarts from its persisted store) a node. */
  start(id: string, options: { lostEntries?: boolean } = {}): void {
    // Distinct, fixed election timeouts (n1 first, then n2, ...) so stories never split votes.
    const staggered = (Number(id.slice(1)) % 10) / 10;
    const store = this.stores.get(id) ?? { hardState: { term: 0, votedFor: undefined }, entries: [] };
    this.stores.set(id, store);
    const node = new RaftNode<string>(id, this.bootstrap, { hardState: store.hardState, entries: [...store.entries], lostEntries: options.lostEntries === true }, {
      electionTicks, heartbeatTicks: 2, maxEntriesPerAppend: 4, maxInflightAppends: 2, random: () => staggered, ...this.tuning,
    });
    this.nodes.set(id, node);
    this.process(id);
  }

  crash(id: string): void {
    this.nodes.delete(id);
  }

  /** The shell loop: persist, then send, then advance; a new primary signs at once. */
  process(id: string): void {
    const node = this.node(id);
    const store = this.stores.get(id)!;
    for (let round = 0; round < 8; round++) {
      const ready = node.ready();
      if (ready.truncateAfter !== undefined) store.entries.length = Math.min(store.entries.length, ready.truncateAfter);
      for (const entry of ready.entriesToPersist) {
        store.entries.length = entry.index - 1;
        store.entries.push(entry);
      }
      if (ready.hardState) store.hardState = ready.hardState;
      for (const message of ready.messages) {
        this.sent.push(message);
        this.queue.push(message);
      }
      node.advance(ready);
      // Entries below the in-memory window come back from the store (a node's ledger), after advance.
      for (const fetch of ready.fetches ?? []) {
        const entries = store.entries.slice(fetch.fromIndex - 1, fetch.toIndex);
        this.fetchedEntries += entries.length;
        node.appendFetched(fetch.peer, fetch.fromIndex, entries);
      }
      node.compactLog();
      if (ready.roleChange?.role === "Primary") node.propose("signature", true);
      else if (ready.messages.length === 0 && ready.entriesToPersist.length === 0 && (ready.fetches ?? []).length === 0) return;
    }
  }

  tick(id: string, times = 1): void {
    for (let i = 0; i < times; i++) {
      this.node(id).tick();
      this.process(id);
    }
  }

  /** Ticks every running node `times` times, delivering messages after each round. */
  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of this.nodes.keys()) this.tick(id);
      this.deliverAll();
    }
  }

  /** Delivers queued messages (and their consequences) until the network is quiet. */
  deliverAll(maxMessages = 100_000): void {
    for (let delivered = 0; this.queue.length > 0; delivered++) {
      if (delivered > maxMessages) throw new Error("the cluster does not quiesce");
      const message = this.queue.shift()!;
      if (this.isolated.has(message.from) || this.isolated.has(message.to)) continue;
      const target = this.nodes.get(message.to);
      if (!target) continue;
      target.step(message);
      this.process(message.to);
    }
  }

  /** `id` times out first and wins the election. */
  elect(id: string): void {
    for (let i = 0; i < electionTicks * 2 && this.node(id).currentRole === "Backup"; i++) this.tick(id);
    this.deliverAll();
  }

  propose(id: string, payload: string, isSignature = false): number {
    const proposed = this.node(id).propose(payload, isSignature);
    if (proposed instanceof ConsensusError) throw proposed;
    this.process(id);
    return proposed.index;
  }

  /** Writes then a signature, replicated. */
  write(id: string, ...payloads: string[]): number {
    for (const payload of payloads) this.propose(id, payload);
    const index = this.propose(id, "signature", true);
    this.deliverAll();
    return index;
  }

  primaries(): string[] {
    return [...this.nodes].filter(([, n]) => n.currentRole === "Primary").map(([id]) => id);
  }

  payloads(id: string): string[] {
    return this.stores.get(id)!.entries.map((e) => `${e.term}.${e.index}:${e.payload}`);
  }
}
