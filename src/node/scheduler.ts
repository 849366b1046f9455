// Time as the node's shell sees it: the clock, timers and "later in this turn" callbacks come
// from here, never from globals, so the deterministic simulator (src/node/sim) can run the real
// engine and consensus loop on a simulated clock and replay any schedule exactly.

export interface TimerHandle {
  cancel(): void;
}

export interface Scheduler {
  /** Milliseconds since some fixed origin (wall clock in production, simulated time in the simulator). */
  now(): number;
  /** Runs `callback` every `intervalMs` until cancelled. Does not keep the process alive. */
  every(intervalMs: number, callback: () => void): TimerHandle;
  /** Runs `callback` once after `delayMs`. Does not keep the process alive. */
  after(delayMs: number, callback: () => void): TimerHandle;
  /** Runs `callback` once the current event-loop turn's I/O is done (node's setImmediate). */
  soon(callback: () => void): void;
}

/** The production scheduler: node's timers and wall clock. */
export const realScheduler: Scheduler = {
  now: () => Date.now(),
  every(intervalMs, callback) {
    const timer = setInterval(callback, intervalMs);
    timer.unref();
    return { cancel: () => clearInterval(timer) };
  },
  after(delayMs, callback) {
    const timer = setTimeout(callback, delayMs);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
  soon(callback) {
    setImmediate(callback);
  },
};
