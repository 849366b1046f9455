// A multi-node network of real node processes on loopback: joins through governance,
// forwarding from backups, elections after SIGKILL, catch-up after restart, retirement.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { createIdentityCertificate, createNodeCertificate, createServiceCertificate, generateEcP384KeyPair } from "../../src/crypto/index.js";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { Network, type NetworkNode, type NetworkOptions } from "../helpers/network.js";

async function write(node: NetworkNode, id: number, msg: string): Promise<string> {
  const r = await node.process!.request("POST", "/app/log/private", { body: JSON.stringify({ id, msg }) });
  assert.equal(r.status, 200, `write ${id} via node ${node.index}: ${r.text}`);
  return r.headers["x-ms-ccf-transaction-id"] as string;
}

async function waitCommitted(node: NetworkNode, txid: string, timeoutMs = 15_000): Promise<void> {
  await node.process!.waitForStatus(txid, "Committed", timeoutMs);
}

async function read(node: NetworkNode, id: number): Promise<string | undefined> {
  const r = await node.process!.request("GET", `/app/log/private?id=${id}`);
  return r.status === 200 ? r.json().msg : undefined;
}

/** Runs `body` against a fresh network of `count` nodes (all in the configuration), then stops it. */
async function withNetwork(count: number, body: (net: Network, dir: string) => Promise<void>, options: NetworkOptions = {}): Promise<void> {
  const ws = tempWorkspace("coco-net-");
  const net = await Network.start(ws.dir, count, options).catch((e) => { ws.cleanup(); throw e; });
  try {
    if (count > 1) await net.waitForConfiguration(count);
    await body(net, ws.dir);
  } finally {
    await net.stop();
    ws.cleanup();
  }
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("three nodes: joins through governance, writes on any node commit everywhere", { timeout: 120_000 }, async () => {
  await withNetwork(3, async (net) => {
    const nodes = await net.nodes[0]!.process!.request("GET", "/node/network/nodes", { identity: "none" });
    assert.equal(nodes.json().nodes.length, 3);
    assert.equal(nodes.json().nodes.filter((n: any) => n.primary).length, 1);
    const txids: string[] = [];
    for (let i = 0; i < 30; i++) txids.push(await write(net.nodes[i % 3]!, i, `message ${i}`));
    for (const node of net.nodes) await waitCommitted(node, txids[txids.length - 1]!);
    for (const node of net.nodes) {
      for (let i = 0; i < 30; i++) assert.equal(await read(node, i), `message ${i}`, `node ${node.index} reads ${i}`);
    }
    // A backup answers with the primary's transaction id, and reports the same commit.
    const commits = await Promise.all(net.nodes.map(async (n) => (await n.process!.request("GET", "/node/commit", { identity: "none" })).json().transaction_id));
    assert.ok(commits.every((c) => c !== "0.0"));
    const primary = await net.primary();
    const backup = net.nodes.find((n) => n !== primary)!;
    const redirect = await backup.process!.request("GET", "/node/primary", { identity: "none" });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers["location"], `https://127.0.0.1:${primary.rpcPort}/node/primary`);
  });
});

test("SIGKILL the primary: a new one is elected, nothing committed is lost, the killed node catches up after restart", { timeout: 150_000 }, async () => {
  await withNetwork(3, async (net) => {
    const txids: string[] = [];
    for (let i = 0; i < 20; i++) txids.push(await write(net.nodes[i % 3]!, i, `before ${i}`));
    for (const node of net.nodes) await waitCommitted(node, txids[txids.length - 1]!);
    const oldPrimary = await net.primary();
    const killedAt = Date.now();
    await net.kill(oldPrimary);
    const newPrimary = await net.primary(20_000);
    const failoverMs = Date.now() - killedAt;
    assert.notEqual(newPrimary, oldPrimary);
    assert.ok(failoverMs < 10_000, `a new primary within a few seconds (took ${failoverMs} ms)`);
    const live = net.nodes.filter((n) => n.process !== undefined);
    for (const node of live) {
      for (let i = 0; i < 20; i++) assert.equal(await read(node, i), `before ${i}`, `node ${node.index} still reads committed write ${i}`);
      for (const txid of txids) assert.equal((await node.process!.request("GET", `/node/tx?transaction_id=${txid}`, { identity: "none" })).json().status, "Committed");
    }
    const after: string[] = [];
    for (let i = 20; i < 30; i++) after.push(await write(live[i % live.length]!, i, `after ${i}`));
    for (const node of live) await waitCommitted(node, after[after.length - 1]!);
    // The killed node restarts from its own ledger and catches up with what it missed.
    await net.restart(oldPrimary);
    await waitCommitted(oldPrimary, after[after.length - 1]!, 20_000);
    for (let i = 0; i < 30; i++) assert.equal(await read(oldPrimary, i), i < 20 ? `before ${i}` : `after ${i}`);
  });
});

test("a primary cut off by a fault-injecting proxy is replaced; when healed its uncommitted writes roll back", { timeout: 150_000 }, async () => {
  await withNetwork(3, async (net) => {
    const committed = await write(net.nodes[1]!, 1, "committed before the partition");
    for (const node of net.nodes) await waitCommitted(node, committed);
    const cut = await net.primary();
    net.isolate(cut);
    // The cut-off primary still takes this write, but can never commit it.
    const orphan = await write(cut, 2, "written on the wrong side of the partition");
    const others = net.nodes.filter((n) => n !== cut);
    let newPrimary: NetworkNode | undefined;
    await eventually(async () => {
      for (const n of others) {
        const r = await n.process!.request("GET", "/node/consensus", { identity: "none" });
        if (r.json().details.role === "Primary") { newPrimary = n; return true; }
      }
      return false;
    }, "a new primary among the majority");
    const majorityWrite = await write(newPrimary!, 3, "written by the majority");
    for (const n of others) await waitCommitted(n, majorityWrite);
    assert.equal((await cut.process!.request("GET", `/node/tx?transaction_id=${orphan}`, { identity: "none" })).json().status, "Pending");
    net.heal();
    // Healed: the old primary follows the new one, drops its orphan and holds the majority's write.
    await waitCommitted(cut, majorityWrite, 20_000);
    await eventually(async () => (await cut.process!.request("GET", `/node/tx?transaction_id=${orphan}`, { identity: "none" })).json().status === "Invalid", "the orphan write to become Invalid");
    for (const node of net.nodes) {
      assert.equal(await read(node, 1), "committed before the partition");
      assert.equal(await read(node, 2), undefined, `node ${node.index} rolled back the uncommitted write`);
      assert.equal(await read(node, 3), "written by the majority");
    }
  }, { proxied: true });
});

test("a fourth node joins and a node retires while the network keeps committing", { timeout: 150_000 }, async () => {
  await withNetwork(3, async (net) => {
    let writing = true;
    const txids: string[] = [];
    const failures: string[] = [];
    try {
      const writer = (async () => {
        for (let i = 0; writing; i++) {
          const via = net.nodes[0]!;
          const r = await via.process!.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1000 + i, msg: `m${i}` }) });
          if (r.status === 200) txids.push(r.headers["x-ms-ccf-transaction-id"] as string);
          else failures.push(`${r.status} ${r.text}`);
          await new Promise((res) => setTimeout(res, 10));
        }
      })();
      const fourth = await net.join();
      await net.waitForConfiguration(4);
      const retiring = net.nodes[1]!;
      await net.propose([{ name: "remove_node", args: { node_id: retiring.nodeId } }]);
      await eventually(async () => {
        const r = await net.nodes[0]!.process!.request("GET", "/node/consensus", { identity: "none" });
        const config: string[] = r.json().details.configuration;
        return config.length === 3 && !config.includes(retiring.nodeId!);
      }, "the retired node to leave the configuration");
      const nodes = (await net.nodes[0]!.process!.request("GET", "/node/network/nodes", { identity: "none" })).json().nodes;
      assert.equal(nodes.find((n: any) => n.node_id === retiring.nodeId).status, "Retired");
      await new Promise((res) => setTimeout(res, 300));
      writing = false;
      await writer;
      assert.deepEqual(failures, [], "every write during the join and the retirement succeeded");
      assert.ok(txids.length > 20, `writes kept flowing (${txids.length})`);
      const last = txids[txids.length - 1]!;
      for (const node of [net.nodes[0]!, net.nodes[2]!, fourth]) await waitCommitted(node, last);
      for (const txid of txids) assert.equal((await fourth.process!.request("GET", `/node/tx?transaction_id=${txid}`, { identity: "none" })).json().status, "Committed");
    } finally {
      writing = false;
    }
  });
});

test("joining nodes are refused for a wrong service certificate, an untrusted platform or a forged certificate", { timeout: 150_000 }, async () => {
  await withNetwork(1, async (net, dir) => {
    // 1. The joiner was given another service's certificate: the target's TLS certificate does not chain to it.
    const otherServiceKeys = generateEcP384KeyPair();
    const otherService = join(dir, "other_service_cert.pem");
    writeFileSync(otherService, await createServiceCertificate(otherServiceKeys, {}));
    const wrongCert = await net.addNodeFiles("Join", { serviceCertFile: otherService });
    await assert.rejects(NodeProcess.nodeStart(wrongCert.dir, wrongCert.configFile), /not present a certificate endorsed by the service certificate/);

    // 2. Untrusted platform: host data the service never allowed, then a claim of SEV-SNP without evidence.
    const badHost = await net.addNodeFiles("Join", { coco: { virtual_host_data: "ab".repeat(32) } });
    await assert.rejects(NodeProcess.nodeStart(badHost.dir, badHost.configFile), /Host data 'abab[0-9a-f]*' is not trusted by this service/);
    const snp = await net.addNodeFiles("Join", { coco: { attestation_format: "AMD_SEV_SNP_v1" } });
    await assert.rejects(NodeProcess.nodeStart(snp.dir, snp.configFile), /InvalidAttestation: .*Attestation refused \(format\): quote_info.quote must be base64/);
    // Once members allow that host data, the same kind of node is accepted (Pending).
    await net.propose([{ name: "add_virtual_host_data", args: { host_data: "ab".repeat(32) } }]);
    const allowed = await net.addNodeFiles("Join", { coco: { virtual_host_data: "ab".repeat(32) } });
    const starting = NodeProcess.nodeStart(allowed.dir, allowed.configFile);
    starting.catch(() => undefined);
    const pendingId = await net.waitForPending(`${allowed.n2nHost}:${allowed.n2nPort}`);
    assert.match(pendingId, /^[0-9a-f]{64}$/);

    // 3. Forged certificates: a join whose TLS certificate is not validly self-signed, and a node-to-node
    //    connection with a certificate issued by another "service".
    const keys = generateEcP384KeyPair();
    const good = await createIdentityCertificate(keys, "CCF Node");
    const der = Buffer.from(good.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 5] ^= 0xff; // corrupt the signature
    const forged = `-----BEGIN CERTIFICATE-----\n${der.toString("base64").match(/.{1,64}/g)!.join("\n")}\n-----END CERTIFICATE-----\n`;
    const first = net.nodes[0]!;
    const r = await first.process!.request("POST", "/node/join", { identity: { cert: forged, key: keys.privateKeyPem }, body: "{}" });
    assert.equal(r.status, 400);
    assert.match(r.json().error.message, /not acceptable: it is not self-signed/);
    const fakeNodeCert = await createNodeCertificate({ nodePublicKeyPem: keys.publicKeyPem, serviceKeys: otherServiceKeys, serviceCertPem: readFileSync(otherService, "utf8") });
    const refused = await new Promise<string>((resolve) => {
      const socket = tlsConnect({
        host: first.n2nHost, port: first.n2nPort, key: keys.privateKeyPem, cert: fakeNodeCert,
        rejectUnauthorized: false, minVersion: "TLSv1.3",
      });
      let received = 0;
      socket.on("data", (d: Buffer) => { received += d.length; });
      socket.on("error", (e) => resolve(`error: ${e.message}`));
      socket.on("close", () => resolve(`closed after ${received} bytes`));
    });
    assert.match(refused, /error|closed after 0 bytes/, "the node-to-node port refuses a certificate the service did not endorse");
    // The service is unharmed.
    const txid = await write(first, 7, "still fine");
    await waitCommitted(first, txid);
  });
});

test("coco sandbox --nodes 3 starts a network whose joiners were trusted through governance", { timeout: 150_000 }, async () => {
  const ws = tempWorkspace("coco-sandbox3-");
  const sandbox = await NodeProcess.sandbox(ws.dir, ["--nodes", "3"]);
  try {
    const nodes = (await sandbox.request("GET", "/node/network/nodes", { identity: "none" })).json().nodes as any[];
    assert.equal(nodes.length, 3);
    assert.ok(nodes.every((n) => n.status === "Trusted" && n.in_configuration), JSON.stringify(nodes));
    const proposals = (await sandbox.request("GET", "/gov/service/members?api-version=2024-07-01", { identity: "none" }));
    assert.equal(proposals.status, 200);
    // Write through the last node (forwarded to the primary), read from the first.
    const last = nodes.find((n) => !n.primary)!;
    const port = Number(last.rpc_interfaces.primary_rpc_interface.published_address.split(":")[1]);
    const other = Object.assign(Object.create(Object.getPrototypeOf(sandbox)), sandbox, { port, agents: new Map() }) as NodeProcess;
    const w = await other.request("POST", "/app/log/private", { body: JSON.stringify({ id: 5, msg: "via a backup" }) });
    assert.equal(w.status, 200, w.text);
    await sandbox.waitForStatus(w.headers["x-ms-ccf-transaction-id"] as string);
    assert.equal((await sandbox.request("GET", "/app/log/private?id=5")).json().msg, "via a backup");
    other.closeAgents();
  } finally {
    await sandbox.stop();
    ws.cleanup();
  }
});

test("a ledger rekey reaches every node: backups decrypt later entries, also after a restart", { timeout: 150_000 }, async () => {
  await withNetwork(3, async (net) => {
    await write(net.nodes[0]!, 1, "under the first secret");
    await net.propose([{ name: "trigger_ledger_rekey", args: {} }]);
    const txid = await write(net.nodes[2]!, 2, "under the second secret");
    for (const node of net.nodes) {
      await waitCommitted(node, txid);
      assert.equal(await read(node, 2), "under the second secret", `node ${node.index} decrypts after the rekey`);
    }
    // A backup restarted from its own ledger reads both secrets back from its sealed file.
    const primary = await net.primary();
    const backup = net.nodes.find((n) => n !== primary)!;
    await backup.process!.stop();
    await net.restart(backup);
    await waitCommitted(backup, txid);
    assert.equal(await read(backup, 1), "under the first secret");
    assert.equal(await read(backup, 2), "under the second secret");
  });
});

test("retiring the primary hands leadership to another node and writes carry on", { timeout: 150_000 }, async () => {
  await withNetwork(3, async (net) => {
    const before = await write(net.nodes[0]!, 1, "before the retirement");
    const oldPrimary = await net.primary();
    await net.propose([{ name: "remove_node", args: { node_id: oldPrimary.nodeId } }]);
    const others = net.nodes.filter((n) => n !== oldPrimary);
    await eventually(async () => {
      for (const n of others) {
        const d = (await n.process!.request("GET", "/node/consensus", { identity: "none" })).json().details;
        if (d.role === "Primary" && d.configuration.length === 2 && !d.configuration.includes(oldPrimary.nodeId)) return true;
      }
      return false;
    }, "a remaining node to lead a configuration without the retired primary", 20_000);
    const after = await write(others[0]!, 2, "after the retirement");
    for (const n of others) {
      await waitCommitted(n, after);
      assert.equal((await n.process!.request("GET", `/node/tx?transaction_id=${before}`, { identity: "none" })).json().status, "Committed");
      assert.equal(await read(n, 1), "before the retirement");
      assert.equal(await read(n, 2), "after the retirement");
    }
  });
});

test("a node whose ledger was wiped catches up from its peers, whether it was a backup or the first node", { timeout: 150_000 }, async () => {
  await withNetwork(3, async (net) => {
    const txids: string[] = [];
    for (let i = 0; i < 10; i++) txids.push(await write(net.nodes[i % 3]!, i, `before ${i}`));
    for (const node of net.nodes) await waitCommitted(node, txids[txids.length - 1]!);
    const primary = await net.primary();
    // Wipe a backup, then the first node (which started the service: it must not start a new one).
    const backup = net.nodes.find((n) => n !== primary)!;
    for (const victim of [backup, net.nodes[0]!]) {
      const live = net.nodes.find((n) => n !== victim)!;
      const viewBefore = (await live.process!.request("GET", "/node/consensus", { identity: "none" })).json().details.current_view as number;
      await net.kill(victim);
      rmSync(join(victim.dir, "ledger"), { recursive: true, force: true });
      const during = await write(net.nodes.find((n) => n.process !== undefined)!, 100 + victim.index, "while wiped");
      await net.restart(victim);
      await waitCommitted(victim, during, 30_000);
      for (let i = 0; i < 10; i++) assert.equal(await read(victim, i), `before ${i}`, `wiped node ${victim.index} reads write ${i} again`);
      for (const txid of txids) {
        assert.equal((await victim.process!.request("GET", `/node/tx?transaction_id=${txid}`, { identity: "none" })).json().status, "Committed");
      }
      // It votes again only once a newer view commits: the primary hands over leadership for that
      // once the node has caught up, so the network can lose another node after this one.
      await eventually(async () => {
        const details = (await victim.process!.request("GET", "/node/consensus", { identity: "none" })).json().details;
        return details.votes === true && details.current_view > viewBefore;
      }, `node ${victim.index} to see a newer view committed`, 20_000);
    }
    const after = await write(net.nodes[1]!, 200, "after");
    for (const node of net.nodes) await waitCommitted(node, after);
  });
});
