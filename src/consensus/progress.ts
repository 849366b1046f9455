// The primary's view of one backup: how much of the log it holds and how many AppendEntries
// are in flight to it. Probe sends one message and waits (finding where logs diverge);
// Replicate pipelines up to `maxInflightAppends` batches (flow control for a healthy backup).

export class Progress {
  matchIndex = 0;
  nextIndex: number;
  mode: "Probe" | "Replicate" = "Probe";
  /** In Probe mode: a probe is outstanding; cleared by a response or the next heartbeat. */
  probeSent = false;
  /** Last index of each AppendEntries in flight (Replicate mode), oldest first. */
  readonly inflight: number[] = [];
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** The backup said it withholds its vote until a view above this one commits (it lost entries). */
  withholdingVoteThroughTerm: number | undefined;
  /** First index of an outstanding fetch from the shell's storage (entries below the log's window). */
  fetching: number | undefined;
  /** Primary ticks with batches in flight but no acknowledged progress: past a limit they are presumed lost. */
  stalledTicks = 0;
  /** The commit index the last AppendEntries to this backup let it learn (at most the last entry it reached). */
  commitSent = 0;

  constructor(lastIndex: number) {
    this.nextIndex = lastIndex + 1;
  }

  becomeProbe(): void {
    this.mode = "Probe";
    this.probeSent = false;
    this.inflight.length = 0;
    this.nextIndex = this.matchIndex + 1;
  }

  /** Records an acknowledgement; returns whether matchIndex moved. */
  acknowledge(matchIndex: number): boolean {
    let freed = 0;
    while (freed < this.inflight.length && this.inflight[freed]! <= matchIndex) freed++;
    this.inflight.splice(0, freed);
    const moved = matchIndex > this.matchIndex;
    if (moved) {
      this.matchIndex = matchIndex;
      this.stalledTicks = 0;
    }
    if (this.mode === "Probe") {
      // The probe found where our logs agree: start pipelining right after it.
      this.mode = "Replicate";
      this.probeSent = false;
      this.inflight.length = 0;
      this.nextIndex = this.matchIndex + 1;
    } else if (this.nextIndex <= this.matchIndex) {
      this.nextIndex = this.matchIndex + 1;
    }
    return moved;
  }

  canSend(maxInflight: number): boolean {
    return this.mode === "Probe" ? !this.probeSent : this.inflight.length < maxInflight;
  }
}
