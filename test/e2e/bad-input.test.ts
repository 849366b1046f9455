// End-to-end: bad input never harms the node. Each malformed request gets a clear 4xx with a
// CCF-style error body; a few thousand random requests later the node still serves correctly.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import { readFileSync } from "node:fs";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { createIdentityCertificate, generateEcP384KeyPair } from "../../src/crypto/index.js";
import { openServiceAsMember } from "../../src/client/index.js";

const ws = tempWorkspace();
let node: NodeProcess;
let stranger: { cert: string; key: string };

async function identity(name: string): Promise<{ cert: string; key: string }> {
  const keys = generateEcP384KeyPair();
  return { cert: await createIdentityCertificate(keys, name), key: keys.privateKeyPem };
}

before(async () => {
  for (const name of ["member0", "user0"]) {
    const id = await identity(name);
    writeFileSync(join(ws.dir, `${name}_cert.pem`), id.cert);
    writeFileSync(join(ws.dir, `${name}_privk.pem`), id.key);
  }
  stranger = await identity("stranger");
  const config = {
    network: { rpc_interfaces: { primary: { bind_address: "127.0.0.1:0", http_configuration: { max_body_size: "4KB" } } } },
    command: {
      type: "Start",
      service_certificate_file: "service_cert.pem",
      start: { members: [{ certificate_file: "member0_cert.pem" }] },
    },
    ledger: { directory: "ledger" },
    coco: { durability: "none" },
  };
  writeFileSync(join(ws.dir, "config.json"), JSON.stringify(config));
  node = await NodeProcess.nodeStart(ws.dir, join(ws.dir, "config.json"));
  const before = await node.request("GET", "/app/log/private?id=1");
  assert.equal(before.status, 404);
  assert.equal(before.json().error.code, "FrontendNotOpen", "app endpoints wait for the service to open");
  await openServiceAsMember({
    url: `https://127.0.0.1:${node.port}`,
    serviceCertPem: readFileSync(join(ws.dir, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8"),
    userCertPems: [readFileSync(join(ws.dir, "user0_cert.pem"), "utf8")],
  });
});
after(async () => {
  await node?.stop();
  ws.cleanup();
});

async function expectError(p: Promise<{ status: number; json: () => any; text: string }>, status: number, code: string): Promise<string> {
  const r = await p;
  assert.equal(r.status, status, r.text);
  const body = r.json();
  assert.equal(body.error.code, code, r.text);
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 10, "the message explains the error");
  return body.error.message;
}

test("malformed JSON is refused with InvalidInput", async () => {
  await expectError(node.request("POST", "/app/log/private", { body: "{\"id\": 1, \"msg\": " }), 400, "InvalidInput");
});

test("wrong field types are refused with a message naming the field", async () => {
  const m1 = await expectError(node.request("POST", "/app/log/private", { body: JSON.stringify({ id: "one", msg: "x" }) }), 400, "InvalidInput");
  assert.match(m1, /'id'/);
  const m2 = await expectError(node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1, msg: 42 }) }), 400, "InvalidInput");
  assert.match(m2, /'msg'/);
  await expectError(node.request("POST", "/app/log/private", { body: JSON.stringify({ id: -1, msg: "x" }) }), 400, "InvalidInput");
  await expectError(node.request("POST", "/app/log/private", { body: JSON.stringify([1, 2]) }), 400, "InvalidInput");
  await expectError(node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1, msg: "" }) }), 400, "InvalidInput");
  await expectError(node.request("GET", "/app/log/private?id=abc"), 400, "InvalidQueryParameterValue");
  await expectError(node.request("GET", "/app/log/private"), 400, "InvalidQueryParameterValue");
});

test("an unknown path is 404 and a wrong verb is 405", async () => {
  await expectError(node.request("GET", "/app/nothing/here"), 404, "ResourceNotFound");
  await expectError(node.request("PUT", "/app/log/private"), 405, "UnsupportedHttpVerb");
});

test("a missing or unknown client certificate is refused with 401", async () => {
  await expectError(node.request("GET", "/app/log/private?id=1", { identity: "none" }), 401, "InvalidAuthenticationInfo");
  await expectError(node.request("POST", "/app/log/private", { identity: stranger, body: JSON.stringify({ id: 1, msg: "x" }) }), 401, "InvalidAuthenticationInfo");
  // A member is not a user.
  await expectError(node.request("GET", "/app/log/private?id=1", { identity: "member0" }), 401, "InvalidAuthenticationInfo");
});

test("a body over the configured limit is refused with 413", async () => {
  await expectError(node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1, msg: "x".repeat(5000) }) }), 413, "RequestBodyTooLarge");
});

function randomInt(n: number): number {
  return Math.floor(Math.random() * n);
}

function randomString(max: number): string {
  const alphabet = "abc{}[]\":,0123456789 -_/%?&=\\\u00e9\u4e2d\u0000\n";
  let s = "";
  const n = randomInt(max);
  for (let i = 0; i < n; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

test("a few thousand random requests leave the node serving correctly", async () => {
  const methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"];
  const paths = ["/app/log/private", "/app/log/public", "/app/log/private/count", "/node/tx", "/app/receipt", "/node/commit", "/app/", "/", "/node/state"];
  const bodies = () => [
    randomString(200),
    JSON.stringify({ id: randomInt(100), msg: randomString(50) }),
    JSON.stringify({ id: Math.random() * 1e20, msg: null }),
    JSON.stringify({ id: randomInt(10), msg: { nested: [1, 2, 3] } }),
    "x".repeat(randomInt(6000)),
  ];
  let served = 0;
  const batch = 50;
  for (let round = 0; round < 60; round++) {
    const requests = [];
    for (let i = 0; i < batch; i++) {
      const method = methods[randomInt(methods.length)]!;
      const path = paths[randomInt(paths.length)]! + (Math.random() < 0.5 ? `?${randomString(20).replace(/[\s#]/g, "")}` : "");
      const options = {
        identity: (["user0", "none", "member0"] as const)[randomInt(3)],
        ...(method !== "GET" && method !== "HEAD" ? { body: bodies()[randomInt(5)] } : {}),
      };
      let safePath: string;
      try {
        safePath = encodeURI(decodeURI(path)).replace(/%25/g, "%");
      } catch {
        safePath = "/app/log/private?id=%E0%A4%A";
      }
      requests.push(node.request(method, safePath, options).then((r) => {
        assert.ok(r.status < 500, `${method} ${safePath} -> ${r.status} ${r.text}`);
        served++;
      }, () => { served++; /* a refused connection is a valid outcome for garbage */ }));
    }
    await Promise.all(requests);
  }
  assert.equal(served, 60 * batch);

  // Raw garbage over TLS: not HTTP at all.
  const ca = readFileSync(join(node.workspace, "service_cert.pem"));
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve) => {
      const socket = tls.connect({ host: "127.0.0.1", port: node.port, ca, servername: "localhost" }, () => {
        socket.write(Buffer.from(randomString(300)));
        socket.end();
      });
      socket.on("error", () => resolve());
      socket.on("close", () => resolve());
      socket.resume();
    });
  }

  const w = await node.request("POST", "/app/log/private", { body: JSON.stringify({ id: 424242, msg: "still alive" }) });
  assert.equal(w.status, 200);
  await node.waitForStatus(String(w.headers["x-ms-ccf-transaction-id"]));
  assert.deepEqual((await node.request("GET", "/app/log/private?id=424242")).json(), { msg: "still alive" });
});
