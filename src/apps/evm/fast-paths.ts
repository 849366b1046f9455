// Exact replacements for a few ethereumjs internals that cost the most per ERC-20 transfer and
// that Coco's use makes cacheable (one hardfork, one Common, contract code that does not change
// under the same bytes). Each keeps ethereumjs's semantics; the EVM unit and e2e tests and the
// differential check (test/unit/apps/evm-differential.test.ts) run through them.
import { readFileSync } from "node:fs";
import type { Common } from "@ethereumjs/common";
import type { VM } from "@ethereumjs/vm";
import { Account, Address, createZeroAddress } from "@ethereumjs/util";
import { EVMError } from "@ethereumjs/evm";
import { keccak256 } from "./crypto.js";

interface OpcodeMapEntry { opcodeInfo: { name: string }; opHandler: (runState: RunStateLike) => void }
interface RunStateLike { stack: { popN(n: number): bigint[] }; memory: { write(offset: number, size: number, value: Uint8Array): void } }

const MSTORE = 0x52;
const MSTORE_WORD = new Uint8Array(32);
const MSTORE_VIEW = new DataView(MSTORE_WORD.buffer);
const MASK_64 = (1n << 64n) - 1n;

/**
 * MSTORE without ethereumjs's `setLengthLeft`, which pads by spreading arrays
 * (`new Uint8Array([...zeros, ...msg])`): ~0.1 ms per ERC-20 transfer. Same semantics: the
 * 32-byte big-endian word at `offset` (memory.write copies it, so one scratch word serves).
 * Gas (the memory expansion handler) is left as it is.
 */
export function fastMstore(vm: VM): void {
  const map = (vm.evm as unknown as { _opcodeMap: OpcodeMapEntry[] })._opcodeMap;
  const entry = map[MSTORE];
  if (entry?.opcodeInfo.name !== "MSTORE") return;
  entry.opHandler = (runState: RunStateLike): void => {
    const [offset, word] = runState.stack.popN(2) as [bigint, bigint];
    MSTORE_VIEW.setBigUint64(0, (word >> 192n) & MASK_64);
    MSTORE_VIEW.setBigUint64(8, (word >> 128n) & MASK_64);
    MSTORE_VIEW.setBigUint64(16, (word >> 64n) & MASK_64);
    MSTORE_VIEW.setBigUint64(24, word & MASK_64);
    runState.memory.write(Number(offset), 32, MSTORE_WORD);
  };
}

/**
 * `Common.isActivatedEIP` is `Array.includes` over every active EIP, and the interpreter asks
 * it several times per opcode (6800, 7864, 2929...). Answer from a lookup table instead,
 * rebuilt whenever ethereumjs rebuilds its cache (a hardfork or EIP change assigns a new array).
 */
export function fastEipLookup(common: Common): void {
  common.isActivatedEIP = function isActivatedEIP(this: Common, eip: number): boolean {
    // `this`, not `common`: Common.copy() copies own properties, this function included.
    const self = this as unknown as { _activatedEIPsCache: number[]; cocoEipSource?: number[]; cocoEipSet?: Set<number> };
    if (self.cocoEipSource !== self._activatedEIPsCache) {
      self.cocoEipSource = self._activatedEIPsCache;
      self.cocoEipSet = new Set(self._activatedEIPsCache);
    }
    return self.cocoEipSet!.has(eip);
  };
}

interface JumpAnalysis { jumps: Uint8Array; pushes: Record<number, bigint>; opcodesCached: unknown[] }
interface InterpreterLike { _evm: object; _getValidJumpDestinations(code: Uint8Array): JumpAnalysis }

/** Per EVM (its opcode map), per code buffer: the jump analysis of that code. */
const jumpAnalyses = new WeakMap<object, WeakMap<Uint8Array, JumpAnalysis>>();

/**
 * ethereumjs analyses a contract's whole bytecode (valid JUMPDESTs, PUSH values, opcode
 * table) at the first jump of every call frame: ~20 µs for an ERC-20, on every transfer. The
 * result is a pure function of the code bytes and the EVM's opcode map, and the interpreter
 * only reads it, so it is kept per (EVM, code buffer). Code comes from the KV (or the overlay),
 * whose buffers are never written after they are stored: the same buffer means the same bytes.
 */
export function cacheJumpAnalysis(interpreterPrototype: InterpreterLike): void {
  const analyse = interpreterPrototype._getValidJumpDestinations;
  if ((analyse as { cocoCached?: boolean }).cocoCached === true) return;
  const cached = function (this: InterpreterLike, code: Uint8Array): JumpAnalysis {
    let perEvm = jumpAnalyses.get(this._evm);
    if (perEvm === undefined) jumpAnalyses.set(this._evm, (perEvm = new WeakMap()));
    let analysis = perEvm.get(code);
    if (analysis === undefined) {
      analysis = analyse.call(this, code);
      perEvm.set(code, analysis);
    }
    return analysis;
  };
  (cached as { cocoCached?: boolean }).cocoCached = true;
  interpreterPrototype._getValidJumpDestinations = cached;
}

/**
 * The Interpreter class is not exported by @ethereumjs/evm; its module is loaded by file URL
 * (next to the package's entry point), which is the same module instance the EVM uses.
 */
export async function loadInterpreterPrototype(): Promise<InterpreterLike | undefined> {
  try {
    const url = new URL("./interpreter.js", import.meta.resolve("@ethereumjs/evm"));
    const module = await import(url.href) as { Interpreter?: { prototype: InterpreterLike } };
    return typeof module.Interpreter?.prototype._getValidJumpDestinations === "function" ? module.Interpreter.prototype : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `Common.hardforkBlock` walks the chain's hardfork list, and every block header asks it several
 * times (~15 µs per header). The shared Common's hardforks never change, so its answers are
 * kept per hardfork name (`null`/`undefined` meaning the current hardfork, resolved each time).
 */
export function memoiseHardforkBlocks(common: Common): void {
  const original = common.hardforkBlock.bind(common);
  const blocks = new Map<string, bigint | null>();
  common.hardforkBlock = (hardfork?: string | null): bigint | null => {
    const name = hardfork ?? common.hardfork();
    let block = blocks.get(name);
    if (block === undefined) blocks.set(name, (block = original(name)));
    return block;
  };
}

interface SenderTx { cache: { cocoSenderAddress?: Address }; getSenderPublicKey(): Uint8Array }
const senderMemoised = new WeakSet<object>();

/**
 * ethereumjs derives a transaction's sender address (keccak of the recovered public key, a new
 * Address) on every `getSenderAddress()`: Coco's admission asks once and runTx again. A frozen
 * transaction (ethereumjs's default) cannot change, so the first answer is kept in its cache, as
 * ethereumjs keeps its hash and public key; and it is derived as ethereumjs's publicToAddress
 * does (low 20 bytes of keccak-256 of the 64-byte key), with crypto.ts's keccak, which remembers
 * the keys of recent senders.
 */
export function memoiseSenderAddress(tx: object): void {
  const prototype = Object.getPrototypeOf(tx) as { getSenderAddress(): Address };
  if (senderMemoised.has(prototype)) return;
  senderMemoised.add(prototype);
  const original = prototype.getSenderAddress;
  prototype.getSenderAddress = function getSenderAddress(this: SenderTx): Address {
    if (!Object.isFrozen(this)) return original.call(this);
    const cached = this.cache.cocoSenderAddress;
    if (cached !== undefined) return cached;
    const publicKey = this.getSenderPublicKey();
    const address = publicKey.length === 64 ? new Address(keccak256(publicKey).subarray(12)) : original.call(this);
    this.cache.cocoSenderAddress = address;
    return address;
  };
}

interface InterpreterResult { runState: { gasLeft: bigint; gasRefund: bigint; stateGasSpilled: bigint }; exceptionError?: { error: string } }
interface InterpreterInstance {
  _result: { logs: unknown[]; returnValue?: Uint8Array; selfdestruct: Map<unknown, unknown>; createdAddresses?: Set<unknown> };
  _env: object;
  run(code: Uint8Array, opts: object): Promise<InterpreterResult>;
}
type InterpreterConstructor = new (...args: unknown[]) => InterpreterInstance;
interface MessageLike {
  to?: Address; caller?: Address; data?: Uint8Array; value?: bigint; code: Uint8Array; isStatic?: boolean; isCreate?: boolean; depth?: number;
  codeAddress: Address; gasRefund: bigint; chargeCodeAccesses?: boolean; blobVersionedHashes?: Uint8Array[]; accessWitness?: { commit(): void };
  createdAddresses?: Set<unknown>; selfdestruct?: Map<unknown, unknown>; gasLimit: bigint;
}
interface EvmLike {
  stateManager: { getAccount(address: Address): Promise<Account | undefined> };
  blockchain: unknown; journal: unknown; performanceLogger: unknown;
  _optsCached: { profiler?: unknown }; _tx: { gasPrice: bigint; origin?: Address }; _block?: unknown;
}

/** The errors after which ethereumjs keeps the frame's unused gas (all others consume it all). */
const GAS_KEEPING_ERRORS: ReadonlySet<string> = new Set([EVMError.errorMessages.REVERT, EVMError.errorMessages.INVALID_EOF_FORMAT]);

/** How to build a frame result's run state, until someone asks for it. */
const runStates = new WeakMap<FrameResult, () => object>();

/** A call frame's result as `runInterpreter` answers it, with `runState` built on first read. */
class FrameResult {
  [field: string]: unknown;
  constructor(result: object) {
    Object.assign(this, result);
  }

  get runState(): object | undefined {
    const build = runStates.get(this);
    if (build === undefined) return undefined;
    const runState = build();
    this.runState = runState;
    return runState;
  }

  set runState(value: object | undefined) {
    Object.defineProperty(this, "runState", { value, writable: true, enumerable: true, configurable: true });
  }
}

/**
 * `EVM.runInterpreter` of @ethereumjs/evm 10.1.3, line for line, but with the result's
 * `runState` (a debugging view: the interpreter's run state, the frame result and its
 * environment spread into one new object) built only when someone reads it. Neither ethereumjs
 * nor Coco reads it, and spreading objects into a literal that already has properties takes
 * V8's slow path (~15 µs per call frame measured on the 2-core machine, ~5% of the main thread
 * per ERC-20 transfer). Everything else, the result's fields and their values, is as ethereumjs
 * computes them; test/unit/apps/evm-differential.test.ts compares outcomes with a stock VM.
 */
export function lazyRunState({ evmPrototype, Interpreter, defaultBlock }: EvmInternals): void {
  const prototype = evmPrototype as { runInterpreter: (message: MessageLike, opts?: { pc?: number; initialLogs?: unknown[] }) => Promise<object>; cocoLazyRunState?: boolean };
  if (prototype.cocoLazyRunState === true) return;
  prototype.cocoLazyRunState = true;
  prototype.runInterpreter = async function runInterpreter(this: EvmLike, message: MessageLike, opts: { pc?: number; initialLogs?: unknown[] } = {}): Promise<object> {
    let contract = await this.stateManager.getAccount(message.to ?? createZeroAddress());
    if (!contract) contract = new Account();
    const env = {
      address: message.to ?? createZeroAddress(),
      caller: message.caller ?? createZeroAddress(),
      callData: message.data ?? Uint8Array.from([0]),
      callValue: message.value ?? 0n,
      code: message.code,
      isStatic: message.isStatic ?? false,
      isCreate: message.isCreate ?? false,
      depth: message.depth ?? 0,
      gasPrice: this._tx.gasPrice,
      origin: this._tx.origin ?? message.caller ?? createZeroAddress(),
      block: this._block ?? defaultBlock(),
      contract,
      codeAddress: message.codeAddress,
      gasRefund: message.gasRefund,
      chargeCodeAccesses: message.chargeCodeAccesses,
      blobVersionedHashes: message.blobVersionedHashes ?? [],
      accessWitness: message.accessWitness,
      createdAddresses: message.createdAddresses,
      initialLogs: opts.initialLogs,
    };
    const interpreter = new Interpreter(this, this.stateManager, this.blockchain, env, message.gasLimit, this.journal, this.performanceLogger, this._optsCached.profiler);
    if (message.selfdestruct) interpreter._result.selfdestruct = message.selfdestruct;
    if (message.createdAddresses) interpreter._result.createdAddresses = message.createdAddresses;
    const interpreterRes = await interpreter.run(message.code, opts);
    let result: InterpreterInstance["_result"] = interpreter._result;
    let gasUsed = message.gasLimit - interpreterRes.runState.gasLeft;
    if (interpreterRes.exceptionError) {
      if (!GAS_KEEPING_ERRORS.has(interpreterRes.exceptionError.error)) gasUsed = message.gasLimit;
      result = { ...result, logs: [], selfdestruct: new Map(), createdAddresses: new Set() };
    }
    message.accessWitness?.commit();
    const frameResult = result;
    const out = new FrameResult(result);
    out.exceptionError = interpreterRes.exceptionError;
    out.gas = interpreterRes.runState?.gasLeft;
    out.executionGasUsed = gasUsed;
    out.gasRefund = interpreterRes.runState.gasRefund;
    out.stateGasSpilled = interpreterRes.runState.stateGasSpilled;
    out.returnValue = result.returnValue ?? new Uint8Array(0);
    runStates.set(out, () => ({ ...interpreterRes.runState, ...frameResult, ...interpreter._env }));
    return out;
  };
}

export interface EvmInternals { evmPrototype: object; Interpreter: InterpreterConstructor; defaultBlock: () => unknown }

/** The @ethereumjs/evm release whose `runInterpreter` lazyRunState reproduces; with any other, the stock method runs. */
export const LAZY_RUN_STATE_EVM_VERSION = "10.1.3";

/**
 * The EVM class's prototype, the Interpreter class and `defaultBlock` of the @ethereumjs/evm
 * instance the VM uses (see loadInterpreterPrototype); undefined unless that is the release
 * lazyRunState copies (LAZY_RUN_STATE_EVM_VERSION).
 */
export async function loadEvmInternals(): Promise<EvmInternals | undefined> {
  try {
    const entry = import.meta.resolve("@ethereumjs/evm");
    const { version } = JSON.parse(readFileSync(new URL("../../package.json", entry), "utf8")) as { version?: string };
    if (version !== LAZY_RUN_STATE_EVM_VERSION) return undefined;
    const evmModule = await import(new URL("./evm.js", entry).href) as { EVM?: { prototype: object }; defaultBlock?: () => unknown };
    const interpreterModule = await import(new URL("./interpreter.js", entry).href) as { Interpreter?: InterpreterConstructor };
    const { EVM } = evmModule;
    if (EVM === undefined || typeof evmModule.defaultBlock !== "function" || interpreterModule.Interpreter === undefined) return undefined;
    if (typeof (EVM.prototype as { runInterpreter?: unknown }).runInterpreter !== "function") return undefined;
    return { evmPrototype: EVM.prototype, Interpreter: interpreterModule.Interpreter, defaultBlock: evmModule.defaultBlock };
  } catch {
    return undefined;
  }
}
