// ConcurrencyLimit: never more than `max` tasks at once, waiters run in order, a failing task
// frees its slot, and a newcomer cannot take a slot a finishing task hands to a waiter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConcurrencyLimit } from "../../../src/util/index.js";

test("at most max tasks run at once, in arrival order, failures included", async () => {
  const limit = new ConcurrencyLimit(2);
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  const task = (i: number) => limit.run(async () => {
    running++;
    peak = Math.max(peak, running);
    order.push(i);
    await new Promise((r) => setTimeout(r, 5 + (i % 3)));
    running--;
    if (i === 3) throw new Error("task 3 failed");
    return i;
  });
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => task(i)));
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(results.filter((r) => r.status === "rejected").length, 1);
  // Newcomers racing a hand-over (started from microtasks) still never exceed the bound.
  let now = 0;
  let max = 0;
  const quick = () => limit.run(async () => { now++; max = Math.max(max, now); await Promise.resolve(); now--; });
  await Promise.all(Array.from({ length: 50 }, () => Promise.resolve().then(quick)));
  assert.ok(max <= 2, `${max} ran at once`);
});
