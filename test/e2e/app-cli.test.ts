// End-to-end: the developer's loop for a TypeScript app. `coco app init` writes a project,
// `coco app build` bundles it (no npm install in the project: @microsoft/ccf-app comes from
// Coco's own dependencies), `coco app deploy --vote` passes set_js_app on a real sandbox, user0
// calls the endpoints, and GET /app/api describes them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NodeProcess, runCli, tempWorkspace, type CliResult } from "../helpers/node-process.js";

const ws = tempWorkspace("coco-app-cli-");
const project = join(ws.dir, "my-app");
const sandboxDir = join(ws.dir, "sandbox");
let node: NodeProcess;

function ok(result: CliResult, what: string): void {
  assert.equal(result.code, 0, `${what} failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
}

function deployArgs(source: string): string[] {
  return [
    "app", "deploy", source, "--vote",
    "--url", `https://127.0.0.1:${node.port}`,
    "--service-cert", join(sandboxDir, "service_cert.pem"),
    "--member-cert", join(sandboxDir, "member0_cert.pem"),
    "--member-key", join(sandboxDir, "member0_privk.pem"),
  ];
}

before(async () => {
  node = await NodeProcess.sandbox(sandboxDir);
});

after(async () => {
  await node?.stop();
  ws.cleanup();
});

test("coco app init writes a TypeScript project typed against @microsoft/ccf-app", async () => {
  ok(await runCli(["app", "init", project]), "app init");
  const pkg = JSON.parse(readFileSync(join(project, "package.json"), "utf8"));
  assert.equal(pkg.name, "my-app");
  assert.ok(pkg.devDependencies["@microsoft/ccf-app"]);
  for (const file of ["app.json", "tsconfig.json", "README.md", ".gitignore", "src/endpoints/items.ts"]) {
    assert.ok(existsSync(join(project, file)), `${file} missing`);
  }
  const again = await runCli(["app", "init", project]);
  assert.equal(again.code, 2, "init refuses a non-empty directory");
  assert.match(again.stderr, /not an empty directory/);
});

test("coco app build bundles each module into CCF's bundle JSON without the project's node_modules", async () => {
  ok(await runCli(["app", "build", project, "--out", join(ws.dir, "bundle.json")]), "app build");
  const bundle = JSON.parse(readFileSync(join(ws.dir, "bundle.json"), "utf8"));
  assert.deepEqual(bundle.modules.map((m: { name: string }) => m.name).sort(), ["endpoints/items.js", "endpoints/whoami.js"]);
  assert.ok(bundle.metadata.endpoints["/items/{id}"].put);
  for (const m of bundle.modules) assert.doesNotMatch(m.module, /^\s*import\s/m, `${m.name} still imports`);
});

test("coco app build warns, naming the missing export, when app.json points at a function that does not exist (CCF deploys such bundles)", async () => {
  const appJson = join(project, "app.json");
  const original = readFileSync(appJson, "utf8");
  writeFileSync(appJson, original.replace('"listItems"', '"listEverything"'));
  try {
    const result = await runCli(["app", "build", project]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /coco: warning: .*does not export listEverything.*answer 500/);
  } finally {
    writeFileSync(appJson, original);
  }
});

test("coco app deploy --vote passes set_js_app, and user0 calls the app", async () => {
  const result = await runCli(deployArgs(project));
  ok(result, "app deploy");
  assert.match(result.stdout, /Deployed 4 endpoints in 2 modules: proposal \w+ accepted/);
  const put = await node.request("PUT", "/app/items/apple", { body: JSON.stringify({ name: "apple", quantity: 3 }) });
  assert.equal(put.status, 204, put.text);
  const get = await node.request("GET", "/app/items/apple");
  assert.equal(get.status, 200, get.text);
  assert.deepEqual(get.json(), { name: "apple", quantity: 3 });
  const bad = await node.request("PUT", "/app/items/pear", { body: JSON.stringify({ name: "" }) });
  assert.equal(bad.status, 400);
  const list = await node.request("GET", "/app/items");
  assert.deepEqual(list.json(), { items: [{ id: "apple", name: "apple", quantity: 3 }] });
  const anonymous = await node.request("GET", "/app/items/apple", { identity: "none" });
  assert.equal(anonymous.status, 401);
});

test("GET /app/api describes the deployed endpoints and the built-in ones", async () => {
  const r = await node.request("GET", "/app/api", { identity: "none" });
  assert.equal(r.status, 200, r.text);
  const doc = r.json();
  assert.equal(doc.openapi, "3.0.0");
  assert.deepEqual(doc.servers, [{ url: "/app" }]);
  const put = doc.paths["/items/{id}"].put;
  assert.equal(put.summary, "Store an item at an id");
  assert.deepEqual(put.parameters, [{ name: "id", in: "path", required: true, schema: { type: "string" } }]);
  assert.deepEqual(put.security, [{ user_cert: [] }]);
  assert.ok(put.requestBody.content["application/json"]);
  assert.equal(put["x-ccf-js-function"], "putItem");
  assert.ok(doc.paths["/log/private"].post.summary, "built-in logging endpoint with its summary");
  assert.ok(doc.components.securitySchemes.user_cert);
});

test("coco app deploy accepts a bundle file and reports a missing member key as a usage error", async () => {
  ok(await runCli(deployArgs(join(ws.dir, "bundle.json"))), "deploy bundle.json");
  const args = deployArgs(project);
  args[args.indexOf("--member-key") + 1] = join(ws.dir, "nope.pem");
  const result = await runCli(args);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /cannot read member private key/);
});
