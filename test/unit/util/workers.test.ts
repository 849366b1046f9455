// The node's worker threads run with a bounded young generation (util/workers.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { WORKER_RESOURCE_LIMITS } from "../../../src/util/index.js";

test("a worker started with WORKER_RESOURCE_LIMITS reports that young generation limit", async () => {
  const worker = new Worker("const { parentPort, resourceLimits } = require('node:worker_threads'); parentPort.postMessage(resourceLimits);",
    { eval: true, resourceLimits: WORKER_RESOURCE_LIMITS });
  const limits = await new Promise<{ maxYoungGenerationSizeMb: number }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  await worker.terminate();
  assert.equal(limits.maxYoungGenerationSizeMb, WORKER_RESOURCE_LIMITS.maxYoungGenerationSizeMb);
  assert.ok(limits.maxYoungGenerationSizeMb! <= 16, "well below V8's 48 MiB default for a busy isolate");
});
