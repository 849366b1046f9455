// Simulated time for the shell simulator: one queue of events ordered by (time, insertion), and
// per-node schedulers whose timers die with the node (a crash cancels everything it had
// scheduled). Nothing here reads the wall clock, so a seed replays exactly.
import type { Scheduler, TimerHandle } from "../scheduler.js";

interface SimEvent {
  at: number;
  order: number;
  readonly run: () => void;
  readonly owner: Lifetime | undefined;
  cancelled: boolean;
}

/** A node process's lifetime: events it scheduled are dropped once it has crashed. */
export class Lifetime {
  alive = true;
  /** A paused process (SIGSTOP) runs nothing before this time; its events wait for it. */
  pausedUntil = 0;
}

export class SimClock {
  private heap: SimEvent[] = [];
  private order = 0;
  now = 0;
  /** Pending events, for a bound on runaway schedules. */
  get size(): number { return this.heap.length; }

  schedule(at: number, run: () => void, owner?: Lifetime): SimEvent {
    const event: SimEvent = { at: Math.max(at, this.now), order: this.order++, run, owner, cancelled: false };
    this.push(event);
    return event;
  }

  /** Takes the next live event, advancing the clock to it; undefined when none is due by `until`. */
  next(until: number): SimEvent | undefined {
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      if (top.at > until) return undefined;
      this.pop();
      if (top.cancelled || (top.owner !== undefined && !top.owner.alive)) continue;
      if (top.owner !== undefined && top.owner.pausedUntil > top.at) {
        // Stopped process: the event runs when it resumes, after what was already due then.
        top.at = top.owner.pausedUntil;
        top.order = this.order++;
        this.push(top);
        continue;
      }
      this.now = top.at;
      return top;
    }
    return undefined;
  }

  private push(event: SimEvent): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

/** One node's view of simulated time; `phaseMs` offsets its periodic timers from other nodes'. */
export class NodeScheduler implements Scheduler {
  constructor(private readonly clock: SimClock, private readonly life: Lifetime, private readonly phaseMs: number) {}

  now(): number {
    return this.clock.now;
  }

  every(intervalMs: number, callback: () => void): TimerHandle {
    let cancelled = false;
    let event: ReturnType<SimClock["schedule"]> | undefined;
    const arm = (at: number) => {
      event = this.clock.schedule(at, () => {
        if (cancelled) return;
        arm(this.clock.now + intervalMs);
        callback();
      }, this.life);
    };
    arm(this.clock.now + intervalMs + (this.phaseMs % intervalMs));
    return { cancel: () => { cancelled = true; if (event) event.cancelled = true; } };
  }

  after(delayMs: number, callback: () => void): TimerHandle {
    const event = this.clock.schedule(this.clock.now + delayMs, callback, this.life);
    return { cancel: () => { event.cancelled = true; } };
  }

  soon(callback: () => void): void {
    this.clock.schedule(this.clock.now, callback, this.life);
  }
}
