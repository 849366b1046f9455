// Incremental HTTP/1.1 response parser for the pipelined load client. It sees a byte stream
// carrying many responses back to back and emits each one once its body is complete. Only
// what the benchmark needs: status, content-length or chunked bodies, and the CCF tx id header.

export interface ParsedResponse {
  readonly status: number;
  /** Value of `x-ms-ccf-transaction-id`, or `null` when absent. */
  readonly transactionId: string | null;
  readonly body: Buffer;
}

const HEADER_END = Buffer.from("\r\n\r\n");
const CRLF = Buffer.from("\r\n");
/** A response head larger than this is a protocol error, not something to buffer forever. */
const HEADER_BYTES_MAX = 64 * 1024;

export class HttpResponseParser {
  private buffer: Buffer = Buffer.alloc(0);
  private head: { status: number; transactionId: string | null; contentLength: number; chunked: boolean } | null = null;
  private chunks: Buffer[] = [];

  /** Feeds received bytes; calls `onResponse` for every response completed by them. */
  push(data: Buffer, onResponse: (response: ParsedResponse) => void): void {
    this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
    for (;;) {
      if (this.head === null && !this.parseHead()) return;
      const response = this.head!.chunked ? this.parseChunkedBody() : this.parseLengthBody();
      if (response === null) return;
      this.head = null;
      onResponse(response);
    }
  }

  private parseHead(): boolean {
    const end = this.buffer.indexOf(HEADER_END);
    if (end < 0) {
      if (this.buffer.length > HEADER_BYTES_MAX) throw new Error(`HTTP response head exceeds ${HEADER_BYTES_MAX} bytes`);
      return false;
    }
    // Lower-case the head once and look up the three headers we need; cheaper than
    // splitting every header line for every response.
    const head = this.buffer.toString("latin1", 0, end + 2).toLowerCase();
    this.buffer = this.buffer.subarray(end + HEADER_END.length);
    if (!head.startsWith("http/1.")) throw new Error(`Malformed HTTP status line: ${JSON.stringify(head.slice(0, 40))}`);
    const status = Number(head.slice(9, 12));
    const contentLength = Number(headerValue(head, "\r\ncontent-length:") ?? "0");
    const chunked = (headerValue(head, "\r\ntransfer-encoding:") ?? "").includes("chunked");
    const transactionId = headerValue(head, "\r\nx-ms-ccf-transaction-id:");
    this.head = { status, transactionId, contentLength, chunked };
    return true;
  }

  private parseLengthBody(): ParsedResponse | null {
    const head = this.head!;
    if (this.buffer.length < head.contentLength) return null;
    const body = this.buffer.subarray(0, head.contentLength);
    this.buffer = this.buffer.subarray(head.contentLength);
    return { status: head.status, transactionId: head.transactionId, body };
  }

  private parseChunkedBody(): ParsedResponse | null {
    const head = this.head!;
    for (;;) {
      const lineEnd = this.buffer.indexOf(CRLF);
      if (lineEnd < 0) return null;
      const size = parseInt(this.buffer.toString("latin1", 0, lineEnd), 16);
      if (!Number.isFinite(size)) throw new Error("Malformed chunk size in HTTP response");
      if (size === 0) {
        // Last chunk, then (no trailers expected) the final CRLF.
        if (this.buffer.length < lineEnd + 4) return null;
        this.buffer = this.buffer.subarray(lineEnd + 4);
        const body = Buffer.concat(this.chunks);
        this.chunks = [];
        return { status: head.status, transactionId: head.transactionId, body };
      }
      const chunkEnd = lineEnd + 2 + size + 2;
      if (this.buffer.length < chunkEnd) return null;
      this.chunks.push(this.buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      this.buffer = this.buffer.subarray(chunkEnd);
    }
  }
}

/** Trimmed value of the header starting with `prefix` ("\r\nname:") in a lower-cased head. */
function headerValue(head: string, prefix: string): string | null {
  const start = head.indexOf(prefix);
  if (start < 0) return null;
  const end = head.indexOf("\r\n", start + prefix.length);
  return head.slice(start + prefix.length, end).trim();
}
