// The HTTPS server's write coalescing (coalesceWrites): pipelined responses on one connection
// leave in order, complete, and in few TLS records; closing paths still deliver what was queued.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { connect, type TLSSocket } from "node:tls";
import { HttpServer, type RpcRequest, type RpcResponse } from "../../../src/rpc/index.js";
import { createIdentityCertificate, generateEcP384KeyPair } from "../../../src/crypto/index.js";
import { readFramedAnswers } from "../../helpers/http-frames.js";

const keys = generateEcP384KeyPair();
const cert = await createIdentityCertificate(keys, "coco-test");

function dispatch(request: RpcRequest): RpcResponse | Promise<RpcResponse> {
  const body = JSON.stringify({ path: request.path, bytes: request.body.length });
  // Every third request answers later, as an async handler would: order must still hold.
  if (Number(request.path.slice(1)) % 3 === 0) {
    return new Promise((resolve) => setTimeout(() => resolve({ status: 200, body }), 5));
  }
  return { status: 200, body };
}

const server = new HttpServer({
  host: "127.0.0.1", port: 0, certificatePem: cert, privateKeyPem: keys.privateKeyPem,
  bodyBytesMax: 1024, connectionsMax: 100, keepAliveTimeoutMs: 5_000,
}, dispatch);
const address = await server.listen();
after(() => server.close());

function open(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: address.port, rejectUnauthorized: false }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Reads until `count` complete responses (content-length framed) arrived; counts the reads. */
async function readResponses(socket: TLSSocket, count: number): Promise<{ responses: { status: number; body: string }[]; reads: number }> {
  const { answers, reads } = await readFramedAnswers(socket, count);
  return { responses: answers.map((a) => ({ status: a.status, body: a.body.toString() })), reads };
}

const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nhost: x\r\n${extra}\r\n`;

test("pipelined responses leave in request order, complete, coalesced into few reads", async () => {
  const socket = await open();
  try {
    const n = 60;
    const reading = readResponses(socket, n);
    socket.write(Array.from({ length: n }, (_, i) => get(`/${i + 1}`)).join(""));
    const { responses, reads } = await reading;
    assert.deepEqual(responses.map((r) => JSON.parse(r.body).path), Array.from({ length: n }, (_, i) => `/${i + 1}`));
    assert.ok(responses.every((r) => r.status === 200));
    // Uncoalesced, each response is its own TLS record (60 reads); coalesced, one per turn.
    assert.ok(reads < n / 2, `${reads} reads for ${n} responses`);
  } finally {
    socket.destroy();
  }
});

test("a response with connection: close and an oversized body's 413 are delivered before the close", async () => {
  const socket = await open();
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const reading = readResponses(socket, 2);
  socket.write(get("/1") + get("/2", "connection: close\r\n"));
  const { responses } = await reading;
  assert.deepEqual(responses.map((r) => JSON.parse(r.body).path), ["/1", "/2"]);
  await closed;

  const second = await open();
  const closedToo = new Promise<void>((resolve) => second.once("close", () => resolve()));
  const big = "x".repeat(2048);
  const rejected = readResponses(second, 1);
  second.write(`POST /big HTTP/1.1\r\nhost: x\r\ncontent-length: ${big.length}\r\n\r\n${big}`);
  const { responses: [answer] } = await rejected;
  assert.equal(answer!.status, 413);
  assert.match(answer!.body, /RequestBodyTooLarge/);
  await closedToo;
});
