// Guest-side glue of a JS app, generated once per deployed bundle: one ES module that imports
// the bundle's modules, builds CCF's `request` object, calls the endpoint function and flattens
// its `{ statusCode, headers, body }` into `[status, headers, kind, body]` with the body already
// serialised inside the sandbox. The host passes only strings (and an ArrayBuffer for a binary
// body): copying nested objects into the isolate costs several µs per request, strings almost
// nothing. Headers and caller (whose PEM certificate is ~1 KB) are not sent at all: the
// handler's first read of `request.headers` or `request.caller` fetches them from the host.

/** Module name of the glue; `set_js_app` names modules "/" + bundle name, so "/.coco/..." is free in practice. */
export const DISPATCH_MODULE = "/.coco/app-dispatch.js";
export const DISPATCH_EXPORT = "invoke";

/** What `invoke` returns: the body kind tells the host which content-type to default to. */
export const enum BodyKind {
  None = 0,
  Text = 1,
  Json = 2,
  Binary = 3,
}

export type GuestResponse = [status: unknown, headers: Record<string, string> | undefined, kind: BodyKind, body: string | ArrayBuffer | undefined];

export interface DispatchTarget {
  readonly module: string;
  readonly fn: string;
  readonly method: string;
  /** CCF's request.route, e.g. `/app/records/{id}`. */
  readonly route: string;
}

/**
 * Arguments of `invoke`: the whole request as ONE string (one crossing, no per-field copies)
 * and, for a body that is not UTF-8, its bytes as an ArrayBuffer. The string is a header
 * `index,pathLength,queryLength,paramsLength;` followed by path, query, params JSON ("" = none)
 * and the UTF-8 body (the rest of the string). Lengths make it safe for any content. A text
 * body is re-encoded only if the handler asks for arrayBuffer().
 */
export type InvokeArgs = [packed: string] | [packed: string, binaryBody: ArrayBuffer];

export function packRequest(index: number, path: string, query: string, params: string, textBody: string): string {
  return `${index},${path.length},${query.length},${params.length};${path}${query}${params}${textBody}`;
}

export function dispatchModuleSource(targets: readonly DispatchTarget[]): string {
  const moduleNames = [...new Set(targets.map((t) => t.module))];
  const imports = moduleNames.map((name, i) => `import * as m${i} from ${JSON.stringify(name)};`).join("\n");
  const table = targets.map((t) => [moduleNames.indexOf(t.module), t.fn, t.method, t.route]);
  return `${imports}
const M = [${moduleNames.map((_, i) => `m${i}`).join(", ")}];
const N = ${JSON.stringify(moduleNames)};
const E = ${JSON.stringify(table)};
const EMPTY = new ArrayBuffer(0);
class Body {
  #b;
  constructor(b) { this.#b = b; }
  text() { return typeof this.#b === "string" ? this.#b : ccf.bufToStr(this.#b); }
  json() { return JSON.parse(this.text()); }
  arrayBuffer() {
    if (typeof this.#b === "string") this.#b = this.#b.length === 0 ? EMPTY : ccf.strToBuf(this.#b);
    return this.#b;
  }
}
const fetchPart = globalThis.__coco_request;
// Which invoke is running: a request object kept past its call must not read a later request's
// headers or caller from the host.
let live = 0;
// Per-request inputs of the lazy properties, under a symbol: the accessors below are shared by
// every request (one set of functions, not four closures per request).
const STATE = Symbol("coco.request");
function define(request, name, value) {
  Object.defineProperty(request, name, { value, writable: true, configurable: true, enumerable: true });
}
function fromHost(request, name, part) {
  if (request[STATE].token !== live) throw new Error("request." + name + " was first read after its request ended: read it while the handler runs");
  return fetchPart(part);
}
function lazy(name, compute) {
  return {
    configurable: true, enumerable: true,
    get() { const value = compute(this); define(this, name, value); return value; },
    set(value) { define(this, name, value); },
  };
}
const LAZY = {
  headers: lazy("headers", (r) => JSON.parse(fromHost(r, "headers", "requestHeaders"))),
  params: lazy("params", (r) => (r[STATE].params === "" ? {} : JSON.parse(r[STATE].params))),
  caller: lazy("caller", (r) => callerOf(fromHost(r, "caller", "requestCaller"))),
  hostname: { configurable: true, enumerable: true, get() { return hostnameOf(this.headers.host); } },
};
function callerOf(json) {
  if (json === "") return undefined;
  const c = JSON.parse(json);
  if (c.policy === "user_cose_sign1") {
    // CCF gives caller.cose.content as an ArrayBuffer; the host sends it as hex.
    const hex = c.cose.content;
    const bytes = new Uint8Array(hex.length / 2);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
    c.cose.content = bytes.buffer;
  }
  return c;
}
function hostnameOf(host) {
  if (typeof host !== "string") return null;
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.indexOf(":");
  return colon === -1 ? host : host.slice(0, colon);
}
function respond(r) {
  if (r === undefined || r === null) return [200, undefined, 0, undefined];
  if (typeof r !== "object") throw new TypeError("the endpoint function must return an object { statusCode, headers, body }, not " + typeof r);
  const status = r.statusCode === undefined ? 200 : r.statusCode;
  let headers;
  const h = r.headers;
  if (h !== undefined && h !== null) {
    headers = {};
    for (const k of Object.keys(h)) headers[k.toLowerCase()] = String(h[k]);
  }
  const b = r.body;
  if (b === undefined) return [status, headers, 0, undefined];
  if (b instanceof ArrayBuffer) return [status, headers, 3, b];
  if (ArrayBuffer.isView(b)) return [status, headers, 3, b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)];
  if (typeof b === "string") return [status, headers, 1, b];
  return [status, headers, 2, JSON.stringify(b)];
}
export function ${DISPATCH_EXPORT}(packed, binaryBody) {
  const token = ++live;
  const header = packed.indexOf(";");
  const sizes = packed.slice(0, header).split(",");
  const index = +sizes[0];
  let at = header + 1;
  const path = packed.slice(at, at += +sizes[1]);
  const query = packed.slice(at, at += +sizes[2]);
  const params = packed.slice(at, at += +sizes[3]);
  const body = binaryBody === undefined ? packed.slice(at) : binaryBody;
  const e = E[index];
  const f = M[e[0]][e[1]];
  if (typeof f !== "function") throw new TypeError("module " + N[e[0]] + " has no exported function " + e[1]);
  const request = {
    url: query === "" ? path : path + "?" + query, path, route: e[3], query, method: e[2],
    body: new Body(body),
  };
  Object.defineProperty(request, STATE, { value: { params, token } });
  Object.defineProperties(request, LAZY);
  const result = f(request);
  if (result !== null && typeof result === "object" && typeof result.then === "function") return result.then(respond);
  return respond(result);
}
`;
}
