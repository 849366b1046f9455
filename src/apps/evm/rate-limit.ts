// Per-user request rate limits of the EVM endpoint: a token bucket per user (refilled at a
// steady rate, holding at most a burst). In memory on the node that runs the request (the
// primary: /app/evm is forwarded there), like geth's and hosted providers' limits: a restart
// forgets them, which only ever lets a user through.

/** Users whose buckets are remembered; a full bucket carries no information and is dropped first. */
export const RATE_LIMIT_USERS_MAX = 10_000;

export interface RateLimitOptions {
  /** Sustained requests per second per user (0 disables the limit). */
  readonly requestsPerSecond: number;
  /** Requests a user may make at once after being idle (the bucket's size). */
  readonly burst: number;
}

/** 1,000 requests/s and bursts of 2,000: far above a dapp's or a wallet's needs, and above the ERC-20 benchmark's per-user load. */
export const RATE_LIMIT_DEFAULT: RateLimitOptions = Object.freeze({ requestsPerSecond: 1_000, burst: 2_000 });

interface Bucket { tokens: number; updatedMs: number }

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly options: RateLimitOptions = RATE_LIMIT_DEFAULT, private readonly nowMs: () => number = Date.now) {
    if (!(options.requestsPerSecond >= 0) || !Number.isFinite(options.requestsPerSecond)) throw new Error(`requests per second must be a finite number >= 0, got ${options.requestsPerSecond}`);
    if (!(options.burst >= 1) || !Number.isFinite(options.burst)) throw new Error(`burst must be a finite number >= 1, got ${options.burst}`);
  }

  /** Takes a token of `user`'s bucket: 0 if granted, else the seconds until one is available. */
  take(user: string): number {
    if (this.options.requestsPerSecond === 0) return 0;
    const now = this.nowMs();
    let bucket = this.buckets.get(user);
    if (bucket === undefined) {
      if (this.buckets.size >= RATE_LIMIT_USERS_MAX) this.forgetFullBuckets(now);
      bucket = { tokens: this.options.burst, updatedMs: now };
      this.buckets.set(user, bucket);
    } else {
      const refill = ((now - bucket.updatedMs) / 1000) * this.options.requestsPerSecond;
      bucket.tokens = Math.min(this.options.burst, bucket.tokens + Math.max(0, refill));
      bucket.updatedMs = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return (1 - bucket.tokens) / this.options.requestsPerSecond;
  }

  private forgetFullBuckets(now: number): void {
    for (const [user, bucket] of this.buckets) {
      const tokens = bucket.tokens + ((now - bucket.updatedMs) / 1000) * this.options.requestsPerSecond;
      if (tokens >= this.options.burst) this.buckets.delete(user);
    }
    // Still full of busy users: forget the oldest (Map order is insertion order).
    for (const user of this.buckets.keys()) {
      if (this.buckets.size < RATE_LIMIT_USERS_MAX) break;
      this.buckets.delete(user);
    }
  }
}
