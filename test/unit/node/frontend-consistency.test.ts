// Endpoints that demand committed state answer only once their transaction is committed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { TransactionEngine } from "../../../src/node/engine.js";
import { Replicator } from "../../../src/node/replication.js";
import { Frontend } from "../../../src/node/frontend.js";
import { EndpointRegistry, type RpcRequest } from "../../../src/rpc/index.js";
import { Ledger } from "../../../src/ledger/index.js";
import { createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey, randomBytes } from "../../../src/crypto/index.js";

const quiet = { info() {}, warn() {}, error() {} };

function request(method: string, path: string): RpcRequest {
  return { method, path, query: "", headers: {}, body: Buffer.alloc(0), callerCert: undefined };
}

test("a committed-consistency write answers after its commit; a local one at once", async () => {
  const dir = mkdtempSync(join(tmpdir(), "coco-frontend-"));
  try {
    const serviceKeys = generateEcP384KeyPair();
    const serviceCertPem = await createServiceCertificate(serviceKeys, {});
    const nodeKeys = generateEcP384KeyPair();
    const nodeCertPem = await createNodeCertificate({ nodePublicKeyPem: nodeKeys.publicKeyPem, serviceKeys, serviceCertPem });
    const nodeId = nodeIdFromPublicKey(nodeKeys.publicKeyPem);
    const { ledger } = await Ledger.open(join(dir, "ledger"), { durability: "none" });
    // Signatures only on demand: nothing commits until the test signs.
    const engine = new TransactionEngine(ledger, {
      nodeId, serviceCertPem, nodePrivateKeyPem: nodeKeys.privateKeyPem, nodeCertPem, ledgerSecrets: [{ fromSeqno: 1, raw: randomBytes(32) }],
      signatureTxCount: 1_000_000, signatureDelayMs: 1_000_000, pendingTransactionsMax: 1000, logger: quiet,
    });
    const replicator = new Replicator(engine, [], {
      nodeId, workspace: dir, bootstrapVoters: [nodeId], tickMs: 10, electionTicks: 10, heartbeatTicks: 2,
      maxEntriesPerAppend: 100, maxInflightAppends: 4, maxUncommittedEntries: 10_000, logger: quiet,
    });
    replicator.start();
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
    replicator.stop();
    await engine.close();
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
