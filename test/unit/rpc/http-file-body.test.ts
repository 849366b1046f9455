// Answers streamed from an open file (snapshot downloads): the bytes of the range, in order with
// pipelined answers around them, the length on HEAD without a body, and the file handle closed
// once the answer is sent or the client is gone.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { connect, type TLSSocket } from "node:tls";
import { FileRangeBody, HttpServer, type RpcRequest, type RpcResponse } from "../../../src/rpc/index.js";
import { createIdentityCertificate, generateEcP384KeyPair, randomBytes } from "../../../src/crypto/index.js";
import { readFramedAnswers, type FramedAnswer } from "../../helpers/http-frames.js";

const keys = generateEcP384KeyPair();
const cert = await createIdentityCertificate(keys, "coco-test");
const dir = mkdtempSync(join(tmpdir(), "coco-file-body-"));
const content = randomBytes(3 * 1024 * 1024 + 17);
writeFileSync(join(dir, "file"), content);
const handles: FileHandle[] = [];

async function dispatch(request: RpcRequest): Promise<RpcResponse> {
  if (!request.path.startsWith("/file")) return { status: 200, body: `plain ${request.path}` };
  const handle = await open(join(dir, "file"), "r");
  handles.push(handle);
  const [start, end] = request.path === "/file" ? [0, content.length] : request.path.slice(6).split("-").map(Number) as [number, number];
  return { status: 200, headers: request.method === "HEAD" ? { "content-length": String(end - start) } : {}, body: new FileRangeBody(handle, start, end) };
}

const server = new HttpServer({
  host: "127.0.0.1", port: 0, certificatePem: cert, privateKeyPem: keys.privateKeyPem,
  bodyBytesMax: 1024, connectionsMax: 100, keepAliveTimeoutMs: 5_000,
}, dispatch);
const address = await server.listen();
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function openSocket(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: address.port, rejectUnauthorized: false }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Reads the answers to `heads.length` requests (heads[i]: request i was a HEAD). */
async function readAnswers(socket: TLSSocket, heads: boolean[]): Promise<FramedAnswer[]> {
  return (await readFramedAnswers(socket, heads.length, (i) => heads[i] === true)).answers;
}

const closed = async () => {
  const deadline = Date.now() + 2_000;
  while (handles.some((h) => h.fd !== -1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return handles.every((h) => h.fd === -1);
};

test("a file body streams its range, in order between pipelined answers, and HEAD gives only its length", async () => {
  const socket = await openSocket();
  try {
    const requests = [["GET", "/a"], ["GET", "/file"], ["GET", "/b"], ["GET", "/file/1000-70000"], ["HEAD", "/file"], ["GET", "/c"]] as const;
    const reading = readAnswers(socket, requests.map(([m]) => m === "HEAD"));
    socket.write(requests.map(([m, p]) => `${m} ${p} HTTP/1.1\r\nhost: x\r\n\r\n`).join(""));
    const answers = await reading;
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200, 200]);
    assert.equal(answers[0]!.body.toString(), "plain /a");
    assert.ok(answers[1]!.body.equals(content), "the whole file");
    assert.equal(answers[2]!.body.toString(), "plain /b");
    assert.ok(answers[3]!.body.equals(content.subarray(1000, 70000)), "the range");
    assert.equal(answers[4]!.length, content.length, "HEAD: the length");
    assert.equal(answers[4]!.body.length, 0, "HEAD: no body");
    assert.equal(answers[5]!.body.toString(), "plain /c");
    assert.ok(await closed(), "every file handle is closed once its answer is sent");
  } finally {
    socket.destroy();
  }
});

test("a client that goes away mid-file releases the file handle; the server keeps serving", async () => {
  const socket = await openSocket();
  await new Promise<void>((resolve) => {
    socket.once("data", () => { socket.destroy(); resolve(); });
    socket.write("GET /file HTTP/1.1\r\nhost: x\r\n\r\n");
  });
  assert.ok(await closed(), "the handle of the abandoned download is closed");
  const again = await openSocket();
  try {
    const reading = readAnswers(again, [false]);
    again.write("GET /d HTTP/1.1\r\nhost: x\r\n\r\n");
    assert.equal((await reading)[0]!.body.toString(), "plain /d");
  } finally {
    again.destroy();
  }
});
