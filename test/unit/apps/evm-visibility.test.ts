// Who sees what under the "bound" address policy (src/apps/evm/visibility.ts): the readers a
// transaction gets when it executes (sender, `to`, Transfer parties, CocoReaders addresses),
// contracts that declare themselves public (CocoPublic), and blocks as others see them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Store } from "../../../src/kv/index.js";
import type { StoredBlock, StoredLog, StoredReceipt } from "../../../src/apps/evm/chain.js";
import {
  COCO_PUBLIC_TOPIC, COCO_READERS_TOPIC, READERS_PER_TRANSACTION_MAX, TRANSFER_TOPIC, TX_READERS, PUBLIC_CONTRACTS,
  decodeAddressArray, readersOf, recordReaders, userVisibility, visibleBlock,
} from "../../../src/apps/evm/visibility.js";
import { ADDRESS_OWNERS, USER_ADDRESSES } from "../../../src/apps/evm/addresses.js";

const address = (n: number) => `0x${n.toString(16).padStart(40, "0")}`;
const word = (hex: string) => `0x${hex.replace(/^0x/, "").padStart(64, "0")}`;
const SENDER = address(0xa11ce);
const TOKEN = address(0x70c3);
const BOB = address(0xb0b);
const CAROL = address(0xca401);
const HASH = word("1234");

/** ABI encoding of an address[] (the data of CocoReaders). */
function addressArray(addresses: readonly string[]): string {
  return `0x${[word("20"), word(addresses.length.toString(16)), ...addresses.map(word)].map((w) => w.slice(2)).join("")}`;
}

function receipt(logs: StoredLog[], overrides: Partial<StoredReceipt> = {}): StoredReceipt {
  return {
    transactionHash: HASH, transactionIndex: "0x0", blockHash: word("b1"), blockNumber: "0x1", from: SENDER, to: TOKEN, contractAddress: null,
    cumulativeGasUsed: "0x5208", gasUsed: "0x5208", effectiveGasPrice: "0x1", status: "0x1", logsBloom: "0x", type: "0x2", logs, ...overrides,
  };
}

const log = (emitter: string, topics: string[], data = "0x"): StoredLog => ({ address: emitter, topics, data, logIndex: "0x0" });

test("a transaction's readers are its sender, its to, its Transfer parties and the addresses a CocoReaders event names", () => {
  const record = readersOf(receipt([
    log(TOKEN, [TRANSFER_TOPIC, word(SENDER), word(BOB)], word("5")),
    log(TOKEN, [COCO_READERS_TOPIC], addressArray([CAROL])),
  ]), () => false);
  assert.deepEqual(record, { readers: [SENDER, TOKEN, BOB, CAROL] });
});

test("a Transfer from the zero address (a mint) does not make the zero address a reader; other events name nobody", () => {
  const record = readersOf(receipt([
    log(TOKEN, [TRANSFER_TOPIC, word("0"), word(BOB)]),
    log(TOKEN, [word("ee"), word(CAROL), word(CAROL)]),
  ]), () => false);
  assert.deepEqual(record.readers, [SENDER, TOKEN, BOB]);
});

test("malformed CocoReaders data is ignored: a short body, a length beyond the data, a word that is not an address, too many", () => {
  assert.deepEqual(decodeAddressArray(addressArray([BOB, CAROL])), [BOB, CAROL]);
  assert.equal(decodeAddressArray("0x"), undefined);
  assert.equal(decodeAddressArray(`0x${word("20").slice(2)}${word("3").slice(2)}${word(BOB).slice(2)}`), undefined, "3 announced, 1 present");
  assert.equal(decodeAddressArray(`0x${word("20").slice(2)}${word("1").slice(2)}${"ff".repeat(32)}`), undefined, "not an address");
  assert.equal(decodeAddressArray(`0x${word("20").slice(2)}${word((READERS_PER_TRANSACTION_MAX + 1).toString(16)).slice(2)}`), undefined);
  const record = readersOf(receipt([log(TOKEN, [COCO_READERS_TOPIC], "0x1234")]), () => false);
  assert.deepEqual(record.readers, [SENDER, TOKEN]);
});

test("readers are capped at READERS_PER_TRANSACTION_MAX, the sender first", () => {
  const many = Array.from({ length: READERS_PER_TRANSACTION_MAX }, (_, i) => address(0x10000 + i));
  const record = readersOf(receipt([log(TOKEN, [COCO_READERS_TOPIC], addressArray(many))]), () => false);
  assert.equal(record.readers.length, READERS_PER_TRANSACTION_MAX);
  assert.equal(record.readers[0], SENDER);
});

test("CocoPublic makes its emitter public for good: the deployment that emits it, later calls and its logs are public", () => {
  const store = new Store();
  const tx = store.begin();
  const deployment = receipt([log(TOKEN, [COCO_PUBLIC_TOPIC])], { to: null, contractAddress: TOKEN });
  recordReaders(tx, deployment);
  assert.ok(tx.has(PUBLIC_CONTRACTS, Buffer.from(TOKEN.slice(2), "hex")));
  assert.deepEqual(JSON.parse(tx.get(TX_READERS, Buffer.from(HASH.slice(2), "hex"))!.toString()), { readers: [SENDER], public: true, publicLogs: [0] });
  // A private contract's transaction that makes the public one emit a log: only that log is public.
  const other = address(0x0e);
  const mixed = readersOf(receipt([log(other, [word("aa")]), log(TOKEN, [word("bb")])], { to: other }), (a) => a === TOKEN);
  assert.deepEqual(mixed, { readers: [SENDER, other], publicLogs: [1] });
});

test("a user sees the transactions it reads, public ones and public logs; others' accounts answer as unknown; storage only of public contracts", () => {
  const store = new Store();
  const tx = store.begin();
  tx.set(USER_ADDRESSES, Buffer.from("bob"), Buffer.from(JSON.stringify([BOB])));
  tx.set(ADDRESS_OWNERS, Buffer.from(BOB.slice(2), "hex"), Buffer.from("bob"));
  tx.set(ADDRESS_OWNERS, Buffer.from(SENDER.slice(2), "hex"), Buffer.from("alice"));
  const hashes = { paid: word("1"), other: word("2"), publicLog: word("3") };
  for (const [hash, logs] of [
    [hashes.paid, [log(TOKEN, [TRANSFER_TOPIC, word(SENDER), word(BOB)])]],
    [hashes.other, [log(TOKEN, [TRANSFER_TOPIC, word(SENDER), word(CAROL)])]],
  ] as const) recordReaders(tx, receipt([...logs], { transactionHash: hash }));
  tx.set(PUBLIC_CONTRACTS, Buffer.from(CAROL.slice(2), "hex"), Buffer.from([1]));
  recordReaders(tx, receipt([log(TOKEN, [word("aa")]), log(CAROL, [word("bb")])], { transactionHash: hashes.publicLog }));
  const bob = userVisibility(tx, "bob");
  assert.equal(bob.seesTransaction(hashes.paid), true);
  assert.equal(bob.seesTransaction(hashes.other), false);
  assert.equal(bob.seesTransaction(word("99")), false, "an unknown hash");
  assert.equal(bob.seesLog(hashes.publicLog, 0), false);
  assert.equal(bob.seesLog(hashes.publicLog, 1), true);
  assert.equal(bob.seesAccount(Buffer.from(SENDER.slice(2), "hex")), false, "Alice's address");
  assert.equal(bob.seesAccount(Buffer.from(BOB.slice(2), "hex")), true);
  assert.equal(bob.seesAccount(Buffer.from(TOKEN.slice(2), "hex")), true, "a contract nobody bound");
  assert.equal(bob.seesStorage(Buffer.from(CAROL.slice(2), "hex")), true);
  assert.equal(bob.seesStorage(Buffer.from(TOKEN.slice(2), "hex")), false);
});

test("a block whose transaction the caller may not see keeps its place in the chain but shows no transaction, gas or bloom (but public logs' bloom)", () => {
  const block: StoredBlock = {
    number: "0x5", hash: word("b5"), parentHash: word("b4"), timestamp: "0x10", gasLimit: "0x1c9c380", gasUsed: "0xbeef",
    baseFeePerGas: "0x1", miner: address(0), logsBloom: `0x${"ff".repeat(256)}`, transactions: [HASH],
  };
  const hidden = { seesTransaction: () => false, seesLog: () => false, seesAccount: () => true, seesStorage: () => false };
  const logs = () => [log(TOKEN, [word("aa")])];
  const seen = visibleBlock(block, hidden, logs);
  assert.deepEqual({ ...seen }, { ...block, transactions: [], gasUsed: "0x0", logsBloom: `0x${"00".repeat(256)}` });
  assert.equal(visibleBlock(block, { ...hidden, seesTransaction: () => true }, logs), block, "the whole block for a reader");
  assert.equal(visibleBlock(block, undefined, logs), block, "the open policy");
  const publicLog = visibleBlock(block, { ...hidden, seesLog: () => true }, logs);
  assert.notEqual(publicLog.logsBloom, `0x${"00".repeat(256)}`, "a public log is in the bloom");
  assert.deepEqual(publicLog.transactions, []);
});
