// Errors that cross layer boundaries. Every error a person may see carries a stable
// code (CCF's code where CCF has one) and a message that says what to do next.

export class CocoError extends Error {
  /** Stable machine-readable code, e.g. "InvalidInput", "TransactionConflict". */
  readonly code: string;
  /** HTTP status the RPC layer answers with when this error escapes a handler. */
  readonly status: number;
  /** Extra response headers the RPC layer sends with the error (e.g. `www-authenticate` on a 401). */
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(code: string, message: string, status = 500, options?: { cause?: unknown; headers?: Record<string, string> }) {
    super(message, options);
    this.name = "CocoError";
    this.code = code;
    this.status = status;
    this.headers = options?.headers;
  }
}

/** Invariant check: crash loudly on state that must never happen (TigerBeetle style). */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
