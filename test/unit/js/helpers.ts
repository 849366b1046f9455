// In-memory KvAccess and recording NodeHooks for the JS runtime tests.
import type { KvAccess, NodeHooks } from "../../../src/js/index.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

export class MemoryKv implements KvAccess {
  readonly maps = new Map<string, Map<string, [Uint8Array, Uint8Array]>>();
  private map(name: string) {
    let m = this.maps.get(name);
    if (m === undefined) this.maps.set(name, (m = new Map()));
    return m;
  }
  get(map: string, key: Uint8Array) {
    return this.map(map).get(hex(key))?.[1];
  }
  set(map: string, key: Uint8Array, value: Uint8Array) {
    this.map(map).set(hex(key), [Uint8Array.from(key), Uint8Array.from(value)]);
  }
  has(map: string, key: Uint8Array) {
    return this.map(map).has(hex(key));
  }
  delete(map: string, key: Uint8Array) {
    return this.map(map).delete(hex(key));
  }
  clear(map: string) {
    this.map(map).clear();
  }
  size(map: string) {
    return this.map(map).size;
  }
  forEach(map: string, callback: (value: Uint8Array, key: Uint8Array) => void) {
    for (const [key, value] of this.map(map).values()) callback(value, key);
  }
  /** Test convenience: string key → JSON value. */
  setJson(map: string, key: string, value: unknown) {
    this.set(map, Buffer.from(key), Buffer.from(JSON.stringify(value)));
  }
  getJson(map: string, key: string): unknown {
    const v = this.get(map, Buffer.from(key));
    return v === undefined ? undefined : JSON.parse(Buffer.from(v).toString());
  }
}

export function recordingHooks(): { hooks: NodeHooks; calls: Array<[string, unknown[]]> } {
  const calls: Array<[string, unknown[]]> = [];
  const record =
    <R>(name: string, result?: R) =>
    (...args: unknown[]) => {
      calls.push([name, args]);
      return result as R;
    };
  const hooks: NodeHooks = {
    triggerLedgerRekey: record("triggerLedgerRekey"),
    triggerRecoverySharesRefresh: record("triggerRecoverySharesRefresh"),
    transitionServiceToOpen: record("transitionServiceToOpen"),
    triggerLedgerChunk: record("triggerLedgerChunk"),
    triggerSnapshot: record("triggerSnapshot"),
    triggerAcmeRefresh: record("triggerAcmeRefresh"),
    getLatestLedgerSecretSeqno: record("getLatestLedgerSecretSeqno", 42),
    generateEndorsedCertificate: record("generateEndorsedCertificate", "ENDORSED PEM"),
    generateNetworkCertificate: record("generateNetworkCertificate", "SERVICE PEM"),
    setJwtPublicSigningKeys: record("setJwtPublicSigningKeys"),
    removeJwtPublicSigningKeys: record("removeJwtPublicSigningKeys"),
    refreshAppBytecodeCache: record("refreshAppBytecodeCache"),
  };
  return { hooks, calls };
}
