// The HTTPS server's admission control: idle connections are closed but a connection waiting
// for a slow answer is not; connections beyond the unprivileged share are closed after their
// handshake while a privileged (member) certificate still gets in; configuration is checked.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { connect, type TLSSocket } from "node:tls";
import { HttpServer, type RpcRequest, type RpcResponse } from "../../../src/rpc/index.js";
import { createIdentityCertificate, generateEcP384KeyPair } from "../../../src/crypto/index.js";
import { CocoError } from "../../../src/util/errors.js";

const keys = generateEcP384KeyPair();
const cert = await createIdentityCertificate(keys, "coco-test");
const memberKeys = generateEcP384KeyPair();
const memberCert = await createIdentityCertificate(memberKeys, "member0");
const IDLE_MS = 300;

function dispatch(request: RpcRequest): RpcResponse | Promise<RpcResponse> {
  // /slow answers after several idle periods, as a request waiting for its commit would.
  if (request.path === "/slow") return new Promise((resolve) => setTimeout(() => resolve({ status: 200, body: "slow" }), IDLE_MS * 4));
  return { status: 200, body: request.callerCert === undefined ? "anonymous" : "with-cert" };
}

const servers: HttpServer[] = [];
after(async () => { for (const s of servers) await s.close(); });

async function start(connectionsMax: number, reserved: number): Promise<number> {
  const server = new HttpServer({
    host: "127.0.0.1", port: 0, certificatePem: cert, privateKeyPem: keys.privateKeyPem,
    bodyBytesMax: 1024, connectionsMax, keepAliveTimeoutMs: 5_000,
    admission: { idleTimeoutMs: IDLE_MS, handshakeTimeoutMs: 2_000, connectionsPerAddressMax: 100, privilegedConnectionsReserved: reserved },
    isPrivilegedCaller: (caller) => caller.der.equals(Buffer.from(memberCert.replace(/-----[^-]+-----|\s/g, ""), "base64")),
  }, dispatch);
  servers.push(server);
  return (await server.listen()).port;
}

function open(port: number, withMemberCert = false): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: "127.0.0.1", port, rejectUnauthorized: false,
      ...(withMemberCert ? { cert: memberCert, key: memberKeys.privateKeyPem } : {}),
    }, () => resolve(socket));
    socket.once("error", reject);
  });
}

function get(socket: TLSSocket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (/\r\n\r\n/.test(text) && text.length >= text.indexOf("\r\n\r\n") + 4 + Number(/content-length: (\d+)/i.exec(text)?.[1] ?? 0)) resolve(text);
    });
    socket.once("close", () => reject(new Error(`closed before an answer: ${JSON.stringify(text)}`)));
    socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
  });
}

const closed = (socket: TLSSocket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once("close", () => resolve())));

test("a connection with no request is closed after the idle timeout, one waiting for a slow answer is not", async () => {
  const port = await start(100, 4);
  const idle = await open(port);
  const busy = await open(port);
  const answer = await get(busy, "/slow");
  assert.match(answer, /^HTTP\/1\.1 200/);
  assert.match(answer, /slow$/);
  await closed(idle); // long since: the slow answer took several idle periods
  busy.destroy();
});

test("beyond connectionsMax − reserved, connections without a privileged certificate are closed after the handshake; a member's still gets in", async () => {
  const port = await start(6, 2);
  const held: TLSSocket[] = [];
  for (let i = 0; i < 4; i++) held.push(await open(port));
  for (const socket of held) assert.match(await get(socket, "/"), /anonymous$/);
  const extra = await open(port); // the handshake completes, then the server closes it
  await closed(extra);
  const member = await open(port, true);
  assert.match(await get(member, "/"), /with-cert$/);
  // A closed anonymous connection frees its slot.
  held.pop()!.destroy();
  const deadline = Date.now() + 5_000;
  for (;;) {
    const again = await open(port);
    try {
      assert.match(await get(again, "/"), /anonymous$/);
      again.destroy();
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
  }
  for (const socket of [...held, member]) socket.destroy();
});

test("reserving every connection for members is refused: no one else could connect", () => {
  assert.throws(() => new HttpServer({
    host: "127.0.0.1", port: 0, certificatePem: cert, privateKeyPem: keys.privateKeyPem,
    bodyBytesMax: 1024, connectionsMax: 10, keepAliveTimeoutMs: 5_000, admission: { privilegedConnectionsReserved: 10 },
  }, dispatch), (e: unknown) => e instanceof CocoError && /must be below connectionsMax/.test(e.message));
});
