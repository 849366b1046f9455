// The node's pino logger. Logging must never take the node down: the log file's writer drops (and
// counts) lines while the file cannot be written (a full disk), retries, and once it can write
// again the logger notes how many lines were lost. pino's own async file stream (sonic-boom)
// emits ENOSPC as an 'error' event, which unhandled crashes the process, and its exit-time
// flush retries a failing write forever.
import { closeSync, mkdirSync, openSync, write, writeSync } from "node:fs";
import { dirname } from "node:path";
import { pino, type Logger } from "pino";
import type { ResolvedConfig } from "./config.js";

export interface LogFileLimits {
  /** Log text waiting to be written, at most; further lines are dropped and counted. */
  pendingBytesMax?: number;
  /** After a failed write, the next attempt waits this long. */
  retryMs?: number;
}

const DEFAULT_PENDING_BYTES_MAX = 4 * 1024 * 1024;
const DEFAULT_RETRY_MS = 1000;

/** What the log file lost while it could not be written; reported once it can again. */
export interface LogFileGap {
  droppedLines: number;
  writeErrors: number;
  /** The error code of the last failed write, e.g. "ENOSPC", or "queue full" if no write failed. */
  code: string;
}

/**
 * An append-only log file written asynchronously, one write at a time, for pino. A failed write
 * keeps its bytes and is retried after `retryMs`; meanwhile lines queue up to `pendingBytesMax`
 * and beyond that are dropped. Never throws and never emits 'error'.
 */
export class LogFile {
  /** Lines dropped because the queue was full, since the file was opened. */
  droppedLines = 0;
  /** Failed writes since the file was opened. */
  writeErrors = 0;
  /** Called when a write succeeds after failed writes or dropped lines, with what was lost meanwhile. */
  onRecovered: ((gap: LogFileGap) => void) | undefined;
  readonly #fd: number;
  readonly #pendingBytesMax: number;
  readonly #retryMs: number;
  #pending: string[] = [];
  /** Bytes queued or being written (an approximation in UTF-16 units for the queued text). */
  #queuedBytes = 0;
  #inFlight: Buffer | null = null;
  #retryTimer: NodeJS.Timeout | undefined;
  #failure: NodeJS.ErrnoException | null = null;
  #gap = { droppedLines: 0, writeErrors: 0 };
  #drained: (() => void)[] = [];
  #closed = false;
  readonly #onExit = () => this.#writeQueuedSync();

  constructor(path: string, limits: LogFileLimits = {}) {
    this.#pendingBytesMax = limits.pendingBytesMax ?? DEFAULT_PENDING_BYTES_MAX;
    this.#retryMs = limits.retryMs ?? DEFAULT_RETRY_MS;
    mkdirSync(dirname(path), { recursive: true });
    this.#fd = openSync(path, "a");
    process.on("exit", this.#onExit);
  }

  /** True between a failed write and the next successful one. */
  get failing(): boolean {
    return this.#failure !== null;
  }

  /** pino's destination interface: queues one line (pino includes the newline). */
  write(line: string): boolean {
    if (this.#closed) return true;
    if (this.#queuedBytes + line.length > this.#pendingBytesMax) {
      this.droppedLines++;
      this.#gap.droppedLines++;
      return true;
    }
    this.#pending.push(line);
    this.#queuedBytes += line.length;
    if (this.#inFlight === null && this.#retryTimer === undefined) this.#writeNext();
    return true;
  }

  /** Calls back once everything queued is written (or at once if nothing is). */
  flush(callback?: (error?: Error) => void): void {
    if (!callback) return;
    if (this.#inFlight === null && this.#pending.length === 0) callback();
    else this.#drained.push(() => callback());
  }

  /** Writes what it can synchronously (one attempt), then closes the file. */
  close(): void {
    if (this.#closed) return;
    this.#writeQueuedSync();
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    process.off("exit", this.#onExit);
    closeSync(this.#fd);
  }

  #writeNext(): void {
    if (this.#pending.length === 0) {
      const drained = this.#drained;
      this.#drained = [];
      for (const callback of drained) callback();
      return;
    }
    const text = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join("");
    this.#pending = [];
    const bytes = Buffer.from(text);
    // Account in bytes from now on, so that the queue limit covers what is in flight.
    this.#queuedBytes += bytes.length - text.length;
    this.#writeBuffer(bytes);
  }

  #writeBuffer(bytes: Buffer): void {
    this.#inFlight = bytes;
    write(this.#fd, bytes, 0, bytes.length, null, (error, written) => {
      if (this.#closed) return;
      if (error) {
        this.#failed(error);
        return;
      }
      this.#queuedBytes -= written;
      if (written < bytes.length) {
        this.#writeBuffer(bytes.subarray(written));
        return;
      }
      this.#inFlight = null;
      if (this.#failure !== null || this.#gap.droppedLines > 0) this.#recovered();
      this.#writeNext();
    });
  }

  #failed(error: NodeJS.ErrnoException): void {
    this.writeErrors++;
    this.#gap.writeErrors++;
    this.#failure = error;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (!this.#closed && this.#inFlight) this.#writeBuffer(this.#inFlight);
    }, this.#retryMs);
    this.#retryTimer.unref();
  }

  #recovered(): void {
    // No failure: lines came faster than the disk took them and overflowed the queue.
    const gap: LogFileGap = { ...this.#gap, code: this.#failure?.code ?? (this.#failure ? "unknown" : "queue full") };
    this.#failure = null;
    this.#gap = { droppedLines: 0, writeErrors: 0 };
    try {
      this.onRecovered?.(gap);
    } catch {
      // A reporting hook must not break the writer.
    }
  }

  /** At exit (no event loop left): one synchronous attempt, errors ignored, never a retry loop. */
  #writeQueuedSync(): void {
    if (this.#closed) return;
    // An in-flight write that has not failed may still land: writing it again would duplicate it.
    const parts = this.#failure !== null && this.#inFlight ? [this.#inFlight, Buffer.from(this.#pending.join(""))] : [Buffer.from(this.#pending.join(""))];
    this.#pending = [];
    try {
      for (const part of parts) if (part.length > 0) writeSync(this.#fd, part);
    } catch {
      // Nothing more can be done at exit; the lines are lost.
    }
  }
}

/**
 * The node's logger: pino at `logLevel`, to `logFile` through a LogFile (never crashes on a full
 * disk; notes dropped lines once it can write again), or to stdout.
 */
export function createNodeLogger(config: Pick<ResolvedConfig, "logLevel" | "logFile">, limits: LogFileLimits = {}): Logger {
  if (config.logFile === undefined) return pino({ level: config.logLevel });
  const file = new LogFile(config.logFile, limits);
  const logger = pino({ level: config.logLevel }, file);
  file.onRecovered = (gap) =>
    logger.warn({ ...gap, file: config.logFile }, "log file writable again; lines were dropped or delayed while it was not");
  return logger;
}
