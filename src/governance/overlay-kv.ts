// KV views for constitution and ballot code. `apply` runs against an overlay that buffers its
// writes so a throwing apply leaves no trace (CCF discards the whole transaction; Coco keeps the
// proposal's Failed state and drops only apply's writes). Ballots, resolve and validate get a
// read-only view, as CCF gives them (GOV_RO).
import type { Transaction } from "../kv/index.js";
import type { KvAccess } from "../js/index.js";
import { CocoError } from "../util/errors.js";

/** Bytewise order of latin1-encoded keys: the KV's iteration order. */
function compareLatin1(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "latin1"), Buffer.from(b, "latin1"));
}

const latin1 = (key: Uint8Array): string => Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1");

interface OverlayMap {
  cleared: boolean;
  /** latin1 key -> value, or null for a deletion. */
  writes: Map<string, Uint8Array | null>;
}

/** Reads see the transaction plus buffered writes; `commitInto` copies the writes into the transaction. */
export class OverlayKv implements KvAccess {
  private readonly maps = new Map<string, OverlayMap>();

  constructor(private readonly tx: Transaction) {}

  get(map: string, key: Uint8Array): Uint8Array | undefined {
    const overlay = this.maps.get(map);
    if (overlay !== undefined) {
      const own = overlay.writes.get(latin1(key));
      if (own !== undefined) return own ?? undefined;
      if (overlay.cleared) return undefined;
    }
    return this.tx.get(map, key);
  }

  has(map: string, key: Uint8Array): boolean {
    return this.get(map, key) !== undefined;
  }

  set(map: string, key: Uint8Array, value: Uint8Array): void {
    this.overlay(map).writes.set(latin1(key), Uint8Array.from(value));
  }

  delete(map: string, key: Uint8Array): boolean {
    const existed = this.has(map, key);
    this.overlay(map).writes.set(latin1(key), null);
    return existed;
  }

  clear(map: string): void {
    const overlay = this.overlay(map);
    overlay.cleared = true;
    overlay.writes.clear();
  }

  size(map: string): number {
    let n = 0;
    this.forEach(map, () => void n++);
    return n;
  }

  forEach(map: string, callback: (value: Uint8Array, key: Uint8Array) => void): void {
    const overlay = this.maps.get(map);
    const merged = new Map<string, Uint8Array>();
    if (overlay?.cleared !== true) {
      this.tx.forEach(map, (value, key) => void merged.set(key.toString("latin1"), value));
    }
    if (overlay !== undefined) {
      for (const [k, v] of overlay.writes) {
        if (v === null) merged.delete(k);
        else merged.set(k, v);
      }
    }
    const keys = [...merged.keys()].sort(compareLatin1);
    for (const k of keys) callback(merged.get(k)!, Buffer.from(k, "latin1"));
  }

  /** Whether buffered writes touch `map` (e.g. did apply replace the constitution?). */
  wrote(map: string): boolean {
    const overlay = this.maps.get(map);
    return overlay !== undefined && (overlay.cleared || overlay.writes.size > 0);
  }

  /** Copies the buffered writes into the transaction, in map order then key order. */
  commitInto(): void {
    for (const [map, overlay] of this.maps) {
      if (overlay.cleared) this.tx.clear(map);
      for (const [k, v] of overlay.writes) {
        const key = Buffer.from(k, "latin1");
        if (v === null) this.tx.delete(map, key);
        else this.tx.set(map, key, v);
      }
    }
    this.maps.clear();
  }

  private overlay(map: string): OverlayMap {
    if (typeof map !== "string" || map.length === 0) throw new CocoError("InvalidInput", "a map name must be a non-empty string", 400);
    let overlay = this.maps.get(map);
    if (overlay === undefined) this.maps.set(map, (overlay = { cleared: false, writes: new Map() }));
    return overlay;
  }
}

/** A read-only view of the transaction: writes throw, as CCF's GOV_RO access does. */
export function readOnlyKv(tx: Transaction, who: string): KvAccess {
  const refuse = (map: string): never => {
    throw new CocoError("KvReadOnly", `${who} may only read the KV; it tried to write map ${map}.`, 400);
  };
  return {
    get: (map, key) => tx.get(map, key),
    has: (map, key) => tx.has(map, key),
    size: (map) => tx.size(map),
    forEach: (map, callback) => tx.forEach(map, (value, key) => void callback(value, key)),
    set: (map) => refuse(map),
    delete: (map) => refuse(map),
    clear: (map) => refuse(map),
  };
}
