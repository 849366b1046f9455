// The /explorer routes: the page and its modules with a strict Content-Security-Policy, noble's
// modules with their bare imports pointed at the served copy, and nothing else from the disk.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { EndpointRegistry, type RpcRequest } from "../../../src/rpc/index.js";
import { EXPLORER_CONTENT_SECURITY_POLICY, installExplorerEndpoints, rewriteBareImports } from "../../../src/explorer/index.js";
import { STATIC_DIR } from "./static-modules.js";

const registry = new EndpointRegistry();
installExplorerEndpoints(registry);

async function get(path: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  try {
    const { endpoint, params } = registry.route("GET", path);
    assert.deepEqual(endpoint.authPolicies, ["no_auth"]);
    assert.equal(endpoint.mode, "readonly");
    assert.equal(endpoint.forwarding, "never");
    const request = { method: "GET", path, query: "", headers: {}, body: Buffer.alloc(0), callerCert: undefined } as RpcRequest;
    const result = await endpoint.handler({ request, params, caller: { policy: "no_auth" }, tx: undefined as never });
    return { status: result.status ?? 200, headers: result.headers ?? {}, body: String(result.body) };
  } catch (error) {
    return { status: (error as { status?: number }).status ?? 500, headers: {}, body: (error as Error).message };
  }
}

test("the page is served at /explorer and /explorer/ with the security headers", async () => {
  for (const path of ["/explorer", "/explorer/", "/explorer/index.html"]) {
    const r = await get(path);
    assert.equal(r.status, 200, path);
    assert.equal(r.headers["content-type"], "text/html; charset=utf-8");
    assert.equal(r.headers["content-security-policy"], EXPLORER_CONTENT_SECURITY_POLICY);
    assert.equal(r.headers["x-content-type-options"], "nosniff");
    assert.equal(r.headers["referrer-policy"], "no-referrer");
    assert.equal(r.body, readFileSync(join(STATIC_DIR, "index.html"), "utf8"));
  }
});

test("the policy allows this origin only, with no inline script, eval or HTML sinks", () => {
  const directives = new Map(EXPLORER_CONTENT_SECURITY_POLICY.split("; ").map((d) => [d.split(" ")[0], d.split(" ").slice(1).join(" ")]));
  assert.equal(directives.get("default-src"), "'none'");
  for (const name of ["script-src", "style-src", "connect-src", "img-src"]) assert.equal(directives.get(name), "'self'", name);
  assert.equal(directives.get("frame-ancestors"), "'none'");
  assert.equal(directives.get("require-trusted-types-for"), "'script'");
});

test("the page has no inline script or style and loads nothing from elsewhere", () => {
  for (const name of readdirSync(STATIC_DIR)) {
    const text = readFileSync(join(STATIC_DIR, name), "utf8");
    if (name.endsWith(".html")) {
      assert.doesNotMatch(text, /<script(?![^>]*\bsrc=)[^>]*>/, `${name}: inline script`);
      assert.doesNotMatch(text, /<style|\sstyle=|\son[a-z]+=/i, `${name}: inline style or handler`);
    }
    assert.doesNotMatch(text, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${name}: a URL of another origin`);
    if (name.endsWith(".js")) assert.doesNotMatch(text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/, `${name}: an HTML or code sink`);
  }
});

test("each static file is served with its content type; unknown names and other paths are 404", async () => {
  assert.equal((await get("/explorer/main.js")).headers["content-type"], "text/javascript; charset=utf-8");
  assert.equal((await get("/explorer/explorer.css")).headers["content-type"], "text/css; charset=utf-8");
  for (const path of ["/explorer/missing.js", "/explorer/..%2F..%2Fpackage.json", "/explorer/.hidden.js", "/explorer/vendor/noble-curves/..%2Fpackage.json",
    "/explorer/vendor/noble-curves/package.json", "/explorer/vendor/noble-curves/README.md", "/explorer/vendor/noble-hashes/missing.js"]) {
    assert.equal((await get(path)).status, 404, path);
  }
});

test("noble's modules are served with their bare @noble imports pointed at the served copies", async () => {
  const nist = await get("/explorer/vendor/noble-curves/nist.js");
  assert.equal(nist.status, 200);
  assert.match(nist.body, /from '\/explorer\/vendor\/noble-hashes\/sha2\.js'/);
  assert.doesNotMatch(nist.body.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, ""), /from\s+['"]@noble\//);
  assert.equal((await get("/explorer/vendor/noble-curves/abstract/weierstrass.js")).status, 200);
  assert.equal((await get("/explorer/vendor/noble-hashes/sha2.js")).status, 200);
  assert.equal(rewriteBareImports(`import { a } from "@noble/hashes/utils.js";\nconst m = import('@noble/curves/nist.js');`),
    `import { a } from "/explorer/vendor/noble-hashes/utils.js";\nconst m = import('/explorer/vendor/noble-curves/nist.js');`);
});

test("a node deployed without the explorer's files still starts, and /explorer says what is missing", () => {
  const bare = new EndpointRegistry();
  installExplorerEndpoints(bare, { staticDir: "/nonexistent/explorer/static" });
  const { endpoint } = bare.route("GET", "/explorer");
  assert.throws(() => endpoint.handler({} as never), (error: unknown) => {
    assert.equal((error as { status?: number }).status, 404);
    assert.match((error as Error).message, /explorer is not installed with this node: \/nonexistent\/explorer\/static is missing/);
    return true;
  });
});
