// The simulated network: every message gets a random delay (so they reorder), may be lost or
// duplicated, and is dropped when a partition separates its ends at send or delivery time.

import type { Message, NodeId } from "../types.js";
import type { Prng } from "./prng.js";

export interface NetworkFaults {
  lossProbability: number;
  duplicateProbability: number;
  delayTicksMax: number;
}

interface InFlight {
  readonly deliverAt: number;
  readonly message: Message<string>;
}

export class SimulatedNetwork {
  private inFlight: InFlight[] = [];
  /** Partition group of each node; nodes talk only within the same group. */
  private readonly group = new Map<NodeId, number>();
  readonly inFlightMax = 20_000;

  constructor(private readonly random: Prng, public faults: NetworkFaults) {}

  get size(): number {
    return this.inFlight.length;
  }

  connected(a: NodeId, b: NodeId): boolean {
    return (this.group.get(a) ?? 0) === (this.group.get(b) ?? 0);
  }

  partition(groups: NodeId[][]): void {
    this.group.clear();
    groups.forEach((members, i) => members.forEach((id) => this.group.set(id, i)));
  }

  heal(): void {
    this.group.clear();
  }

  send(message: Message<string>, now: number): void {
    if (!this.connected(message.from, message.to)) return;
    if (this.random.chance(this.faults.lossProbability)) return;
    if (this.inFlight.length >= this.inFlightMax) return; // a full queue drops, as real networks do
    const copies = this.random.chance(this.faults.duplicateProbability) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.inFlight.push({ deliverAt: now + 1 + this.random.int(this.faults.delayTicksMax), message });
    }
  }

  /** Messages due by `now`, in a random order, still deliverable across the current partition. */
  takeDue(now: number): Message<string>[] {
    const due: Message<string>[] = [];
    const kept: InFlight[] = [];
    for (const item of this.inFlight) {
      if (item.deliverAt <= now) due.push(item.message);
      else kept.push(item);
    }
    this.inFlight = kept;
    for (let i = due.length - 1; i > 0; i--) {
      const j = this.random.int(i + 1);
      [due[i], due[j]] = [due[j]!, due[i]!];
    }
    return due.filter((m) => this.connected(m.from, m.to));
  }
}
