// End-to-end admission control against real node processes: floods of idle TCP connections and
// stalled TLS handshakes on the client and node-to-node ports, clients that fill every
// connection slot from several addresses, and abusive /node/join requests. Attackers connect
// from other loopback addresses (127.0.0.2, ...) than the honest clients (127.0.0.1), as they
// would from another host. Every wait has a deadline; no test asserts how long anything took.
import "reflect-metadata"; // before @peculiar/x509 (tsyringe needs it)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { Network } from "../helpers/network.js";
import { tempWorkspace, type NodeProcess, type Response } from "../helpers/node-process.js";
import {
  createCertificateSigningRequest, createIdentityCertificate, generateEcP384KeyPair, generateRsaEncryptionKeyPair,
} from "../../src/crypto/index.js";
import { signGovernanceRequest } from "../../src/governance/cose-auth.js";
import { virtualEvidence } from "../../src/node/join.js";

const ws = tempWorkspace("coco-admission-");
mkdirSync(join(ws.dir, "a"));
mkdirSync(join(ws.dir, "b"));
const CREATE = "/gov/members/proposals:create?api-version=2024-07-01";
const CONNECTIONS_MAX = 40;
const PER_ADDRESS_MAX = 16;
const RESERVED_FOR_MEMBERS = 4;
const JOIN_BURST_PER_ADDRESS = 3;
const DEADLINE_MS = 30_000;
let network: Network;
let node: NodeProcess;

const ADMISSION = {
  tls_handshake_timeout: "2s",
  idle_timeout: "5s",
  connections_per_address_max: PER_ADDRESS_MAX,
  node_to_node: { tls_handshake_timeout: "2s", connections_per_address_max: 8 },
  join: { per_address_burst: JOIN_BURST_PER_ADDRESS, per_address_rate: 0.01, global_burst: 100, global_rate: 1 },
};

before(async () => {
  // CCF's default of 1,000 connections (max_open_sessions_hard), as in the reported attack.
  network = await Network.start(join(ws.dir, "a"), 1, { coco: { durability: "none", admission: ADMISSION } });
  node = network.nodes[0]!.process!;
});

after(async () => {
  await network?.stop();
  ws.cleanup();
});

type Stall = "tcp" | "partial-tls";
/** The first bytes of a TLS record carrying a ClientHello, and then nothing. */
const PARTIAL_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]);

/** A flood connection open at least this long was admitted by the node (not refused on arrival). */
const HELD_MS_MIN = 500;

/**
 * Idle connections from `localAddress`: each connects and sends nothing (or half a ClientHello).
 * With `keepUp`, a connection the server closes is opened again after reopenDelayMs.
 */
class Flood {
  readonly sockets = new Set<Socket>();
  closedByServer = 0;
  private stopped = false;

  constructor(private readonly port: number, private readonly localAddress: string, private readonly options: { keepUp: boolean; reopenDelayMs?: number }) {}

  /** Stops reopening: from now on the open connections only close (by the server, unless stop()). */
  stopReopening(): void {
    this.options.keepUp = false;
  }

  async open(count: number, stall: (i: number) => Stall): Promise<void> {
    const batch = 100;
    for (let start = 0; start < count; start += batch) {
      const opening: Promise<void>[] = [];
      for (let i = start; i < Math.min(count, start + batch); i++) opening.push(this.openOne(stall(i)));
      await Promise.all(opening);
    }
  }

  private openOne(stall: Stall): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve();
      const socket = netConnect({ host: "127.0.0.1", port: this.port, localAddress: this.localAddress });
      this.sockets.add(socket);
      socket.on("error", () => undefined);
      let connectedAt = Number.POSITIVE_INFINITY;
      socket.once("connect", () => {
        connectedAt = Date.now();
        if (stall === "partial-tls") socket.write(PARTIAL_CLIENT_HELLO);
        resolve();
      });
      socket.once("close", () => {
        this.sockets.delete(socket);
        resolve();
        if (this.stopped) return;
        this.closedByServer++;
        if (!this.options.keepUp) return;
        // A slot the node gave us and took back (a timeout) is taken again at once, before an
        // honest client can have it; a connection refused on arrival is retried more slowly.
        const held = Date.now() - connectedAt >= HELD_MS_MIN;
        setTimeout(() => void this.openOne(stall), held ? 0 : this.options.reopenDelayMs ?? 200).unref();
      });
    });
  }

  stop(): void {
    this.stopped = true;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }
}

async function until<T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  let last: unknown;
  for (;;) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${DEADLINE_MS} ms (last error: ${String(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function memberProposal(marker: string, of: Network = network): Buffer {
  const dir = of.nodes[0]!.dir;
  return signGovernanceRequest({
    memberCertPem: readFileSync(join(dir, "member0_cert.pem"), "utf8"), memberKeyPem: readFileSync(join(dir, "member0_privk.pem"), "utf8"),
    msgType: "proposal", createdAt: Math.floor(Date.now() / 1000), payload: JSON.stringify({ actions: [{ name: "trigger_snapshot" }], marker }),
  });
}

/** A user request and a member's governance request, each on a new connection, until both succeed. */
async function honestClientsGetThrough(marker: string): Promise<void> {
  await until("a user request succeeds", async () => {
    node.closeAgents(); // a new connection each time, not one opened before the attack
    const r = await node.request("GET", "/node/network", { identity: "user0" });
    return r.status === 200 ? r : undefined;
  });
  await until("a member's proposal succeeds", async () => {
    node.closeAgents();
    const r = await node.postCose(CREATE, memberProposal(marker), { identity: "member0" });
    return r.status === 200 ? r : undefined;
  });
}

async function allClosed(flood: Flood, what: string): Promise<void> {
  await until(what, async () => (flood.sockets.size === 0 ? true : undefined));
}

test("1,000 idle connections and stalled handshakes from one address lock out neither users nor members, and are closed after the handshake timeout", async () => {
  // Kept up: whatever the node closes is opened again, so the flood lasts while honest clients try.
  const flood = new Flood(node.port, "127.0.0.2", { keepUp: true, reopenDelayMs: 2_000 });
  try {
    await flood.open(1_000, (i) => (i % 2 === 0 ? "tcp" : "partial-tls"));
    await honestClientsGetThrough("flood-one-address");
    // Those over the per-address cap were closed on arrival, the rest at the handshake deadline.
    flood.stopReopening();
    await allClosed(flood, "every idle connection is closed by the node");
    assert.ok(flood.closedByServer >= 1_000, `${flood.closedByServer} closed by the node`);
  } finally {
    flood.stop();
  }
});

test("a TLS connection that never sends a request is closed after the idle timeout", async () => {
  const serviceCert = readFileSync(join(network.dir, "service_cert.pem"));
  const socket = tlsFrom("127.0.0.3", node.port, serviceCert);
  socket.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => { socket.once("secureConnect", () => resolve()); socket.once("close", () => reject(new Error("closed before the handshake"))); });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await until("the idle TLS connection is closed by the node", async () => (socket.destroyed ? true : undefined));
  await closed;
});

/** A TLS connection without a client certificate, from `localAddress`. */
function tlsFrom(localAddress: string, port: number, ca: Buffer): TLSSocket {
  const tcp = netConnect({ host: "127.0.0.1", port, localAddress });
  tcp.on("error", () => undefined);
  return tlsConnect({ socket: tcp, ca, servername: "localhost" });
}

/** TLS connections without a client certificate that complete the handshake and then sit idle; reopened when closed. */
class TlsHolders {
  private readonly sockets = new Set<TLSSocket>();
  private stopped = false;

  constructor(private readonly port: number, private readonly ca: Buffer) {}

  async open(addresses: string[], perAddress: number): Promise<void> {
    const opening: Promise<void>[] = [];
    for (const address of addresses) for (let i = 0; i < perAddress; i++) opening.push(this.openOne(address));
    await Promise.all(opening);
  }

  private openOne(localAddress: string): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve();
      const socket = tlsFrom(localAddress, this.port, this.ca);
      this.sockets.add(socket);
      let secured = false;
      socket.on("error", () => undefined);
      socket.once("secureConnect", () => {
        secured = true;
        resolve();
      });
      socket.once("close", () => {
        this.sockets.delete(socket);
        resolve();
        // Refused before the handshake (the node is full): try again at once, so that a slot
        // that frees up is taken before a member can have it. Closed after it: slowly (each
        // retry costs the node a handshake).
        if (!this.stopped) setTimeout(() => void this.openOne(localAddress), secured ? 1_000 : 10).unref();
      });
    });
  }

  stop(): void {
    this.stopped = true;
    for (const socket of this.sockets) socket.destroy();
  }
}

test("clients that fill every connection slot from several addresses still leave the reserved slots to members", async () => {
  // A node with few connections, so that the test can fill them all.
  const small = await Network.start(join(ws.dir, "b"), 1, {
    rpcInterface: { max_open_sessions_hard: CONNECTIONS_MAX },
    coco: { durability: "none", admission: { ...ADMISSION, member_connections_reserved: RESERVED_FOR_MEMBERS } },
  });
  const smallNode = small.nodes[0]!.process!;
  smallNode.closeAgents(); // no connection of ours holds a slot the holders should take
  const holders = new TlsHolders(smallNode.port, readFileSync(join(small.dir, "service_cert.pem")));
  try {
    // 4 addresses × 11 completed TLS connections: more than every slot (CONNECTIONS_MAX), none
    // over the per-address cap; those refused keep trying, so no slot stays free for long.
    await holders.open(["127.0.0.20", "127.0.0.21", "127.0.0.22", "127.0.0.23"], CONNECTIONS_MAX / 4 + 1);
    const r = await until("a member's proposal succeeds on a reserved slot", async () => {
      smallNode.closeAgents();
      const response: Response = await smallNode.postCose(CREATE, memberProposal("reserved-slots", small), { identity: "member0" });
      return response.status === 200 ? response : undefined;
    });
    assert.equal(r.json().proposalState, "Open");
  } finally {
    holders.stop();
    await small.stop();
  }
});

test("a flood of idle connections on the node-to-node port does not stop a new node from joining", async () => {
  const primary = network.nodes[0]!;
  const flood = new Flood(primary.n2nPort, "127.0.0.2", { keepUp: true, reopenDelayMs: 100 });
  try {
    // More than the port's whole connection budget (256), from one address, kept up.
    await flood.open(400, (i) => (i % 2 === 0 ? "tcp" : "partial-tls"));
    await network.join();
    await network.waitForConfiguration(2, DEADLINE_MS);
    await honestClientsGetThrough("flood-node-to-node");
  } finally {
    flood.stop();
  }
});

// ---- /node/join ------------------------------------------------------------------------

const encryptionKey = generateRsaEncryptionKeyPair().publicKeyPem;
const HOST_DATA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

interface Joiner { cert: string; key: string; publicKeyPem: string; csr: string }

async function newJoiner(): Promise<Joiner> {
  const keys = generateEcP384KeyPair();
  const cert = await createIdentityCertificate(keys, "CCF Node");
  const csr = await createCertificateSigningRequest(keys, { commonName: "CCF Node", ipAddresses: ["127.0.0.1"], dnsNames: [] });
  return { cert, key: keys.privateKeyPem, publicKeyPem: keys.publicKeyPem, csr };
}

function joinBody(joiner: Joiner, nodeData: unknown = null): string {
  return JSON.stringify({
    node_info_network: {
      rpc_interfaces: { primary_rpc_interface: { bind_address: "127.0.0.1:1" } },
      node_to_node_interface: { bind_address: "127.0.0.1:2" },
    },
    quote_info: virtualEvidence(joiner.publicKeyPem, HOST_DATA),
    public_encryption_key: encryptionKey,
    consensus_type: "CFT",
    startup_seqno: 0,
    certificate_signing_request: joiner.csr,
    node_data: nodeData,
  });
}

async function postJoin(identity: { cert: string; key: string }, body: string): Promise<Response> {
  try {
    return await node.request("POST", "/node/join", { identity, body });
  } finally {
    node.closeAgents();
  }
}

async function nodeCount(): Promise<number> {
  const r = await node.request("GET", "/node/network/nodes", { identity: "none" });
  assert.equal(r.status, 200, r.text);
  return (r.json().nodes as unknown[]).length;
}

function pem(label: string, der: ArrayBuffer): string {
  const lines = Buffer.from(der).toString("base64").match(/.{1,64}/g)!;
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** A self-signed certificate on `curve` with an opaque extension of `padBytes` (to make it large). */
async function certificateWith(curve: "P-256" | "P-384", padBytes: number): Promise<{ cert: string; key: string }> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const algorithm = { name: "ECDSA", namedCurve: curve, hash: curve === "P-256" ? "SHA-256" : "SHA-384" };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"]) as webcrypto.CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01", name: "CN=CCF Node", keys, signingAlgorithm: algorithm,
    notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000),
    extensions: padBytes > 0 ? [new x509.Extension("1.3.6.1.4.1.99999.1", false, new Uint8Array(padBytes))] : [],
  });
  return { cert: certificate.toString("pem"), key: pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)) };
}

function assertError(r: Response, status: number, code: string, message: RegExp): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json().error.code, code, r.text);
  assert.match(r.json().error.message, message);
}

test("join requests with oversized node_data, an oversized certificate or a non-P-384 key are refused before anything is written", async () => {
  const before = await nodeCount();
  const joiner = await newJoiner();
  const identity = { cert: joiner.cert, key: joiner.key };
  assertError(await postJoin(identity, joinBody(joiner, { blob: "x".repeat(200 * 1024) })), 413, "RequestBodyTooLarge", /body/);
  assertError(await postJoin(identity, joinBody(joiner, { blob: "x".repeat(10 * 1024) })), 413, "RequestBodyTooLarge", /node_data/);
  const big = await certificateWith("P-384", 8 * 1024);
  assertError(await postJoin(big, joinBody(joiner)), 413, "RequestBodyTooLarge", /certificate/);
  const p256 = await certificateWith("P-256", 0);
  assertError(await postJoin(p256, joinBody(joiner)), 400, "InvalidInput", /P-384/);
  assert.equal(await nodeCount(), before, "the nodes table did not grow");
});

test("a flood of join requests from one address is answered 429 with Retry-After once its burst is spent", async () => {
  const before = await nodeCount();
  const statuses: number[] = [];
  let retryAfter: string | string[] | undefined;
  for (let i = 0; i < 15; i++) {
    const joiner = await newJoiner();
    const r = await postJoin({ cert: joiner.cert, key: joiner.key }, joinBody(joiner));
    statuses.push(r.status);
    if (r.status === 429) {
      assert.equal(r.json().error.code, "TooManyRequests");
      retryAfter = r.headers["retry-after"];
    } else {
      assert.equal(r.status, 200, r.text);
    }
  }
  // The network's own join (previous test, same address) may have used one token of the burst.
  const accepted = statuses.filter((s) => s === 200).length;
  assert.ok(accepted <= JOIN_BURST_PER_ADDRESS, `at most the burst is accepted: ${statuses.join(",")}`);
  assert.equal(statuses.filter((s) => s === 429).length, 15 - accepted);
  assert.ok(Number(retryAfter) >= 1, `Retry-After: ${String(retryAfter)}`);
  assert.equal(await nodeCount(), before + accepted, "only the accepted joins wrote a node");
});
