// The EVM chain's configuration as governance stores it (public:ccf.gov.evm.config) and as the
// node configuration no longer holds it (coco.evm only installs the app).
import { test } from "node:test";
import assert from "node:assert/strict";
import { evmConfigBytes, parseEvmConfig } from "../../../src/apps/evm/index.js";
import { resolveConfig, type NodeConfigFile } from "../../../src/node/config.js";

const file = (evm: unknown): NodeConfigFile => ({
  network: { rpc_interfaces: { primary: { bind_address: "127.0.0.1:0" } } },
  command: { type: "Start", start: { members: [{ certificate_file: "member0_cert.pem" }] } },
  coco: { evm: evm as Record<string, never> },
});

test("set_evm_genesis's value round-trips: lowercase addresses, decimal wei", () => {
  const bytes = evmConfigBytes(31337n, [{ address: "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", balanceWei: "0x10" }]);
  assert.deepEqual(JSON.parse(bytes.toString()), { chain_id: 31337, alloc: { "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266": "16" } });
  assert.deepEqual(parseEvmConfig(bytes), { chainId: 31337n, genesis: [{ address: "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", balanceWei: "16" }] });
});

test("a malformed configuration value (another constitution's) is named, not trusted", () => {
  for (const [value, message] of [
    ["not json", /not JSON/],
    [JSON.stringify({ chain_id: 0 }), /chain_id 0 is not a positive integer/],
    [JSON.stringify({ chain_id: 1, alloc: [] }), /alloc is not an object/],
    [JSON.stringify({ chain_id: 1, alloc: { "0x12": "1" } }), /is not an address/],
    [JSON.stringify({ chain_id: 1, alloc: { ["0x" + "ab".repeat(20)]: -1 } }), /is not wei/],
  ] as const) {
    assert.throws(() => parseEvmConfig(Buffer.from(value)), message);
  }
});

test("coco.evm installs the app and takes no chain settings: chain_id and genesis point to set_evm_genesis", () => {
  assert.deepEqual(resolveConfig(file({}), "/tmp").evm, {});
  assert.equal(resolveConfig({ ...file({}), coco: {} }, "/tmp").evm, undefined);
  assert.throws(() => resolveConfig(file({ chain_id: 31337 }), "/tmp"), /coco\.evm\.chain_id.*set by governance.*set_evm_genesis/);
  assert.throws(() => resolveConfig(file({ genesis: [] }), "/tmp"), /coco\.evm\.genesis.*set_evm_genesis/);
  assert.throws(() => resolveConfig(file({ chainid: 1 }), "/tmp"), /coco\.evm\.chainid: unknown setting/);
  assert.throws(() => resolveConfig(file([]), "/tmp"), /coco\.evm: expected an object/);
});
