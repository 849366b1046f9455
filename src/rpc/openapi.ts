// OpenAPI 3.0 documents of the built-in frontends (`GET /node/api`, `GET /gov/api`), generated
// from the endpoint registry in the shape CCF's `generate_openapi_document_v1` gives them: full
// paths, `servers: []`, CCF's operationIds, a default error response, each policy's security
// scheme, and `x-ccf-forwarding`. Pure: the caller passes the endpoints.
import type { AuthPolicyName } from "./auth.js";
import type { EndpointDefinition } from "./endpoints.js";

export const OPENAPI_DOCUMENT_VERSION = "3.0.0";

export interface OpenApiDocumentInfo {
  title: string;
  description: string;
  /** The document's own version (CCF: `openapi_info.document_version`). */
  version: string;
}

type JsonObject = Record<string, unknown>;

/** CCF's security scheme of each policy (`get_openapi_security_schema`); no_auth is `{}`. */
const SECURITY_SCHEMES: Readonly<Record<string, JsonObject>> = {
  user_cert: { type: "http", scheme: "mutual", description: "Request must be signed with a TLS client certificate of a user (public:ccf.gov.users.certs)" },
  member_cert: { type: "http", scheme: "mutual", description: "Request must be signed with a TLS client certificate of a member (public:ccf.gov.members.certs)" },
  any_cert: { type: "http", scheme: "mutual", description: "Request must be signed with any TLS client certificate" },
  jwt: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
  user_cose_sign1: { type: "http", scheme: "cose_sign1", description: "Request payload must be a COSE Sign1 document signed by a user's key" },
};

/** CCF's `forwarding_required` values, described once and referenced by every operation. */
const FORWARDING: JsonObject = {
  always: { value: "always", description: "If this request is made to a backup node, it is forwarded to the primary node for execution." },
  sometimes: { value: "sometimes", description: "If this request is made to a backup node, it may be forwarded to the primary: a write is, and so is any request of a session that was already forwarded." },
  never: { value: "never", description: "This call is never forwarded: it always runs on the node that receives it." },
};

const HTTP_METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);

/** CCF's operationId: the verb camel-cased, then the path with `{}` dropped and each non-alphanumeric separator turned into a capital. */
export function operationIdOf(method: string, path: string): string {
  const camel = (s: string) => s.split(/[^A-Za-z0-9]+/).filter((w) => w.length > 0).map((w) => w[0]!.toUpperCase() + w.slice(1)).join("");
  return camel(method.toLowerCase()) + camel(path.replace(/[{}]/g, ""));
}

/** Names of `{name}` template segments, including `{id}:action` forms. */
function templateNames(path: string): string[] {
  return [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
}

/** One security requirement per policy: `all_of:[a,b]` needs both; `no_auth` is the empty requirement. */
function securityOf(policies: readonly AuthPolicyName[], used: Set<string>): JsonObject[] {
  return policies.map((policy) => {
    if (policy === "no_auth") return {};
    let names: string[] = [policy];
    if (policy.startsWith("all_of:")) {
      const parsed = JSON.parse(policy.slice("all_of:".length)) as unknown;
      names = Array.isArray(parsed) ? parsed.filter((p): p is string => typeof p === "string") : [];
    }
    for (const name of names) used.add(name);
    return Object.fromEntries(names.map((name) => [name, []]));
  });
}

/**
 * The document for every endpoint whose path starts with `prefix` (e.g. "/node/"). Paths are
 * sorted; methods CCF cannot describe (none today) are skipped.
 */
export function buildOpenApiDocument(info: OpenApiDocumentInfo, endpoints: readonly EndpointDefinition[], prefix: string): JsonObject {
  const paths: Record<string, JsonObject> = {};
  const usedSchemes = new Set<string>();
  for (const endpoint of endpoints) {
    const method = endpoint.method.toLowerCase();
    if (!endpoint.path.startsWith(prefix) || !HTTP_METHODS.has(method)) continue;
    const pathItem = (paths[endpoint.path] ??= {});
    const names = templateNames(endpoint.path);
    if (names.length > 0) pathItem["parameters"] = names.map((name) => ({ in: "path", name, required: true, schema: { type: "string" } }));
    const operation: JsonObject = { operationId: operationIdOf(method, endpoint.path) };
    if (endpoint.summary !== undefined) operation["summary"] = endpoint.summary;
    operation["responses"] = {
      "200": { description: "Default response description" },
      default: { $ref: "#/components/responses/default" },
    };
    const security = securityOf(endpoint.authPolicies, usedSchemes);
    if (security.length > 0) operation["security"] = security;
    operation["x-ccf-forwarding"] = { $ref: `#/components/x-ccf-forwarding/${endpoint.forwarding ?? "sometimes"}` };
    pathItem[method] = operation;
  }
  const sorted = Object.fromEntries(Object.keys(paths).sort().map((p) => [p, paths[p]!]));
  const securitySchemes = Object.fromEntries([...usedSchemes].sort().map((name) => [name, SECURITY_SCHEMES[name] ?? { type: "http", scheme: name }]));
  return {
    openapi: OPENAPI_DOCUMENT_VERSION,
    info: { title: info.title, description: info.description, version: info.version },
    servers: [],
    paths: sorted,
    components: {
      schemas: {
        CCFError: {
          type: "object",
          properties: {
            error: { type: "object", properties: { code: { type: "string" }, message: { type: "string" } }, required: ["code", "message"] },
          },
          required: ["error"],
        },
      },
      responses: {
        default: { description: "An error occurred", content: { "application/json": { schema: { $ref: "#/components/schemas/CCFError" } } } },
      },
      ...(usedSchemes.size > 0 ? { securitySchemes } : {}),
      "x-ccf-forwarding": FORWARDING,
    },
  };
}
