// How the HTTPS server turns errors into answers: CCF-style `{"error":{"code","message"}}`
// bodies, and a Retry-After on every 503 and 429, whether the error was thrown, returned by a
// handler, or relayed from the primary.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { CocoError } from "../../../src/util/index.js";
import {
  ErrorCodes, errorBody, HttpServer, RETRY_AFTER_SECONDS_DEFAULT, serviceUnavailable, withRetryAfter, type RpcRequest, type RpcResponse,
} from "../../../src/rpc/index.js";
import { createIdentityCertificate, generateEcP384KeyPair } from "../../../src/crypto/index.js";

const keys = generateEcP384KeyPair();
const cert = await createIdentityCertificate(keys, "coco-test");

const routes: Record<string, () => RpcResponse | Promise<RpcResponse>> = {
  "/thrown-503": () => { throw new CocoError(ErrorCodes.TooManyPendingTransactions, "Too many transactions await commit; retry shortly.", 503); },
  "/thrown-503-suggests-5": () => { throw serviceUnavailable(ErrorCodes.ServiceUnavailable, "Busy; retry in a while.", 5); },
  "/rejected-503": () => Promise.reject(serviceUnavailable(ErrorCodes.ForwardedPrimaryLost, "The primary was lost.")),
  "/thrown-429": () => { throw new CocoError("TooManyRequests", "Slow down.", 429); },
  "/thrown-500": () => { throw new CocoError(ErrorCodes.InternalError, "A bug.", 500); },
  // A 503 the primary answered, relayed by a backup as it came (its headers lost the Retry-After).
  "/relayed-503": () => ({ status: 503, headers: { "content-type": "application/json" }, body: errorBody(ErrorCodes.ServiceUnavailable, "Relayed.") }),
  "/returned-503-with-own-retry-after": () => ({ status: 503, headers: { "Retry-After": "7" }, body: "later" }),
};

const server = new HttpServer({
  host: "127.0.0.1", port: 0, certificatePem: cert, privateKeyPem: keys.privateKeyPem,
  bodyBytesMax: 1024, connectionsMax: 100, keepAliveTimeoutMs: 5_000,
}, (request: RpcRequest) => routes[request.path]!());
const address = await server.listen();
const agent = new https.Agent({ keepAlive: false, rejectUnauthorized: false });
after(async () => {
  agent.destroy();
  await server.close();
});

function get(path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: "127.0.0.1", port: address.port, path, method: "GET", agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

test("a thrown 503 has a CCF-style error body and Retry-After: 1 by default", async () => {
  const r = await get("/thrown-503");
  assert.equal(r.status, 503);
  assert.equal(r.headers["retry-after"], String(RETRY_AFTER_SECONDS_DEFAULT));
  assert.equal(r.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(r.body), { error: { code: "TooManyPendingTransactions", message: "Too many transactions await commit; retry shortly." } });
});

test("a 503 that suggests a delay carries that delay in Retry-After", async () => {
  const r = await get("/thrown-503-suggests-5");
  assert.equal(r.status, 503);
  assert.equal(r.headers["retry-after"], "5");
  assert.equal(JSON.parse(r.body).error.code, "ServiceUnavailable");
});

test("an asynchronous handler's rejected 503 carries Retry-After and its code", async () => {
  const r = await get("/rejected-503");
  assert.equal(r.status, 503);
  assert.equal(r.headers["retry-after"], "1");
  assert.deepEqual(JSON.parse(r.body), { error: { code: "ForwardedPrimaryLost", message: "The primary was lost." } });
});

test("a 429 carries Retry-After too", async () => {
  const r = await get("/thrown-429");
  assert.equal(r.status, 429);
  assert.equal(r.headers["retry-after"], "1");
  assert.equal(JSON.parse(r.body).error.code, "TooManyRequests");
});

test("a 500 carries no Retry-After", async () => {
  const r = await get("/thrown-500");
  assert.equal(r.status, 500);
  assert.equal(r.headers["retry-after"], undefined);
  assert.equal(JSON.parse(r.body).error.code, "InternalError");
});

test("a 503 response returned rather than thrown (e.g. relayed from the primary) gets Retry-After added, its body kept", async () => {
  const r = await get("/relayed-503");
  assert.equal(r.status, 503);
  assert.equal(r.headers["retry-after"], "1");
  assert.deepEqual(JSON.parse(r.body), { error: { code: "ServiceUnavailable", message: "Relayed." } });
});

test("a 503 response with its own Retry-After (any letter case) keeps it", async () => {
  const r = await get("/returned-503-with-own-retry-after");
  assert.equal(r.status, 503);
  assert.equal(r.headers["retry-after"], "7");
});

test("withRetryAfter leaves other statuses' headers untouched and never overrides a present value", () => {
  const headers = { "content-type": "text/plain" };
  assert.equal(withRetryAfter(200, headers), headers);
  assert.equal(withRetryAfter(504, headers), headers);
  assert.deepEqual(withRetryAfter(503, headers), { "content-type": "text/plain", "retry-after": "1" });
  assert.deepEqual(withRetryAfter(503, { "RETRY-AFTER": "3" }), { "RETRY-AFTER": "3" });
  assert.equal(serviceUnavailable("X", "m", 0.2).headers?.["retry-after"], "1", "at least one whole second");
  assert.equal(serviceUnavailable("X", "m", 2.5).headers?.["retry-after"], "3", "rounded up to whole seconds");
});
