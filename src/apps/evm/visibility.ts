// Who sees what of the chain under the "bound" address policy (docs/evm.md, "Users and
// addresses"). A transaction's readers are decided once, when it executes, from its receipt: its
// sender, its recipient (`to`), the parties of the Transfer events it emits (ERC-20, ERC-721),
// and the addresses a contract names in a CocoReaders(address[]) event; a contract that emits
// CocoPublic() is public from then on. The readers go to the private map evm.tx_readers, so a
// read checks a set of addresses instead of decoding logs, and what a transaction revealed
// cannot change afterwards.
import { Bloom } from "@ethereumjs/vm";
import { keccak_256 } from "@noble/hashes/sha3.js";
import type { Transaction } from "../../kv/index.js";
import { assert } from "../../util/index.js";
import type { StoredBlock, StoredLog, StoredReceipt } from "./chain.js";
import { addressesOf, ownerOf } from "./addresses.js";
import { RECEIPTS } from "./maps.js";
import { data } from "./hex.js";

/** Transaction hash (32 bytes) -> JSON TransactionReaders. */
export const TX_READERS = "evm.tx_readers";
/** Contract address (20 bytes) -> 0x01: the contract emitted CocoPublic(); public for good. */
export const PUBLIC_CONTRACTS = "evm.public_contracts";
/** Readers one transaction may have (sender and `to` included); further declared ones are ignored. */
export const READERS_PER_TRANSACTION_MAX = 256;

const topic = (signature: string): string => data(keccak_256(Buffer.from(signature, "utf8")));
/** ERC-20's and ERC-721's `Transfer(address indexed from, address indexed to, uint256 [indexed] value)`. */
export const TRANSFER_TOPIC = topic("Transfer(address,address,uint256)");
/** `event CocoReaders(address[] readers)`: the emitting contract lets these addresses read this transaction. */
export const COCO_READERS_TOPIC = topic("CocoReaders(address[])");
/** `event CocoPublic()`: the emitting contract, its transactions, logs and storage are readable by every user. */
export const COCO_PUBLIC_TOPIC = topic("CocoPublic()");

const ZERO_ADDRESS = `0x${"00".repeat(20)}`;
const EMPTY_BLOOM = data(new Uint8Array(256));

/** What evm.tx_readers holds for one transaction. */
export interface TransactionReaders {
  /** Lowercase 0x addresses whose owners see the whole transaction (body, receipt, logs). */
  readonly readers: string[];
  /** The transaction was sent to, or created, a public contract: everyone sees it. */
  readonly public?: true;
  /** Indexes of logs emitted by public contracts: everyone sees these logs (not the rest). */
  readonly publicLogs?: number[];
}

/** An address from an indexed topic (a 32-byte word with 12 zero bytes first), else undefined. */
function topicAddress(word: string | undefined): string | undefined {
  if (word === undefined || word.length !== 66 || !word.startsWith("0x000000000000000000000000")) return undefined;
  return `0x${word.slice(26)}`.toLowerCase();
}

/** The addresses of an ABI-encoded `address[]` (the data of CocoReaders); undefined when malformed. */
export function decodeAddressArray(hex: string): string[] | undefined {
  const bytes = Buffer.from(hex.startsWith("0x") ? hex.slice(2) : hex, "hex");
  const word = (offset: number): bigint | undefined => offset + 32 <= bytes.length ? BigInt(`0x${bytes.subarray(offset, offset + 32).toString("hex")}`) : undefined;
  const start = word(0);
  if (start === undefined || start > BigInt(bytes.length) || start % 32n !== 0n) return undefined;
  const length = word(Number(start));
  if (length === undefined || length > BigInt(READERS_PER_TRANSACTION_MAX)) return undefined;
  const out: string[] = [];
  for (let i = 0; i < Number(length); i++) {
    const offset = Number(start) + 32 + 32 * i;
    if (offset + 32 > bytes.length) return undefined;
    const address = topicAddress(`0x${bytes.subarray(offset, offset + 32).toString("hex")}`);
    if (address === undefined) return undefined;
    out.push(address);
  }
  return out;
}

/**
 * A transaction's readers from its receipt: sender, `to`, Transfer parties, CocoReaders
 * addresses (in that order, at most READERS_PER_TRANSACTION_MAX), and which of it is public by
 * `isPublic` (a contract address -> whether it declared itself public).
 */
export function readersOf(receipt: StoredReceipt, isPublic: (address: string) => boolean): TransactionReaders {
  const readers = new Set<string>([receipt.from.toLowerCase()]);
  const add = (address: string | undefined): void => {
    if (address !== undefined && address !== ZERO_ADDRESS && readers.size < READERS_PER_TRANSACTION_MAX) readers.add(address);
  };
  add(receipt.to?.toLowerCase());
  for (const log of receipt.logs) {
    if (log.topics[0] === TRANSFER_TOPIC && log.topics.length >= 3) {
      add(topicAddress(log.topics[1]));
      add(topicAddress(log.topics[2]));
    } else if (log.topics[0] === COCO_READERS_TOPIC) {
      for (const address of decodeAddressArray(log.data) ?? []) add(address);
    }
  }
  const target = receipt.to ?? receipt.contractAddress;
  const publicLogs = receipt.logs.flatMap((log, index) => isPublic(log.address.toLowerCase()) ? [index] : []);
  return {
    readers: [...readers],
    ...(target !== null && isPublic(target.toLowerCase()) ? { public: true as const } : {}),
    ...(publicLogs.length > 0 ? { publicLogs } : {}),
  };
}

const addressKey = (address: string): Buffer => Buffer.from(address.slice(2), "hex");
const hashKey = (hash: string): Buffer => Buffer.from(hash.slice(2), "hex");

/**
 * Records who may read the transaction of `receipt`, in the transaction that executes it: the
 * contracts that emitted CocoPublic() become public first (so a constructor's declaration covers
 * its own deployment), then the readers are written to evm.tx_readers.
 */
export function recordReaders(tx: Transaction, receipt: StoredReceipt): void {
  const declared = new Set<string>();
  for (const log of receipt.logs) {
    if (log.topics[0] !== COCO_PUBLIC_TOPIC) continue;
    const address = log.address.toLowerCase();
    if (!declared.has(address) && !tx.has(PUBLIC_CONTRACTS, addressKey(address))) tx.set(PUBLIC_CONTRACTS, addressKey(address), Buffer.from([1]));
    declared.add(address);
  }
  const record = readersOf(receipt, (address) => declared.has(address) || tx.has(PUBLIC_CONTRACTS, addressKey(address)));
  assert(record.readers.length >= 1 && record.readers.length <= READERS_PER_TRANSACTION_MAX, "a transaction has its sender among 1..max readers");
  tx.set(TX_READERS, hashKey(receipt.transactionHash), Buffer.from(JSON.stringify(record)));
}

/** What one caller may see; absent from a request under the "open" policy (everything). */
export interface Visibility {
  /** The whole transaction (body, receipt, every log): one of its readers is the caller's, or it is public. */
  seesTransaction(hash: string): boolean;
  /** One log (index in its receipt): its transaction is visible, or its emitter is public. */
  seesLog(hash: string, index: number): boolean;
  /** Balance, nonce and code of an address: it is not bound to another user. */
  seesAccount(address: Buffer): boolean;
  /** Raw storage of a contract (eth_getStorageAt): the contract declared itself public. */
  seesStorage(address: Buffer): boolean;
}

/**
 * The visibility of user `userId` over the state `tx` reads. Readers are looked up once per
 * transaction hash per request; a transaction executed before readers were recorded has them
 * computed from its receipt.
 */
export function userVisibility(tx: Transaction, userId: string): Visibility {
  let mine: ReadonlySet<string> | undefined;
  const records = new Map<string, TransactionReaders | undefined>();
  const recordOf = (hash: string): TransactionReaders | undefined => {
    if (records.has(hash)) return records.get(hash);
    const key = hashKey(hash);
    const raw = tx.get(TX_READERS, key);
    let record: TransactionReaders | undefined;
    if (raw !== undefined) record = JSON.parse(raw.toString("utf8")) as TransactionReaders;
    else {
      const receipt = tx.get(RECEIPTS, key);
      record = receipt === undefined ? undefined
        : readersOf(JSON.parse(receipt.toString("utf8")) as StoredReceipt, (address) => tx.has(PUBLIC_CONTRACTS, addressKey(address)));
    }
    records.set(hash, record);
    return record;
  };
  const seesTransaction = (hash: string): boolean => {
    const record = recordOf(hash.toLowerCase());
    if (record === undefined) return false;
    if (record.public === true) return true;
    mine ??= new Set(addressesOf(tx, userId));
    return record.readers.some((address) => mine!.has(address));
  };
  return {
    seesTransaction,
    seesLog: (hash, index) => seesTransaction(hash) || (recordOf(hash.toLowerCase())?.publicLogs?.includes(index) ?? false),
    seesAccount: (address) => {
      const owner = ownerOf(tx, address);
      return owner === undefined || owner === userId;
    },
    seesStorage: (address) => tx.has(PUBLIC_CONTRACTS, address),
  };
}

/**
 * A block as `visibility` lets its caller see it: a block whose transaction it may not see keeps
 * its number, hash, parent and timestamp (clients need a well-formed chain) but lists no
 * transaction, uses no gas, and its bloom covers only the logs the caller may see.
 */
export function visibleBlock(block: StoredBlock, visibility: Visibility | undefined, logsOf: (hash: string) => readonly StoredLog[]): StoredBlock {
  if (visibility === undefined) return block;
  const hidden = block.transactions.filter((hash) => !visibility.seesTransaction(hash));
  if (hidden.length === 0) return block;
  const bloom = new Bloom();
  let logs = 0;
  for (const hash of block.transactions) {
    const visible = !hidden.includes(hash);
    logsOf(hash).forEach((log, index) => {
      if (!visible && !visibility.seesLog(hash, index)) return;
      logs++;
      bloom.add(Buffer.from(log.address.slice(2), "hex"));
      for (const topicValue of log.topics) bloom.add(Buffer.from(topicValue.slice(2), "hex"));
    });
  }
  // One transaction per block today: a hidden one hides all the block's gas.
  const gasUsed = hidden.length === block.transactions.length ? "0x0" : block.gasUsed;
  return { ...block, transactions: block.transactions.filter((hash) => !hidden.includes(hash)), gasUsed, logsBloom: logs === 0 ? EMPTY_BLOOM : data(bloom.bitvector) };
}
