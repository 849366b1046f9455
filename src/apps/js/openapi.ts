// `GET /app/api`: an OpenAPI 3.0 description of the app frontend, as CCF generates one. Built
// from the deployed JS endpoints (app.json, with each endpoint's `openapi` fragment merged over
// what the path and policies imply) and the node's built-in `/app` endpoints. Pure: the caller
// passes the endpoint lists; nothing here reads the KV.
import type { EndpointDefinition } from "../../rpc/index.js";
import type { JsEndpointProperties } from "./bundle.js";

export const OPENAPI_VERSION = "3.0.0";
/** Paths in the document are relative to this server URL, as in CCF's per-frontend documents. */
const APP_SERVER_URL = "/app";
const HTTP_METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);

/** CCF's security scheme of each authentication policy it names in app.json. */
const SECURITY_SCHEMES: Readonly<Record<string, object>> = {
  user_cert: { type: "http", scheme: "mutual", description: "TLS client certificate of a user (public:ccf.gov.users.certs)" },
  member_cert: { type: "http", scheme: "mutual", description: "TLS client certificate of a member (public:ccf.gov.members.certs)" },
  any_cert: { type: "http", scheme: "mutual", description: "TLS client certificate of a user or a member" },
  jwt: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "JWT issued by a trusted issuer (public:ccf.gov.jwt.issuers)" },
  user_cose_sign1: { type: "http", scheme: "cose_sign1", description: "Request body is a COSE Sign1 signed by a user's key" },
  member_cose_sign1: { type: "http", scheme: "cose_sign1", description: "Request body is a COSE Sign1 signed by a member's key" },
};

export interface OpenApiInfo {
  title: string;
  version: string;
  description?: string;
}

/** One operation before rendering: what both kinds of endpoint have in common. */
interface OperationSource {
  method: string;
  /** Relative to `/app`. */
  path: string;
  /** Alternatives, each a set of schemes that must all hold ([] = no authentication). */
  security: string[][];
  summary: string | undefined;
  readonly: boolean;
  extensions: Record<string, unknown>;
  fragment: unknown;
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `/records/{id}/{part}` → ["id", "part"]. */
export function templateParameters(path: string): string[] {
  const names: string[] = [];
  for (const segment of path.split("/")) {
    if (segment.length > 2 && segment.startsWith("{") && segment.endsWith("}")) names.push(segment.slice(1, -1));
  }
  return names;
}

/** app.json's policy names; `all_of:[a,b]` (see bundle.ts) is one alternative needing both. */
function securityOf(policies: readonly string[]): string[][] {
  const alternatives: string[][] = [];
  for (const policy of policies) {
    if (policy === "no_auth") {
      alternatives.push([]);
      continue;
    }
    if (policy.startsWith("all_of:")) {
      try {
        const parts = JSON.parse(policy.slice("all_of:".length)) as unknown;
        if (Array.isArray(parts)) alternatives.push(parts.filter((p): p is string => typeof p === "string"));
      } catch {
        // Unreadable combinations are left out of the description; routing is unaffected.
      }
      continue;
    }
    alternatives.push([policy]);
  }
  return alternatives;
}

/** Deep merge of app.json's fragment over the generated operation: objects merge, parameters append (by name+in), the rest replaces. */
function merge(base: JsonObject, over: JsonObject): JsonObject {
  const out: JsonObject = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    if (key === "parameters" && Array.isArray(current) && Array.isArray(value)) {
      const id = (p: unknown) => (isObject(p) ? `${String(p["in"])}:${String(p["name"])}` : JSON.stringify(p));
      const overIds = new Set(value.map(id));
      out[key] = [...current.filter((p) => !overIds.has(id(p))), ...value];
    } else if (isObject(current) && isObject(value)) {
      out[key] = merge(current, value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function operationId(method: string, path: string): string {
  const words = path.split(/[^A-Za-z0-9]+/).filter((w) => w.length > 0).map((w) => w[0]!.toUpperCase() + w.slice(1));
  return `${method.toUpperCase()}${words.join("")}`;
}

function renderOperation(source: OperationSource): JsonObject {
  const operation: JsonObject = { operationId: operationId(source.method, source.path) };
  if (source.summary !== undefined) operation["summary"] = source.summary;
  const parameters = templateParameters(source.path).map((name) => ({ name, in: "path", required: true, schema: { type: "string" } }));
  if (parameters.length > 0) operation["parameters"] = parameters;
  operation["responses"] = { default: { description: "Default response" } };
  operation["security"] = source.security.map((alternative) => Object.fromEntries(alternative.map((scheme) => [scheme, []])));
  Object.assign(operation, source.extensions, { "x-ccf-readonly": source.readonly });
  return isObject(source.fragment) ? merge(operation, source.fragment) : operation;
}

function fromJs(endpoint: JsEndpointProperties): OperationSource {
  return {
    method: endpoint.method,
    path: endpoint.path,
    security: securityOf(endpoint.authnPolicies),
    summary: undefined,
    readonly: endpoint.mode !== "readwrite",
    extensions: {
      "x-ccf-js-module": endpoint.jsModule,
      "x-ccf-js-function": endpoint.jsFunction,
      "x-ccf-mode": endpoint.mode,
      ...(endpoint.forwardingRequired === undefined ? {} : { "x-ccf-forwarding-required": endpoint.forwardingRequired }),
    },
    fragment: endpoint.openapi,
  };
}

function fromBuiltIn(endpoint: EndpointDefinition): OperationSource {
  return {
    method: endpoint.method,
    path: endpoint.path.slice(APP_SERVER_URL.length),
    security: securityOf(endpoint.authPolicies),
    summary: endpoint.summary,
    readonly: endpoint.mode === "readonly",
    extensions: {},
    fragment: undefined,
  };
}

/**
 * The OpenAPI document of the app frontend: built-in `/app/*` endpoints first, then the JS
 * app's, which win where both define the same method and path (as they do when routing).
 */
export function buildAppOpenApi(info: OpenApiInfo, jsEndpoints: readonly JsEndpointProperties[], builtIns: readonly EndpointDefinition[]): JsonObject {
  const sources = [
    ...builtIns.filter((e) => e.path.startsWith(`${APP_SERVER_URL}/`)).map(fromBuiltIn),
    ...jsEndpoints.map(fromJs),
  ];
  const paths: Record<string, Record<string, JsonObject>> = {};
  const usedSchemes = new Set<string>();
  for (const source of sources) {
    const method = source.method.toLowerCase();
    if (!HTTP_METHODS.has(method)) continue;
    for (const alternative of source.security) for (const scheme of alternative) usedSchemes.add(scheme);
    (paths[source.path] ??= {})[method] = renderOperation(source);
  }
  const sortedPaths = Object.fromEntries(Object.keys(paths).sort().map((p) => [p, paths[p]!]));
  const securitySchemes = Object.fromEntries([...usedSchemes].sort().map((name) => [name, SECURITY_SCHEMES[name] ?? { type: "http", scheme: name }]));
  return {
    openapi: OPENAPI_VERSION,
    info: { title: info.title, version: info.version, ...(info.description === undefined ? {} : { description: info.description }) },
    servers: [{ url: APP_SERVER_URL }],
    paths: sortedPaths,
    components: { securitySchemes },
  };
}
