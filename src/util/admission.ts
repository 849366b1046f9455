// Admission control shared by the client port, the node-to-node port and /node/join: counts of
// open connections per remote address, an absolute deadline for the TLS handshake, token
// buckets, and a log that says "refused N more" instead of one line per refused connection.
// Clocks come in as arguments so that tests can drive them.
import type { Server, Socket } from "node:net";
import { CocoError } from "./errors.js";

function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new CocoError("InternalError", `admission: ${message}`, 500);
}

function requirePositiveInteger(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new CocoError("InvalidInput", `${name} must be a positive integer, got ${value}.`, 400);
  }
}

/**
 * Open connections per remote address, with a cap. An address is forgotten when its last
 * connection closes, so the map never holds more entries than there are open connections.
 */
export class AddressCounter {
  private readonly counts = new Map<string, number>();

  constructor(readonly perAddressMax: number) {
    requirePositiveInteger(perAddressMax, "perAddressMax");
  }

  /** Counts one more connection from `address`, or returns false (and counts nothing) at the cap. */
  tryAdd(address: string): boolean {
    const count = this.counts.get(address) ?? 0;
    if (count >= this.perAddressMax) return false;
    this.counts.set(address, count + 1);
    return true;
  }

  remove(address: string): void {
    const count = this.counts.get(address);
    assert(count !== undefined && count > 0, `remove(${address}) without a matching tryAdd`);
    if (count === 1) this.counts.delete(address);
    else this.counts.set(address, count - 1);
  }

  count(address: string): number {
    return this.counts.get(address) ?? 0;
  }

  /** Distinct addresses with an open connection. */
  get addresses(): number {
    return this.counts.size;
  }
}

export interface TokenBucketOptions {
  /** Tokens added per second. */
  refillPerSecond: number;
  /** Most tokens the bucket holds (the burst allowed after a quiet period). */
  capacity: number;
}

/** A token bucket: `take()` succeeds while tokens remain; tokens come back at refillPerSecond. */
export class TokenBucket {
  private tokens: number;
  private updatedMs: number;

  constructor(private readonly options: TokenBucketOptions, nowMs: number) {
    if (!(options.refillPerSecond > 0) || !Number.isFinite(options.refillPerSecond)) {
      throw new CocoError("InvalidInput", `refillPerSecond must be a positive number, got ${options.refillPerSecond}.`, 400);
    }
    requirePositiveInteger(options.capacity, "capacity");
    this.tokens = options.capacity;
    this.updatedMs = nowMs;
  }

  private refill(nowMs: number): void {
    // A clock that steps back adds nothing (and never removes tokens).
    const elapsedMs = Math.max(0, nowMs - this.updatedMs);
    this.tokens = Math.min(this.options.capacity, this.tokens + (elapsedMs * this.options.refillPerSecond) / 1000);
    this.updatedMs = Math.max(this.updatedMs, nowMs);
  }

  /** Takes one token if there is one. */
  take(nowMs: number): boolean {
    this.refill(nowMs);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    assert(this.tokens >= 0 && this.tokens <= this.options.capacity, "tokens stay within [0, capacity]");
    return true;
  }

  /** Whole seconds until the next token (at least 1), for Retry-After. */
  retryAfterSeconds(nowMs: number): number {
    this.refill(nowMs);
    if (this.tokens >= 1) return 1;
    return Math.max(1, Math.ceil((1 - this.tokens) / this.options.refillPerSecond));
  }

  /** True when the bucket is full again: it then says nothing a fresh bucket would not. */
  isFull(nowMs: number): boolean {
    this.refill(nowMs);
    return this.tokens >= this.options.capacity;
  }
}

export interface RateLimiterOptions {
  perAddress: TokenBucketOptions;
  global: TokenBucketOptions;
  /** Buckets kept for distinct addresses; beyond it full buckets are dropped, then the oldest. */
  addressesMax: number;
}

export type RateDecision = { allowed: true } | { allowed: false; scope: "address" | "global"; retryAfterSeconds: number };

/** A token bucket per remote address plus one for everyone, with a bounded number of addresses. */
export class RateLimiter {
  private readonly byAddress = new Map<string, TokenBucket>();
  private readonly global: TokenBucket;

  constructor(private readonly options: RateLimiterOptions, nowMs: number) {
    requirePositiveInteger(options.addressesMax, "addressesMax");
    this.global = new TokenBucket(options.global, nowMs);
  }

  /** Charges one request from `address`: to its own bucket first, then to the global one. */
  take(address: string, nowMs: number): RateDecision {
    const bucket = this.bucketFor(address, nowMs);
    if (!bucket.take(nowMs)) return { allowed: false, scope: "address", retryAfterSeconds: bucket.retryAfterSeconds(nowMs) };
    if (!this.global.take(nowMs)) return { allowed: false, scope: "global", retryAfterSeconds: this.global.retryAfterSeconds(nowMs) };
    return { allowed: true };
  }

  get addresses(): number {
    return this.byAddress.size;
  }

  private bucketFor(address: string, nowMs: number): TokenBucket {
    let bucket = this.byAddress.get(address);
    if (bucket !== undefined) return bucket;
    if (this.byAddress.size >= this.options.addressesMax) this.evict(nowMs);
    bucket = new TokenBucket(this.options.perAddress, nowMs);
    this.byAddress.set(address, bucket);
    assert(this.byAddress.size <= this.options.addressesMax, "address buckets stay within addressesMax");
    return bucket;
  }

  private evict(nowMs: number): void {
    // Full buckets carry no history; dropping them forgives nobody.
    for (const [address, bucket] of this.byAddress) if (bucket.isFull(nowMs)) this.byAddress.delete(address);
    // Otherwise drop the oldest (Map order is insertion order). The global bucket still holds.
    while (this.byAddress.size >= this.options.addressesMax) {
      const oldest = this.byAddress.keys().next().value as string;
      this.byAddress.delete(oldest);
    }
  }
}

export interface AdmissionLogger {
  warn(object: object, message: string): void;
}

/**
 * Logs refused connections at most once per interval: the first at once, later ones summed into
 * the next line, so a flood of connections cannot flood the log too.
 */
export class RateLimitedLog {
  private lastMs = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(private readonly logger: AdmissionLogger, private readonly intervalMs: number, private readonly now: () => number = Date.now) {}

  warn(object: object, message: string): void {
    const nowMs = this.now();
    if (nowMs - this.lastMs < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.lastMs = nowMs;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    this.logger.warn(suppressed > 0 ? { ...object, suppressedSinceLast: suppressed } : object, message);
  }
}

/** One refused-connection log line per this interval at most. */
export const ADMISSION_LOG_INTERVAL_MS = 10_000;

export interface ConnectionAdmissionOptions {
  /** Connections (in the handshake or established) from one remote address beyond this are closed on arrival. */
  perAddressMax: number;
  /** A connection whose TLS handshake has not finished this long after it was accepted is closed. */
  handshakeTimeoutMs: number;
  /** What the listener is called in the log ("client", "node-to-node"). */
  name: string;
  log: RateLimitedLog;
}

/** The key of a connection, the same on its raw socket and on the TLSSocket over it. */
function connectionKey(socket: Socket): string {
  return `${socket.remoteAddress ?? "?"}|${socket.remotePort ?? "?"}`;
}

/**
 * Admission control on a TLS server's raw TCP connections: a cap per remote address, and an
 * absolute handshake deadline (node's own handshakeTimeout is reset by every byte the client
 * trickles). Call `handshakeDone` from 'secureConnection'.
 */
export class ConnectionAdmission {
  readonly perAddress: AddressCounter;
  private readonly handshaking = new Map<string, NodeJS.Timeout>();

  constructor(private readonly options: ConnectionAdmissionOptions) {
    this.perAddress = new AddressCounter(options.perAddressMax);
    requirePositiveInteger(options.handshakeTimeoutMs, "handshakeTimeoutMs");
  }

  /** Installs the 'connection' listener on `server` (a tls.Server or https.Server). */
  attach(server: Server): void {
    server.on("connection", (socket: Socket) => this.onConnection(socket));
  }

  /** Connections accepted whose TLS handshake has not finished yet. */
  get handshakingCount(): number {
    return this.handshaking.size;
  }

  /** Called on 'secureConnection': the handshake finished in time. */
  handshakeDone(socket: Socket): void {
    const key = connectionKey(socket);
    const timer = this.handshaking.get(key);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.handshaking.delete(key);
  }

  private onConnection(socket: Socket): void {
    const address = socket.remoteAddress;
    if (address === undefined) {
      socket.destroy(); // already gone
      return;
    }
    if (!this.perAddress.tryAdd(address)) {
      this.options.log.warn({ listener: this.options.name, remoteAddress: address, perAddressMax: this.options.perAddressMax },
        "refused a connection: too many open connections from this address");
      socket.destroy();
      return;
    }
    const key = connectionKey(socket);
    const timer = setTimeout(() => {
      this.handshaking.delete(key);
      this.options.log.warn({ listener: this.options.name, remoteAddress: address, handshakeTimeoutMs: this.options.handshakeTimeoutMs },
        "closed a connection: TLS handshake not finished in time");
      socket.destroy();
    }, this.options.handshakeTimeoutMs);
    timer.unref();
    this.handshaking.set(key, timer);
    socket.once("close", () => {
      const pending = this.handshaking.get(key);
      if (pending === timer) {
        clearTimeout(timer);
        this.handshaking.delete(key);
      }
      this.perAddress.remove(address);
    });
  }
}
