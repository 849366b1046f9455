// The deployed JS app as governance stores it: `set_js_app` (constitution/default/actions.js)
// writes module sources to `public:ccf.gov.modules` ("/" + name → raw UTF-8 source) and one
// entry per endpoint to `public:ccf.gov.endpoints` ("VERB /path" → JSON properties, CCF's
// EndpointKey serialisation). This file reads them back into typed data, validating as it goes:
// the tables are written by governance, but a node must not crash on a malformed entry.
import type { Transaction } from "../../kv/index.js";
import type { JsModuleSource } from "../../js/index.js";

export const JS_APP_TABLES = {
  modules: "public:ccf.gov.modules",
  endpoints: "public:ccf.gov.endpoints",
  runtimeOptions: "public:ccf.gov.js_runtime_options",
} as const;

/** `public:ccf.gov.js_runtime_options` is a singleton: key = 8 zero bytes, as CCF's Value maps. */
const SINGLETON_KEY = Buffer.alloc(8);

export type JsEndpointMode = "readwrite" | "readonly" | "historical";

/** One endpoint of app.json, as stored by `set_js_app` (js_module already absolute). */
export interface JsEndpointProperties {
  readonly method: string;
  /** Relative to `/app`, e.g. `/records/{id}`. */
  readonly path: string;
  readonly jsModule: string;
  readonly jsFunction: string;
  readonly mode: JsEndpointMode;
  /** Names as app.json gives them; `all_of` objects are rendered as `all_of:[a,b]`. */
  readonly authnPolicies: readonly string[];
  readonly forwardingRequired: string | undefined;
  readonly openapi: unknown;
}

/** CCF's `js_runtime_options` (set_js_runtime_options); every field optional here. */
export interface StoredJsRuntimeOptions {
  max_heap_bytes?: number;
  max_execution_time_ms?: number;
  return_exception_details?: boolean;
  log_exception_details?: boolean;
}

export interface DeployedBundle {
  readonly modules: readonly JsModuleSource[];
  readonly endpoints: readonly JsEndpointProperties[];
  /** Entries that could not be read, with the reason: logged by the caller, never fatal. */
  readonly problems: readonly string[];
  readonly runtimeOptions: StoredJsRuntimeOptions | undefined;
}

export function readDeployedBundle(tx: Transaction): DeployedBundle {
  const modules: JsModuleSource[] = [];
  tx.forEach(JS_APP_TABLES.modules, (value, key) => void modules.push({ name: key.toString("utf8"), source: value.toString("utf8") }));
  const endpoints: JsEndpointProperties[] = [];
  const problems: string[] = [];
  tx.forEach(JS_APP_TABLES.endpoints, (value, key) => {
    const keyText = key.toString("utf8");
    try {
      endpoints.push(parseEndpoint(keyText, value));
    } catch (error) {
      problems.push(`endpoint ${keyText}: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  const rawOptions = tx.get(JS_APP_TABLES.runtimeOptions, SINGLETON_KEY);
  let runtimeOptions: StoredJsRuntimeOptions | undefined;
  if (rawOptions !== undefined) {
    try {
      runtimeOptions = JSON.parse(rawOptions.toString("utf8")) as StoredJsRuntimeOptions;
    } catch {
      problems.push(`${JS_APP_TABLES.runtimeOptions}: not JSON, ignored`);
    }
  }
  return { modules, endpoints, problems, runtimeOptions };
}

/** Keys are "VERB /path" (CCF); a JSON `{uri_path, verb}` key is accepted too. */
function parseEndpointKey(key: string): { method: string; path: string } {
  if (key.startsWith("{")) {
    const parsed = JSON.parse(key) as { uri_path?: unknown; verb?: unknown };
    if (typeof parsed.uri_path === "string" && typeof parsed.verb === "string") return { method: parsed.verb.toUpperCase(), path: parsed.uri_path };
    throw new Error("key is JSON without uri_path and verb");
  }
  const space = key.indexOf(" ");
  if (space <= 0) throw new Error("key is not 'VERB /path'");
  return { method: key.slice(0, space).toUpperCase(), path: key.slice(space + 1) };
}

function parseEndpoint(key: string, raw: Buffer): JsEndpointProperties {
  const { method, path } = parseEndpointKey(key);
  if (!path.startsWith("/")) throw new Error(`path must start with '/'`);
  const p = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
  if (typeof p.js_module !== "string" || typeof p.js_function !== "string") throw new Error("js_module and js_function must be strings");
  const mode = p.mode ?? "readwrite";
  if (mode !== "readwrite" && mode !== "readonly" && mode !== "historical") throw new Error(`unknown mode ${String(mode)}`);
  const policies = Array.isArray(p.authn_policies) ? p.authn_policies : [];
  const authnPolicies = policies.map((policy: unknown) => {
    if (typeof policy === "string") return policy;
    const allOf = (policy as { all_of?: unknown } | null)?.all_of;
    return `all_of:${JSON.stringify(allOf)}`;
  });
  return {
    method,
    path,
    jsModule: p.js_module.startsWith("/") ? p.js_module : `/${p.js_module}`,
    jsFunction: p.js_function,
    mode,
    authnPolicies,
    forwardingRequired: typeof p.forwarding_required === "string" ? p.forwarding_required : undefined,
    openapi: p.openapi,
  };
}
