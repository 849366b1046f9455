// No denial of service through the EVM endpoint, against a real node process: eth_call's gas is
// capped, a call that runs past the wall-clock limit is aborted with geth's error, calls run on
// worker threads (so /node/state keeps answering and another user's transfers keep committing
// while one user's calls run to their limit), each user has a request rate limit answered as a
// JSON-RPC error with Retry-After, and browser origins the node allows pass CORS preflights.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Wallet, parseEther, Transaction as EthTransaction } from "ethers";
import { NodeProcess, tempWorkspace, type Identity } from "../helpers/node-process.js";
import { createIdentityCertificate, generateEcP384KeyPair } from "../../src/crypto/index.js";
import { GovernanceClient, openServiceAsMember } from "../../src/client/index.js";
import { bindAddresses } from "../../src/cli/evm-bind.js";
import { devAccounts } from "../../src/apps/evm/index.js";

const CHAIN_ID = 4247;
const GWEI = 1_000_000_000n;
/** Configured for this node: well above the default so that the time limit, not gas, ends the long calls. */
const CALL_GAS_CAP = 1_000_000_000;
const CALL_TIMEOUT_MS = 2_000;
const RATE = { requests_per_second: 50, burst: 100 };
const ALLOWED_ORIGIN = "http://localhost:3000";
/** Init code `JUMPDEST PUSH1 0 JUMP`: an endless loop, 12 gas a turn (100M gas is ~5 s of ethereumjs). */
const ENDLESS_LOOP = "0x5b600056";
/** Init code returning the GAS opcode's value: the gas the call was given, less 2. */
const GAS_REPORTER = "0x5a60005260206000f3";

const ws = tempWorkspace("coco-evm-limits-");
let node: NodeProcess;
const users: Record<"user1" | "user2", { cert: string; key: string }> = {} as never;
const [, sender] = devAccounts(2);
let nextId = 1;

before(async () => {
  for (const name of ["member0", "user0", "user1", "user2"]) {
    const keys = generateEcP384KeyPair();
    writeFileSync(join(ws.dir, `${name}_cert.pem`), await createIdentityCertificate(keys, name));
    writeFileSync(join(ws.dir, `${name}_privk.pem`), keys.privateKeyPem);
  }
  for (const name of ["user1", "user2"] as const) {
    users[name] = { cert: readFileSync(join(ws.dir, `${name}_cert.pem`), "utf8"), key: readFileSync(join(ws.dir, `${name}_privk.pem`), "utf8") };
  }
  writeFileSync(join(ws.dir, "config.json"), JSON.stringify({
    network: { rpc_interfaces: { primary: { bind_address: "127.0.0.1:0" } } },
    command: { type: "Start", service_certificate_file: "service_cert.pem", start: { members: [{ certificate_file: "member0_cert.pem" }] } },
    ledger: { directory: "ledger" },
    ledger_signatures: { delay: "10ms" },
    coco: {
      durability: "none",
      evm: { call_gas_cap: CALL_GAS_CAP, call_timeout_ms: CALL_TIMEOUT_MS, call_workers: 2, rate_limit: RATE, cors_allowed_origins: [ALLOWED_ORIGIN] },
    },
  }));
  node = await NodeProcess.nodeStart(ws.dir, join(ws.dir, "config.json"));
  const identity = {
    url: `https://127.0.0.1:${node.port}`,
    serviceCertPem: readFileSync(join(ws.dir, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8"),
  };
  await openServiceAsMember({ ...identity, userCertPems: ["user0", "user1", "user2"].map((n) => readFileSync(join(ws.dir, `${n}_cert.pem`), "utf8")) });
  const member = new GovernanceClient(identity);
  try {
    let proposal = await member.propose({ actions: [{ name: "set_evm_genesis", args: { chain_id: CHAIN_ID, alloc: { [sender!.address]: parseEther("1000").toString() } } }] });
    if (proposal.proposalState === "Open") proposal = await member.accept(proposal.proposalId);
    assert.equal(proposal.proposalState, "Accepted");
    if (proposal.transactionId) await member.waitForCommit(proposal.transactionId, { timeoutMs: 30_000 });
  } finally {
    await member.close();
  }
  // user1 sends from the funded account: bound to it (the node's default address policy is "bound").
  const bound = await bindAddresses({
    nodeUrl: identity.url, chainId: CHAIN_ID, privateKeys: [sender!.privateKey],
    caPem: identity.serviceCertPem, userCertPem: users.user1.cert, userKeyPem: users.user1.key,
  });
  assert.deepEqual(bound.map((b) => b.status), [201], JSON.stringify(bound));
});

after(async () => {
  await node?.stop();
  ws.cleanup();
});

async function rpc(identity: Identity, method: string, ...params: unknown[]): Promise<{ result?: any; error?: { code: number; message: string } }> {
  const response = await node.request("POST", "/app/evm", { identity, body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }) });
  assert.equal(response.status, 200, response.text);
  return response.json();
}

async function result(identity: Identity, method: string, ...params: unknown[]): Promise<any> {
  const answer = await rpc(identity, method, ...params);
  assert.equal(answer.error, undefined, `${method}: ${answer.error?.message}`);
  return answer.result;
}

async function waitForReceipt(identity: Identity, hash: string): Promise<any> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const receipt = await result(identity, "eth_getTransactionReceipt", hash);
    if (receipt !== null) return receipt;
    if (Date.now() > deadline) throw new Error(`no receipt for ${hash}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("eth_call's gas is capped (coco.evm.call_gas_cap) whatever gas the caller asks for", async () => {
  const given = BigInt(await result("user0", "eth_call", { data: GAS_REPORTER, gas: "0x1000000000000" }, "latest"));
  assert.ok(given <= BigInt(CALL_GAS_CAP), `the call was given ${given} gas, above the cap ${CALL_GAS_CAP}`);
  assert.ok(given > BigInt(CALL_GAS_CAP) - 100_000n, `the call was given ${given} gas, far below the cap`);
  // Below the cap the caller's gas stands.
  const small = BigInt(await result("user0", "eth_call", { data: GAS_REPORTER, gas: "0x30000" }, "latest"));
  assert.ok(small < 0x30000n && small > 0x30000n - 100_000n, String(small));
});

test("a call that runs past coco.evm.call_timeout_ms is aborted with geth's error, and the node goes on", async () => {
  const answer = await rpc("user0", "eth_call", { data: ENDLESS_LOOP, gas: "0x1000000000000" }, "latest");
  assert.equal(answer.error?.code, -32000, JSON.stringify(answer));
  assert.equal(answer.error?.message, `execution aborted (timeout = ${CALL_TIMEOUT_MS}ms)`);
  const estimate = await rpc("user0", "eth_estimateGas", { data: ENDLESS_LOOP, gas: "0x1000000000000" });
  assert.equal(estimate.error?.message, `execution aborted (timeout = ${CALL_TIMEOUT_MS}ms)`);
  // The worker that was stopped is replaced: calls work again.
  assert.match(await result("user0", "eth_call", { data: GAS_REPORTER }, "latest"), /^0x[0-9a-f]{64}$/);
});

test("while one user's calls run to their limit, /node/state answers and another user's transfers and calls go through", async (t) => {
  // user0 floods: three endless calls at once (100M gas each, ~5 s of interpreter work, cut at 2 s).
  let floodOver = false;
  const flood = Promise.all([0, 1, 2].map(() => rpc("user0", "eth_call", { data: ENDLESS_LOOP, gas: "0x5f5e100" }, "latest")))
    .finally(() => (floodOver = true));

  // Meanwhile: GET /node/state, as often as it answers.
  const latencies: number[] = [];
  const poll = (async () => {
    while (!floodOver) {
      const started = performance.now();
      const response = await node.request("GET", "/node/state", { identity: "none" });
      assert.equal(response.status, 200);
      if (!floodOver) latencies.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();

  // Meanwhile: user1 transfers ether and calls, and each must finish while the flood is still running.
  const wallet = new Wallet(sender!.privateKey);
  let nonce = Number(BigInt(await result({ ...users.user1 }, "eth_getTransactionCount", wallet.address, "latest")));
  const committedDuringFlood: string[] = [];
  let callsDuringFlood = 0;
  for (let i = 0; i < 3; i++) {
    const raw = await wallet.signTransaction(EthTransaction.from({
      type: 2, chainId: CHAIN_ID, nonce: nonce++, to: Wallet.createRandom().address, value: 1n,
      gasLimit: 21_000n, maxFeePerGas: 2n * GWEI, maxPriorityFeePerGas: 0n,
    }));
    const hash = await result(users.user1, "eth_sendRawTransaction", raw);
    const receipt = await waitForReceipt(users.user1, hash);
    assert.equal(receipt.status, "0x1");
    if (!floodOver) committedDuringFlood.push(hash);
    const given = await result(users.user1, "eth_call", { data: GAS_REPORTER }, "latest");
    assert.match(given, /^0x[0-9a-f]{64}$/);
    if (!floodOver) callsDuringFlood++;
  }

  const answers = await flood;
  await poll;
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number) => (sorted.length === 0 ? "-" : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(1));
  t.diagnostic(`GET /node/state during the flood: ${latencies.length} answers, median ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms (slowest: ${sorted.slice(-5).map((l) => l.toFixed(0)).join(", ")} ms); user1: ${committedDuringFlood.length} transfers committed and ${callsDuringFlood} calls answered during it`);
  assert.ok(committedDuringFlood.length >= 1, "no transfer of user1 committed while user0's calls ran");
  assert.ok(callsDuringFlood >= 1, "no eth_call of user1 answered while user0's calls ran");
  assert.ok(latencies.length >= 3, `GET /node/state answered only ${latencies.length} times while user0's calls ran`);
  for (const answer of answers) assert.equal(answer.error?.message, `execution aborted (timeout = ${CALL_TIMEOUT_MS}ms)`, JSON.stringify(answer));
});

test("a user over its rate limit gets 429 with Retry-After and a JSON-RPC error; other users are not limited", async () => {
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "web3_clientVersion", params: [] });
  // Twice the burst at once, plus what the refill could add while they are answered.
  const responses = await Promise.all(Array.from({ length: 4 * RATE.burst }, () => node.request("POST", "/app/evm", { identity: users.user2, body })));
  const limited = responses.filter((r) => r.status === 429);
  assert.ok(limited.length > 0, "no request was rate limited");
  assert.ok(responses.some((r) => r.status === 200));
  for (const r of limited) {
    assert.ok(Number(r.headers["retry-after"]) >= 1, `Retry-After: ${String(r.headers["retry-after"])}`);
    const error = r.json();
    assert.equal(error.jsonrpc, "2.0");
    assert.equal(error.error.code, -32005);
    assert.match(error.error.message, /rate limit exceeded/);
  }
  // user0 has its own bucket.
  assert.equal((await node.request("POST", "/app/evm", { identity: "user0", body })).status, 200);
});

test("CORS: an allowed origin passes the preflight and reads answers; others are refused", async () => {
  const preflight = await node.request("OPTIONS", "/app/evm", { identity: "none", headers: { origin: ALLOWED_ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" } });
  assert.equal(preflight.status, 204, preflight.text);
  assert.equal(preflight.headers["access-control-allow-origin"], ALLOWED_ORIGIN);
  assert.match(String(preflight.headers["access-control-allow-headers"]), /authorization/);
  assert.match(String(preflight.headers["access-control-allow-methods"]), /POST/);
  // The key URL form too (a wallet's URL).
  const keyForm = await node.request("OPTIONS", `/app/evm/coco_${"A".repeat(43)}`, { identity: "none", headers: { origin: ALLOWED_ORIGIN } });
  assert.equal(keyForm.status, 204);
  // The answer itself carries the header, refusals included (so the dapp can read the error).
  const refused = await node.request("POST", "/app/evm", { identity: "none", headers: { origin: ALLOWED_ORIGIN }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }) });
  assert.equal(refused.status, 401);
  assert.equal(refused.headers["access-control-allow-origin"], ALLOWED_ORIGIN);
  const other = await node.request("OPTIONS", "/app/evm", { identity: "none", headers: { origin: "https://evil.example" } });
  assert.equal(other.status, 403);
  assert.equal(other.json().error.code, -32003);
  assert.equal(other.headers["access-control-allow-origin"], undefined);
});
