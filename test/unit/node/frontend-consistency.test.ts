// Endpoints that demand committed state answer only once their transaction is committed; a
// backup keeps forwarding a client session once it forwarded one of its requests, except reads
// of /node/*, which always describe the node that answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { TransactionEngine } from "../../../src/node/engine.js";
import { Replicator } from "../../../src/node/replication.js";
import { Frontend } from "../../../src/node/frontend.js";
import { installNodeEndpoints } from "../../../src/node/node-endpoints.js";
import { EndpointRegistry, type RpcRequest, type RpcResponse } from "../../../src/rpc/index.js";
import { Ledger } from "../../../src/ledger/index.js";
import { createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey, randomBytes } from "../../../src/crypto/index.js";

const quiet = { info() {}, warn() {}, error() {} };

function request(method: string, path: string, session?: object): RpcRequest {
  return { method, path, query: "", headers: {}, body: Buffer.alloc(0), callerCert: undefined, ...(session === undefined ? {} : { session }) };
}

/** A single-node engine whose signatures happen only when the test asks (emitSignature). */
async function withEngine(fn: (engine: TransactionEngine) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "coco-frontend-"));
  try {
    const serviceKeys = generateEcP384KeyPair();
    const serviceCertPem = await createServiceCertificate(serviceKeys, {});
    const nodeKeys = generateEcP384KeyPair();
    const nodeCertPem = await createNodeCertificate({ nodePublicKeyPem: nodeKeys.publicKeyPem, serviceKeys, serviceCertPem });
    const nodeId = nodeIdFromPublicKey(nodeKeys.publicKeyPem);
    const { ledger } = await Ledger.open(join(dir, "ledger"), { durability: "none" });
    const engine = new TransactionEngine(ledger, {
      nodeId, serviceCertPem, nodePrivateKeyPem: nodeKeys.privateKeyPem, nodeCertPem, ledgerSecrets: [{ fromSeqno: 1, raw: randomBytes(32) }],
      signatureTxCount: 1_000_000, signatureDelayMs: 1_000_000, pendingTransactionsMax: 1000, logger: quiet,
    });
    const replicator = new Replicator(engine, [], {
      nodeId, workspace: dir, bootstrapVoters: [nodeId], tickMs: 10, electionTicks: 10, heartbeatTicks: 2,
      maxEntriesPerAppend: 100, maxInflightAppends: 4, maxUncommittedEntries: 10_000, logger: quiet,
    });
    replicator.start();
    try {
      await fn(engine);
    } finally {
      replicator.stop();
      await engine.close();
      await ledger.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a committed-consistency write answers after its commit; a local one at once", async () => {
  await withEngine(async (engine) => {
    const registry = new EndpointRegistry();
    for (const consistency of ["local", "committed"] as const) {
      registry.install({
        method: "POST", path: `/${consistency}`, authPolicies: ["no_auth"], mode: "readwrite", consistency,
        handler: (ctx) => { ctx.tx.set("records", Buffer.from(consistency), Buffer.from("v")); return { body: "ok" }; },
      });
    }
    const frontend = new Frontend(registry, engine);
    const local = await frontend.dispatch(request("POST", "/local"));
    assert.equal(engine.status(1, Number(local.headers!["x-ms-ccf-transaction-id"]!.split(".")[1])), "Pending");
    let answered = false;
    const waiting = Promise.resolve(frontend.dispatch(request("POST", "/committed"))).then((r) => { answered = true; return r; });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(answered, false, "not answered before a signature commits it");
    engine.emitSignature();
    const committed = await waiting;
    const [view, seqno] = committed.headers!["x-ms-ccf-transaction-id"]!.split(".").map(Number);
    assert.equal(engine.status(view!, seqno!), "Committed");
  });
});

test("a handler may ask for committed consistency per request: that answer comes only once its transaction is committed", async () => {
  await withEngine(async (engine) => {
    const registry = new EndpointRegistry();
    registry.install({
      method: "POST", path: "/maybe", authPolicies: ["no_auth"], mode: "readwrite",
      handler: (ctx) => {
        ctx.tx.set("records", Buffer.from(ctx.request.query), Buffer.from("v"));
        return ctx.request.query === "wait" ? { body: "ok", consistency: "committed" } : { body: "ok" };
      },
    });
    const frontend = new Frontend(registry, engine);
    const statusAtAnswer = (response: RpcResponse): string => {
      const [view, seqno] = response.headers!["x-ms-ccf-transaction-id"]!.split(".").map(Number);
      return engine.status(view!, seqno!);
    };
    const plain = statusAtAnswer(await frontend.dispatch({ ...request("POST", "/maybe"), query: "now" }));
    assert.equal(plain, "Pending", "without the flag the answer does not wait");
    const waiting = Promise.resolve(frontend.dispatch({ ...request("POST", "/maybe"), query: "wait" })).then(statusAtAnswer);
    // Let the frontend answer now if it were going to; then commit.
    await new Promise((r) => setImmediate(r));
    engine.emitSignature();
    assert.equal(await waiting, "Committed");
  });
});

test("on a backup, a session that had a request forwarded has its later reads forwarded too (CCF's session consistency)", async () => {
  await withEngine(async (engine) => {
    const registry = new EndpointRegistry();
    const answer = (where: string) => () => ({ body: where });
    registry.install({ method: "GET", path: "/read", authPolicies: ["no_auth"], mode: "readonly", handler: answer("local") });
    registry.install({ method: "GET", path: "/never", authPolicies: ["no_auth"], mode: "readonly", forwarding: "never", handler: answer("local") });
    registry.install({ method: "POST", path: "/write", authPolicies: ["no_auth"], mode: "readwrite", handler: answer("local") });
    const frontend = new Frontend(registry, engine);
    const forwarded: string[] = [];
    frontend.forwarding = {
      isPrimary: () => false,
      forward: async (r: RpcRequest): Promise<RpcResponse> => { forwarded.push(`${r.method} ${r.path}`); return { status: 200, body: "primary" }; },
    };
    const a = {};
    const b = {};
    const body = async (r: RpcRequest) => (await frontend.dispatch(r)).body;
    assert.equal(await body(request("GET", "/read", a)), "local", "reads are served locally at first");
    assert.equal(await body(request("POST", "/write", a)), "primary");
    assert.equal(await body(request("GET", "/read", a)), "primary", "after a forwarded write, the session's reads follow it");
    assert.equal(await body(request("GET", "/never", a)), "local", "forwarding: never stays local");
    assert.equal(await body(request("GET", "/read", b)), "local", "other sessions are unaffected");
    assert.equal(await body(request("GET", "/read")), "local", "requests without a session (forwarded ones) are unaffected");
    assert.deepEqual(forwarded, ["POST /write", "GET /read"]);
  });
});

test("on a backup, /node/* reads on a session that forwarded a write describe this node, while its app reads still follow the primary", async () => {
  await withEngine(async (engine) => {
    const registry = new EndpointRegistry();
    installNodeEndpoints(registry, engine, {
      nodeId: "this-backup", serviceCertPem: "", nodeCertPem: "", rpcInterfaceName: "primary_rpc_interface",
      rpcAddress: () => "127.0.0.1:0", startupSeqno: 0, serviceStatus: () => "Open",
      consensus: () => ({ role: "Backup", primaryId: "the-primary", term: 2, voters: ["the-primary", "this-backup"], commit: 0, last: 0, mayVote: true }),
    });
    registry.install({ method: "GET", path: "/app/read", authPolicies: ["no_auth"], mode: "readonly", handler: () => ({ body: "local" }) });
    registry.install({ method: "POST", path: "/app/write", authPolicies: ["no_auth"], mode: "readwrite", handler: () => ({ body: "local" }) });
    // A /node/ read installed without forwarding: "never" stays local too.
    registry.install({ method: "GET", path: "/node/custom", authPolicies: ["no_auth"], mode: "readonly", handler: () => ({ body: "local" }) });
    const frontend = new Frontend(registry, engine);
    const forwarded: string[] = [];
    frontend.forwarding = {
      isPrimary: () => false,
      forward: async (r: RpcRequest): Promise<RpcResponse> => {
        forwarded.push(`${r.method} ${r.path}`);
        return { status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify({ node_id: "the-primary", details: { role: "Primary" } }) };
      },
    };
    const session = {};
    const json = async (r: RpcRequest) => JSON.parse(String((await frontend.dispatch(r)).body));
    await frontend.dispatch(request("POST", "/app/write", session));
    assert.equal((await json(request("GET", "/node/state", session))).node_id, "this-backup");
    const consensus = (await json(request("GET", "/node/consensus", session))).details;
    assert.equal(consensus.role, "Backup");
    assert.equal(consensus.primary_id, "the-primary");
    assert.equal((await json(request("GET", "/node/network", session))).primary_id, "the-primary");
    assert.equal((await frontend.dispatch(request("GET", "/node/custom", session))).body, "local");
    await frontend.dispatch(request("GET", "/app/read", session));
    assert.deepEqual(forwarded, ["POST /app/write", "GET /app/read"], "only the write and the session's app read went to the primary");
  });
});

test("every GET /node/* endpoint is marked forwarding: never", async () => {
  await withEngine(async (engine) => {
    const registry = new EndpointRegistry();
    installNodeEndpoints(registry, engine, {
      nodeId: "n", serviceCertPem: "", nodeCertPem: "", rpcInterfaceName: "i", rpcAddress: () => "", startupSeqno: 0, serviceStatus: () => "Open",
      consensus: () => ({ role: "Backup", primaryId: undefined, term: 0, voters: [], commit: 0, last: 0, mayVote: true }),
    });
    const nodeReads = registry.list().filter((e) => e.path.startsWith("/node/") && (e.method === "GET" || e.method === "HEAD"));
    assert.ok(nodeReads.length >= 9, `${nodeReads.length} /node/ reads`);
    for (const endpoint of nodeReads) assert.equal(endpoint.forwarding, "never", `${endpoint.method} ${endpoint.path}`);
  });
});
