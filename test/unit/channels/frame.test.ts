// Channel framing: 4-byte big-endian length of (type + payload), 1-byte type, payload; the
// parser must yield the same frames however the byte stream is cut into chunks.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeFrame, FrameParser, FrameProtocolError } from "../../../src/channels/index.js";

interface Frame {
  type: number;
  payload: Buffer;
}

function parseAll(chunks: Buffer[], frameBytesMax = 1 << 20): Frame[] {
  const frames: Frame[] = [];
  const parser = new FrameParser(frameBytesMax, (type, payload) => frames.push({ type, payload: Buffer.from(payload) }));
  for (const chunk of chunks) parser.push(chunk);
  assert.equal(parser.pendingBytes, 0, "no bytes left over after whole frames");
  return frames;
}

const sample: Frame[] = [
  { type: 1, payload: Buffer.from("hello") },
  { type: 0, payload: Buffer.alloc(0) },
  { type: 255, payload: Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) },
  { type: 7, payload: Buffer.alloc(300, 0xab) },
];
const sampleBytes = Buffer.concat(sample.map((frame) => encodeFrame(frame.type, frame.payload)));

test("a frame is its length (type + payload) in 4 big-endian bytes, the type byte, then the payload", () => {
  assert.deepEqual([...encodeFrame(9, Buffer.from("ab"))], [0, 0, 0, 3, 9, 0x61, 0x62]);
});

test("many frames in one chunk are all parsed, in order", () => {
  assert.deepEqual(parseAll([sampleBytes]), sample);
});

test("frames fed one byte at a time are parsed the same", () => {
  const chunks = [...sampleBytes].map((byte) => Buffer.from([byte]));
  assert.deepEqual(parseAll(chunks), sample);
});

test("frames cut at every single position are parsed the same", () => {
  for (let cut = 0; cut <= sampleBytes.length; cut++) {
    assert.deepEqual(parseAll([sampleBytes.subarray(0, cut), sampleBytes.subarray(cut)]), sample, `cut at ${cut}`);
  }
});

test("any frames cut into any chunks are parsed back exactly (property)", () => {
  const frameArbitrary = fc.record({ type: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: 200 }) });
  fc.assert(
    fc.property(fc.array(frameArbitrary, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (frames, cutSeeds) => {
      const bytes = Buffer.concat(frames.map((frame) => encodeFrame(frame.type, frame.payload)));
      const cuts = [...new Set(cutSeeds.map((seed) => (bytes.length === 0 ? 0 : seed % bytes.length)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let start = 0;
      for (const cut of [...cuts, bytes.length]) {
        chunks.push(bytes.subarray(start, cut));
        start = cut;
      }
      const parsed = parseAll(chunks);
      assert.deepEqual(
        parsed.map((frame) => ({ type: frame.type, payload: [...frame.payload] })),
        frames.map((frame) => ({ type: frame.type, payload: [...frame.payload] })),
      );
    }),
    { numRuns: 300 },
  );
});

test("a large frame arriving in many small chunks is assembled once", () => {
  const payload = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < payload.length; i += 4096) payload[i] = i & 0xff;
  const bytes = encodeFrame(42, payload);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 16 * 1024) chunks.push(bytes.subarray(i, i + 16 * 1024));
  const started = process.hrtime.bigint();
  const frames = parseAll(chunks, 4 * 1024 * 1024);
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.type, 42);
  assert.ok(frames[0]!.payload.equals(payload));
  assert.ok(elapsedMs < 500, `parsing took ${elapsedMs} ms`);
});

test("a frame with length 0 is a protocol error", () => {
  const parser = new FrameParser(1024, () => assert.fail("no frame expected"));
  assert.throws(() => parser.push(Buffer.from([0, 0, 0, 0, 1])), FrameProtocolError);
});

test("a frame above frameBytesMax is refused as soon as its header arrives", () => {
  const parser = new FrameParser(1024, () => assert.fail("no frame expected"));
  const header = Buffer.from([0, 0, 0x04, 0x02, 1]); // 1026 bytes announced, nothing else sent
  assert.throws(() => parser.push(header), (error: unknown) => error instanceof FrameProtocolError && /above frameBytesMax/.test(error.message));
});

test("a frame of exactly frameBytesMax is accepted", () => {
  const frames = parseAll([encodeFrame(3, Buffer.alloc(1023, 1))], 1024);
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.payload.length, 1023);
});
