// Guest-side source that runs first in every isolate: builds the `ccf` global on top of a
// handful of host callbacks, replaces `Date` and `Math.random` with host-fed versions, and
// defines the dispatcher the host calls. Pure guest JS where possible (UTF-8, JSON), so a
// call crosses the isolate boundary only for KV, crypto and node actions.

/** Names of the host callbacks the prelude takes from globalThis (as `__coco_<name>`) and hides. */
export const HOST_FUNCTION_NAMES = [
  "kvGet",
  "kvSet",
  "kvHas",
  "kvDelete",
  "kvClear",
  "kvSize",
  "kvEntries",
  "digest",
  "isValidX509CertBundle",
  "pemToId",
  "nodeHook",
  "kvVersionOfPreviousWrite",
  "cryptoSign",
  "cryptoVerify",
  "generateAesKey",
  "generateRsaKeyPair",
  "generateEcdsaKeyPair",
  "generateEddsaKeyPair",
  "wrapKey",
  "unwrapKey",
  "isValidX509CertChain",
  "pemToJwk",
  "jwkToPem",
  "historicalKv",
  "historicalRange",
  "kvSetMany",
  "select",
  "snpVerifyAttestation",
  "tcbHexToPolicy",
] as const;

export type HostFunctionName = (typeof HOST_FUNCTION_NAMES)[number];

/**
 * Evaluated as a classic script. Besides `ccf`, `snp_attestation` and the read-only
 * `__coco_request` (the running request's headers and caller, for the dispatch glue), it leaves
 * the dispatcher, the settle function and the module registry hook, which the host takes
 * references to and then deletes (`__coco_take`), so guest code cannot reach or replace them.
 */
export const PRELUDE_SOURCE = String.raw`
(function () {
  "use strict";
  const g = globalThis;
  const H = {};
  for (const name of ${JSON.stringify(HOST_FUNCTION_NAMES)}) {
    H[name] = g["__coco_" + name];
    delete g["__coco_" + name];
  }
  // Batches (dispatchBatch) run several requests in one call: before a request first reaches
  // the host, the host is told which request it is (select), so it acts on that request's
  // transaction. NO_REQUEST: no request of a batch is running (the host refuses KV access).
  const NO_REQUEST = -2;
  let hostRequest = -1; // -1: a single call, nothing to select
  let guestRequest = -1;
  const select = H.select;
  for (const name of ${JSON.stringify(HOST_FUNCTION_NAMES)}) {
    if (name === "select") continue;
    const raw = H[name];
    H[name] = function () {
      if (guestRequest !== hostRequest) {
        select(guestRequest);
        hostRequest = guestRequest;
      }
      return raw.apply(undefined, arguments);
    };
  }

  // Time and randomness come from the host, per call.
  let untrustedDateTime = false;
  let hostNowMs = 0;
  const OriginalDate = Date;
  const now = () => (untrustedDateTime ? hostNowMs : 0);
  function CocoDate(...args) {
    if (!new.target) return new OriginalDate(now()).toString();
    return args.length === 0 ? new OriginalDate(now()) : new OriginalDate(...args);
  }
  CocoDate.prototype = OriginalDate.prototype;
  CocoDate.now = now;
  CocoDate.parse = OriginalDate.parse;
  CocoDate.UTC = OriginalDate.UTC;
  Object.defineProperty(OriginalDate.prototype, "constructor", { value: CocoDate });
  Object.defineProperty(g, "Date", { value: CocoDate, writable: false, configurable: false });

  let s0 = 0, s1 = 0, s2 = 0, s3 = 1;
  // The host seeds every call; the generator warms up only if the call uses Math.random.
  let unwarmed = true;
  function random() {
    if (unwarmed) {
      unwarmed = false;
      for (let i = 0; i < 12; i++) sfc32();
    }
    return sfc32();
  }
  function sfc32() {
    // sfc32: small, fast, good enough for non-cryptographic use; crypto uses the host.
    const t = (((s0 + s1) | 0) + s3) | 0;
    s3 = (s3 + 1) | 0;
    s0 = s1 ^ (s1 >>> 9);
    s1 = (s2 + (s2 << 3)) | 0;
    s2 = (s2 << 21) | (s2 >>> 11);
    s2 = (s2 + t) | 0;
    return (t >>> 0) / 4294967296;
  }
  Object.defineProperty(Math, "random", { value: random, writable: false, configurable: false });

  function strToBuf(s) {
    if (typeof s !== "string") throw new TypeError("strToBuf: argument must be a string");
    // One exact-size ArrayBuffer: each one is an off-heap allocation the isolate's GC must track,
    // so the common ASCII case neither over-allocates nor copies (no slice).
    const length = s.length;
    let i = 0;
    while (i < length && s.charCodeAt(i) < 0x80) i++;
    if (i === length) {
      const buffer = new ArrayBuffer(length);
      const ascii = new Uint8Array(buffer);
      for (let k = 0; k < length; k++) ascii[k] = s.charCodeAt(k);
      return buffer;
    }
    let size = i;
    for (let k = i; k < length; k++) {
      const c = s.charCodeAt(k);
      if (c < 0x80) size += 1;
      else if (c < 0x800) size += 2;
      else if (c >= 0xd800 && c <= 0xdbff && k + 1 < length && (s.charCodeAt(k + 1) & 0xfc00) === 0xdc00) { size += 4; k++; }
      else size += 3;
    }
    const out = new Uint8Array(size);
    for (let k = 0; k < i; k++) out[k] = s.charCodeAt(k);
    let n = i;
    for (; i < length; i++) {
      let c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; }
        else c = 0xfffd;
      } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out[n++] = c;
      else if (c < 0x800) { out[n++] = 0xc0 | (c >> 6); out[n++] = 0x80 | (c & 63); }
      else if (c < 0x10000) { out[n++] = 0xe0 | (c >> 12); out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63); }
      else { out[n++] = 0xf0 | (c >> 18); out[n++] = 0x80 | ((c >> 12) & 63); out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63); }
    }
    return out.buffer;
  }
  function bufToStr(buf) {
    // WHATWG UTF-8 decode: each maximal invalid subsequence becomes U+FFFD, so arbitrary bytes
    // (e.g. a SHA-256 digest, as CCF's add_snp_host_data compares) decode without throwing.
    const b = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(toArrayBuffer(buf, "bufToStr"));
    let ascii = 0;
    while (ascii < b.length && b[ascii] < 0x80) ascii++;
    if (ascii === b.length && b.length <= 8192) return String.fromCharCode.apply(null, b);
    let s = "";
    for (let i = 0; i < b.length; ) {
      const c = b[i++];
      if (c < 0x80) { s += String.fromCharCode(c); continue; }
      let need = 0, cp = 0, lo = 0x80, hi = 0xbf;
      if (c >= 0xc2 && c <= 0xdf) { need = 1; cp = c & 31; }
      else if (c >= 0xe0 && c <= 0xef) { need = 2; cp = c & 15; if (c === 0xe0) lo = 0xa0; else if (c === 0xed) hi = 0x9f; }
      else if (c >= 0xf0 && c <= 0xf4) { need = 3; cp = c & 7; if (c === 0xf0) lo = 0x90; else if (c === 0xf4) hi = 0x8f; }
      else { s += "\ufffd"; continue; }
      let ok = true;
      for (let k = 0; k < need; k++) {
        const d = b[i];
        if (i >= b.length || d < lo || d > hi) { ok = false; break; }
        cp = (cp << 6) | (d & 63); i++; lo = 0x80; hi = 0xbf;
      }
      s += ok ? String.fromCodePoint(cp) : "\ufffd";
    }
    return s;
  }
  function toArrayBuffer(x, what) {
    if (x instanceof ArrayBuffer) return x;
    if (ArrayBuffer.isView(x)) return x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength);
    throw new TypeError(what + ": expected an ArrayBuffer or a typed array");
  }
  // KV keys and values cross the isolate boundary as latin1 strings (one char per byte): a
  // string argument costs isolated-vm about a microsecond, an ArrayBuffer several (measured).
  function latin1Of(x, what) {
    let b;
    if (x instanceof ArrayBuffer) b = new Uint8Array(x);
    else if (ArrayBuffer.isView(x)) b = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    else throw new TypeError(what + ": expected an ArrayBuffer or a typed array");
    if (b.length <= 8192) return String.fromCharCode.apply(null, b);
    let s = "";
    for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, i + 8192));
    return s;
  }
  function bufOfLatin1(s) {
    const length = s.length;
    const buffer = new ArrayBuffer(length);
    const bytes = new Uint8Array(buffer);
    for (let i = 0; i < length; i++) bytes[i] = s.charCodeAt(i);
    return buffer;
  }
  const optionalBuf = (s) => (s === undefined ? undefined : bufOfLatin1(s));
  const jsonCompatibleToBuf = (v) => strToBuf(JSON.stringify(v));
  const bufToJsonCompatible = (b) => JSON.parse(bufToStr(b));

  // Write buffering (JS app calls that may write): sets stay in the guest and reach the host
  // with the call's result, one crossing for all of them instead of one each. Reads of a key
  // set in the call see the buffered value; operations that need the host's view of the map
  // (delete, clear, forEach, size, getVersionOfPreviousWrite) flush first. Service maps
  // (ccf.*, public:ccf.*) are never buffered, so the host refuses those writes at once.
  const WRITES_BUFFERED_MAX = 1024;
  let bufferWrites = false;
  let pendingWrites = []; // flat [map, key, value, ...], latin1 strings
  const buffered = new Map(); // map -> Map(key -> value) of pendingWrites
  const isServiceMap = (name) => name.startsWith("ccf.") || name.startsWith("public:ccf.");
  function flushWrites() {
    if (pendingWrites.length === 0) return;
    const batch = pendingWrites;
    pendingWrites = [];
    buffered.clear();
    H.kvSetMany(batch);
  }
  function bufferedValue(name, key) {
    if (pendingWrites.length === 0) return undefined;
    const writes = buffered.get(name);
    return writes === undefined ? undefined : writes.get(key);
  }

  class KvMap {
    #name;
    constructor(name) { this.#name = name; }
    get(key) {
      const k = latin1Of(key, "kv.get key");
      const pending = bufferedValue(this.#name, k);
      return pending !== undefined ? bufOfLatin1(pending) : optionalBuf(H.kvGet(this.#name, k));
    }
    has(key) {
      const k = latin1Of(key, "kv.has key");
      return bufferedValue(this.#name, k) !== undefined || H.kvHas(this.#name, k);
    }
    set(key, value) {
      // CCF's default constitution sets some maps (members.acks) with no value: store empty bytes.
      const v = value === undefined ? "" : latin1Of(value, "kv.set value");
      const k = latin1Of(key, "kv.set key");
      const name = this.#name;
      if (bufferWrites && !isServiceMap(name)) {
        pendingWrites.push(name, k, v);
        let writes = buffered.get(name);
        if (writes === undefined) buffered.set(name, (writes = new Map()));
        writes.set(k, v);
        if (pendingWrites.length >= 3 * WRITES_BUFFERED_MAX) flushWrites();
      } else {
        H.kvSet(name, k, v);
      }
      return this;
    }
    delete(key) { flushWrites(); return H.kvDelete(this.#name, latin1Of(key, "kv.delete key")); }
    clear() { flushWrites(); H.kvClear(this.#name); }
    forEach(callback) {
      flushWrites();
      // One crossing for the whole map: the entries are a snapshot, so the callback may write.
      const entries = H.kvEntries(this.#name);
      for (let i = 0; i < entries.length; i += 2) callback(bufOfLatin1(entries[i + 1]), bufOfLatin1(entries[i]), this);
    }
    get size() { flushWrites(); return H.kvSize(this.#name); }
    getVersionOfPreviousWrite(key) {
      flushWrites();
      return H.kvVersionOfPreviousWrite(this.#name, latin1Of(key, "kv.getVersionOfPreviousWrite key"));
    }
  }
  // Historical states (ccf.historicalState, ccf.historical.getStateRange): read-only maps
  // holding the writes of one committed transaction, indexed by the host per call.
  const readOnlyHistorical = (name, op) => {
    throw new TypeError("ccf.historicalState.kv[\"" + name + "\"]." + op + ": all tables are read-only during a historical transaction");
  };
  class HistoricalKvMap {
    #index;
    #name;
    constructor(index, name) { this.#index = index; this.#name = name; }
    get(key) { return optionalBuf(H.historicalKv("get", this.#index, this.#name, latin1Of(key, "kv.get key"))); }
    has(key) { return H.historicalKv("has", this.#index, this.#name, latin1Of(key, "kv.has key")); }
    set() { readOnlyHistorical(this.#name, "set"); }
    delete() { readOnlyHistorical(this.#name, "delete"); }
    clear() { readOnlyHistorical(this.#name, "clear"); }
    forEach(callback) {
      const entries = H.historicalKv("entries", this.#index, this.#name, undefined);
      for (let i = 0; i < entries.length; i += 2) callback(bufOfLatin1(entries[i + 1]), bufOfLatin1(entries[i]), this);
    }
    get size() { return H.historicalKv("size", this.#index, this.#name, undefined); }
    getVersionOfPreviousWrite(key) {
      return H.historicalKv("version", this.#index, this.#name, latin1Of(key, "kv.getVersionOfPreviousWrite key"));
    }
  }
  const mapsProxy = (open) => {
    const opened = new Map();
    return new Proxy(Object.create(null), {
      get(_, name) {
        if (typeof name !== "string") return undefined;
        let map = opened.get(name);
        if (map === undefined) { map = open(name); opened.set(name, map); }
        return map;
      },
      set() { return false; },
      defineProperty() { return false; },
      deleteProperty() { return false; },
    });
  };
  const historicalStateObject = (index, transactionId, receipt) =>
    ({ transactionId, receipt, kv: mapsProxy((name) => new HistoricalKvMap(index, name)) });
  let historicalState;
  function getStateRange(handle, startSeqno, endSeqno, secondsUntilExpiry) {
    // Flat [index, transactionId, receiptJson, ...]: one crossing for the whole range.
    const flat = H.historicalRange(handle, startSeqno, endSeqno, secondsUntilExpiry);
    if (flat === null) return null;
    const states = [];
    for (let i = 0; i < flat.length; i += 3) states.push(historicalStateObject(flat[i], flat[i + 1], JSON.parse(flat[i + 2])));
    return states;
  }

  const maps = new Map();
  const kv = new Proxy(Object.create(null), {
    get(_, name) {
      if (typeof name !== "string") return undefined;
      let map = maps.get(name);
      if (map === undefined) { map = new KvMap(name); maps.set(name, map); }
      return map;
    },
    set() { return false; },
    defineProperty() { return false; },
    deleteProperty() { return false; },
  });

  const hook = (name) => (...args) => H.nodeHook(name, args);
  const isValidX509CertBundle = (pem) => H.isValidX509CertBundle(pem);
  const pemToId = (pem) => H.pemToId(pem);
  // Algorithm objects are flattened to primitives here: only strings, numbers and ArrayBuffers
  // cross into the host, never guest objects with getters.
  const algorithmOf = (a, what) => {
    if (a === null || typeof a !== "object") throw new TypeError(what + ": algorithm must be an object { name, hash?, saltLength? }");
    return [a.name, a.hash, a.saltLength];
  };
  const wrapParams = (p, what) => {
    if (p === null || typeof p !== "object") throw new TypeError(what + ": wrapAlgo must be an object { name, ... }");
    return [p.name, p.aesKeySize, p.label === undefined || p.label === null ? undefined : toArrayBuffer(p.label, what + " label")];
  };
  const optionalKid = (kid) => (kid === undefined || kid === null ? undefined : kid);
  const jsonJwk = (jwk, what) => {
    if (jwk === null || typeof jwk !== "object") throw new TypeError(what + ": jwk must be an object");
    return JSON.parse(JSON.stringify(jwk));
  };
  const crypto = Object.freeze({
    digest(algorithm, data) { return H.digest(algorithm, toArrayBuffer(data, "crypto.digest data")); },
    sign(algorithm, key, plaintext) {
      const [name, hash, saltLength] = algorithmOf(algorithm, "crypto.sign");
      return H.cryptoSign(name, hash, saltLength, key, toArrayBuffer(plaintext, "crypto.sign plaintext"));
    },
    verifySignature(algorithm, key, signature, plaintext) {
      const [name, hash, saltLength] = algorithmOf(algorithm, "crypto.verifySignature");
      return H.cryptoVerify(name, hash, saltLength, key,
        toArrayBuffer(signature, "crypto.verifySignature signature"), toArrayBuffer(plaintext, "crypto.verifySignature plaintext"));
    },
    generateAesKey(size) { return H.generateAesKey(size); },
    generateRsaKeyPair(size, exponent) { return H.generateRsaKeyPair(size, exponent); },
    generateEcdsaKeyPair(curve) { return H.generateEcdsaKeyPair(curve); },
    generateEddsaKeyPair(curve) { return H.generateEddsaKeyPair(curve); },
    wrapKey(key, wrappingKey, wrapAlgo) {
      const [name, aesKeySize, label] = wrapParams(wrapAlgo, "crypto.wrapKey");
      return H.wrapKey(toArrayBuffer(key, "crypto.wrapKey key"), toArrayBuffer(wrappingKey, "crypto.wrapKey wrappingKey"), name, aesKeySize, label);
    },
    unwrapKey(key, unwrappingKey, wrapAlgo) {
      const [name, , label] = wrapParams(wrapAlgo, "crypto.unwrapKey");
      return H.unwrapKey(toArrayBuffer(key, "crypto.unwrapKey key"), toArrayBuffer(unwrappingKey, "crypto.unwrapKey unwrappingKey"), name, label);
    },
    isValidX509CertBundle,
    isValidX509CertChain(chain, trusted) { return H.isValidX509CertChain(chain, trusted); },
    pubPemToJwk(pem, kid) { return H.pemToJwk("ec-public", pem, optionalKid(kid)); },
    pemToJwk(pem, kid) { return H.pemToJwk("ec-private", pem, optionalKid(kid)); },
    pubRsaPemToJwk(pem, kid) { return H.pemToJwk("rsa-public", pem, optionalKid(kid)); },
    rsaPemToJwk(pem, kid) { return H.pemToJwk("rsa-private", pem, optionalKid(kid)); },
    pubEddsaPemToJwk(pem, kid) { return H.pemToJwk("eddsa-public", pem, optionalKid(kid)); },
    eddsaPemToJwk(pem, kid) { return H.pemToJwk("eddsa-private", pem, optionalKid(kid)); },
    pubJwkToPem(jwk) { return H.jwkToPem("ec-public", jsonJwk(jwk, "crypto.pubJwkToPem")); },
    jwkToPem(jwk) { return H.jwkToPem("ec-private", jsonJwk(jwk, "crypto.jwkToPem")); },
    pubRsaJwkToPem(jwk) { return H.jwkToPem("rsa-public", jsonJwk(jwk, "crypto.pubRsaJwkToPem")); },
    rsaJwkToPem(jwk) { return H.jwkToPem("rsa-private", jsonJwk(jwk, "crypto.rsaJwkToPem")); },
    pubEddsaJwkToPem(jwk) { return H.jwkToPem("eddsa-public", jsonJwk(jwk, "crypto.pubEddsaJwkToPem")); },
    eddsaJwkToPem(jwk) { return H.jwkToPem("eddsa-private", jsonJwk(jwk, "crypto.eddsaJwkToPem")); },
    pemToId,
  });
  const notSupported = (name, why) => () => { throw new Error(name + " is not supported by Coco: " + why); };
  // Per call: reset by dispatch, like untrustedDateTime. Coco logs no per-request metrics from
  // JS, so the flag only round-trips.
  let metricsLogging = true;
  const ccf = Object.freeze({
    kv,
    strToBuf,
    bufToStr,
    jsonCompatibleToBuf,
    bufToJsonCompatible,
    pemToId,
    isValidX509CertBundle,
    // CCF's TCB version (16 hex characters) as a TcbVersionPolicy for the CPUID's SEV-SNP family.
    tcbHexToPolicy: (cpuid, tcbHex) => H.tcbHexToPolicy(cpuid, tcbHex),
    crypto,
    // Deprecated top-level aliases of ccf.crypto, kept by @microsoft/ccf-app's CCF interface.
    generateAesKey: crypto.generateAesKey,
    generateRsaKeyPair: crypto.generateRsaKeyPair,
    generateEcdsaKeyPair: crypto.generateEcdsaKeyPair,
    wrapKey: crypto.wrapKey,
    digest: crypto.digest,
    isValidX509CertChain: crypto.isValidX509CertChain,
    enableUntrustedDateTime(enable) { const previous = untrustedDateTime; untrustedDateTime = !!enable; return previous; },
    enableMetricsLogging(enable) { const previous = metricsLogging; metricsLogging = !!enable; return previous; },
    // Defined only while an app.json "mode": "historical" endpoint runs.
    get historicalState() { return historicalState; },
    historical: Object.freeze({
      getStateRange,
      dropCachedStates: hook("dropCachedStates"),
    }),
    host: Object.freeze({
      triggerSubprocess: notSupported("ccf.host.triggerSubprocess", "a node never starts host processes on behalf of an app"),
    }),
    setJwtPublicSigningKeys: hook("setJwtPublicSigningKeys"),
    removeJwtPublicSigningKeys: hook("removeJwtPublicSigningKeys"),
    refreshAppBytecodeCache: hook("refreshAppBytecodeCache"),
    node: Object.freeze({
      triggerLedgerRekey: hook("triggerLedgerRekey"),
      triggerRecoverySharesRefresh: hook("triggerRecoverySharesRefresh"),
      transitionServiceToOpen: (previous, next) => H.nodeHook("transitionServiceToOpen", [
        previous === undefined ? undefined : toArrayBuffer(previous, "transitionServiceToOpen"),
        toArrayBuffer(next, "transitionServiceToOpen"),
      ]),
      triggerLedgerChunk: hook("triggerLedgerChunk"),
      triggerSnapshot: hook("triggerSnapshot"),
      triggerACMERefresh: hook("triggerAcmeRefresh"),
    }),
    // CCF 6.0 LTS's governance helpers (not in @microsoft/ccf-app's types). A TypeError, as CCF
    // throws, for bad arguments and for a constitution that does not pass.
    gov: Object.freeze({
      validateConstitution(constitution) {
        if (arguments.length !== 1) throw new TypeError("Passed " + arguments.length + " arguments, but expected 1");
        if (typeof constitution !== "string") throw new TypeError("constitution is not a string");
        if (constitution.length === 0) throw new TypeError("constitution is empty");
        try {
          return H.nodeHook("validateConstitution", [constitution]);
        } catch (error) {
          throw new TypeError(error instanceof Error ? error.message : String(error));
        }
      },
    }),
    // Per-request hooks of JS app endpoints (src/apps/js): absent elsewhere, so they throw there.
    rpc: Object.freeze({
      setApplyWrites: hook("setApplyWrites"),
      setClaimsDigest: (digest) => H.nodeHook("setClaimsDigest", [toArrayBuffer(digest, "setClaimsDigest")]),
    }),
    consensus: Object.freeze({
      getLastCommittedTxId: hook("getLastCommittedTxId"),
      getViewForSeqno: hook("getViewForSeqno"),
      getStatusForTxId: hook("getStatusForTxId"),
    }),
    network: Object.freeze({
      getLatestLedgerSecretSeqno: hook("getLatestLedgerSecretSeqno"),
      generateEndorsedCertificate: hook("generateEndorsedCertificate"),
      generateNetworkCertificate: hook("generateNetworkCertificate"),
    }),
  });
  Object.defineProperty(g, "ccf", { value: ccf, writable: false, configurable: false });
  // @microsoft/ccf-app's snp_attestation global: the node's own SEV-SNP verifier (src/attestation).
  // A refusal is a RangeError carrying the failed check, as CCF throws it.
  const snp_attestation = Object.freeze({
    verifySnpAttestation(evidence, endorsements, uvm_endorsements, endorsed_tcb) {
      if (arguments.length < 2 || arguments.length > 4) throw new TypeError("Passed " + arguments.length + " arguments, but expected between 2 and 4");
      const args = [
        toArrayBuffer(evidence, "snp_attestation.verifySnpAttestation evidence"),
        toArrayBuffer(endorsements, "snp_attestation.verifySnpAttestation endorsements"),
        uvm_endorsements === undefined ? undefined : toArrayBuffer(uvm_endorsements, "snp_attestation.verifySnpAttestation uvm_endorsements"),
        endorsed_tcb === undefined ? undefined : String(endorsed_tcb),
      ];
      try {
        return H.snpVerifyAttestation(...args);
      } catch (error) {
        throw new RangeError(error instanceof Error ? error.message : String(error));
      }
    },
  });
  Object.defineProperty(g, "snp_attestation", { value: snp_attestation, writable: false, configurable: false });
  // For the JS app dispatch glue (src/apps/js/guest-dispatch.ts): the running request's headers
  // and caller as JSON, fetched from the host only when a handler reads them. Outside a request
  // it throws (the hooks exist only while a JS app endpoint runs).
  const REQUEST_PARTS = new Set(["requestHeaders", "requestCaller"]);
  const NO_ARGS = Object.freeze([]);
  Object.defineProperty(g, "__coco_request", {
    value: Object.freeze(function (part) {
      if (!REQUEST_PARTS.has(part)) throw new TypeError("__coco_request: unknown part");
      return H.nodeHook(part, NO_ARGS);
    }),
    writable: false, configurable: false, enumerable: false,
  });

  const modules = new Map();
  let settled;
  // Everything but the export's arguments arrives as primitives, which cross without a copy;
  // args is either the arguments themselves (all primitives) or an array copied by the host.
  // Returns [0, result, writes?] or, for a promise, [1] and settle() gives [value, writes?],
  // where writes are the buffered sets for the host to apply.
  // What every call (and every request of a batch) starts from: the host's time and seed, no
  // untrusted time, metrics on, and an empty write buffer (a call stopped by a limit never
  // handed its buffer over).
  function beginCall(nowMs, seed0, seed1, seed2, seed3, buffer) {
    untrustedDateTime = false;
    metricsLogging = true;
    hostNowMs = nowMs;
    s0 = seed0 | 0; s1 = seed1 | 0; s2 = seed2 | 0; s3 = seed3 | 0;
    unwarmed = true;
    bufferWrites = buffer;
    pendingWrites = [];
    buffered.clear();
  }
  function exported(moduleName, exportName) {
    const namespace = modules.get(moduleName);
    if (namespace === undefined) throw new Error("module " + moduleName + " is not loaded");
    const f = namespace[exportName];
    if (typeof f !== "function") throw new TypeError("module " + moduleName + " has no exported function " + exportName);
    return f;
  }
  function dispatch(moduleName, exportName, nowMs, seed0, seed1, seed2, seed3, historical, buffer, ...args) {
    hostRequest = guestRequest = -1;
    beginCall(nowMs, seed0, seed1, seed2, seed3, buffer === true);
    // "" or the JSON of { transactionId, receipt }; its maps are the host's state 0 of this call.
    if (historical === "") historicalState = undefined;
    else {
      const h = JSON.parse(historical);
      historicalState = historicalStateObject(0, h.transactionId, h.receipt);
    }
    const f = exported(moduleName, exportName);
    let result;
    try {
      result = f.apply(undefined, args);
    } catch (error) {
      flushWrites(); // the host applies a failed call's writes if the app asked (ccf.rpc.setApplyWrites)
      throw error;
    }
    if (result !== null && typeof result === "object" && typeof result.then === "function") {
      // The host asks again after the microtasks of this call have run (see settle).
      settled = undefined;
      result.then((value) => { settled = { value }; }, (error) => { settled = { error }; });
      return [1];
    }
    return pendingWrites.length === 0 ? [0, result] : [0, result, takeWrites()];
  }
  // Runs the requests of a batch one after the other, each with its own seed and write buffer:
  // "packed" is "count;len0,len1,...;seeds;flags;" then the requests' strings, where seeds are
  // 4 uint32 per request and flags one "1" (buffer writes) or "0" per request. Returns one
  // outcome per request: [0, result, writes?], [1] (threw) or [2] (answered with a promise);
  // the host runs [1] and [2] again on their own, in a fresh transaction.
  function dispatchBatch(moduleName, exportName, nowMs, packed) {
    const f = exported(moduleName, exportName);
    let at = packed.indexOf(";");
    const count = +packed.slice(0, at);
    let next = packed.indexOf(";", at + 1);
    const lengths = packed.slice(at + 1, next).split(",");
    at = next + 1;
    next = packed.indexOf(";", at);
    const seeds = packed.slice(at, next).split(",");
    at = next + 1;
    next = packed.indexOf(";", at);
    const flags = packed.slice(at, next);
    at = next + 1;
    const outcomes = [];
    hostRequest = NO_REQUEST;
    try {
      for (let i = 0; i < count; i++) {
        const request = packed.slice(at, at += +lengths[i]);
        beginCall(nowMs, +seeds[4 * i], +seeds[4 * i + 1], +seeds[4 * i + 2], +seeds[4 * i + 3], flags.charCodeAt(i) === 49);
        historicalState = undefined;
        guestRequest = i;
        let result;
        try {
          result = f(request);
        } catch {
          outcomes.push([1]);
          continue;
        }
        if (result !== null && typeof result === "object" && typeof result.then === "function") {
          result.then(undefined, () => undefined);
          outcomes.push([2]);
          continue;
        }
        outcomes.push(pendingWrites.length === 0 ? [0, result] : [0, result, takeWrites()]);
      }
    } finally {
      // Whatever still runs after the batch (an abandoned promise's continuations) reaches no
      // request: writes go to the host, which refuses them.
      guestRequest = NO_REQUEST;
      bufferWrites = false;
      pendingWrites = [];
      buffered.clear();
    }
    return outcomes;
  }
  function takeWrites() {
    const batch = pendingWrites;
    pendingWrites = [];
    buffered.clear();
    return batch;
  }
  function settle() {
    const outcome = settled;
    settled = undefined;
    if (outcome === undefined) throw new Error("the promise returned by the handler did not settle: the sandbox has no I/O to wait for");
    if ("error" in outcome) {
      flushWrites();
      throw outcome.error;
    }
    return pendingWrites.length === 0 ? [outcome.value] : [outcome.value, takeWrites()];
  }
  function register(name, namespace) { modules.set(name, namespace); }
  g.__coco_take = function () {
    delete g.__coco_take;
    return [dispatch, settle, register, dispatchBatch];
  };
})();
`;
