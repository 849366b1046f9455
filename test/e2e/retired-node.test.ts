// A retired node cannot take over: with the retired node's own key and endorsed certificate
// (taken from its workspace), an attacker dials the remaining nodes' node-to-node ports with the
// real channel client and sends what once let it lead and write (a huge-term RequestVote and
// AppendEntries, a request "forwarded" as user0). The service must refuse it at authentication,
// keep its view and primary, write nothing, and have rotated the ledger secret past it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { NodeChannels } from "../../src/channels/index.js";
import { deserialiseDomain } from "../../src/kv/index.js";
import { readLedgerDirectory } from "../../src/ledger/index.js";
import { encodeRaftMessage } from "../../src/node/raft-codec.js";
import { FRAME_FORWARD_REQUEST, FRAME_RAFT } from "../../src/node/replication.js";
import { tempWorkspace } from "../helpers/node-process.js";
import { Network, type NetworkNode } from "../helpers/network.js";

const HUGE_VIEW = 1000;
const SHARES_MAP = "public:ccf.internal.ledger_secret_shares";
const quiet = { info() {}, warn() {}, debug() {} };

async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await check();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function consensus(node: NetworkNode): Promise<{ current_view: number; primary_id: string | null; configuration: string[] }> {
  return (await node.process!.request("GET", "/node/consensus", { identity: "none" })).json().details;
}

/** Log lines of `node` (pino JSON) with message `msg` about peer `peer`. */
function logLines(node: NetworkNode, msg: string, peer: string): string[] {
  return node.process!.output().split("\n").filter((line) => line.includes(msg) && line.includes(`"peer":"${peer}"`));
}
const CLOSED_MSG = "closing the inbound channel of a node that is no longer accepted";
const REFUSED_MSG = "refused an inbound channel from a node that is not accepted";

/** A forwarded-request frame as a backup builds it, claiming `callerCertPem` as the caller. */
function forwardedRequest(forwarderNodeId: string, callerCertPem: string, body: string): Buffer {
  const header = Buffer.from(JSON.stringify({
    id: 1, method: "POST", path: "/app/log/private", query: "", headers: { "content-type": "application/json" },
    callerCertDer: new X509Certificate(callerCertPem).raw.toString("base64"), forwarderNodeId,
  }));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.length);
  return Buffer.concat([length, header, Buffer.from(body)]);
}

/** The ledger-secret rotation records in `node`'s ledger, oldest first. */
async function secretRotations(node: NetworkNode): Promise<{ from_seqno: number; wrapped: Record<string, string>; retired_nodes?: string[] }[]> {
  const out = [];
  for await (const { entry } of readLedgerDirectory(join(node.dir, "ledger"))) {
    for (const map of deserialiseDomain(entry.publicDomain, "public").maps) {
      if (map.name !== SHARES_MAP) continue;
      for (const [, value] of map.writes) if (value) out.push(JSON.parse(value.toString("utf8")));
    }
  }
  return out;
}

interface Retired {
  net: Network;
  dir: string;
  primary: NetworkNode;
  backup: NetworkNode;
  retired: NetworkNode;
  retiredId: string;
  secretsBefore: number;
}

/** A 3-node network whose backup `retired` was retired through governance and left the configuration (still running). */
async function withRetiredBackup(body: (r: Retired) => Promise<void>): Promise<void> {
  const ws = tempWorkspace("coco-retired-");
  const net = await Network.start(ws.dir, 3).catch((e) => { ws.cleanup(); throw e; });
  try {
    await net.waitForConfiguration(3);
    const primary = await net.primary();
    const [retired, backup] = net.nodes.filter((n) => n !== primary) as [NetworkNode, NetworkNode];
    const retiredId = retired.nodeId!;
    const secretsBefore = (await secretRotations(primary)).length;
    await net.propose([{ name: "remove_node", args: { node_id: retiredId } }]);
    for (const node of [primary, backup]) {
      await eventually(async () => {
        const c = await consensus(node);
        return c.configuration.length === 2 && !c.configuration.includes(retiredId) ? true : undefined;
      }, `node ${node.index} to leave the retired node out of its configuration`);
    }
    await body({ net, dir: ws.dir, primary, backup, retired, retiredId, secretsBefore });
  } finally {
    await net.stop();
    ws.cleanup();
  }
}

/** Dials the others with the (stopped) retired node's key and endorsed certificate, as an attacker would. */
async function impersonate(r: Retired): Promise<NodeChannels> {
  assert.equal(r.retired.process, undefined, "the retired node is stopped: only the attacker uses its identity");
  assert.ok(existsSync(join(r.retired.dir, "node.key")) && existsSync(join(r.retired.dir, "node.pem")), "the retired node's workspace holds its key and certificate");
  const attacker = new NodeChannels({
    identity: {
      nodeId: r.retiredId, privateKeyPem: readFileSync(join(r.retired.dir, "node.key"), "utf8"),
      certPem: readFileSync(join(r.retired.dir, "node.pem"), "utf8"), serviceCertPem: readFileSync(join(r.dir, "service_cert.pem"), "utf8"),
    },
    listen: { host: "127.0.0.1", port: 0 }, onMessage: () => {}, logger: quiet,
  });
  await attacker.listen();
  for (const target of [r.primary, r.backup]) attacker.setPeer(target.nodeId!, { host: target.n2nHost, port: target.n2nPort });
  return attacker;
}

function refusals(r: Retired): Map<NetworkNode, number> {
  return new Map([r.primary, r.backup].map((n) => [n, logLines(n, REFUSED_MSG, r.retiredId).length]));
}

function refusedAgain(r: Retired, before: Map<NetworkNode, number>): boolean {
  return [r.primary, r.backup].every((n) => logLines(n, REFUSED_MSG, r.retiredId).length > before.get(n)!);
}

function assertRefusedLogged(r: Retired, before: Map<NetworkNode, number>, attacker: NodeChannels): void {
  for (const node of [r.primary, r.backup]) {
    const lines = logLines(node, REFUSED_MSG, r.retiredId);
    assert.ok(lines.length > before.get(node)!, `node ${node.index} refused the retired node's new handshake`);
    assert.ok(lines.some((line) => line.includes("retired from the service")), `node ${node.index} logged why`);
    assert.equal(attacker.isConnected(node.nodeId!), false, `node ${node.index} never accepted the attacker's channel`);
  }
}

test("retiring a node closes its channels and rotates the ledger secret past it", { timeout: 150_000 }, async () => {
  await withRetiredBackup(async (r) => {
    const { primary, backup, retiredId } = r;
    // (c) The retired node, still running, had channels open: the primary closes its inbound
    // connection (or refuses its redial) once the retirement has taken effect.
    await eventually(async () => (logLines(primary, CLOSED_MSG, retiredId).length + logLines(primary, REFUSED_MSG, retiredId).length > 0 ? true : undefined),
      "the primary to close or refuse the retired node's channel");
    // (d) The primary rotated the ledger secret: the new one is wrapped to the remaining backup
    // only, and the retired node is recorded as never having had it.
    const rotation = await eventually(async () => {
      const all = await secretRotations(primary);
      return all.slice(r.secretsBefore).find((rotated) => rotated.retired_nodes?.includes(retiredId));
    }, "a ledger secret rotation after the retirement");
    assert.deepEqual(Object.keys(rotation.wrapped), [backup.nodeId], "the new secret goes to the remaining backup, not to the retired node");
    const write = await primary.process!.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1, msg: "after the retirement" }) });
    assert.equal(write.status, 200, write.text);
    const txid = String(write.headers["x-ms-ccf-transaction-id"]);
    assert.ok(Number(txid.split(".")[1]) >= rotation.from_seqno, `the write (${txid}) is encrypted under the new secret (from ${rotation.from_seqno})`);
    await backup.process!.waitForStatus(txid, "Committed", 15_000);
    const readBack = await backup.process!.request("GET", "/app/log/private?id=1");
    assert.equal(readBack.json().msg, "after the retirement", "the remaining backup learnt the new secret");
  });
});

test("a retired node's key and certificate cannot bump the view or take the primary's place", { timeout: 150_000 }, async () => {
  await withRetiredBackup(async (r) => {
    const { primary, backup, retiredId } = r;
    const viewBefore = (await consensus(primary)).current_view;
    // Stop the retired node first, so that every refusal counted from here on is the attacker's.
    await r.net.kill(r.retired);
    const before = refusals(r);
    const attacker = await impersonate(r);
    try {
      // (a) A vote (as a leadership transfer, which skips the lease) and an AppendEntries far in the future.
      for (const target of [primary, backup]) {
        const base = { from: retiredId, to: target.nodeId!, term: HUGE_VIEW };
        assert.ok(attacker.send(target.nodeId!, FRAME_RAFT, encodeRaftMessage({ ...base, type: "RequestVote", preVote: false, leadershipTransfer: true, lastSignatureIndex: 1e9, lastSignatureTerm: HUGE_VIEW })));
        assert.ok(attacker.send(target.nodeId!, FRAME_RAFT, encodeRaftMessage({ ...base, type: "AppendEntries", prevIndex: 0, prevTerm: 0, leaderCommit: 0, entries: [] })));
      }
      // The sentinel: each target logs its refusal of the attacker's connection; a service that
      // let it in jumps to its view instead.
      await eventually(async () => {
        const views = await Promise.all([primary, backup].map(async (n) => (await consensus(n)).current_view));
        return refusedAgain(r, before) || views.some((v) => v >= HUGE_VIEW) ? true : undefined;
      }, "the attacker's connections to be refused (or its view adopted)");
      for (const node of [primary, backup]) {
        const c = await consensus(node);
        assert.ok(c.current_view < HUGE_VIEW, `node ${node.index} stays below view ${HUGE_VIEW} (view ${c.current_view})`);
        assert.equal(c.current_view, viewBefore, `node ${node.index} keeps view ${viewBefore}`);
        assert.equal(c.primary_id, primary.nodeId, `node ${node.index} keeps the same primary`);
      }
      assertRefusedLogged(r, before, attacker);
      const after = await backup.process!.request("POST", "/app/log/private", { body: JSON.stringify({ id: 2, msg: "still serving" }) });
      assert.equal(after.status, 200, after.text);
    } finally {
      await attacker.close();
    }
  });
});

test("a request forwarded with a retired node's key as user0 is not run", { timeout: 150_000 }, async () => {
  await withRetiredBackup(async (r) => {
    const { primary, retiredId } = r;
    // Stop the retired node first, so that every refusal counted from here on is the attacker's.
    await r.net.kill(r.retired);
    const before = refusals(r);
    const attacker = await impersonate(r);
    try {
      // (b) The caller identity in a forwarded request is believed only from a trusted node.
      const user0Pem = readFileSync(join(r.dir, "user0_cert.pem"), "utf8");
      const forged = forwardedRequest(retiredId, user0Pem, JSON.stringify({ id: 666, msg: "written by a retired node" }));
      assert.ok(attacker.send(primary.nodeId!, FRAME_FORWARD_REQUEST, forged));
      assert.ok(attacker.send(r.backup.nodeId!, FRAME_FORWARD_REQUEST, forged));
      await eventually(async () => {
        const written = (await primary.process!.request("GET", "/app/log/private?id=666")).status === 200;
        return refusedAgain(r, before) || written ? true : undefined;
      }, "the attacker's connections to be refused (or its request run)");
      const read = await primary.process!.request("GET", "/app/log/private?id=666");
      assert.notEqual(read.status, 200, `the request forwarded by the retired node as user0 wrote nothing (${read.text})`);
      assertRefusedLogged(r, before, attacker);
    } finally {
      await attacker.close();
    }
  });
});
