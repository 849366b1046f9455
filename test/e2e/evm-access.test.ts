// Ethereum access without client certificates, against a real `coco sandbox`: a user creates
// API keys (with its certificate, or with a COSE-signed request), uses them as a bearer token
// and in the URL path over TLS without a client certificate, and revokes them; every refusal
// is a JSON-RPC error. Then ethers, unmodified, deploys nothing and sends ether through the
// sandbox's plain-HTTP gateway (acting as user0), as Hardhat or MetaMask would.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { JsonRpcProvider, Network, Wallet, parseEther } from "ethers";
import { NodeProcess, tempWorkspace, type Response } from "../helpers/node-process.js";
import { devAccounts } from "../../src/apps/evm/index.js";
import { signCoseSign1 } from "../../src/crypto/index.js";

const CHAIN_ID = 4246;
const ws = tempWorkspace("coco-evm-access-");
let sandbox: NodeProcess;
let gatewayUrl: string;
let user0Id: string;
const BLOCK_NUMBER = JSON.stringify({ jsonrpc: "2.0", id: 7, method: "eth_blockNumber", params: [] });

before(async () => {
  sandbox = await NodeProcess.sandbox(ws.dir, ["--evm-chain-id", String(CHAIN_ID), "--durability", "none"]);
  // The sandbox says where its gateway is (with --port 0 the OS chose the port).
  const deadline = Date.now() + 10_000;
  for (;;) {
    const match = /without client certificates at (http:\/\/127\.0\.0\.1:\d+)/.exec(sandbox.output());
    if (match) {
      gatewayUrl = match[1]!;
      break;
    }
    if (Date.now() > deadline) throw new Error(`the sandbox did not print its EVM gateway:\n${sandbox.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  user0Id = createHash("sha256").update(new X509Certificate(readFileSync(join(ws.dir, "user0_cert.pem"))).raw).digest("hex");
});

after(async () => {
  await sandbox?.stop();
  ws.cleanup();
});

/** A POST over TLS that presents no client certificate (the service certificate is trusted). */
function postWithoutCert(path: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return sandbox.request("POST", path, { identity: "none", body, headers });
}

function assertJsonRpcError(response: Response, status: number, code: number, message: RegExp): void {
  assert.equal(response.status, status, response.text);
  const body = response.json();
  assert.equal(body.jsonrpc, "2.0", response.text);
  assert.equal(body.error.code, code, response.text);
  assert.match(body.error.message, message);
}

test("without a client certificate or an API key, /app/evm answers a JSON-RPC error (401)", async () => {
  const refused = await postWithoutCert("/app/evm", BLOCK_NUMBER);
  assertJsonRpcError(refused, 401, -32001, /present a registered user certificate .* or an API key/);
  assert.equal(refused.json().id, 7, "the refusal answers the request's id");
  const made = `coco_${"A".repeat(43)}`;
  assertJsonRpcError(await postWithoutCert("/app/evm", BLOCK_NUMBER, { authorization: `Bearer ${made}` }), 401, -32001, /unknown or revoked API key/);
  assertJsonRpcError(await postWithoutCert(`/app/evm/${made}`, BLOCK_NUMBER), 401, -32001, /unknown or revoked API key/);
  assertJsonRpcError(await postWithoutCert("/app/evm/not-a-key", BLOCK_NUMBER), 401, -32001, /malformed/);
  // A certificate that is not a user's is refused the same way.
  assertJsonRpcError(await sandbox.request("POST", "/app/evm", { identity: "member0", body: BLOCK_NUMBER }), 401, -32001, /could not find matching user certificate/);
});

test("a user creates an API key; it works as a bearer token and in the URL path without a client certificate; revoked, it is refused", async () => {
  const created = await sandbox.request("POST", "/app/evm/keys", { identity: "user0", body: JSON.stringify({ name: "laptop" }) });
  assert.equal(created.status, 201, created.text);
  const { key, id, user_id: userId, path, name } = created.json();
  assert.match(key, /^coco_[A-Za-z0-9_-]{43}$/);
  assert.equal(userId, user0Id);
  assert.equal(name, "laptop");
  assert.equal(path, `/app/evm/${key}`);

  const viaHeader = await postWithoutCert("/app/evm", BLOCK_NUMBER, { authorization: `Bearer ${key}` });
  assert.equal(viaHeader.status, 200, viaHeader.text);
  assert.match(viaHeader.json().result, /^0x[0-9a-f]+$/);
  const viaPath = await postWithoutCert(path, JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }));
  assert.equal(viaPath.status, 200, viaPath.text);
  assert.equal(viaPath.json().result, `0x${CHAIN_ID.toString(16)}`);

  // The list shows the key's id and name, never the key.
  const listed = await sandbox.request("GET", "/app/evm/keys", { identity: "user0" });
  assert.equal(listed.status, 200, listed.text);
  assert.ok(listed.json().keys.some((k: { id: string }) => k.id === id));
  assert.ok(!listed.text.includes(key.slice(5)));

  const revoked = await sandbox.request("DELETE", `/app/evm/keys/${id}`, { identity: "user0" });
  assert.equal(revoked.status, 204, revoked.text);
  assertJsonRpcError(await postWithoutCert("/app/evm", BLOCK_NUMBER, { authorization: `Bearer ${key}` }), 401, -32001, /unknown or revoked/);
  assertJsonRpcError(await postWithoutCert(path, BLOCK_NUMBER), 401, -32001, /unknown or revoked/);
  // Only users manage keys: without a certificate (or a signature) creating one is refused.
  assert.equal((await sandbox.request("POST", "/app/evm/keys", { identity: "none", body: "{}" })).status, 401);
});

test("a user creates and revokes an API key with COSE-signed requests (no client certificate at all)", async () => {
  const keyPem = readFileSync(join(ws.dir, "user0_privk.pem"), "utf8");
  const sign = (payload: object, createdAt = Math.floor(Date.now() / 1000)) => signCoseSign1({
    privateKeyPem: keyPem, kid: user0Id, payload: Buffer.from(JSON.stringify(payload)),
    protectedHeaders: new Map<unknown, unknown>([["ccf.msg.type", "evm_api_key"], ["ccf.msg.created_at", createdAt]]) as never,
  });
  const created = await sandbox.postCose("/app/evm/keys", sign({ name: "signed" }));
  assert.equal(created.status, 201, created.text);
  const { key, id } = created.json();
  const used = await postWithoutCert("/app/evm", BLOCK_NUMBER, { authorization: `Bearer ${key}` });
  assert.equal(used.status, 200, used.text);
  // An old signed request (a replayed copy) is refused.
  const stale = await sandbox.postCose("/app/evm/keys", sign({}, Math.floor(Date.now() / 1000) - 3600));
  assert.equal(stale.status, 400, stale.text);
  assert.match(stale.json().error.message, /created_at within/);
  // A signed revocation must name the key it revokes. (Node's client sends a DELETE body only
  // with an explicit content-length.)
  const signedDelete = (body: Buffer) => sandbox.request("DELETE", `/app/evm/keys/${id}`, {
    identity: "none", body, headers: { "content-type": "application/cose", "content-length": String(body.length) },
  });
  const wrong = await signedDelete(sign({ id: "0000000000000000" }));
  assert.equal(wrong.status, 400, wrong.text);
  assert.match(wrong.json().error.message, /must name the key it revokes/);
  const revoked = await signedDelete(sign({ id }));
  assert.equal(revoked.status, 204, revoked.text);
  assertJsonRpcError(await postWithoutCert("/app/evm", BLOCK_NUMBER, { authorization: `Bearer ${key}` }), 401, -32001, /unknown or revoked/);
});

test("CORS: a preflight from an origin the node does not allow is refused with a JSON-RPC error (the sandbox allows none)", async () => {
  const response = await sandbox.request("OPTIONS", "/app/evm", { identity: "none", headers: { origin: "https://dapp.example", "access-control-request-method": "POST" } });
  assertJsonRpcError(response, 403, -32003, /origin "https:\/\/dapp.example" is not allowed/);
  assert.equal(response.headers["access-control-allow-origin"], undefined);
});

test("ethers sends ether through the sandbox's plain-HTTP gateway, acting as user0", async () => {
  const provider = new JsonRpcProvider(gatewayUrl, Network.from(CHAIN_ID), { staticNetwork: true, pollingInterval: 50, cacheTimeout: -1 });
  try {
    const sender = new Wallet(devAccounts(6)[5]!.privateKey, provider);
    const recipient = Wallet.createRandom().address;
    const receipt = await (await sender.sendTransaction({ to: recipient, value: parseEther("1.5") })).wait();
    assert.equal(receipt?.status, 1);
    assert.equal(await provider.getBalance(recipient), parseEther("1.5"));
  } finally {
    provider.destroy();
  }
});

test("the gateway answers only requests addressed to a loopback name (no DNS rebinding)", async () => {
  const url = new URL(gatewayUrl);
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: "POST", path: "/", headers: { host: "attacker.example", "content-type": "application/json" } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end(BLOCK_NUMBER);
  });
  assert.equal(status, 403);
});
