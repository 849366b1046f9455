// Wire framing of node-to-node channels: 4-byte big-endian length (of type + payload), 1-byte
// type, payload. The parser is fed TLS records of any size and split and yields whole frames,
// copying only frames that straddle chunks (each byte at most once), so a 20 MiB AppendEntries
// arriving in 16 KiB pieces costs one copy and no quadratic re-concatenation.
import { CocoError } from "../util/index.js";

/** Length field (4) + type (1). */
export const FRAME_HEADER_BYTES = 5;
export const FRAME_TYPE_MAX = 255;

/** A peer broke the framing rules; the connection it came on must be closed. */
export class FrameProtocolError extends CocoError {
  constructor(message: string) {
    super("ChannelProtocolError", message, 400);
    this.name = "FrameProtocolError";
  }
}

/** The five bytes that precede a payload of `payloadBytes` bytes. */
export function encodeFrameHeader(type: number, payloadBytes: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES); // pooled: cheap for a 5-byte buffer
  header.writeUInt32BE(payloadBytes + 1, 0);
  header[4] = type;
  return header;
}

/** A whole frame in one buffer (tests and tools; the channel itself never copies the payload). */
export function encodeFrame(type: number, payload: Uint8Array): Buffer {
  return Buffer.concat([encodeFrameHeader(type, payload.length), payload]);
}

/**
 * Incremental frame parser. `push()` throws FrameProtocolError on a zero length or a length
 * above `frameBytesMax` (checked as soon as the header is complete, before buffering the body).
 * Payloads handed to `onFrame` may share memory with the pushed chunks.
 */
export class FrameParser {
  // Received bytes not yet consumed: chunks[chunkHead..] with the first starting at firstOffset.
  private chunks: Buffer[] = [];
  private chunkHead = 0;
  private firstOffset = 0;
  private bufferedBytes = 0;
  // The frame whose header has been read: payload length, or -1 while waiting for a header.
  private payloadBytes = -1;
  private type = 0;

  constructor(
    private readonly frameBytesMax: number,
    private readonly onFrame: (type: number, payload: Buffer) => void,
  ) {}

  /** Bytes received but not yet returned as frames. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    for (;;) {
      if (this.payloadBytes < 0) {
        if (this.bufferedBytes < FRAME_HEADER_BYTES) return;
        const header = this.take(FRAME_HEADER_BYTES);
        const length = header.readUInt32BE(0);
        if (length < 1) throw new FrameProtocolError("Received a frame with length 0; a frame holds at least its type byte.");
        if (length > this.frameBytesMax) {
          throw new FrameProtocolError(`Received a frame of ${length} bytes, above frameBytesMax (${this.frameBytesMax}).`);
        }
        this.type = header[4]!;
        this.payloadBytes = length - 1;
      }
      if (this.bufferedBytes < this.payloadBytes) return;
      const payload = this.take(this.payloadBytes);
      this.payloadBytes = -1;
      this.onFrame(this.type, payload);
    }
  }

  /** Consumes `n` buffered bytes (n <= bufferedBytes): a view when they lie in one chunk, else one copy. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    this.bufferedBytes -= n;
    const first = this.chunks[this.chunkHead]!;
    if (first.length - this.firstOffset >= n) {
      const view = first.subarray(this.firstOffset, this.firstOffset + n);
      this.firstOffset += n;
      if (this.firstOffset === first.length) this.dropFirstChunk();
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[this.chunkHead]!;
      const count = Math.min(n - filled, chunk.length - this.firstOffset);
      chunk.copy(out, filled, this.firstOffset, this.firstOffset + count);
      filled += count;
      this.firstOffset += count;
      if (this.firstOffset === chunk.length) this.dropFirstChunk();
    }
    return out;
  }

  private dropFirstChunk(): void {
    this.chunks[this.chunkHead] = undefined as unknown as Buffer; // release the memory now
    this.chunkHead += 1;
    this.firstOffset = 0;
    if (this.chunkHead === this.chunks.length) {
      this.chunks = [];
      this.chunkHead = 0;
    }
  }
}
