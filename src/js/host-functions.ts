// Host side of the `ccf` global: the only functions guest code can reach in the host. Each
// checks its arguments (the guest is untrusted) and acts on the current call's context.
import { certificateFingerprint, isValidCertificatePem, splitPemBundle } from "../crypto/index.js";
import { CocoError } from "../util/errors.js";
import * as ccfCrypto from "./ccf-crypto.js";
import type { HostFunctionName } from "./prelude.js";
import type { JsCallContext, KvAccess, NodeHooks } from "./types.js";

/** What a running call may touch; `undefined` between calls so a leaked callback does nothing. */
export interface ActiveCall {
  kv: KvAccess | undefined;
  hooks: Partial<NodeHooks>;
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
  "setApplyWrites",
  "setClaimsDigest",
  "getLastCommittedTxId",
  "getViewForSeqno",
  "getStatusForTxId",
  "getStateRange",
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

/** Builds the host functions; `current()` returns the call in progress or undefined. */
export function makeHostFunctions(current: () => ActiveCall | undefined): Record<HostFunctionName, (...args: unknown[]) => unknown> {
  const kv = (): KvAccess => {
    const call = current();
    if (call?.kv === undefined) throw new Error("ccf.kv is not available in this call");
    return call.kv;
  };
  return {
    kvGet: (map, key) => {
      const value = kv().get(mapName(map), bytes(key, "kv.get key"));
      return value === undefined ? undefined : toArrayBuffer(value);
    },
    kvSet: (map, key, value) => kv().set(mapName(map), bytes(key, "kv.set key"), bytes(value, "kv.set value")),
    kvHas: (map, key) => kv().has(mapName(map), bytes(key, "kv.has key")),
    kvDelete: (map, key) => kv().delete(mapName(map), bytes(key, "kv.delete key")),
    kvClear: (map) => kv().clear(mapName(map)),
    kvSize: (map) => kv().size(mapName(map)),
    kvEntries: (map) => {
      // Flat [key0, value0, key1, value1, ...]: one structured copy for the whole map.
      const entries: ArrayBuffer[] = [];
      kv().forEach(mapName(map), (value, key) => entries.push(toArrayBuffer(key), toArrayBuffer(value)));
      return entries;
    },
    kvVersionOfPreviousWrite: (map, key) => {
      const access = kv();
      if (access.getVersionOfPreviousWrite === undefined) throw new Error("kv.getVersionOfPreviousWrite is not available in this call");
      return access.getVersionOfPreviousWrite(mapName(map), bytes(key, "kv.getVersionOfPreviousWrite key"));
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
    isValidX509CertBundle: (pem) => isValidX509CertBundle(pem),
    pemToId: (pem) => {
      if (typeof pem !== "string" || !isValidX509CertBundle(pem)) throw new TypeError("pemToId: expected a PEM certificate");
      return certificateFingerprint(pem);
    },
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
