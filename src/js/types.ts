// The host-side contracts of the JS runtime: what a call may touch (KV through the
// current transaction, node-level actions) and the limits it runs under. The node wires
// real implementations; tests use in-memory ones.

/** KV access for one call, backed by the caller's transaction. Keys and values are raw bytes. */
export interface KvAccess {
  get(map: string, key: Uint8Array): Uint8Array | undefined;
  set(map: string, key: Uint8Array, value: Uint8Array): void;
  has(map: string, key: Uint8Array): boolean;
  delete(map: string, key: Uint8Array): boolean;
  clear(map: string): void;
  size(map: string): number;
  forEach(map: string, callback: (value: Uint8Array, key: Uint8Array) => void): void;
  /** CCF's `getVersionOfPreviousWrite`: seqno of the key's last committed write; optional (JS apps). */
  getVersionOfPreviousWrite?(map: string, key: Uint8Array): number | undefined;
}

/**
 * Node-level actions reachable from JS as `ccf.node.*`, `ccf.network.*` and a few `ccf.*`
 * governance functions. All are synchronous: JS calls them inline. A missing hook makes the
 * JS call throw `<name> is not available`, so a partial set is fine where only some apply.
 */
export interface NodeHooks {
  triggerLedgerRekey(): void;
  triggerRecoverySharesRefresh(): void;
  /** `previousServiceIdentity` / `nextServiceIdentity` are PEM certificates as UTF-8 bytes. */
  transitionServiceToOpen(previousServiceIdentity: Uint8Array | undefined, nextServiceIdentity: Uint8Array): void;
  triggerLedgerChunk(): void;
  triggerSnapshot(): void;
  triggerAcmeRefresh(interfaces: string[] | undefined): void;
  getLatestLedgerSecretSeqno(): number;
  /** Returns the PEM of a node certificate endorsed by the service key. */
  generateEndorsedCertificate(csrPem: string, validFrom: string, validityPeriodDays: number): string;
  /** Returns the PEM of a renewed service certificate. */
  generateNetworkCertificate(validFrom: string, validityPeriodDays: number): string;
  setJwtPublicSigningKeys(issuer: string, metadata: unknown, jwks: unknown): void;
  removeJwtPublicSigningKeys(issuer: string): void;
  refreshAppBytecodeCache(): void;
  /**
   * `ccf.gov.validateConstitution`: true if `source` is an acceptable constitution, else throws
   * saying why. Governance supplies it only while the constitution's `validate` runs (as CCF
   * after microsoft/CCF#8341); apps and ballots cannot evaluate modules through it.
   */
  validateConstitution?(source: string): boolean;
  // Per-request hooks of JS app endpoints (`ccf.rpc.*`, `ccf.consensus.*`); optional elsewhere.
  setApplyWrites?(force: boolean): void;
  setClaimsDigest?(digest: Uint8Array): void;
  getLastCommittedTxId?(): { view: number; seqno: number };
  getViewForSeqno?(seqno: number): number | null;
  getStatusForTxId?(view: number, seqno: number): string;
  /** `ccf.historical.*`: the committed states of a seqno range, or null while they are fetched. */
  getStateRange?(handle: number, startSeqno: number, endSeqno: number, secondsUntilExpiry: number | undefined): readonly HistoricalState[] | null;
  dropCachedStates?(handle: number): boolean;
  /**
   * The running JS app request's headers and `request.caller` as JSON ("" = no caller): fetched
   * only if the handler reads them (the caller carries a PEM certificate of ~1 KB).
   */
  requestHeaders?(): string;
  requestCaller?(): string;
}

/**
 * One committed transaction as historical queries see it. As in CCF, its store is rebuilt from
 * that transaction's own ledger entry: `maps` holds exactly the writes of that transaction.
 */
export interface HistoricalState {
  /** `<view>.<seqno>`. */
  readonly transactionId: string;
  readonly seqno: number;
  /** CCF's receipt object as JS sees it (JSON-compatible). */
  readonly receipt: object;
  /** Map name -> key (latin1 string of the key bytes) -> value, `null` for a deletion. */
  readonly maps: ReadonlyMap<string, ReadonlyMap<string, Buffer | null>>;
}

/** Per-call inputs supplied by the host: the sandbox has no clock or entropy of its own. */
export interface JsCallContext {
  /** KV of the current transaction; without it any `ccf.kv` access throws. */
  kv?: KvAccess;
  /** Overrides the runtime's hooks for this call. */
  hooks?: Partial<NodeHooks>;
  /** What `Date.now()` returns once JS calls `ccf.enableUntrustedDateTime(true)`. Default: the runtime's clock. */
  nowMs?: number;
  /** Seed for `Math.random` in this call (4 × uint32). Default: 16 bytes from the runtime's entropy source. */
  randomSeed?: readonly [number, number, number, number];
  /** Overrides the runtime's time limit for this call. */
  timeLimitMs?: number;
  /** `ccf.historicalState` for this call (CCF's `"mode": "historical"` endpoints); undefined otherwise. */
  historicalState?: HistoricalState;
  /**
   * Keep `ccf.kv` sets in the guest and apply them to `kv` when the call returns (or throws),
   * one isolate crossing for all of them. For JS app endpoints that may write; the
   * constitution writes through.
   */
  bufferWrites?: boolean;
}

/** A batch call (JsRuntime.callBatch): several requests, one isolate entry. */
export interface JsBatchContext {
  kv: KvAccess;
  hooks: Partial<NodeHooks>;
  /** Called before request `index` first reaches the host (-2: after the last one). */
  select(index: number): void;
  /** Per request: keep its `ccf.kv` sets in the guest (see JsCallContext.bufferWrites). */
  bufferWrites: readonly boolean[];
  nowMs?: number;
}

/** One request's outcome in a batch: its result and buffered writes, or that it must run on its own. */
export type JsBatchOutcome = { ok: true; value: unknown; writes: unknown } | { ok: false; reason: "threw" | "async" };

export interface JsRuntimeOptions {
  /** Wall-clock limit of one call (and of evaluating a module), in ms. CCF's default is 1000. */
  timeLimitMs?: number;
  /** Heap limit of the isolate, in MiB (at least 8). CCF's default is 100. */
  memoryLimitMiB?: number;
  /** Default node hooks for every call. */
  hooks?: Partial<NodeHooks>;
  /** Host clock for `Date.now()` (only visible after `ccf.enableUntrustedDateTime(true)`). */
  clockMs?: () => number;
  /** Host entropy for seeding `Math.random` per call. */
  randomBytes?: (length: number) => Uint8Array;
}

/** One ES module of a bundle. `name` is its path in the bundle, e.g. `/endpoints/log.js`. */
export interface JsModuleSource {
  name: string;
  source: string;
}
