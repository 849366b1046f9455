// A service on three "hosts": three network namespaces with their own addresses, each running a
// real `coco node start` bound to its own address (not loopback), configured as
// docs/deployment.md describes, and governed with `coco gov` from a fourth address as a member
// would. Needs root and iproute2 (test/helpers/netns.ts); elsewhere it skips, saying why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { X509Certificate } from "node:crypto";
import { connect as tlsConnect, checkServerIdentity as tlsCheckServerIdentity } from "node:tls";
import { createIdentityCertificate, generateEcP384KeyPair, generateRsaEncryptionKeyPair } from "../../src/crypto/index.js";
import { NodeProcess, runCli, tempWorkspace } from "../helpers/node-process.js";
import { NamespaceLab, unavailableReason, type NamespaceHost } from "../helpers/netns.js";

// Every host uses the same ports: each namespace has its own, as separate machines do.
const RPC_PORT = 8000;
const NODE_TO_NODE_PORT = 8001;
const WAIT_MS = 30_000;

interface HostNode {
  host: NamespaceHost;
  dir: string;
  /** Host 3 binds the wildcard address and publishes its own, as a container behind NAT would. */
  wildcard: boolean;
  process: NodeProcess | undefined;
  nodeId?: string;
}

const dnsName = (host: NamespaceHost) => `node${host.index}.coco.example`;
const rpcAddress = (host: NamespaceHost) => `${host.address}:${RPC_PORT}`;
const n2nAddress = (host: NamespaceHost) => `${host.address}:${NODE_TO_NODE_PORT}`;

/** The example files of docs/deployment.md, one per host, in the order of NamespaceLab's hosts. */
const DEPLOY_CONFIGS = ["node1-start.json", "node2-join.json", "node3-join-container.json"];

/**
 * A node's configuration: deploy/config's file for its host, with the lab's addresses for
 * 10.0.0.N and the node's directory for /var/lib/coco; nothing else changes (default timing too).
 */
function nodeConfig(node: HostNode, hosts: readonly NamespaceHost[]): unknown {
  let text = readFileSync(resolve("deploy/config", DEPLOY_CONFIGS[node.host.index - 1]!), "utf8");
  for (const host of hosts) text = text.replaceAll(`"10.0.0.${host.index}:`, `"${host.address}:`).replaceAll(`iPAddress:10.0.0.${host.index}"`, `iPAddress:${host.address}"`);
  text = text.replaceAll("/var/lib/coco", node.dir);
  assert.ok(!/10\.0\.0\./.test(text), "every example address was replaced");
  const config = JSON.parse(text);
  assert.equal(config.network.rpc_interfaces.primary_rpc_interface.bind_address.startsWith("0.0.0.0:"), node.wildcard);
  return config;
}

async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch { /* not yet reachable */ }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The certificate a node presents on its RPC address, fetched as a client on another host sees it. */
function servedCertificate(address: string, port: number, serviceCertPem: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    // Node's default identity check runs against the IP address dialled (no SNI for an address).
    const socket = tlsConnect({ host: address, port, ca: serviceCertPem }, () => {
      const cert = new X509Certificate(socket.getPeerX509Certificate()!.raw);
      socket.destroy();
      resolve(cert);
    });
    socket.once("error", reject);
  });
}

test("three nodes on three hosts (network namespaces): bound to their own addresses, joined by governance, failing over", { timeout: 180_000 }, async (t) => {
  const reason = unavailableReason();
  if (reason !== undefined) {
    t.skip(`multi-host test skipped: ${reason}`);
    return;
  }
  const workspace = tempWorkspace("coco-multihost-");
  const lab = NamespaceLab.create(3);
  const nodes: HostNode[] = lab.hosts.map((host) => ({ host, dir: join(workspace.dir, `host${host.index}`), wildcard: host.index === 3, process: undefined }));
  t.after(async () => {
    for (const node of nodes) {
      if (node.process !== undefined && node.process.child.exitCode === null) await node.process.stop();
      node.process = undefined;
    }
    // Joiners that never served (e.g. a failed run) are still children of this process.
    for (const child of NodeProcess.children) if (child.spawnargs.some((a) => a.startsWith(workspace.dir)) && child.exitCode === null) child.kill("SIGKILL");
    lab.destroy();
    workspace.cleanup();
  });
  const [first, second, third] = [nodes[0]!, nodes[1]!, nodes[2]!];

  // The consortium's identities live with their owners; each host gets only certificates.
  const memberDir = join(workspace.dir, "member0");
  mkdirSync(memberDir);
  for (const name of ["member0", "user0"]) {
    const keys = generateEcP384KeyPair();
    writeFileSync(join(memberDir, `${name}_privk.pem`), keys.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(memberDir, `${name}_cert.pem`), await createIdentityCertificate(keys, name));
  }
  // member0 is a recovery member, as in docs/deployment.md (its public encryption key goes to host 1).
  writeFileSync(join(memberDir, "member0_enc_pubk.pem"), generateRsaEncryptionKeyPair().publicKeyPem);
  for (const node of nodes) {
    mkdirSync(node.dir);
    writeFileSync(join(node.dir, "config.json"), JSON.stringify(nodeConfig(node, lab.hosts), null, 2));
    if (node === first) copyFileSync(join(memberDir, "member0_enc_pubk.pem"), join(node.dir, "member0_enc_pubk.pem"));
    // NodeProcess talks as member0/user0 from the node's directory (the test's client side).
    for (const f of ["member0_cert.pem", "member0_privk.pem", "user0_cert.pem", "user0_privk.pem"]) copyFileSync(join(memberDir, f), join(node.dir, f));
  }
  const start = (node: HostNode) => NodeProcess.nodeStart(node.dir, join(node.dir, "config.json"), {
    commandPrefix: node.host.commandPrefix,
    boundHost: node.wildcard ? "0.0.0.0" : node.host.address,
    host: node.host.address,
  });
  const serviceCertFile = join(memberDir, "service_cert.pem");
  const gov = async (url: string, args: string[]): Promise<any> => {
    const r = await runCli(["gov", ...args, "--url", url, "--service-cert", serviceCertFile,
      "--member-cert", join(memberDir, "member0_cert.pem"), "--member-key", join(memberDir, "member0_privk.pem"), "--json"], { cwd: memberDir });
    assert.equal(r.code, 0, `coco gov ${args[0]}: ${r.stderr}${r.stdout}`);
    return r.stdout.trim() === "" ? undefined : JSON.parse(r.stdout);
  };
  const proposeAndAccept = async (url: string, proposal: unknown): Promise<void> => {
    const file = join(memberDir, "proposal.json");
    writeFileSync(file, JSON.stringify(proposal));
    const proposed = await gov(url, ["propose", file]);
    const voted = proposed.proposalState === "Open" ? await gov(url, ["vote", proposed.proposalId, "--accept", "--wait"]) : proposed;
    assert.equal(voted.proposalState, "Accepted", JSON.stringify(voted));
  };
  const request = (node: HostNode, method: string, path: string, options: Parameters<NodeProcess["request"]>[2] = {}) => node.process!.request(method, path, options);

  await t.test("the first node starts a service on its own address, and its member opens it from another host", async () => {
    // start() waits for the node to log that it serves on its own address (not loopback).
    first.process = await start(first);
    copyFileSync(join(first.dir, "service_cert.pem"), serviceCertFile);
    first.nodeId = (await request(first, "GET", "/node/state", { identity: "none" })).json().node_id;
    const url = `https://${rpcAddress(first.host)}`;
    await gov(url, ["ack"]);
    await proposeAndAccept(url, { actions: [
      { name: "set_user", args: { cert: readFileSync(join(memberDir, "user0_cert.pem"), "utf8") } },
      { name: "transition_service_to_open", args: { next_service_identity: readFileSync(serviceCertFile, "utf8") } },
    ] });
    assert.equal((await request(first, "GET", "/node/network", { identity: "none" })).json().service_status, "Open");
  });

  await t.test("nodes on the two other hosts join through governance (one of them bound to 0.0.0.0, publishing its address)", async () => {
    for (const joiner of [second, third]) {
      copyFileSync(serviceCertFile, join(joiner.dir, "service_cert.pem"));
      const starting = start(joiner);
      starting.catch(() => undefined);
      const nodeId = await eventually(async () => {
        const listed = (await request(first, "GET", "/node/network/nodes?status=Pending", { identity: "none" })).json().nodes as any[];
        const pending = listed.find((n) => (n.node_to_node_interface?.published_address ?? n.node_to_node_interface?.bind_address) === n2nAddress(joiner.host));
        return pending?.node_id as string | undefined;
      }, `node ${joiner.host.index} to be Pending`);
      joiner.nodeId = nodeId;
      await proposeAndAccept(`https://${rpcAddress(first.host)}`, { actions: [
        { name: "transition_node_to_trusted", args: { node_id: nodeId, valid_from: new Date(Date.now() - 60_000).toISOString() } },
      ] });
      joiner.process = await starting;
    }
    for (const node of nodes) {
      await eventually(async () => ((await request(node, "GET", "/node/consensus", { identity: "none" })).json().details.configuration.length === 3 ? true : undefined),
        `node ${node.host.index} to see three voters`);
    }
  });

  await t.test("every node lists every other at the address it published, and redirects to the primary's", async () => {
    for (const node of nodes) {
      const listed = (await request(node, "GET", "/node/network/nodes", { identity: "none" })).json().nodes as any[];
      assert.equal(listed.length, 3);
      for (const other of nodes) {
        const entry = listed.find((n) => n.node_id === other.nodeId);
        assert.ok(entry, `node ${node.host.index} lists node ${other.host.index}`);
        assert.equal(entry.status, "Trusted");
        assert.equal(entry.rpc_interfaces.primary_rpc_interface.published_address, rpcAddress(other.host));
        assert.equal(entry.rpc_interfaces.primary_rpc_interface.bind_address, other.wildcard ? `0.0.0.0:${RPC_PORT}` : rpcAddress(other.host));
        assert.equal(entry.node_to_node_interface.published_address ?? entry.node_to_node_interface.bind_address, n2nAddress(other.host));
      }
    }
    const primaryId = (await request(first, "GET", "/node/network", { identity: "none" })).json().primary_id;
    const primary = nodes.find((n) => n.nodeId === primaryId)!;
    for (const backup of nodes.filter((n) => n !== primary)) {
      const redirect = await request(backup, "GET", "/node/primary", { identity: "none" });
      assert.equal(redirect.status, 308);
      assert.equal(redirect.headers["location"], `https://${rpcAddress(primary.host)}/node/primary`);
    }
  });

  await t.test("each node's certificate names its own address and is issued by the service", async () => {
    const serviceCertPem = readFileSync(serviceCertFile, "utf8");
    const serviceCert = new X509Certificate(serviceCertPem);
    const certificates = await Promise.all(nodes.map((n) => servedCertificate(n.host.address, RPC_PORT, serviceCertPem)));
    for (const [i, node] of nodes.entries()) {
      const cert = certificates[i]!;
      assert.ok(cert.checkIssued(serviceCert) && cert.verify(serviceCert.publicKey), `node ${node.host.index}'s certificate is endorsed by the service`);
      const sans = (cert.subjectAltName ?? "").split(", ").sort();
      assert.deepEqual(sans, [`DNS:${dnsName(node.host)}`, `IP Address:${node.host.address}`].sort());
      assert.equal(cert.checkIP(node.host.address), node.host.address);
      assert.equal(tlsCheckServerIdentity(node.host.address, { subjectaltname: cert.subjectAltName ?? "" } as never), undefined);
      // A client that dials one host is not fooled by another node's certificate.
      for (const other of nodes.filter((n) => n !== node)) {
        assert.equal(cert.checkIP(other.host.address), undefined);
        assert.ok(tlsCheckServerIdentity(other.host.address, { subjectaltname: cert.subjectAltName ?? "" } as never) instanceof Error);
      }
    }
  });

  const written: { id: number; msg: string; txid: string }[] = [];
  const write = async (node: HostNode, id: number, msg: string) => {
    const r = await request(node, "POST", "/app/log/private", { body: JSON.stringify({ id, msg }) });
    assert.equal(r.status, 200, `write ${id} via host ${node.host.index}: ${r.text}`);
    written.push({ id, msg, txid: r.headers["x-ms-ccf-transaction-id"] as string });
  };
  const checkAll = async (live: HostNode[]) => {
    const last = written[written.length - 1]!.txid;
    for (const node of live) {
      await node.process!.waitForStatus(last, "Committed", WAIT_MS);
      for (const { id, msg } of written) {
        const r = await request(node, "GET", `/app/log/private?id=${id}`);
        assert.equal(r.status, 200, `host ${node.host.index} reads ${id}: ${r.text}`);
        assert.equal(r.json().msg, msg);
      }
    }
  };

  await t.test("writes through any host commit on every host", async () => {
    for (let i = 0; i < 12; i++) await write(nodes[i % 3]!, i, `written via host ${(i % 3) + 1}`);
    await checkAll(nodes);
  });

  await t.test("SIGKILL of the primary's process: the other two hosts elect a new primary and keep committing", async () => {
    const primaryId = (await request(first, "GET", "/node/network", { identity: "none" })).json().primary_id as string;
    const primary = nodes.find((n) => n.nodeId === primaryId)!;
    const survivors = nodes.filter((n) => n !== primary);
    const killed = primary.process!;
    primary.process = undefined;
    killed.closeAgents();
    await new Promise<void>((resolve) => { killed.child.once("exit", () => resolve()); killed.child.kill("SIGKILL"); });
    const newPrimaryId = await eventually(async () => {
      for (const node of survivors) {
        const details = (await request(node, "GET", "/node/consensus", { identity: "none" })).json().details;
        if (details.role === "Primary") return node.nodeId;
      }
      return undefined;
    }, "a new primary on the surviving hosts");
    assert.notEqual(newPrimaryId, primaryId);
    for (const [i, node] of survivors.entries()) await write(node, 100 + i, `after failover via host ${node.host.index}`);
    await checkAll(survivors);
  });

  await t.test("stopping the nodes and removing the hosts leaves no namespace or link behind", async () => {
    for (const node of nodes) {
      if (node.process !== undefined) assert.equal(await node.process.stop(), 0, `host ${node.host.index}'s node stops cleanly`);
      node.process = undefined;
    }
    assert.deepEqual(lab.destroy(), []);
    assert.deepEqual(lab.remaining(), []);
  });
});
