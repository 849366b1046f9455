// Routing: exact and templated paths, CCF's 404 and 405 answers, query parsing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EndpointRegistry, parseQuery } from "../../../src/rpc/index.js";

const handler = () => ({ body: true });
function registry() {
  const r = new EndpointRegistry();
  r.install({ method: "GET", path: "/app/log/private", authPolicies: ["no_auth"], mode: "readonly", handler });
  r.install({ method: "POST", path: "/app/log/private", authPolicies: ["no_auth"], mode: "readwrite", handler });
  r.install({ method: "GET", path: "/app/records/{id}", authPolicies: ["no_auth"], mode: "readonly", handler });
  return r;
}

test("an exact path routes by method", () => {
  assert.equal(registry().route("POST", "/app/log/private").endpoint.method, "POST");
});

test("a templated path yields its decoded parameters", () => {
  assert.deepEqual(registry().route("GET", "/app/records/a%20b").params, { id: "a b" });
});

test("an unknown path is ResourceNotFound (404)", () => {
  assert.throws(() => registry().route("GET", "/app/nope"), (e: any) => e.status === 404 && e.code === "ResourceNotFound");
  assert.throws(() => registry().route("GET", "/app/records/"), (e: any) => e.status === 404);
});

test("a known path with another verb is UnsupportedHttpVerb (405) naming the allowed verbs", () => {
  assert.throws(() => registry().route("DELETE", "/app/log/private"), (e: any) => e.status === 405 && /GET, POST/.test(e.message));
});

test("installing the same endpoint twice is a programming error", () => {
  const r = registry();
  assert.throws(() => r.install({ method: "GET", path: "/app/log/private", authPolicies: ["no_auth"], mode: "readonly", handler }));
});

test("queries decode escapes and plus signs, and refuse malformed escapes", () => {
  assert.deepEqual(parseQuery("id=42&msg=a+b%21&flag"), { id: "42", msg: "a b!", flag: "" });
  assert.throws(() => parseQuery("id=%E0%A4%A"), (e: any) => e.code === "InvalidQueryParameterValue");
});

test("a template inside a segment ends at the literal that follows it, as CCF 6.0.5+ matches URL templates", () => {
  const r = new EndpointRegistry();
  r.install({ method: "POST", path: "/app/items/{id}:bar", authPolicies: ["no_auth"], mode: "readwrite", handler });
  r.install({ method: "GET", path: "/app/pairs/{a}-{b}/x", authPolicies: ["no_auth"], mode: "readonly", handler });
  r.install({ method: "GET", path: "/app/whole/{id}", authPolicies: ["no_auth"], mode: "readonly", handler });
  assert.deepEqual(r.route("POST", "/app/items/abc:bar").params, { id: "abc" });
  assert.deepEqual(r.route("POST", "/app/items/a%20c:bar").params, { id: "a c" });
  assert.throws(() => r.route("POST", "/app/items/abc:baz"), (e: any) => e.status === 404);
  assert.throws(() => r.route("POST", "/app/items/a:b:bar"), (e: any) => e.status === 404, "the id stops at the first ':'");
  assert.throws(() => r.route("POST", "/app/items/:bar"), (e: any) => e.status === 404, "a template matches at least one character");
  assert.deepEqual(r.route("GET", "/app/pairs/left-right/x").params, { a: "left", b: "right" });
  // A whole-segment template takes ':' like any other character (CCF 6.0.5 allowed it again after 6.0.4).
  assert.deepEqual(r.route("GET", "/app/whole/abcd:update").params, { id: "abcd:update" });
});
