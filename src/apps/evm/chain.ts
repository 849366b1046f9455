// The EVM chain inside Coco: runs Ethereum transactions with @ethereumjs/vm against the KV state
// of the current request, and records blocks, transactions and receipts. One block per
// Ethereum transaction: its number and hash are known when the handler runs (a per-batch block
// would need the ledger batch, which only exists after commit), so a receipt never changes.
import type { Common } from "@ethereumjs/common";
import { createBlock, type Block } from "@ethereumjs/block";
import { Capability, createTxFromRLP, createLegacyTx, type TypedTransaction } from "@ethereumjs/tx";
import { createVM, runTx, type VM } from "@ethereumjs/vm";
import type { EVMMockBlockchainInterface } from "@ethereumjs/evm";
import { Account, Address, createAccountFromRLP, createAddressFromString } from "@ethereumjs/util";
import { keccak_256 } from "@noble/hashes/sha3.js";
import type { Transaction } from "../../kv/index.js";
import { KvStateManager } from "./state-manager.js";
import { cacheJumpAnalysis, fastMstore, lazyRunState, loadEvmInternals, loadInterpreterPrototype, memoiseSenderAddress } from "./fast-paths.js";
import { newChainCommon, sharedChainCommon } from "./common.js";
import { senderRecovery, type RecoveredSender } from "./sender-recovery.js";
import { ACCOUNTS, BLOCKS, BLOCK_HASHES, HEAD_KEY, META, RECEIPTS, TRANSACTIONS, blockNumberKey } from "./maps.js";
import { data, quantity, ZERO_HASH } from "./hex.js";
import { RpcError, RpcErrorCodes } from "./errors.js";
import { CALL_GAS_CAP_DEFAULT, callGasLimit, callResult, estimateGas, runCallOptions } from "./call-execution.js";

/** geth's txMaxSize: larger signed transactions are refused before decoding ("oversized data"). */
export const TRANSACTION_BYTES_MAX = 128 * 1024;

export interface GenesisAllocation {
  /** 0x-prefixed 20-byte address. */
  readonly address: string;
  /** Decimal or 0x-hex wei. */
  readonly balanceWei: string;
}

export interface EvmChainOptions {
  readonly chainId: bigint | number;
  readonly genesis?: readonly GenesisAllocation[];
  /** Constant base fee (burnt). Default 1 gwei. */
  readonly baseFeePerGasWei?: bigint;
  /** Gas limit of every block, hence the largest transaction. Default 30,000,000. */
  readonly blockGasLimit?: bigint;
  /** Receives priority fees. Default the zero address. */
  readonly coinbase?: string;
  /** Accept legacy transactions without EIP-155 replay protection. Default false, as geth. */
  readonly allowUnprotectedTransactions?: boolean;
  /** Most gas an eth_call or eth_estimateGas may use (geth's RPCGasCap). Default 50,000,000. */
  readonly callGasCap?: bigint;
  /** Seconds since the epoch for new blocks; the node's clock by default. */
  readonly nowSeconds?: () => bigint;
}

/** A block as answered by eth_getBlockByNumber with hashes only. */
export interface StoredBlock {
  number: string; hash: string; parentHash: string; timestamp: string;
  gasLimit: string; gasUsed: string; baseFeePerGas: string; miner: string; logsBloom: string;
  transactions: string[];
}

export interface StoredLog { address: string; topics: string[]; data: string; logIndex: string }

export interface StoredReceipt {
  transactionHash: string; transactionIndex: string; blockHash: string; blockNumber: string;
  from: string; to: string | null; contractAddress: string | null; cumulativeGasUsed: string; gasUsed: string;
  effectiveGasPrice: string; status: string; logsBloom: string; type: string; logs: StoredLog[];
}

/** The block a call runs in (the one after the head), as plain values a worker can receive. */
export interface CallBlock {
  number: bigint; timestamp: bigint; parentHash: string; gasLimit: bigint; baseFee: bigint; coinbase: string;
}

export interface CallRequest {
  from?: Buffer; to?: Buffer; gas?: bigint; gasPrice?: bigint; value?: bigint; data?: Buffer;
}

/** BLOCKHASH for the VM: the hashes of this chain's blocks, read from the request's transaction. */
export class KvBlockHashes implements EVMMockBlockchainInterface {
  constructor(public tx: Transaction) {}

  async getBlock(number: number): Promise<{ hash(): Uint8Array }> {
    const raw = this.tx.get(BLOCKS, blockNumberKey(BigInt(number)));
    const hash = raw === undefined ? new Uint8Array(32) : Buffer.from((JSON.parse(raw.toString("utf8")) as StoredBlock).hash.slice(2), "hex");
    return { hash: () => hash };
  }

  async putBlock(): Promise<void> {}

  shallowCopy(): EVMMockBlockchainInterface {
    return new KvBlockHashes(this.tx);
  }
}

/** A VM over `state` with Coco's exact fast paths (fast-paths.ts); the main thread's and the call workers'. */
export async function createChainVm(common: Common, state: KvStateManager, blocks: KvBlockHashes): Promise<VM> {
  const vm = await createVM({ common, stateManager: state, blockchain: blocks });
  fastMstore(vm);
  const interpreter = await loadInterpreterPrototype();
  if (interpreter !== undefined) cacheJumpAnalysis(interpreter);
  const internals = await loadEvmInternals();
  if (internals !== undefined) lazyRunState(internals);
  return vm;
}

/** Starts a reused VM clean: runCall leaves warm addresses and transient storage behind (runTx clears them only at its end). */
export function resetVm(vm: VM): void {
  vm.evm.journal.cleanJournal();
  (vm.evm as unknown as { transientStorage: { clear(): void } }).transientStorage.clear();
}

const DEFAULT_BASE_FEE = 1_000_000_000n;
const DEFAULT_BLOCK_GAS_LIMIT = 30_000_000n;
const EMPTY_BLOOM = data(new Uint8Array(256));

function jsonValue<T>(raw: Buffer | undefined): T | undefined {
  return raw === undefined ? undefined : JSON.parse(raw.toString("utf8")) as T;
}
const jsonBytes = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

export class EvmChain {
  readonly chainId: bigint;
  readonly common: Common;
  /** The Common of every decoded transaction and block header, never copied (see common.ts). */
  private readonly sharedCommon: Common;
  readonly baseFee: bigint;
  readonly blockGasLimit: bigint;
  readonly callGasCap: bigint;
  private readonly coinbase: Address;
  private vm: Promise<{ vm: VM; state: KvStateManager; blocks: KvBlockHashes }> | undefined;
  /** Executions are serialised: one VM and one state overlay serve every request in turn. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: EvmChainOptions) {
    this.chainId = BigInt(options.chainId);
    if (this.chainId <= 0n || this.chainId > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new Error(`EVM chain id must be a positive safe integer, got ${this.chainId}`);
    }
    this.common = newChainCommon(Number(this.chainId));
    this.sharedCommon = sharedChainCommon(Number(this.chainId));
    this.baseFee = options.baseFeePerGasWei ?? DEFAULT_BASE_FEE;
    this.blockGasLimit = options.blockGasLimit ?? DEFAULT_BLOCK_GAS_LIMIT;
    this.callGasCap = options.callGasCap ?? CALL_GAS_CAP_DEFAULT;
    if (this.callGasCap <= 0n) throw new Error(`EVM call gas cap must be positive, got ${this.callGasCap}`);
    this.coinbase = createAddressFromString(options.coinbase ?? `0x${"00".repeat(20)}`);
  }

  /** Runs `fn` alone on the shared VM, its state overlay bound to `tx`. */
  private exclusive<T>(tx: Transaction, fn: (vm: VM, state: KvStateManager) => Promise<T>): Promise<T> {
    this.vm ??= (async () => {
      const state = new KvStateManager(tx);
      const blocks = new KvBlockHashes(tx);
      return { vm: await createChainVm(this.common, state, blocks), state, blocks };
    })();
    const run = this.queue.then(async () => {
      const { vm, state, blocks } = await this.vm!;
      state.begin(tx);
      blocks.tx = tx;
      resetVm(vm);
      return fn(vm, state);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  // ---- genesis and head ----

  /** Writes the genesis allocation and block 0 if this service has no EVM chain yet. */
  genesisWrites(tx: Transaction): boolean {
    if (tx.has(META, HEAD_KEY)) return false;
    for (const { address, balanceWei } of this.options.genesis ?? []) {
      const account = new Account(0n, BigInt(balanceWei));
      tx.set(ACCOUNTS, createAddressFromString(address).bytes, account.serialize());
    }
    const chainIdBytes = Buffer.alloc(32);
    chainIdBytes.writeBigUInt64BE(this.chainId, 24);
    const hash = data(keccak_256(Buffer.concat([Buffer.from("coco-evm-genesis"), chainIdBytes])));
    const block: StoredBlock = {
      number: "0x0", hash, parentHash: ZERO_HASH, timestamp: "0x0", gasLimit: quantity(this.blockGasLimit),
      gasUsed: "0x0", baseFeePerGas: quantity(this.baseFee), miner: this.coinbase.toString(), logsBloom: EMPTY_BLOOM, transactions: [],
    };
    this.putBlock(tx, block);
    return true;
  }

  head(tx: Transaction): StoredBlock {
    let headRaw = tx.get(META, HEAD_KEY);
    if (headRaw === undefined) {
      this.genesisWrites(tx);
      headRaw = tx.get(META, HEAD_KEY)!;
    }
    return this.blockFromRaw(tx.get(BLOCKS, this.headKey(headRaw))!);
  }

  /**
   * Parsed forms of the last head seen, by buffer identity: the KV hands out the same buffer
   * for the same stored value and never changes a stored buffer, so a hit is exact. Every
   * request reads the head; parsing its JSON each time cost ~40 µs per transaction.
   */
  private lastHead: { raw: Buffer; key: Buffer } | undefined;
  private lastBlock: { raw: Buffer; block: StoredBlock } | undefined;

  private headKey(raw: Buffer): Buffer {
    if (this.lastHead?.raw !== raw) this.lastHead = { raw, key: blockNumberKey(BigInt(jsonValue<{ number: string }>(raw)!.number)) };
    return this.lastHead.key;
  }

  private blockFromRaw(raw: Buffer): StoredBlock {
    if (this.lastBlock?.raw !== raw) this.lastBlock = { raw, block: jsonValue<StoredBlock>(raw)! };
    return this.lastBlock.block;
  }

  /**
   * The newest block whose Coco transaction is committed: what eth_blockNumber reports when
   * receipts wait for commit, so that a client that waits for the block number to move before
   * asking for a receipt again (viem) sees it move when the receipt becomes available.
   */
  committedHeadNumber(tx: Transaction, committedSeqno: number): bigint {
    let number = BigInt(this.head(tx).number);
    // Blocks above the commit point are few (one per uncommitted Ethereum transaction); bound the walk.
    for (let steps = 0; number > 0n && steps < 100_000; steps++, number--) {
      const version = tx.getVersionOfPreviousWrite(BLOCKS, blockNumberKey(number));
      if (version === undefined || version <= committedSeqno) return number;
    }
    return number;
  }

  block(tx: Transaction, number: bigint): StoredBlock | undefined {
    if (number < 0n || number >= 2n ** 64n) return undefined;
    return jsonValue<StoredBlock>(tx.get(BLOCKS, blockNumberKey(number)));
  }

  blockByHash(tx: Transaction, hash: Buffer): StoredBlock | undefined {
    const number = tx.get(BLOCK_HASHES, hash);
    return number === undefined ? undefined : this.block(tx, number.readBigUInt64BE());
  }

  private putBlock(tx: Transaction, block: StoredBlock): void {
    const key = blockNumberKey(BigInt(block.number));
    tx.set(BLOCKS, key, jsonBytes(block));
    tx.set(BLOCK_HASHES, Buffer.from(block.hash.slice(2), "hex"), key);
    tx.set(META, HEAD_KEY, jsonBytes({ number: block.number }));
    // The KV keeps the buffers it hands back for these writes once committed: the next
    // request's head() finds them parsed already.
    this.lastHead = { raw: tx.get(META, HEAD_KEY)!, key };
    this.lastBlock = { raw: tx.get(BLOCKS, key)!, block };
  }


  receipt(tx: Transaction, hash: Buffer): StoredReceipt | undefined {
    return jsonValue<StoredReceipt>(tx.get(RECEIPTS, hash));
  }

  transaction(tx: Transaction, hash: Buffer): Record<string, unknown> | undefined {
    return jsonValue<Record<string, unknown>>(tx.get(TRANSACTIONS, hash));
  }

  // ---- reads of the latest state ----

  account(tx: Transaction, address: Buffer): Account {
    this.genesisWrites(tx);
    const raw = tx.get(ACCOUNTS, address);
    return raw === undefined ? new Account() : createAccountFromRLP(raw);
  }

  code(tx: Transaction, address: Buffer): Uint8Array {
    return new KvStateManager(tx).readCode(address);
  }

  storageAt(tx: Transaction, address: Buffer, slot: Buffer): Uint8Array {
    return new KvStateManager(tx).readStorage(address, slot);
  }

  // ---- execution ----

  private nextBlock(head: StoredBlock): { header: Block; number: bigint; timestamp: bigint } {
    const number = BigInt(head.number) + 1n;
    const now = this.options.nowSeconds?.() ?? BigInt(Math.floor(Date.now() / 1000));
    const timestamp = now > BigInt(head.timestamp) ? now : BigInt(head.timestamp);
    const header = createBlock({
      header: {
        number, timestamp, gasLimit: this.blockGasLimit, baseFeePerGas: this.baseFee, coinbase: this.coinbase,
        parentHash: Buffer.from(head.hash.slice(2), "hex"),
      },
    }, { common: this.sharedCommon, skipConsensusFormatValidation: true });
    return { header, number, timestamp };
  }

  /** Decodes, checks and runs a signed transaction; records its block, receipt and logs. */
  /** `authorizeSender` may refuse the recovered sender (by throwing) before anything runs. */
  async sendRawTransaction(tx: Transaction, raw: Buffer, recovered?: RecoveredSender | null, authorizeSender?: (sender: Uint8Array) => void): Promise<string> {
    if (raw.length > TRANSACTION_BYTES_MAX) {
      throw new RpcError(RpcErrorCodes.ServerError, `oversized data: transaction size ${raw.length}, limit ${TRANSACTION_BYTES_MAX}`);
    }
    const ethTx = this.decode(raw);
    if (recovered != null) {
      // What the sender-recovery worker computed from these bytes with the same code: ethereumjs
      // answers hash() and getSenderPublicKey() from this cache (see sender-recovery.ts).
      const cache = (ethTx as unknown as { cache: { hash?: Uint8Array; senderPubKey?: Uint8Array } }).cache;
      cache.hash = recovered.hash;
      cache.senderPubKey = recovered.publicKey;
    }
    let sender: Address;
    try {
      sender = ethTx.getSenderAddress();
    } catch (error) {
      throw new RpcError(RpcErrorCodes.ServerError, `invalid sender: ${(error as Error).message}`);
    }
    authorizeSender?.(sender.bytes);
    const hash = Buffer.from(ethTx.hash());
    if (tx.has(TRANSACTIONS, hash)) throw new RpcError(RpcErrorCodes.ServerError, "already known");
    const head = this.head(tx);
    this.checkAdmissible(tx, ethTx, sender);
    const { header: block, number, timestamp } = this.nextBlock(head);
    const result = await this.exclusive(tx, async (vm, state) => {
      const r = await runTx(vm, { tx: ethTx, block });
      state.flush();
      return r;
    }).catch((error: unknown) => {
      if (error instanceof RpcError) throw error;
      throw new RpcError(RpcErrorCodes.ServerError, `transaction rejected: ${(error as Error).message}`);
    });

    const txHash = data(hash);
    const numberHex = quantity(number);
    const blockHash = data(keccak_256(Buffer.concat([Buffer.from(head.hash.slice(2), "hex"), blockNumberKey(number), blockNumberKey(timestamp), hash])));
    const effectiveGasPrice = this.baseFee + ethTx.getEffectivePriorityFee(this.baseFee);
    const logsBloom = data(result.bloom.bitvector);
    const logs: StoredLog[] = result.receipt.logs.map(([address, topics, logData], index) => ({
      address: data(address), topics: topics.map(data), data: data(logData), logIndex: quantity(index),
    }));
    const to = ethTx.to === undefined ? null : ethTx.to.toString();
    const receipt: StoredReceipt = {
      transactionHash: txHash, transactionIndex: "0x0", blockHash, blockNumber: numberHex,
      from: sender.toString(), to, contractAddress: result.createdAddress?.toString() ?? null,
      cumulativeGasUsed: quantity(result.totalGasSpent), gasUsed: quantity(result.totalGasSpent),
      effectiveGasPrice: quantity(effectiveGasPrice), status: result.execResult.exceptionError === undefined ? "0x1" : "0x0",
      logsBloom, type: quantity(ethTx.type), logs,
    };
    tx.set(RECEIPTS, hash, jsonBytes(receipt));
    tx.set(TRANSACTIONS, hash, jsonBytes(this.rpcTransaction(ethTx, sender, txHash, blockHash, numberHex, effectiveGasPrice)));
    this.putBlock(tx, {
      number: numberHex, hash: blockHash, parentHash: head.hash, timestamp: quantity(timestamp), gasLimit: quantity(this.blockGasLimit),
      gasUsed: quantity(result.totalGasSpent), baseFeePerGas: quantity(this.baseFee), miner: this.coinbase.toString(), logsBloom,
      transactions: [txHash],
    });
    return txHash;
  }

  /**
   * Hashes and senders of signed transactions, recovered on the worker thread (null where it
   * could not: sendRawTransaction then recovers, and reports any error, itself).
   */
  recoverSenders(raws: readonly Buffer[]): Promise<(RecoveredSender | null)[]> {
    return senderRecovery.recover(Number(this.chainId), raws);
  }

  private decode(raw: Buffer): TypedTransaction {
    let ethTx: TypedTransaction;
    try {
      ethTx = createTxFromRLP(raw, { common: this.sharedCommon });
    } catch (error) {
      const message = (error as Error).message;
      if (/chain ?id/i.test(message)) throw new RpcError(RpcErrorCodes.ServerError, `invalid chain id for signer: this chain is ${this.chainId}`);
      throw new RpcError(RpcErrorCodes.InvalidParams, `invalid transaction encoding: ${message.split("\n")[0]}`);
    }
    if (!ethTx.isSigned()) throw new RpcError(RpcErrorCodes.InvalidParams, "transaction is not signed");
    memoiseSenderAddress(ethTx);
    if (ethTx.type === 3 || ethTx.type === 4) {
      throw new RpcError(RpcErrorCodes.ServerError, `transaction type ${ethTx.type} not supported: send legacy, EIP-2930 or EIP-1559 transactions`);
    }
    if (ethTx.type === 0 && !ethTx.supports(Capability.EIP155ReplayProtection) && this.options.allowUnprotectedTransactions !== true) {
      throw new RpcError(RpcErrorCodes.ServerError, "only replay-protected (EIP-155) transactions allowed over RPC");
    }
    return ethTx;
  }

  /** geth's admission checks, with geth's messages, before anything runs. */
  private checkAdmissible(tx: Transaction, ethTx: TypedTransaction, sender: Address): void {
    const account = this.account(tx, Buffer.from(sender.bytes));
    if (ethTx.nonce < account.nonce) throw new RpcError(RpcErrorCodes.ServerError, `nonce too low: next nonce ${account.nonce}, tx nonce ${ethTx.nonce}`);
    if (ethTx.nonce > account.nonce) {
      throw new RpcError(RpcErrorCodes.ServerError, `nonce too high: next nonce ${account.nonce}, tx nonce ${ethTx.nonce} (Coco has no mempool: send transactions in nonce order)`);
    }
    if (ethTx.gasLimit > this.blockGasLimit) throw new RpcError(RpcErrorCodes.ServerError, "exceeds block gas limit");
    // Intrinsic gas, or EIP-7623's calldata floor when higher (Prague).
    const minimumGas = ethTx.getMinimumGasLimit();
    if (ethTx.gasLimit < minimumGas) throw new RpcError(RpcErrorCodes.ServerError, `intrinsic gas too low: have ${ethTx.gasLimit}, want ${minimumGas}`);
    const maxFee = "maxFeePerGas" in ethTx ? ethTx.maxFeePerGas : ethTx.gasPrice;
    if (maxFee < this.baseFee) {
      throw new RpcError(RpcErrorCodes.ServerError, `max fee per gas less than block base fee: maxFeePerGas: ${maxFee}, baseFee: ${this.baseFee}`);
    }
    const cost = ethTx.gasLimit * maxFee + ethTx.value;
    if (account.balance < cost) {
      throw new RpcError(RpcErrorCodes.ServerError, `insufficient funds for gas * price + value: address ${sender.toString()} have ${account.balance} want ${cost}`);
    }
  }

  private rpcTransaction(ethTx: TypedTransaction, sender: Address, hash: string, blockHash: string, blockNumber: string, effectiveGasPrice: bigint): Record<string, unknown> {
    const out: Record<string, unknown> = {
      blockHash, blockNumber, transactionIndex: "0x0", hash, from: sender.toString(), type: quantity(ethTx.type),
      nonce: quantity(ethTx.nonce), gas: quantity(ethTx.gasLimit), gasPrice: quantity(effectiveGasPrice),
      to: ethTx.to?.toString() ?? null, value: quantity(ethTx.value), input: data(ethTx.data),
      v: quantity(ethTx.v!), r: quantity(ethTx.r!), s: quantity(ethTx.s!),
    };
    if (ethTx.type !== 0 || ethTx.supports(Capability.EIP155ReplayProtection)) out["chainId"] = quantity(this.chainId);
    // As ethereumjs's toJSON() words them, without formatting every other field too.
    if (ethTx.type !== 0) {
      out["yParity"] = quantity(ethTx.v!);
      out["accessList"] = "accessList" in ethTx ? ethTx.accessList.map(([address, keys]) => ({ address: data(address), storageKeys: keys.map(data) })) : [];
    }
    if (ethTx.type === 2 && "maxFeePerGas" in ethTx) {
      out["maxFeePerGas"] = quantity(ethTx.maxFeePerGas);
      out["maxPriorityFeePerGas"] = quantity(ethTx.maxPriorityFeePerGas);
    }
    return out;
  }

  /** eth_call: runs a message against the latest state on this thread; nothing is written. */
  async call(tx: Transaction, request: CallRequest): Promise<Uint8Array> {
    return callResult((gas) => this.simulate(tx, request, gas), callGasLimit(request.gas, this.blockGasLimit, this.callGasCap));
  }

  /** eth_estimateGas on this thread (see call-execution.ts). */
  async estimateGas(tx: Transaction, request: CallRequest): Promise<bigint> {
    const { intrinsic, minimum } = this.intrinsicGas(request);
    return estimateGas((gas) => this.simulate(tx, request, gas), callGasLimit(request.gas, this.blockGasLimit, this.callGasCap), intrinsic, minimum);
  }

  /** What a call worker needs to build the block a call runs in: the block after the head. */
  callBlock(tx: Transaction): CallBlock {
    const head = this.head(tx);
    const number = BigInt(head.number) + 1n;
    const now = this.options.nowSeconds?.() ?? BigInt(Math.floor(Date.now() / 1000));
    return {
      number, timestamp: now > BigInt(head.timestamp) ? now : BigInt(head.timestamp), parentHash: head.hash,
      gasLimit: this.blockGasLimit, baseFee: this.baseFee, coinbase: this.coinbase.toString(),
    };
  }

  /** Intrinsic gas (charged before execution) and the minimum gas limit (with EIP-7623's calldata floor). */
  intrinsicGas(request: CallRequest): { intrinsic: bigint; minimum: bigint } {
    const unsigned = createLegacyTx({ to: request.to, data: request.data, value: request.value, gasLimit: this.blockGasLimit }, { common: this.sharedCommon });
    return { intrinsic: unsigned.getIntrinsicGas(), minimum: unsigned.getMinimumGasLimit() };
  }

  private simulate(tx: Transaction, request: CallRequest, gasLimit: bigint) {
    const head = this.head(tx);
    const { header: block } = this.nextBlock(head);
    return this.exclusive(tx, (vm) => vm.evm.runCall(runCallOptions(request, block, gasLimit)));
  }
}

