// Coco's copy of ethereumjs's EVM.runInterpreter (fast-paths.ts, lazyRunState): the frame's
// result is the same, and the `runState` debugging view, now built on first read, still holds
// the interpreter's state. Outcomes against a stock VM are compared by evm-differential.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EVM } from "@ethereumjs/evm";
import { Store } from "../../../src/kv/index.js";
import { KvStateManager } from "../../../src/apps/evm/index.js";
import { createChainVm, KvBlockHashes } from "../../../src/apps/evm/chain.js";
import { newChainCommon } from "../../../src/apps/evm/common.js";

async function chainVm() {
  const tx = new Store().begin();
  return createChainVm(newChainCommon(31337), new KvStateManager(tx), new KvBlockHashes(tx));
}

test("the chain's VM runs call frames through Coco's runInterpreter (the installed @ethereumjs/evm is the release it copies)", async () => {
  await chainVm();
  assert.equal((EVM.prototype as unknown as { cocoLazyRunState?: boolean }).cocoLazyRunState, true,
    "lazyRunState is not installed: @ethereumjs/evm is not LAZY_RUN_STATE_EVM_VERSION; compare its EVM.runInterpreter with fast-paths.ts and update both");
});

test("a frame's result keeps its gas, return value and logs, and its runState is built when read", async () => {
  const vm = await chainVm();
  // PUSH1 2, PUSH1 3, ADD, PUSH1 0, MSTORE, PUSH1 0, PUSH1 0, LOG0, PUSH1 32, PUSH1 0, RETURN
  const code = Buffer.from("600260030160005260006000a060206000f3", "hex");
  const result = await vm.evm.runCode({ code, gasLimit: 100_000n }) as unknown as Record<string, unknown> & {
    runState: { programCounter: number; stack: { length: number }; gasLeft: bigint; code: Uint8Array; isStatic: boolean };
  };
  assert.equal(result["exceptionError"], undefined);
  // 7 × PUSH1 (3) + ADD (3) + MSTORE (3 + 3 memory) + LOG0 (375) + RETURN (0)
  assert.equal(result["executionGasUsed"], 21n + 3n + 6n + 375n);
  assert.equal(result["gas"], 100_000n - 405n);
  assert.equal(Buffer.from(result["returnValue"] as Uint8Array).toString("hex"), "00".repeat(31) + "05");
  assert.equal((result["logs"] as unknown[]).length, 1);
  const { runState } = result;
  assert.equal(runState.programCounter, code.length, "the interpreter stopped after RETURN");
  assert.equal(runState.gasLeft, 100_000n - 405n);
  assert.equal(runState.code, code, "the frame's environment is spread in, as ethereumjs does");
  assert.equal(runState.isStatic, false);
  assert.equal(result.runState, runState, "built once");
});

test("a frame that fails uses all its gas and drops its logs; a revert keeps the rest of its gas", async () => {
  const vm = await chainVm();
  // PUSH1 0, PUSH1 0, LOG0, INVALID
  const invalid = await vm.evm.runCode({ code: Buffer.from("60006000a0fe", "hex"), gasLimit: 50_000n }) as unknown as Record<string, unknown>;
  assert.equal((invalid["exceptionError"] as { error: string }).error, "invalid opcode");
  assert.equal(invalid["executionGasUsed"], 50_000n);
  assert.deepEqual(invalid["logs"], []);
  // PUSH1 0, PUSH1 0, LOG0, PUSH1 0, PUSH1 0, REVERT
  const reverted = await vm.evm.runCode({ code: Buffer.from("60006000a060006000fd", "hex"), gasLimit: 50_000n }) as unknown as Record<string, unknown>;
  assert.equal((reverted["exceptionError"] as { error: string }).error, "revert");
  assert.equal(reverted["executionGasUsed"], 4n * 3n + 375n);
  assert.deepEqual(reverted["logs"], []);
});
