// The EVM endpoint's limits in-process: the per-user token bucket, the coco.evm settings, and the
// call pool (worker threads): gas cap, wall-clock limit with the worker replaced, per-user limit
// on calls in progress, and a call whose reads went stale while it ran being run again.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Store, type Transaction } from "../../../src/kv/index.js";
import { RerunRequest } from "../../../src/rpc/index.js";
import {
  CallPool, CALLS_PER_USER_MAX, EvmChain, RateLimiter, RpcError, evmMaps,
} from "../../../src/apps/evm/index.js";
import { resolveConfig } from "../../../src/node/config.js";
import { callGasLimit } from "../../../src/apps/evm/call-execution.js";

const ENDLESS_LOOP = Buffer.from("5b600056", "hex");
const GAS_REPORTER = Buffer.from("5a60005260206000f3", "hex");
/** Runtime code: SLOAD slot 0, MSTORE it, RETURN 32 bytes. */
const STORAGE_READER = Buffer.from("60005460005260206000f3", "hex");

const pools: CallPool[] = [];
after(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

function chainWithStore(): { store: Store; chain: EvmChain } {
  const store = new Store();
  const chain = new EvmChain({ chainId: 4248, callGasCap: 1_000_000n, nowSeconds: () => 1_700_000_000n });
  const tx = store.begin();
  chain.head(tx); // genesis block
  store.commit(tx, 1);
  return { store, chain };
}

test("the token bucket grants a burst, then refills at the rate; users are independent", () => {
  let now = 0;
  const limiter = new RateLimiter({ requestsPerSecond: 10, burst: 3 }, () => now);
  assert.deepEqual([limiter.take("a"), limiter.take("a"), limiter.take("a")], [0, 0, 0]);
  const wait = limiter.take("a");
  assert.ok(wait > 0 && wait <= 0.1, String(wait));
  assert.equal(limiter.take("b"), 0);
  now += 100; // 0.1 s: one token back
  assert.equal(limiter.take("a"), 0);
  assert.ok(limiter.take("a") > 0);
  assert.equal(new RateLimiter({ requestsPerSecond: 0, burst: 1 }).take("a"), 0, "rate 0 disables the limit");
});

test("coco.evm settings are parsed, bounded and named when wrong", () => {
  const file = (evm: unknown) => ({
    network: { rpc_interfaces: { primary: { bind_address: "127.0.0.1:0" } } },
    command: { type: "Start", start: { members: [{ certificate_file: "member0_cert.pem" }] } },
    coco: { evm },
  }) as never;
  assert.deepEqual(resolveConfig(file({ call_gas_cap: 1_000_000, call_timeout_ms: 250, call_workers: 3, cors_allowed_origins: ["http://localhost:3000", "*"], rate_limit: { requests_per_second: 5 } }), "/tmp").evm, {
    callGasCap: 1_000_000n, callTimeoutMs: 250, callWorkers: 3, corsAllowedOrigins: ["http://localhost:3000", "*"], rateLimit: { requestsPerSecond: 5, burst: 10 },
  });
  assert.throws(() => resolveConfig(file({ call_gas_cap: 10 }), "/tmp"), /coco\.evm\.call_gas_cap: expected an integer from 21000/);
  assert.throws(() => resolveConfig(file({ call_workers: 0 }), "/tmp"), /coco\.evm\.call_workers/);
  assert.throws(() => resolveConfig(file({ cors_allowed_origins: ["http://x/path"] }), "/tmp"), /coco\.evm\.cors_allowed_origins/);
  assert.throws(() => resolveConfig(file({ rate_limit: { rps: 1 } }), "/tmp"), /coco\.evm\.rate_limit\.rps: unknown setting/);
  assert.deepEqual(resolveConfig(file({ address_policy: "bound" }), "/tmp").evm, { addressPolicy: "bound" });
  assert.throws(() => resolveConfig(file({ address_policy: "strict" }), "/tmp"), /coco\.evm\.address_policy: expected "open" or "bound"/);
});

test("the gas of a call is what it asks (the block gas limit when it does not say), at most the cap", () => {
  assert.equal(callGasLimit(undefined, 30_000_000n, 50_000_000n), 30_000_000n);
  assert.equal(callGasLimit(2n ** 48n, 30_000_000n, 50_000_000n), 50_000_000n);
  assert.equal(callGasLimit(100_000n, 30_000_000n, 50_000_000n), 100_000n);
});

test("a call on a worker gets at most the gas cap, and a call past the time limit is aborted; the pool goes on", async () => {
  const { store, chain } = chainWithStore();
  const pool = new CallPool({ workers: 1, timeoutMs: 300 });
  pools.push(pool);
  const given = Buffer.from(await pool.call(store.begin(), "alice", chain, { data: GAS_REPORTER, gas: 2n ** 48n })).readBigUInt64BE(24);
  assert.ok(given <= 1_000_000n && given > 990_000n, String(given));
  // The cap is 1M gas, which the loop burns fast: raise it so that time, not gas, ends the call.
  const unbounded = new EvmChain({ chainId: 4248, callGasCap: 10n ** 12n, nowSeconds: () => 1_700_000_000n });
  await assert.rejects(pool.call(store.begin(), "alice", unbounded, { data: ENDLESS_LOOP, gas: 10n ** 12n }),
    (error: unknown) => error instanceof RpcError && error.code === -32000 && error.message === "execution aborted (timeout = 300ms)");
  const again = Buffer.from(await pool.call(store.begin(), "alice", chain, { data: GAS_REPORTER, gas: 50_000n })).readBigUInt64BE(24);
  assert.ok(again < 50_000n && again > 40_000n, String(again));
});

test("a user may have at most CALLS_PER_USER_MAX calls in progress; more are refused with -32005", async () => {
  const { store, chain } = chainWithStore();
  const pool = new CallPool({ workers: 1, timeoutMs: 10_000 });
  pools.push(pool);
  // Counted when asked, before any runs: the 17th is refused while 16 are in progress.
  const calls = Array.from({ length: CALLS_PER_USER_MAX }, () => pool.call(store.begin(), "mallory", chain, { data: GAS_REPORTER, gas: 50_000n }));
  await assert.rejects(pool.call(store.begin(), "mallory", chain, { data: GAS_REPORTER }), (e: unknown) => e instanceof RpcError && e.code === -32005);
  for (const outcome of await Promise.all(calls)) assert.equal(outcome.length, 32);
  // Once they ended, mallory may call again.
  assert.equal((await pool.call(store.begin(), "mallory", chain, { data: GAS_REPORTER, gas: 50_000n })).length, 32);
});

test("a user runs one call at a time: while its endless calls run, another user's call is answered on the other worker", async () => {
  const { store, chain } = chainWithStore();
  const pool = new CallPool({ workers: 2, timeoutMs: 5_000 });
  pools.push(pool);
  const unbounded = new EvmChain({ chainId: 4248, callGasCap: 10n ** 12n, nowSeconds: () => 1_700_000_000n });
  let firstFloodCallEnded = false;
  const flood = [0, 1].map(() => pool.call(store.begin(), "mallory", unbounded, { data: ENDLESS_LOOP, gas: 10n ** 12n }).catch((e: unknown) => {
    firstFloodCallEnded = true;
    return e;
  }));
  const bob = Buffer.from(await pool.call(store.begin(), "bob", chain, { data: GAS_REPORTER, gas: 50_000n })).readBigUInt64BE(24);
  assert.ok(bob > 0n);
  assert.equal(firstFloodCallEnded, false, "bob's call waited for mallory's: mallory held both workers");
  for (const outcome of await Promise.all(flood)) assert.ok(outcome instanceof RpcError && /timeout = 5000ms/.test(outcome.message), String(outcome));
});

test("a call whose reads changed while it ran is not answered: the request runs again (RerunRequest)", async () => {
  const { store, chain } = chainWithStore();
  const contract = Buffer.alloc(20, 0xcc);
  const install = (value: number) => {
    const tx = store.begin();
    // Slot 0 of the contract = value.
    tx.set(evmMaps.STORAGE, evmMaps.storageKey(contract, Buffer.alloc(32)), Buffer.from([value]));
    store.commit(tx, store.currentVersion + 1);
  };
  const pool = new CallPool({ workers: 1, timeoutMs: 10_000 });
  pools.push(pool);
  await putCode(store, contract, STORAGE_READER);
  install(7);
  const first = await pool.call(store.begin(), "alice", chain, { to: contract });
  assert.equal(Buffer.from(first).readUInt8(31), 7);
  // A transaction whose read of slot 0 is followed, before the call ends, by a commit that changes it.
  const tx = store.begin();
  const racing = new Proxy(tx, {
    get(target, property) {
      if (property !== "get") return Reflect.get(target, property, target);
      return (map: string, key: Uint8Array) => {
        const value = target.get(map, key);
        if (map === evmMaps.STORAGE) install(8);
        return value;
      };
    },
  }) as Transaction;
  await assert.rejects(pool.call(racing, "alice", chain, { to: contract }), RerunRequest);
  const fresh = await pool.call(store.begin(), "alice", chain, { to: contract });
  assert.equal(Buffer.from(fresh).readUInt8(31), 8);
});

/** Deploys `code` at `address` directly in the KV, as a committed contract. */
async function putCode(store: Store, address: Buffer, code: Buffer): Promise<void> {
  const { KvStateManager } = await import("../../../src/apps/evm/index.js");
  const { Address } = await import("@ethereumjs/util");
  const tx = store.begin();
  const state = new KvStateManager(tx);
  await state.putCode(new Address(address), code);
  state.flush();
  store.commit(tx, store.currentVersion + 1);
}
