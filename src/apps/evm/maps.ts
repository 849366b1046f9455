// The EVM app's KV maps. All are private (no `public:` prefix), so Ethereum state, transactions
// and receipts are encrypted in the ledger with the ledger secret like any private Coco data.

/** Address (20 bytes) -> RLP([nonce, balance, storageRoot, codeHash]) as in Ethereum's state trie. */
export const ACCOUNTS = "evm.accounts";
/** Code hash (32 bytes) -> contract code. Content-addressed: identical contracts share one entry. */
export const CODE = "evm.code";
/** Address (20 bytes) ‖ slot (32 bytes) -> value with leading zero bytes removed; zero = absent. */
export const STORAGE = "evm.storage";
/** Transaction hash (32 bytes) -> JSON StoredTransaction. */
export const TRANSACTIONS = "evm.transactions";
/** Transaction hash (32 bytes) -> JSON StoredReceipt (with its logs). */
export const RECEIPTS = "evm.receipts";
/** Block number (8 bytes, big-endian) -> JSON StoredBlock. */
export const BLOCKS = "evm.blocks";
/** Block hash (32 bytes) -> block number (8 bytes, big-endian). */
export const BLOCK_HASHES = "evm.block_hashes";
/** Singleton keys: `head` -> JSON StoredHead. */
export const META = "evm.meta";

export const HEAD_KEY = Buffer.from("head");

export const ALL_MAPS = [ACCOUNTS, CODE, STORAGE, TRANSACTIONS, RECEIPTS, BLOCKS, BLOCK_HASHES, META] as const;

export function blockNumberKey(number: bigint): Buffer {
  const key = Buffer.allocUnsafe(8);
  key.writeBigUInt64BE(number);
  return key;
}

export function storageKey(address: Uint8Array, slot: Uint8Array): Buffer {
  const key = Buffer.allocUnsafe(52);
  key.set(address, 0);
  key.set(slot, 20);
  return key;
}
