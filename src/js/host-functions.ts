// Host side of the `ccf` global: the only functions guest code can reach in the host. Each
// checks its arguments (the guest is untrusted) and acts on the current call's context.
import { certificateFingerprint, isValidCertificatePem, splitPemBundle } from "../crypto/index.js";
import { CocoError } from "../util/errors.js";
import * as ccfCrypto from "./ccf-crypto.js";
import * as ccfSnp from "./ccf-snp.js";
import type { HostFunctionName } from "./prelude.js";
import type { HistoricalState, JsCallContext, KvAccess, NodeHooks } from "./types.js";

/** What a running call may touch; `undefined` between calls so a leaked callback does nothing. */
export interface ActiveCall {
  kv: KvAccess | undefined;
  hooks: Partial<NodeHooks>;
  /** Historical states the guest holds in this call, by index (0 = `ccf.historicalState`). */
  historical: HistoricalState[] | undefined;
  /** In a batch call: points the host at request `index` (-2: at none). */
  select?: (index: number) => void;
}

const NODE_HOOK_NAMES = new Set<keyof NodeHooks>([
  "triggerLedgerRekey",
  "triggerRecoverySharesRefresh",
  "transitionServiceToOpen",
  "triggerLedgerChunk",
  "triggerSnapshot",
  "triggerAcmeRefresh",
  "getLatestLedgerSecretSeqno",
  "generateEndorsedCertificate",
  "generateNetworkCertificate",
  "setJwtPublicSigningKeys",
  "removeJwtPublicSigningKeys",
  "refreshAppBytecodeCache",
  "validateConstitution",
  "requestHeaders",
  "requestCaller",
  "setApplyWrites",
  "setClaimsDigest",
  "getLastCommittedTxId",
  "getViewForSeqno",
  "getStatusForTxId",
  "dropCachedStates",
]);

function mapName(value: unknown): string {
  if (typeof value !== "string") throw new TypeError("ccf.kv: map name must be a string");
  return value;
}

function bytes(value: unknown, what: string): Uint8Array {
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError(`${what}: expected an ArrayBuffer`);
}

/** KV keys and values arrive from the prelude as latin1 strings (one char per byte): cheaper to cross than ArrayBuffers. */
function latin1Bytes(value: unknown, what: string): Buffer {
  if (typeof value !== "string") throw new TypeError(`${what}: expected bytes`);
  return Buffer.from(value, "latin1");
}

function latin1String(value: Uint8Array): string {
  return (Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)).toString("latin1");
}

/** Copies into a fresh ArrayBuffer: the isolate receives a copy anyway, never a view of KV state. */
function toArrayBuffer(value: Uint8Array): ArrayBuffer {
  // Not value.slice().buffer: a Buffer's slice is a view into a shared pool.
  const copy = new ArrayBuffer(value.byteLength);
  new Uint8Array(copy).set(value);
  return copy;
}

function isValidX509CertBundle(pem: unknown): boolean {
  if (typeof pem !== "string") return false;
  const certificates = splitPemBundle(pem);
  return certificates.length > 0 && certificates.every((certificate) => isValidCertificatePem(certificate));
}

/** Receipts cross as JSON; a state served to many range calls is serialised once. */
const receiptJsonCache = new WeakMap<HistoricalState, string>();
function receiptJson(state: HistoricalState): string {
  let json = receiptJsonCache.get(state);
  if (json === undefined) receiptJsonCache.set(state, (json = JSON.stringify(state.receipt)));
  return json;
}

/** `ccf.historicalState.kv[map].*`: reads of one committed transaction's writes (a deletion reads as absent). */
function historicalKv(call: ActiveCall | undefined, op: unknown, index: unknown, map: unknown, key: unknown): unknown {
  const state = typeof index === "number" ? call?.historical?.[index] : undefined;
  if (state === undefined) throw new Error("a historical state is only available during the call that obtained it");
  const name = mapName(map);
  if (name.startsWith("ccf.")) {
    throw new CocoError("JsForbiddenMap", `ccf.historicalState.kv["${name}"]: private ccf.* maps belong to the service; apps cannot access them`);
  }
  const writes = state.maps.get(name);
  const at = () => {
    if (typeof key !== "string") throw new TypeError(`kv.${String(op)} key: expected bytes`);
    return writes?.get(key) ?? null; // keys are latin1 strings on both sides
  };
  switch (op) {
    case "get": {
      const value = at();
      return value === null ? undefined : latin1String(value);
    }
    case "has":
      return at() !== null;
    case "version":
      return at() === null ? undefined : state.seqno;
    case "size": {
      let size = 0;
      for (const value of writes?.values() ?? []) if (value !== null) size++;
      return size;
    }
    case "entries": {
      const entries: string[] = [];
      for (const [k, value] of writes ?? []) if (value !== null) entries.push(k, latin1String(value));
      return entries;
    }
    default:
      throw new TypeError("invalid historical KV operation");
  }
}

/** `ccf.historical.getStateRange`: the states join the call's list; the guest gets [index, transactionId, receiptJson, ...]. */
function historicalRange(call: ActiveCall | undefined, handle: unknown, start: unknown, end: unknown, expiry: unknown): unknown[] | null {
  const hook = call?.hooks.getStateRange;
  if (call === undefined || hook === undefined) throw new CocoError("JsHookUnavailable", "getStateRange is not available in this context");
  const number = (value: unknown, what: string): number => {
    if (typeof value !== "number") throw new TypeError(`ccf.historical.getStateRange: ${what} must be a number`);
    return value;
  };
  const states = hook.call(call.hooks, number(handle, "handle"), number(start, "startSeqno"), number(end, "endSeqno"),
    expiry === undefined ? undefined : number(expiry, "secondsUntilExpiry"));
  if (states === null) return null;
  const list = (call.historical ??= []);
  const flat: unknown[] = [];
  for (const state of states) {
    flat.push(list.length, state.transactionId, receiptJson(state));
    list.push(state);
  }
  return flat;
}

/** Applies the guest's buffered sets (flat [map, key, value, ...] latin1 strings) to the call's KV, in order. */
export function applyWriteBatch(kv: KvAccess | undefined, batch: unknown): void {
  if (kv === undefined) throw new Error("ccf.kv is not available in this call");
  if (!Array.isArray(batch) || batch.length % 3 !== 0) throw new TypeError("invalid KV write batch");
  for (let i = 0; i < batch.length; i += 3) {
    kv.set(mapName(batch[i]), latin1Bytes(batch[i + 1], "kv.set key"), latin1Bytes(batch[i + 2], "kv.set value"));
  }
}

/** Builds the host functions; `current()` returns the call in progress or undefined. */
export function makeHostFunctions(current: () => ActiveCall | undefined): Record<HostFunctionName, (...args: unknown[]) => unknown> {
  const kv = (): KvAccess => {
    const call = current();
    if (call?.kv === undefined) throw new Error("ccf.kv is not available in this call");
    return call.kv;
  };
  return {
    kvGet: (map, key) => {
      const value = kv().get(mapName(map), latin1Bytes(key, "kv.get key"));
      return value === undefined ? undefined : latin1String(value);
    },
    kvSet: (map, key, value) => kv().set(mapName(map), latin1Bytes(key, "kv.set key"), latin1Bytes(value, "kv.set value")),
    kvSetMany: (batch) => applyWriteBatch(kv(), batch),
    kvHas: (map, key) => kv().has(mapName(map), latin1Bytes(key, "kv.has key")),
    kvDelete: (map, key) => kv().delete(mapName(map), latin1Bytes(key, "kv.delete key")),
    kvClear: (map) => kv().clear(mapName(map)),
    kvSize: (map) => kv().size(mapName(map)),
    kvEntries: (map) => {
      // Flat [key0, value0, key1, value1, ...] of latin1 strings: one copy for the whole map.
      const entries: string[] = [];
      kv().forEach(mapName(map), (value, key) => entries.push(latin1String(key), latin1String(value)));
      return entries;
    },
    kvVersionOfPreviousWrite: (map, key) => {
      const access = kv();
      if (access.getVersionOfPreviousWrite === undefined) throw new Error("kv.getVersionOfPreviousWrite is not available in this call");
      return access.getVersionOfPreviousWrite(mapName(map), latin1Bytes(key, "kv.getVersionOfPreviousWrite key"));
    },
    digest: (algorithm, data) => toArrayBuffer(ccfCrypto.digest(algorithm, bytes(data, "crypto.digest data"))),
    cryptoSign: (name, hash, saltLength, key, data) => toArrayBuffer(ccfCrypto.sign(name, hash, saltLength, key, data)),
    cryptoVerify: (name, hash, saltLength, key, signature, data) => ccfCrypto.verifySignature(name, hash, saltLength, key, signature, data),
    generateAesKey: (size) => toArrayBuffer(ccfCrypto.generateAesKey(size)),
    generateRsaKeyPair: (size, exponent) => ccfCrypto.generateRsaKeyPair(size, exponent),
    generateEcdsaKeyPair: (curve) => ccfCrypto.generateEcdsaKeyPair(curve),
    generateEddsaKeyPair: (curve) => ccfCrypto.generateEddsaKeyPair(curve),
    wrapKey: (key, wrappingKey, name, aesKeySize, label) => toArrayBuffer(ccfCrypto.wrapKey(key, wrappingKey, name, aesKeySize, label)),
    unwrapKey: (key, unwrappingKey, name, label) => toArrayBuffer(ccfCrypto.unwrapKey(key, unwrappingKey, name, label)),
    // Validity dates are checked against the host's clock, as CCF checks them against the node's.
    isValidX509CertChain: (chain, trusted) => ccfCrypto.isValidX509CertChain(chain, trusted, Date.now()),
    pemToJwk: (kind, pem, kid) => ccfCrypto.pemToJwk(kind, pem, kid),
    jwkToPem: (kind, jwk) => ccfCrypto.jwkToPem(kind, jwk),
    // Certificates of the endorsements are checked at the host's time, as CCF checks them at the node's.
    snpVerifyAttestation: (evidence, endorsements, uvm, tcb) => ccfSnp.verifySnpAttestation(evidence, endorsements, uvm, tcb, Date.now()),
    tcbHexToPolicy: (cpuid, hex) => ccfSnp.tcbHexToPolicy(cpuid, hex),
    isValidX509CertBundle: (pem) => isValidX509CertBundle(pem),
    pemToId: (pem) => {
      if (typeof pem !== "string" || !isValidX509CertBundle(pem)) throw new TypeError("pemToId: expected a PEM certificate");
      return certificateFingerprint(pem);
    },
    historicalKv: (op, index, map, key) => historicalKv(current(), op, index, map, key),
    select: (index) => {
      const select = current()?.select;
      if (select === undefined || typeof index !== "number" || !Number.isInteger(index)) throw new TypeError("invalid request selection");
      select(index);
    },
    historicalRange: (handle, start, end, expiry) => historicalRange(current(), handle, start, end, expiry),
    nodeHook: (name, args) => {
      const hooks = current()?.hooks ?? {};
      if (typeof name !== "string" || !NODE_HOOK_NAMES.has(name as keyof NodeHooks) || !Array.isArray(args)) {
        throw new TypeError("invalid node hook call");
      }
      const hook = hooks[name as keyof NodeHooks] as ((...a: unknown[]) => unknown) | undefined;
      if (hook === undefined) throw new CocoError("JsHookUnavailable", `${name} is not available in this context`);
      const hostArgs = args.map((a: unknown) => (a instanceof ArrayBuffer ? new Uint8Array(a) : a));
      return hook.apply(hooks, hostArgs);
    },
  };
}

/** Random 4 × uint32 seed for `Math.random`. */
export function seedFrom(context: JsCallContext, randomBytes: (length: number) => Uint8Array): [number, number, number, number] {
  if (context.randomSeed !== undefined) return [...context.randomSeed] as [number, number, number, number];
  const b = randomBytes(16);
  const view = new DataView(b.buffer, b.byteOffset, 16);
  return [view.getUint32(0), view.getUint32(4), view.getUint32(8), view.getUint32(12)];
}
