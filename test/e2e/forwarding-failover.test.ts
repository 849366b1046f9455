// Forwarding across failures, with real node processes: a backup's /node/* endpoints describe
// the backup even on a connection that forwarded a write, and a write forwarded to a primary
// that is then lost is answered 503 ForwardedPrimaryLost (with Retry-After) as soon as the
// backup learns the primary is gone, not after the forwarding timeout.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tempWorkspace } from "../helpers/node-process.js";
import { Network, type NetworkNode } from "../helpers/network.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: any;
  /** The client port of the connection that carried the request. */
  localPort: number;
}

/** One client connection (keep-alive, a single socket) to a node, as user0. */
class Connection {
  private readonly agent: https.Agent;
  constructor(private readonly node: NetworkNode, dir: string) {
    this.agent = new https.Agent({
      keepAlive: true, maxSockets: 1,
      ca: readFileSync(join(dir, "service_cert.pem")),
      cert: readFileSync(join(dir, "user0_cert.pem")),
      key: readFileSync(join(dir, "user0_privk.pem")),
    });
  }

  request(method: string, path: string, body?: unknown): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = https.request({
        host: "127.0.0.1", port: this.node.rpcPort, method, path, agent: this.agent, servername: "localhost",
        headers: body === undefined ? {} : { "content-type": "application/json" },
      }, (res) => {
        const localPort = res.socket.localPort ?? 0;
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text.length > 0 ? JSON.parse(text) : undefined, localPort });
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

describe("forwarding across failures (three node processes)", { timeout: 180_000 }, () => {
  const ws = tempWorkspace("coco-forwarding-");
  let net: Network;
  const connections: Connection[] = [];
  const connect = (node: NetworkNode): Connection => {
    const connection = new Connection(node, ws.dir);
    connections.push(connection);
    return connection;
  };

  before(async () => {
    // A long election timeout keeps the primary known to the backups for seconds after it is
    // stopped, so the write below is certainly forwarded to it before anyone notices.
    net = await Network.start(ws.dir, 3, { coco: { consensus: { tick: "10ms", heartbeat: "50ms", election_timeout: "2s" } } });
    await net.waitForConfiguration(3);
  });

  after(async () => {
    for (const connection of connections) connection.close();
    await net?.stop();
    ws.cleanup();
  });

  test("on a backup connection that forwarded a write, /node/state, /node/consensus and /node/network describe the backup", async () => {
    const primary = await net.primary();
    const backup = net.nodes.find((n) => n !== primary)!;
    const connection = connect(backup);
    const write = await connection.request("POST", "/app/log/private", { id: 1, msg: "through a backup" });
    assert.equal(write.status, 200, JSON.stringify(write.json));

    const state = await connection.request("GET", "/node/state");
    assert.equal(state.status, 200);
    assert.equal(state.json.node_id, backup.nodeId, "the backup reports its own id");
    const consensus = await connection.request("GET", "/node/consensus");
    assert.equal(consensus.json.details.role, "Backup");
    assert.equal(consensus.json.details.primary_id, primary.nodeId);
    const network = await connection.request("GET", "/node/network");
    assert.equal(network.json.primary_id, primary.nodeId);
    // Session consistency holds for app reads: the write is read back on the same connection.
    const read = await connection.request("GET", "/app/log/private?id=1");
    assert.equal(read.status, 200);
    assert.equal(read.json.msg, "through a backup");
    const ports = new Set([write, state, consensus, network, read].map((a) => a.localPort));
    assert.equal(ports.size, 1, "every request travelled on one connection");
  });

  test("a write forwarded to a primary that then stops is answered 503 ForwardedPrimaryLost with Retry-After once the backup loses the primary", async () => {
    const primary = await net.primary();
    const backup = net.nodes.find((n) => n !== primary)!;
    const connection = connect(backup);
    assert.equal((await connection.request("GET", "/node/state")).status, 200, "the connection is open before the primary stops");
    primary.process!.child.kill("SIGSTOP");
    try {
      const write = await connection.request("POST", "/app/log/private", { id: 2, msg: "sent to a stopped primary" });
      assert.equal(write.status, 503, JSON.stringify(write.json));
      assert.equal(write.headers["retry-after"], "1");
      assert.equal(write.headers["content-type"], "application/json");
      assert.deepEqual(Object.keys(write.json), ["error"]);
      assert.equal(write.json.error.code, "ForwardedPrimaryLost");
      assert.match(write.json.error.message, new RegExp(`primary \\(${primary.nodeId}\\)`));
      assert.match(write.json.error.message, /may or may not have executed/);
      assert.match(write.json.error.message, /GET \/node\/tx\?transaction_id=/);
    } finally {
      await net.kill(primary);
    }
    // The stopped primary never ran the write, and the survivors elect a new primary: reading it
    // back (as the error says) shows it did not happen, and a retry through the backup succeeds.
    const newPrimary = await net.primary(30_000);
    assert.notEqual(newPrimary, primary);
    const readBack = await connection.request("GET", "/app/log/private?id=2");
    assert.equal(readBack.status, 404, JSON.stringify(readBack.json));
    const retry = await connection.request("POST", "/app/log/private", { id: 2, msg: "sent to a stopped primary" });
    assert.equal(retry.status, 200, JSON.stringify(retry.json));
  });
});
