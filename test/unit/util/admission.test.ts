// Admission control building blocks: per-address connection counts, token buckets, the rate
// limiter's bounded memory, the rate-limited log, and the handshake deadline on a real socket.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Socket } from "node:net";
import fc from "fast-check";
import { AddressCounter, ConnectionAdmission, RateLimitedLog, RateLimiter, TokenBucket } from "../../../src/util/index.js";

test("the per-address cap admits up to perAddressMax connections per address, independently of other addresses", () => {
  const counter = new AddressCounter(3);
  for (let i = 0; i < 3; i++) assert.ok(counter.tryAdd("10.0.0.1"));
  assert.equal(counter.tryAdd("10.0.0.1"), false, "the fourth from one address is refused");
  assert.equal(counter.count("10.0.0.1"), 3, "a refusal counts nothing");
  assert.ok(counter.tryAdd("10.0.0.2"), "another address is not affected");
  counter.remove("10.0.0.1");
  assert.ok(counter.tryAdd("10.0.0.1"), "a closed connection frees its slot");
});

test("the per-address counter forgets an address once its last connection closes, and refuses a remove without an add", () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom("a", "b", "c"), fc.boolean()), { maxLength: 200 }), (operations) => {
    const counter = new AddressCounter(4);
    const model = new Map<string, number>();
    for (const [address, add] of operations) {
      const current = model.get(address) ?? 0;
      if (add) {
        assert.equal(counter.tryAdd(address), current < 4);
        if (current < 4) model.set(address, current + 1);
      } else if (current > 0) {
        counter.remove(address);
        if (current === 1) model.delete(address);
        else model.set(address, current - 1);
      } else {
        assert.throws(() => counter.remove(address), /without a matching tryAdd/);
      }
      assert.equal(counter.count(address), model.get(address) ?? 0);
      assert.equal(counter.addresses, model.size);
    }
  }));
});

test("a token bucket allows its capacity in a burst, then refillPerSecond, and says when to retry", () => {
  const bucket = new TokenBucket({ refillPerSecond: 2, capacity: 3 }, 0);
  for (let i = 0; i < 3; i++) assert.ok(bucket.take(0));
  assert.equal(bucket.take(0), false);
  assert.equal(bucket.retryAfterSeconds(0), 1);
  assert.equal(bucket.take(499), false, "not yet a whole token after 499 ms at 2/s");
  assert.ok(bucket.take(500), "one token after 500 ms");
  assert.equal(bucket.take(500), false);
  assert.ok(bucket.isFull(10_000), "refills up to capacity, no further");
  for (let i = 0; i < 3; i++) assert.ok(bucket.take(10_000));
  assert.equal(bucket.take(10_000), false, "capacity caps the burst after a long quiet period");
});

test("a token bucket never allows more than capacity + rate × elapsed, whatever the request times", () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 2_000 }), { maxLength: 300 }), fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 5 }),
    (gaps, capacity, rate) => {
      const bucket = new TokenBucket({ refillPerSecond: rate, capacity }, 0);
      let now = 0;
      let allowed = 0;
      for (const gap of gaps) {
        now += gap;
        if (bucket.take(now)) allowed++;
        assert.ok(allowed <= capacity + (rate * now) / 1000 + 1e-9, `${allowed} allowed by ${now} ms`);
      }
    }));
});

test("a slow clock (stepping back) neither adds nor removes tokens", () => {
  const bucket = new TokenBucket({ refillPerSecond: 1, capacity: 1 }, 10_000);
  assert.ok(bucket.take(10_000));
  assert.equal(bucket.take(5_000), false);
  assert.equal(bucket.take(10_999), false);
  assert.ok(bucket.take(11_000));
});

test("the rate limiter charges the address first, then everyone, and names which ran out", () => {
  const limiter = new RateLimiter({ perAddress: { refillPerSecond: 1, capacity: 2 }, global: { refillPerSecond: 1, capacity: 3 }, addressesMax: 10 }, 0);
  assert.deepEqual(limiter.take("a", 0), { allowed: true });
  assert.deepEqual(limiter.take("a", 0), { allowed: true });
  const refusedA = limiter.take("a", 0);
  assert.equal(refusedA.allowed, false);
  assert.equal(!refusedA.allowed && refusedA.scope, "address");
  assert.deepEqual(limiter.take("b", 0), { allowed: true });
  const refusedB = limiter.take("b", 0);
  assert.equal(!refusedB.allowed && refusedB.scope, "global", "the global bucket (3) is empty after a, a, b");
});

test("the rate limiter remembers at most addressesMax addresses and still caps a flood from many addresses globally", () => {
  const limiter = new RateLimiter({ perAddress: { refillPerSecond: 1, capacity: 5 }, global: { refillPerSecond: 1, capacity: 20 }, addressesMax: 8 }, 0);
  let allowed = 0;
  for (let i = 0; i < 1_000; i++) if (limiter.take(`10.0.${i >> 8}.${i & 255}`, 0).allowed) allowed++;
  assert.ok(limiter.addresses <= 8);
  assert.equal(allowed, 20, "one request per new address, until the global bucket is empty");
});

test("the rate-limited log writes the first refusal at once and sums the rest into the next line", () => {
  const lines: { object: Record<string, unknown>; message: string }[] = [];
  let now = 0;
  const log = new RateLimitedLog({ warn: (object, message) => lines.push({ object: object as Record<string, unknown>, message }) }, 1_000, () => now);
  for (let i = 0; i < 100; i++) log.warn({ i }, "refused");
  assert.equal(lines.length, 1);
  now = 1_000;
  log.warn({ i: 100 }, "refused");
  assert.equal(lines.length, 2);
  assert.equal(lines[1]!.object.suppressedSinceLast, 99);
});

test("a connection that never finishes its handshake is closed at the deadline, and the per-address cap closes extra ones at once", async () => {
  const admission = new ConnectionAdmission({ perAddressMax: 2, handshakeTimeoutMs: 300, name: "test", log: new RateLimitedLog({ warn() {} }, 1_000) });
  const server = createServer(() => { /* never completes a handshake */ });
  admission.attach(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const closed = (socket: Socket) => new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const open = () => new Promise<Socket>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => resolve(socket));
    socket.on("error", () => undefined);
    socket.once("error", reject);
  });
  try {
    const first = await open();
    const second = await open();
    const firstClosed = closed(first);
    const secondClosed = closed(second);
    const third = await open();
    await closed(third); // refused on arrival: the third from one address
    assert.equal(first.destroyed, false, "the first two are still open after the third was refused");
    await Promise.all([firstClosed, secondClosed]); // the handshake deadline
    const deadline = Date.now() + 5_000;
    while (admission.perAddress.count("127.0.0.1") !== 0 || admission.handshakingCount !== 0) {
      assert.ok(Date.now() < deadline, "the server forgets the closed connections");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
