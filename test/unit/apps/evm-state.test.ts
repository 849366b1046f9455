// The KV-backed state manager: the VM's checkpoints and reverts stay in the overlay, and only
// flush() writes to the Coco transaction, into the private evm.* maps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Account, Address } from "@ethereumjs/util";
import { Store } from "../../../src/kv/index.js";
import { KvStateManager, evmMaps } from "../../../src/apps/evm/index.js";

const A = new Address(Buffer.alloc(20, 0xaa));
const slot = (n: number) => { const s = Buffer.alloc(32); s[31] = n; return s; };

test("reverting a checkpoint undoes account, code and storage writes", async () => {
  const store = new Store();
  const state = new KvStateManager(store.begin());
  await state.putAccount(A, new Account(1n, 100n));
  await state.checkpoint();
  await state.modifyAccountFields(A, { balance: 5n });
  await state.putCode(A, Buffer.from("6000", "hex"));
  await state.putStorage(A, slot(1), Buffer.from([7]));
  await state.revert();
  assert.equal((await state.getAccount(A))!.balance, 100n);
  assert.equal((await state.getCode(A)).length, 0);
  assert.equal((await state.getStorage(A, slot(1))).length, 0);
});

test("a committed inner checkpoint is undone by reverting the outer one", async () => {
  const state = new KvStateManager(new Store().begin());
  await state.checkpoint();
  await state.checkpoint();
  await state.putStorage(A, slot(2), Buffer.from([1]));
  await state.commit();
  assert.deepEqual([...(await state.getStorage(A, slot(2)))], [1]);
  await state.revert();
  assert.equal((await state.getStorage(A, slot(2))).length, 0);
});

test("flush writes the overlay into the KV transaction; zero storage deletes the slot", async () => {
  const store = new Store();
  let tx = store.begin();
  let state = new KvStateManager(tx);
  await state.putAccount(A, new Account(0n, 9n));
  await state.putCode(A, Buffer.from("6001", "hex"));
  await state.putStorage(A, slot(3), Buffer.from([0, 0, 4]));
  state.flush();
  store.commit(tx, 1);
  assert.ok(store.get(evmMaps.ACCOUNTS, A.bytes));
  assert.deepEqual([...store.get(evmMaps.STORAGE, evmMaps.storageKey(A.bytes, slot(3)))!], [4], "values are stored unpadded");

  tx = store.begin();
  state = new KvStateManager(tx);
  assert.equal((await state.getAccount(A))!.balance, 9n);
  assert.equal(Buffer.from(await state.getCode(A)).toString("hex"), "6001");
  assert.deepEqual([...(await state.originalStorageCache.get(A, slot(3)))], [4]);
  await state.putStorage(A, slot(3), new Uint8Array(0));
  state.flush();
  store.commit(tx, 2);
  assert.equal(store.get(evmMaps.STORAGE, evmMaps.storageKey(A.bytes, slot(3))), undefined);
});

test("clearStorage hides committed slots and deletes them on flush", async () => {
  const store = new Store();
  let tx = store.begin();
  let state = new KvStateManager(tx);
  await state.putCode(A, Buffer.from("6001", "hex"));
  await state.putStorage(A, slot(1), Buffer.from([1]));
  state.flush();
  store.commit(tx, 1);
  tx = store.begin();
  state = new KvStateManager(tx);
  await state.clearStorage(A);
  assert.equal((await state.getStorage(A, slot(1))).length, 0);
  state.flush();
  store.commit(tx, 2);
  assert.equal(store.get(evmMaps.STORAGE, evmMaps.storageKey(A.bytes, slot(1))), undefined);
});
