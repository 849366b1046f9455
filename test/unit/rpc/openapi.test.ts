// The OpenAPI documents of the built-in frontends (GET /node/api, GET /gov/api) in CCF's shape:
// generated from the registry, so what is routed is what is described.
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildOpenApiDocument, EndpointRegistry, operationIdOf, type EndpointDefinition } from "../../../src/rpc/index.js";
import { GovHarness, makeIdentity, TEST_CONSTITUTION } from "../governance/harness.js";

const noop = () => ({});
const INFO = { title: "T", description: "D", version: "1.2.3" };

function endpoints(): EndpointDefinition[] {
  const registry = new EndpointRegistry();
  registry.install({ method: "GET", path: "/node/state", mode: "readonly", authPolicies: ["no_auth"], summary: "state", forwarding: "never", handler: noop });
  registry.install({ method: "DELETE", path: "/node/network/nodes/{node_id}", mode: "readwrite", authPolicies: ["member_cert"], forwarding: "always", handler: noop });
  registry.install({ method: "GET", path: "/node/network/nodes/{node_id}", mode: "readonly", authPolicies: ["user_cert", "no_auth"], handler: noop });
  registry.install({ method: "POST", path: "/node/both", mode: "readwrite", authPolicies: ['all_of:["user_cert","jwt"]'], handler: noop });
  registry.install({ method: "GET", path: "/app/other", mode: "readonly", authPolicies: ["no_auth"], handler: noop });
  return registry.list();
}

test("operationIds follow CCF: camel-cased verb and path, braces dropped, separators capitalise", () => {
  assert.equal(operationIdOf("GET", "/node/network/nodes/{node_id}"), "GetNodeNetworkNodesNodeId");
  assert.equal(operationIdOf("POST", "/gov/members/proposals:create"), "PostGovMembersProposalsCreate");
  assert.equal(operationIdOf("POST", "/app/log/private/raw_text/{id}"), "PostAppLogPrivateRawTextId");
});

test("the document has CCF's top-level shape and only the prefix's paths, sorted", () => {
  const doc = buildOpenApiDocument(INFO, endpoints(), "/node/") as any;
  assert.equal(doc.openapi, "3.0.0");
  assert.deepEqual(doc.info, { title: "T", description: "D", version: "1.2.3" });
  assert.deepEqual(doc.servers, []);
  assert.deepEqual(Object.keys(doc.paths), ["/node/both", "/node/network/nodes/{node_id}", "/node/state"]);
  assert.equal(doc.components.responses.default.content["application/json"].schema.$ref, "#/components/schemas/CCFError");
  assert.deepEqual(Object.keys(doc.components["x-ccf-forwarding"]).sort(), ["always", "never", "sometimes"]);
});

test("each operation carries its id, summary, responses, security and forwarding", () => {
  const doc = buildOpenApiDocument(INFO, endpoints(), "/node/") as any;
  const state = doc.paths["/node/state"].get;
  assert.equal(state.operationId, "GetNodeState");
  assert.equal(state.summary, "state");
  assert.deepEqual(state.responses.default, { $ref: "#/components/responses/default" });
  assert.ok(state.responses["200"]);
  assert.deepEqual(state.security, [{}]);
  assert.deepEqual(state["x-ccf-forwarding"], { $ref: "#/components/x-ccf-forwarding/never" });
  const node = doc.paths["/node/network/nodes/{node_id}"];
  assert.deepEqual(node.parameters, [{ in: "path", name: "node_id", required: true, schema: { type: "string" } }]);
  assert.deepEqual(node.delete.security, [{ member_cert: [] }]);
  assert.deepEqual(node.delete["x-ccf-forwarding"], { $ref: "#/components/x-ccf-forwarding/always" });
  assert.deepEqual(node.get.security, [{ user_cert: [] }, {}]);
  assert.deepEqual(node.get["x-ccf-forwarding"], { $ref: "#/components/x-ccf-forwarding/sometimes" });
  assert.deepEqual(doc.paths["/node/both"].post.security, [{ user_cert: [], jwt: [] }]);
  assert.deepEqual(Object.keys(doc.components.securitySchemes), ["jwt", "member_cert", "user_cert"]);
  assert.equal(doc.components.securitySchemes.jwt.scheme, "bearer");
});

test("GET /gov/api describes every governance endpoint the registry routes, itself included", async () => {
  const gov = new GovHarness(TEST_CONSTITUTION);
  gov.addMember(await makeIdentity("m0"));
  const response = gov.request("GET", "/gov/api?api-version=2024-07-01");
  assert.equal(response.status, 200);
  const doc = response.json;
  assert.equal(doc.info.title, "CCF Governance API");
  assert.equal(doc.info.version, "4.7.4", "CCF 6.0.16's governance frontend document_version");
  const routed = gov.registry.list().filter((e) => e.path.startsWith("/gov/"));
  assert.ok(routed.length >= 10, `routed ${routed.length}`);
  for (const endpoint of routed) {
    const operation = doc.paths[endpoint.path]?.[endpoint.method.toLowerCase()];
    assert.ok(operation, `${endpoint.method} ${endpoint.path} is described`);
  }
  assert.equal(doc.paths["/gov/members/proposals:create"].post.operationId, "PostGovMembersProposalsCreate");
  assert.ok(doc.paths["/gov/api"].get);
  assert.ok(!Object.keys(doc.paths).some((p) => !p.startsWith("/gov/")));
});

test("GET /gov/api with an unsupported api-version is CCF's 400", () => {
  const gov = new GovHarness(TEST_CONSTITUTION);
  const response = gov.request("GET", "/gov/api?api-version=2001-01-01");
  assert.equal(response.status, 400);
  assert.equal(response.json.error.code, "UnsupportedApiVersionValue");
});
