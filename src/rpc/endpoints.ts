// Endpoint registry and routing. An endpoint is data: method, path (exact or templated with
// `{name}` segments), authentication policies, mode and a handler that runs inside a KV
// transaction supplied by the node. Routing answers CCF's 404/405 errors for what matches nothing.
import type { Transaction } from "../kv/index.js";
import { CocoError } from "../util/index.js";
import type { RpcRequest } from "./http-server.js";
import { ErrorCodes } from "./errors.js";
import type { AuthPolicyName, Caller } from "./auth.js";

export type EndpointMode = "readwrite" | "readonly";

export interface EndpointContext {
  readonly request: RpcRequest;
  /** Values of the templated path segments, e.g. `{id}` in `/records/{id}`. */
  readonly params: Readonly<Record<string, string>>;
  readonly caller: Caller;
  readonly tx: Transaction;
}

export interface HandlerResult {
  status?: number;
  headers?: Record<string, string>;
  /** A Buffer or string is sent as is; anything else is sent as JSON. */
  body?: unknown;
  /** Claims digest bound into this transaction's Merkle leaf (CCF's `set_claims_digest`). */
  claimsDigest?: Buffer;
  /** CCF's `set_apply_writes`: apply (or drop) the writes whatever the status; default: apply on 2xx. */
  applyWrites?: boolean;
  /**
   * "committed": this answer waits until the transaction is committed, as for an endpoint whose
   * `consistency` is "committed", but decided per request (e.g. only requests that wrote).
   */
  consistency?: "committed";
}

export type Handler = (ctx: EndpointContext) => HandlerResult | Promise<HandlerResult>;

/**
 * A handler's promise may reject with this to have the frontend run the request again from the
 * start, in a fresh transaction (the first one is dropped, nothing of it applies): e.g. a JS app
 * request that ran in a batch and must be run on its own (it threw, or answered asynchronously).
 */
export class RerunRequest extends Error {
  constructor(readonly reason: string) {
    super(`request to be run again: ${reason}`);
    this.name = "RerunRequest";
  }
}

export interface EndpointDefinition {
  readonly method: string;
  readonly path: string;
  readonly authPolicies: readonly AuthPolicyName[];
  readonly mode: EndpointMode;
  readonly handler: Handler;
  /** Shown in the OpenAPI description and `--help`-style listings. */
  readonly summary?: string;
  /**
   * CCF's `forwarding_required`: on a backup, "sometimes" (default) forwards readwrite endpoints
   * to the primary and serves readonly ones locally; "always" forwards every call (an endpoint
   * that must see the primary's latest state); "never" always runs locally.
   */
  readonly forwarding?: "always" | "sometimes" | "never";
  /**
   * "committed": the response waits until the transaction (a write's own, or the state a read
   * saw) is committed, so the caller never acts on state that could still be rolled back.
   * Default "local": answer at once (clients check /app/tx, as with CCF).
   */
  readonly consistency?: "local" | "committed";
}

interface Template {
  readonly segments: readonly string[];
  /** Per segment: a pattern for one mixing literals and `{name}` (e.g. `{id}:bar`), else undefined. */
  readonly patterns: readonly (SegmentPattern | undefined)[];
  readonly byMethod: Map<string, EndpointDefinition>;
}

interface SegmentPattern {
  readonly regex: RegExp;
  readonly names: readonly string[];
}

const TEMPLATE_PART = /\{([^{}]+)\}/g;

/**
 * CCF's rule for a `{name}` inside a path segment (endpoint_registry.cpp, CCF 6.0.5+, #7046): it
 * matches one or more characters up to the next `/`, and up to the literal character that follows
 * it in the template, if any; so `{id}:bar` matches `abc:bar` with id = `abc`, while a whole
 * segment `{id}` still matches `abc:update` whole.
 */
function segmentPattern(segment: string): SegmentPattern | undefined {
  if (!segment.includes("{") || (segment.startsWith("{") && segment.endsWith("}") && segment.indexOf("}") === segment.length - 1)) return undefined;
  const names: string[] = [];
  let source = "^";
  let at = 0;
  for (const match of segment.matchAll(TEMPLATE_PART)) {
    source += escapeRegExp(segment.slice(at, match.index));
    const next = segment[match.index + match[0].length];
    source += next === undefined || next === "{" ? "([^/]+)" : `([^/${escapeRegExp(next)}]+)`;
    names.push(match[1]!);
    at = match.index + match[0].length;
  }
  if (segment.slice(at).includes("{") || segment.slice(at).includes("}")) throw new Error(`invalid templated path segment: ${segment}`);
  return { regex: new RegExp(`${source}${escapeRegExp(segment.slice(at))}$`), names };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\\-]/g, "\\$&");
}

export interface RouteMatch {
  readonly endpoint: EndpointDefinition;
  readonly params: Readonly<Record<string, string>>;
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

export class EndpointRegistry {
  /** path -> method -> endpoint, for paths without templates (the common, fast case). */
  private readonly exact = new Map<string, Map<string, EndpointDefinition>>();
  private readonly templates: Template[] = [];

  install(endpoint: EndpointDefinition): void {
    if (!endpoint.path.startsWith("/")) throw new Error(`endpoint path must start with '/': ${endpoint.path}`);
    if (endpoint.path.includes("{")) {
      const segments = endpoint.path.split("/");
      let template = this.templates.find((t) => t.segments.join("/") === segments.join("/"));
      if (!template) {
        template = { segments, patterns: segments.map(segmentPattern), byMethod: new Map() };
        this.templates.push(template);
      }
      this.addMethod(template.byMethod, endpoint);
      return;
    }
    let byMethod = this.exact.get(endpoint.path);
    if (!byMethod) this.exact.set(endpoint.path, (byMethod = new Map()));
    this.addMethod(byMethod, endpoint);
  }

  private addMethod(byMethod: Map<string, EndpointDefinition>, endpoint: EndpointDefinition): void {
    if (byMethod.has(endpoint.method)) throw new Error(`endpoint ${endpoint.method} ${endpoint.path} installed twice`);
    byMethod.set(endpoint.method, endpoint);
  }

  remove(prefix: string): void {
    for (const path of [...this.exact.keys()]) if (path.startsWith(prefix)) this.exact.delete(path);
    for (let i = this.templates.length - 1; i >= 0; i--) {
      if (this.templates[i]!.segments.join("/").startsWith(prefix)) this.templates.splice(i, 1);
    }
  }

  /** Finds the endpoint for a request, or throws CCF's 404 (unknown path) / 405 (wrong verb). */
  route(method: string, path: string): RouteMatch {
    const match = this.tryRoute(method, path);
    if (match === undefined) throw new CocoError(ErrorCodes.ResourceNotFound, `Unknown path: ${path}.`, 404);
    return match;
  }

  /**
   * Like route(), but an unknown path is `undefined` rather than an exception: the frontend asks
   * the deployed app first on every /app request, and most of those are not its paths.
   */
  tryRoute(method: string, path: string): RouteMatch | undefined {
    const byMethod = this.exact.get(path);
    if (byMethod) {
      const endpoint = byMethod.get(method);
      if (endpoint) return { endpoint, params: NO_PARAMS };
      throw methodNotAllowed(method, path, byMethod);
    }
    if (this.templates.length === 0) return undefined;
    const segments = path.split("/");
    for (const template of this.templates) {
      const params = matchTemplate(template, segments);
      if (!params) continue;
      const endpoint = template.byMethod.get(method);
      if (endpoint) return { endpoint, params };
      throw methodNotAllowed(method, path, template.byMethod);
    }
    return undefined;
  }

  list(): EndpointDefinition[] {
    const out: EndpointDefinition[] = [];
    for (const byMethod of this.exact.values()) out.push(...byMethod.values());
    for (const template of this.templates) out.push(...template.byMethod.values());
    return out.sort((a, b) => (a.path === b.path ? a.method.localeCompare(b.method) : a.path.localeCompare(b.path)));
  }
}

function methodNotAllowed(method: string, path: string, byMethod: Map<string, EndpointDefinition>): CocoError {
  const allowed = [...byMethod.keys()].sort().join(", ");
  return new CocoError(ErrorCodes.UnsupportedHttpVerb,
    `Allowed methods for '${path}' are: ${allowed}. ${method} is not supported.`, 405);
}

function matchTemplate(template: Template, segments: readonly string[]): Record<string, string> | undefined {
  if (template.segments.length !== segments.length) return undefined;
  let params: Record<string, string> | undefined;
  for (let i = 0; i < template.segments.length; i++) {
    const t = template.segments[i]!;
    const s = segments[i]!;
    const pattern = template.patterns[i];
    if (pattern !== undefined) {
      const match = pattern.regex.exec(s);
      if (match === null) return undefined;
      params ??= {};
      try {
        pattern.names.forEach((name, k) => { params![name] = decodeURIComponent(match[k + 1]!); });
      } catch {
        return undefined;
      }
    } else if (t.length > 2 && t.startsWith("{") && t.endsWith("}")) {
      if (s.length === 0) return undefined;
      params ??= {};
      try {
        params[t.slice(1, -1)] = decodeURIComponent(s);
      } catch {
        return undefined;
      }
    } else if (t !== s) {
      return undefined;
    }
  }
  return params ?? {};
}

/** Parses a query string into a plain object (last value wins), rejecting malformed escapes. */
export function parseQuery(query: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (query.length === 0) return out;
  for (const part of query.split("&")) {
    if (part.length === 0) continue;
    const eq = part.indexOf("=");
    const rawKey = eq === -1 ? part : part.slice(0, eq);
    const rawValue = eq === -1 ? "" : part.slice(eq + 1);
    try {
      out[decodeURIComponent(rawKey.replace(/\+/g, " "))] = decodeURIComponent(rawValue.replace(/\+/g, " "));
    } catch {
      throw new CocoError(ErrorCodes.InvalidQueryParameterValue, `Malformed percent-encoding in query parameter '${rawKey}'.`, 400);
    }
  }
  return out;
}
