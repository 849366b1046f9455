// `ccf.kv` of a JS app request, backed by the request's KV transaction. One instance per app,
// pointed at each request's transaction before the call and detached after it, so nothing
// is allocated per request and a callback leaked past its request touches nothing.
import type { Transaction } from "../../kv/index.js";
import type { KvAccess } from "../../js/index.js";
import { CocoError } from "../../util/index.js";

export class TransactionKvAccess implements KvAccess {
  private tx: Transaction | undefined;
  /** Set for `readonly` endpoints: any write throws in the handler (an uncaught one is a 500). */
  private readOnlyEndpoint: string | undefined;

  attach(tx: Transaction, readOnlyEndpoint: string | undefined): void {
    this.tx = tx;
    this.readOnlyEndpoint = readOnlyEndpoint;
  }

  detach(): void {
    this.tx = undefined;
    this.readOnlyEndpoint = undefined;
  }

  get(map: string, key: Uint8Array): Uint8Array | undefined {
    return this.readable(map).get(map, key);
  }

  has(map: string, key: Uint8Array): boolean {
    return this.readable(map).has(map, key);
  }

  set(map: string, key: Uint8Array, value: Uint8Array): void {
    this.writable("set", map).set(map, key, value);
  }

  delete(map: string, key: Uint8Array): boolean {
    return this.writable("delete", map).delete(map, key);
  }

  clear(map: string): void {
    this.writable("clear", map).clear(map);
  }

  size(map: string): number {
    return this.readable(map).size(map);
  }

  forEach(map: string, callback: (value: Uint8Array, key: Uint8Array) => void): void {
    this.readable(map).forEach(map, (value, key) => void callback(value, key));
  }

  getVersionOfPreviousWrite(map: string, key: Uint8Array): number | undefined {
    return this.readable(map).getVersionOfPreviousWrite(map, key);
  }

  private current(): Transaction {
    if (this.tx === undefined) throw new CocoError("JsKvUnavailable", "ccf.kv is only available while an endpoint function runs");
    return this.tx;
  }

  /** Private `ccf.*` maps hold the service's own secrets: apps may not even read them. */
  private readable(map: string): Transaction {
    const tx = this.current();
    if (map.charCodeAt(0) === 99 /* c */ && map.startsWith("ccf.")) {
      throw new CocoError("JsForbiddenMap", `ccf.kv["${map}"]: private ccf.* maps belong to the service; apps cannot access them`);
    }
    return tx;
  }

  private writable(operation: string, map: string): Transaction {
    const tx = this.current();
    if (this.readOnlyEndpoint !== undefined) {
      throw new CocoError("JsReadOnlyEndpoint",
        `ccf.kv["${map}"].${operation}: ${this.readOnlyEndpoint} is a readonly endpoint (app.json "mode": "readonly"); declare it "readwrite" to write`);
    }
    // Governance tables are governance's: an app writing them would bypass the constitution.
    if (map.startsWith("public:ccf.") || map.startsWith("ccf.")) {
      throw new CocoError("JsForbiddenMap", `ccf.kv["${map}"].${operation}: maps named ccf.* / public:ccf.* belong to the service; apps cannot write them`);
    }
    return tx;
  }
}
