// The access log: one JSON line per answered request (pino's line format, so the same tools read
// it as the node log). A request only appends a few fields to an array; the lines are built and
// written in batches, off the request path, every ACCESS_LOG_FLUSH_MS or every
// ACCESS_LOG_BATCH_MAX requests. Paths are endpoint templates (`/app/records/{id}`), never the
// raw path or query: on a TEE the log goes to the untrusted host, and a path can carry data.

/** Where the lines go: a file writer (the node's LogFile) or a stream; one call per batch. */
export interface AccessLogDestination {
  write(text: string): unknown;
}

export interface AccessLogEntry {
  method: string;
  /** The endpoint's template path, or "unmatched". */
  endpoint: string;
  status: number;
  seconds: number;
  bytes: number;
  /** The authentication policy that admitted the caller ("no_auth", "user_cert", ...), "forwarded" or "none". */
  callerKind: string;
  /** A user or member id (public in the ledger's governance tables), when the caller has one. */
  callerId: string | undefined;
}

/** Lines waiting for the next write, at most; beyond it they are dropped and counted. */
export const ACCESS_LOG_PENDING_MAX = 50_000;
/** A batch is written at least this often. */
export const ACCESS_LOG_FLUSH_MS = 200;
/** ... or as soon as it holds this many requests. */
export const ACCESS_LOG_BATCH_MAX = 2_000;
const INFO_LEVEL = 30;

export class AccessLog {
  /** Entries dropped because the queue was full (reported in the next batch). */
  dropped = 0;
  private pending: AccessLogEntry[] = [];
  /** When each pending entry was answered (ms since the epoch). */
  private times: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushQueued = false;
  private closed = false;

  constructor(private readonly destination: AccessLogDestination, private readonly nodeId: string) {}

  record(entry: AccessLogEntry): void {
    if (this.closed) return;
    if (this.pending.length >= ACCESS_LOG_PENDING_MAX) {
      this.dropped++;
      return;
    }
    this.pending.push(entry);
    this.times.push(Date.now());
    if (this.pending.length >= ACCESS_LOG_BATCH_MAX) {
      if (!this.flushQueued) {
        this.flushQueued = true;
        setImmediate(() => this.flush());
      }
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), ACCESS_LOG_FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Writes what is pending as one batch of lines. */
  flush(): void {
    this.flushQueued = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    const entries = this.pending;
    const times = this.times;
    if (entries.length === 0 && this.dropped === 0) return;
    this.pending = [];
    this.times = [];
    const node = JSON.stringify(this.nodeId);
    let text = "";
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      text += `{"level":${INFO_LEVEL},"time":${times[i]},"node_id":${node},"msg":"request","method":${JSON.stringify(e.method)},"path":${JSON.stringify(e.endpoint)},`
        + `"status":${e.status},"ms":${Math.round(e.seconds * 1e6) / 1e3},"bytes":${e.bytes},"caller":${JSON.stringify(e.callerKind)}`
        + `${e.callerId === undefined ? "" : `,"caller_id":${JSON.stringify(e.callerId)}`}}\n`;
    }
    if (this.dropped > 0) {
      text += `{"level":40,"time":${Date.now()},"node_id":${node},"msg":"access log lines dropped: requests came faster than the log was written","dropped":${this.dropped}}\n`;
      this.dropped = 0;
    }
    this.destination.write(text);
  }

  /** Writes what is pending and stops recording. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }
}
