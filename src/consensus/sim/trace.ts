// A bounded trace of what the simulator did, formatted only when someone reads it, so the
// thousands of passing seeds pay for an array write per event and nothing more.

export class TraceRecorder {
  private readonly events: (string | (() => string))[] = [];
  private next = 0;
  private count = 0;

  constructor(private readonly capacity: number, private readonly echo?: (line: string) => void) {}

  record(now: number, line: string | (() => string)): void {
    if (this.echo) this.echo(`t=${now} ${typeof line === "string" ? line : line()}`);
    const stamped = typeof line === "string" ? `t=${now} ${line}` : () => `t=${now} ${line()}`;
    if (this.events.length < this.capacity) this.events.push(stamped);
    else this.events[this.next] = stamped;
    this.next = (this.next + 1) % this.capacity;
    this.count++;
  }

  /** The last `capacity` events, oldest first. */
  lines(): string[] {
    const ordered = this.events.length < this.capacity
      ? this.events
      : [...this.events.slice(this.next), ...this.events.slice(0, this.next)];
    return ordered.map((e) => (typeof e === "string" ? e : e()));
  }

  get total(): number {
    return this.count;
  }
}
