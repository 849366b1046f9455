// The Ethereum world state of the EVM app, kept in Coco's private KV maps instead of a Merkle
// Patricia trie: the ledger, not a state root, is what proves history in Coco. Writes go to an
// in-memory overlay with a checkpoint journal (the VM checkpoints at every call frame and
// reverts on failure); `flush` copies the overlay into the request's KV transaction once the
// Ethereum transaction has run, so a reverted frame never reaches the KV write set.
import type { AccountFields, StateManagerInterface, StorageDump, StorageRange } from "@ethereumjs/common";
import { Account, type Address, createAccountFromRLP, KECCAK256_NULL, KECCAK256_RLP, unpadBytes } from "@ethereumjs/util";
import { keccak_256 } from "@noble/hashes/sha3.js";
import type { Transaction } from "../../kv/index.js";
import { ACCOUNTS, CODE, STORAGE, storageKey } from "./maps.js";

const EMPTY = new Uint8Array(0);
const EMPTY_CODE_HASH = Buffer.from(KECCAK256_NULL);

type Undo = () => void;

/** Latin1 strings are cheap, exact map keys for byte strings. */
const keyOf = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
const bytesOf = (key: string): Buffer => Buffer.from(key, "latin1");

export class KvStateManager implements StateManagerInterface {
  /** Address -> account as written in this overlay; null = deleted. */
  private readonly accounts = new Map<string, Account | null>();
  /** Code hash -> code written in this overlay. */
  private readonly code = new Map<string, Uint8Array>();
  /** Address -> slot -> unpadded value (empty = zero) written in this overlay. */
  private readonly storage = new Map<string, Map<string, Uint8Array>>();
  /** Addresses whose whole storage was cleared in this overlay (contract creation, selfdestruct). */
  private readonly cleared = new Set<string>();
  /** One undo list per open checkpoint. */
  private readonly journal: Undo[][] = [];

  private tx: Transaction;

  constructor(tx: Transaction) {
    this.tx = tx;
  }

  /** Starts over on another request's KV transaction: the VM is reused, the overlay is not. */
  begin(tx: Transaction): void {
    this.tx = tx;
    this.accounts.clear();
    this.code.clear();
    this.storage.clear();
    this.cleared.clear();
    this.journal.length = 0;
  }

  readonly originalStorageCache = {
    /** The value at the start of the Ethereum transaction: the KV state under the overlay. */
    get: async (address: Address, key: Uint8Array): Promise<Uint8Array> => this.committedStorage(keyOf(address.bytes), key),
    clear: (): void => {},
  };

  // ---- accounts ----

  async getAccount(address: Address): Promise<Account | undefined> {
    return this.account(keyOf(address.bytes));
  }

  async putAccount(address: Address, account?: Account): Promise<void> {
    if (account === undefined) return this.deleteAccount(address);
    this.setAccount(keyOf(address.bytes), account);
  }

  async deleteAccount(address: Address): Promise<void> {
    const addr = keyOf(address.bytes);
    this.setAccount(addr, null);
    this.clearStorageOf(addr);
  }

  async modifyAccountFields(address: Address, fields: AccountFields): Promise<void> {
    const addr = keyOf(address.bytes);
    const current = this.account(addr);
    const account = current === undefined ? new Account() : copyAccount(current);
    if (fields.nonce !== undefined) account.nonce = fields.nonce;
    if (fields.balance !== undefined) account.balance = fields.balance;
    if (fields.storageRoot !== undefined) account.storageRoot = fields.storageRoot;
    if (fields.codeHash !== undefined) account.codeHash = fields.codeHash;
    if (fields.codeSize !== undefined) account.codeSize = fields.codeSize;
    this.setAccount(addr, account);
  }

  // ---- code ----

  async putCode(address: Address, value: Uint8Array): Promise<void> {
    const addr = keyOf(address.bytes);
    const codeHash = value.length === 0 ? KECCAK256_NULL : keccak_256(value);
    if (value.length > 0) this.writeOverlay(this.code, keyOf(codeHash), value);
    const current = this.account(addr);
    const account = current === undefined ? new Account() : copyAccount(current);
    account.codeHash = codeHash;
    account.codeSize = value.length;
    this.setAccount(addr, account);
  }

  async getCode(address: Address): Promise<Uint8Array> {
    return this.readCode(address.bytes);
  }

  /** Synchronous reads for JSON-RPC queries outside the VM. */
  readAccount(address: Uint8Array): Account | undefined {
    return this.account(keyOf(address));
  }

  readCode(address: Uint8Array): Uint8Array {
    const account = this.account(keyOf(address));
    if (account === undefined || EMPTY_CODE_HASH.equals(account.codeHash)) return EMPTY;
    const hash = keyOf(account.codeHash);
    return this.code.get(hash) ?? this.tx.get(CODE, account.codeHash) ?? EMPTY;
  }

  async getCodeSize(address: Address): Promise<number> {
    return (await this.getCode(address)).length;
  }

  // ---- storage ----

  async getStorage(address: Address, key: Uint8Array): Promise<Uint8Array> {
    return this.readStorage(address.bytes, key);
  }

  readStorage(address: Uint8Array, key: Uint8Array): Uint8Array {
    if (key.length !== 32) throw new Error("Storage key must be 32 bytes long");
    const addr = keyOf(address);
    const own = this.storage.get(addr)?.get(keyOf(key));
    if (own !== undefined) return own;
    if (this.cleared.has(addr)) return EMPTY;
    return this.committedStorage(addr, key);
  }

  async putStorage(address: Address, key: Uint8Array, value: Uint8Array): Promise<void> {
    if (key.length !== 32) throw new Error("Storage key must be 32 bytes long");
    if (value.length > 32) throw new Error("Storage value cannot be longer than 32 bytes");
    const addr = keyOf(address.bytes);
    let slots = this.storage.get(addr);
    if (slots === undefined) this.storage.set(addr, (slots = new Map()));
    this.writeOverlay(slots, keyOf(key), unpadBytes(value));
  }

  async clearStorage(address: Address): Promise<void> {
    this.clearStorageOf(keyOf(address.bytes));
  }

  async dumpStorage(address: Address): Promise<StorageDump> {
    const prefix = Buffer.from(address.bytes);
    const dump: StorageDump = {};
    this.tx.forEach(STORAGE, (value, key) => {
      if (key.subarray(0, 20).equals(prefix)) dump[`0x${key.subarray(20).toString("hex")}`] = `0x${value.toString("hex")}`;
    });
    return dump;
  }

  async dumpStorageRange(_address: Address, _startKey: bigint, _limit: number): Promise<StorageRange> {
    throw new Error("dumpStorageRange is not supported by Coco's KV state manager");
  }

  // ---- checkpoints: one journal level per VM call frame ----

  async checkpoint(): Promise<void> {
    this.journal.push([]);
  }

  async commit(): Promise<void> {
    const top = this.journal.pop();
    if (top === undefined) throw new Error("commit without checkpoint");
    const parent = this.journal[this.journal.length - 1];
    if (parent !== undefined) for (const undo of top) parent.push(undo);
  }

  async revert(): Promise<void> {
    const top = this.journal.pop();
    if (top === undefined) throw new Error("revert without checkpoint");
    for (let i = top.length - 1; i >= 0; i--) top[i]!();
  }

  // ---- state roots: Coco has none; history is proven by the ledger's Merkle tree ----

  async getStateRoot(): Promise<Uint8Array> {
    return KECCAK256_RLP;
  }

  async setStateRoot(_stateRoot: Uint8Array): Promise<void> {
    throw new Error("Coco's EVM state has no state roots: historical state is not available");
  }

  async hasStateRoot(_root: Uint8Array): Promise<boolean> {
    return false;
  }

  clearCaches(): void {}

  shallowCopy(): StateManagerInterface {
    return new KvStateManager(this.tx);
  }

  /** Copies the overlay into the KV transaction. Call once, after the Ethereum transaction. */
  flush(): void {
    if (this.journal.length !== 0) throw new Error(`flush with ${this.journal.length} open checkpoints`);
    for (const addr of this.cleared) this.deleteCommittedStorage(addr);
    for (const [addr, account] of this.accounts) {
      if (account === null) this.tx.delete(ACCOUNTS, bytesOf(addr));
      else this.tx.set(ACCOUNTS, bytesOf(addr), account.serialize());
    }
    for (const [hash, code] of this.code) if (!this.tx.has(CODE, bytesOf(hash))) this.tx.set(CODE, bytesOf(hash), code);
    for (const [addr, slots] of this.storage) {
      const address = bytesOf(addr);
      for (const [slot, value] of slots) {
        const key = storageKey(address, bytesOf(slot));
        if (value.length === 0) this.tx.delete(STORAGE, key);
        else this.tx.set(STORAGE, key, value);
      }
    }
  }

  // ---- internals ----

  private account(addr: string): Account | undefined {
    const own = this.accounts.get(addr);
    if (own !== undefined) return own ?? undefined;
    const raw = this.tx.get(ACCOUNTS, bytesOf(addr));
    return raw === undefined ? undefined : createAccountFromRLP(raw);
  }

  private setAccount(addr: string, account: Account | null): void {
    this.writeOverlay(this.accounts, addr, account === null ? null : copyAccount(account));
  }

  private committedStorage(addr: string, slot: Uint8Array): Uint8Array {
    return this.tx.get(STORAGE, storageKey(bytesOf(addr), slot)) ?? EMPTY;
  }

  private clearStorageOf(addr: string): void {
    const slots = this.storage.get(addr);
    const wasCleared = this.cleared.has(addr);
    this.storage.delete(addr);
    this.cleared.add(addr);
    this.record(() => {
      if (slots !== undefined) this.storage.set(addr, slots);
      if (!wasCleared) this.cleared.delete(addr);
    });
  }

  /**
   * Deletes an address's storage from the KV. Only an account that had code when the request
   * began can have storage, so the (whole-map) scan runs only for such rare clears.
   */
  private deleteCommittedStorage(addr: string): void {
    const raw = this.tx.get(ACCOUNTS, bytesOf(addr));
    if (raw === undefined || EMPTY_CODE_HASH.equals(createAccountFromRLP(raw).codeHash)) return;
    const prefix = bytesOf(addr);
    const doomed: Buffer[] = [];
    this.tx.forEach(STORAGE, (_value, key) => {
      if (key.subarray(0, 20).equals(prefix)) doomed.push(Buffer.from(key));
    });
    for (const key of doomed) this.tx.delete(STORAGE, key);
  }

  private writeOverlay<V>(map: Map<string, V>, key: string, value: V): void {
    const had = map.has(key);
    const previous = map.get(key);
    map.set(key, value);
    this.record(() => {
      if (had) map.set(key, previous as V);
      else map.delete(key);
    });
  }

  private record(undo: Undo): void {
    const top = this.journal[this.journal.length - 1];
    if (top !== undefined) top.push(undo);
  }
}

function copyAccount(account: Account): Account {
  return new Account(account.nonce, account.balance, account.storageRoot, account.codeHash, account.codeSize, account.version);
}
