// The OpenAPI document of GET /app/api, from endpoint lists alone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildAppOpenApi, templateParameters } from "../../../src/apps/js/openapi.js";
import type { JsEndpointProperties } from "../../../src/apps/js/index.js";
import type { EndpointDefinition } from "../../../src/rpc/index.js";

const INFO = { title: "t", version: "1" };

function js(method: string, path: string, extra: Partial<JsEndpointProperties> = {}): JsEndpointProperties {
  return { method, path, jsModule: "/m.js", jsFunction: "f", mode: "readwrite", authnPolicies: ["user_cert"], forwardingRequired: undefined, openapi: undefined, ...extra };
}

function builtIn(method: string, path: string, summary: string): EndpointDefinition {
  return { method, path, summary, authPolicies: ["no_auth"], mode: "readonly", handler: () => ({}) };
}

test("template segments become required path parameters", () => {
  assert.deepEqual(templateParameters("/a/{id}/b/{part}"), ["id", "part"]);
  const doc = buildAppOpenApi(INFO, [js("GET", "/a/{id}")], []) as any;
  assert.deepEqual(doc.paths["/a/{id}"].get.parameters, [{ name: "id", in: "path", required: true, schema: { type: "string" } }]);
});

test("app.json's openapi fragment is merged over the generated operation", () => {
  const fragment = {
    summary: "S",
    parameters: [{ name: "id", in: "path", required: true, schema: { type: "integer" } }, { name: "q", in: "query" }],
    responses: { "200": { description: "ok" } },
  };
  const op = (buildAppOpenApi(INFO, [js("GET", "/a/{id}", { openapi: fragment })], []) as any).paths["/a/{id}"].get;
  assert.equal(op.summary, "S");
  assert.deepEqual(op.parameters.map((p: any) => `${p.in}:${p.name}:${p.schema?.type ?? ""}`), ["path:id:integer", "query:q:"]);
  assert.deepEqual(Object.keys(op.responses).sort(), ["200", "default"]);
});

test("security lists one alternative per policy; all_of needs every scheme; no_auth is the empty alternative", () => {
  const doc = buildAppOpenApi(INFO, [js("POST", "/x", { authnPolicies: ["user_cert", 'all_of:["member_cert","jwt"]', "no_auth"] })], []) as any;
  assert.deepEqual(doc.paths["/x"].post.security, [{ user_cert: [] }, { member_cert: [], jwt: [] }, {}]);
  assert.deepEqual(Object.keys(doc.components.securitySchemes), ["jwt", "member_cert", "user_cert"]);
});

test("built-in /app endpoints appear relative to /app with their summary; others and overridden ones do not", () => {
  const doc = buildAppOpenApi(INFO, [js("GET", "/commit")], [
    builtIn("GET", "/app/commit", "built-in commit"),
    builtIn("GET", "/app/tx", "status"),
    builtIn("GET", "/node/state", "node"),
  ]) as any;
  assert.deepEqual(doc.servers, [{ url: "/app" }]);
  assert.deepEqual(Object.keys(doc.paths), ["/commit", "/tx"]);
  assert.equal(doc.paths["/tx"].get.summary, "status");
  assert.equal(doc.paths["/commit"].get["x-ccf-js-function"], "f");
});
