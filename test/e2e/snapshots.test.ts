// Snapshots end to end, with real node processes: the primary writes committed snapshots; a
// joiner fetches one from the service by itself and replicates only what follows, then keeps up
// with the primary's newer ones as a backup; a restarted
// node rebuilds its state from its snapshot and the ledger after it; a damaged snapshot is
// refused with its name and the reason logged.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, tempWorkspace } from "../helpers/node-process.js";
import { GovernanceClient, submitMemberRecoveryShare } from "../../src/client/index.js";
import { Network, type NetworkNode } from "../helpers/network.js";

const SNAPSHOT_TX_COUNT = 40;

async function write(node: NetworkNode, id: number, msg: string): Promise<string> {
  const r = await node.process!.request("POST", "/app/log/private", { body: JSON.stringify({ id, msg }) });
  assert.equal(r.status, 200, `write ${id} via node ${node.index}: ${r.text}`);
  return r.headers["x-ms-ccf-transaction-id"] as string;
}

async function read(node: NetworkNode, id: number): Promise<string | undefined> {
  const r = await node.process!.request("GET", `/app/log/private?id=${id}`);
  return r.status === 200 ? r.json().msg : undefined;
}

async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await check().catch(() => undefined);
    if (result !== undefined && result !== false) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function committedSnapshots(node: NetworkNode): string[] {
  try {
    return readdirSync(join(node.dir, "snapshots")).filter((n) => /^snapshot_\d+_\d+\.committed$/.test(n));
  } catch {
    return [];
  }
}

function seqnoOf(name: string): number {
  return Number(/^snapshot_(\d+)_/.exec(name)![1]);
}

/** Writes `count` private records and waits until the primary holds a committed snapshot covering most of them. */
async function writeUntilSnapshot(net: Network, first: number, count: number): Promise<{ snapshot: string; firstTxid: string; lastTxid: string }> {
  const primary = await net.primary();
  let lastTxid = "";
  let firstTxid = "";
  for (let i = first; i < first + count; i++) {
    lastTxid = await write(primary, i, `message ${i}`);
    if (i === first) firstTxid = lastTxid;
  }
  await primary.process!.waitForStatus(lastTxid, "Committed", 15_000);
  const lastSeqno = Number(lastTxid.split(".")[1]);
  const snapshot = await eventually(async () => committedSnapshots(primary).find((n) => seqnoOf(n) > lastSeqno - 2 * SNAPSHOT_TX_COUNT), "a committed snapshot")
    .catch((error: Error) => { throw new Error(`${error.message}; files: ${committedSnapshots(primary)}; last ${lastTxid}\n${primary.process!.output().split("\n").filter((l) => /snapshot/i.test(l)).join("\n")}`); });
  return { snapshot, firstTxid, lastTxid };
}

test("a joiner fetches the service's snapshot by itself and replicates only the ledger after it", { timeout: 180_000 }, async () => {
  const ws = tempWorkspace("coco-snap-");
  const net = await Network.start(ws.dir, 1, { snapshots: { tx_count: SNAPSHOT_TX_COUNT } });
  try {
    const { snapshot, firstTxid } = await writeUntilSnapshot(net, 0, 150);
    const snapshotSeqno = seqnoOf(snapshot);
    // GET /node/snapshot redirects to the newest committed file, which verifies as served.
    const redirect = await net.nodes[0]!.process!.request("GET", "/node/snapshot", { identity: "none" });
    assert.equal(redirect.status, 307);
    assert.match(String(redirect.headers["location"]), /^\/node\/snapshot\/snapshot_\d+_\d+\.committed$/);
    const head = await net.nodes[0]!.process!.request("HEAD", String(redirect.headers["location"]), { identity: "none" });
    assert.equal(head.status, 200);
    const ranged = await net.nodes[0]!.process!.request("GET", String(redirect.headers["location"]), { identity: "none", headers: { range: "bytes=0-7" } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.text, "COCOSNP1");
    // CCF 6.0.16 (#7415): a range past the end answers the part that exists, not 400.
    // The whole file, streamed from disk, is the primary's file byte for byte; HEAD announces its length.
    const whole = (await net.nodes[0]!.process!.request("GET", String(redirect.headers["location"]), { identity: "none" })).bytes;
    const size = whole.length;
    assert.ok(size > 8);
    assert.ok(whole.equals(readFileSync(join(net.nodes[0]!.dir, "snapshots", String(redirect.headers["location"]).split("/").pop()!))));
    assert.equal(head.headers["content-length"], String(size));
    const pastEnd = await net.nodes[0]!.process!.request("GET", String(redirect.headers["location"]), { identity: "none", headers: { range: `bytes=${size - 4}-${size + 1000}` } });
    assert.equal(pastEnd.status, 206);
    assert.equal(pastEnd.headers["content-range"], `bytes ${size - 4}-${size - 1}/${size}`);

    const joiner = await net.join();
    await net.waitForConfiguration(2);
    const tail = await write(net.nodes[0]!, 1000, "after the join");
    await joiner.process!.waitForStatus(tail, "Committed", 20_000);
    for (const id of [0, 75, 149, 1000]) assert.equal(await read(joiner, id), id === 1000 ? "after the join" : `message ${id}`, `joiner reads ${id}`);
    // The joiner's ledger starts right after the snapshot it fetched: it never replicated seqno 1.
    const chunks = readdirSync(join(joiner.dir, "ledger")).filter((n) => n.startsWith("ledger_"));
    const firstSeqno = Math.min(...chunks.map((n) => Number(/^ledger_(\d+)/.exec(n)![1])));
    assert.ok(firstSeqno > 1, `the joiner's ledger starts at ${firstSeqno}`);
    const fetched = committedSnapshots(joiner).map(seqnoOf);
    assert.ok(fetched.includes(firstSeqno - 1), `the joiner's ledger starts after a snapshot it holds (${fetched} vs ${firstSeqno})`);
    assert.ok(firstSeqno - 1 >= snapshotSeqno, "it started from the newest snapshot");
    assert.match(joiner.process!.output(), /fetched and verified the service's snapshot/);

    // A receipt for a transaction after the snapshot is served by the joiner; one before it is refused plainly.
    const receipt = await joiner.process!.request("GET", `/app/receipt?transaction_id=${tail}`);
    assert.equal(receipt.status, 200, receipt.text);
    // Statuses before the snapshot stay known (the snapshot carries the view history).
    const earlyStatus = await joiner.process!.request("GET", `/node/tx?transaction_id=${firstTxid}`, { identity: "none" });
    assert.equal(earlyStatus.json().status, "Committed");
    const early = await joiner.process!.request("GET", `/app/receipt?transaction_id=${firstTxid}`);
    assert.equal(early.status, 404);
    assert.match(early.text, /TransactionNotInThisNodesHistory/);
    assert.match(early.text, /precedes the snapshot this node started from/);

    // As a backup it keeps up with the primary's snapshots by itself (only the primary takes them).
    const joinedFrom = Math.max(...committedSnapshots(joiner).map(seqnoOf));
    const { lastTxid: later } = await writeUntilSnapshot(net, 2000, 2 * SNAPSHOT_TX_COUNT);
    await joiner.process!.waitForStatus(later, "Committed", 20_000);
    const newer = await eventually(async () => committedSnapshots(joiner).find((n) => seqnoOf(n) > joinedFrom), "the backup to fetch a newer snapshot", 40_000)
      .catch((error: Error) => { throw new Error(`${error.message}: ${joiner.process!.output().split("\n").filter((l) => /snapshot/i.test(l)).join("\n")}`); });
    assert.match(joiner.process!.output(), /backup kept the primary's newest snapshot/);
    assert.ok(committedSnapshots(net.nodes[0]!).includes(newer), "the primary's own file, verified and kept as it is");

    // The joiner restarts from the newest snapshot it holds and the ledger after it.
    await net.kill(joiner);
    await net.restart(joiner);
    assert.match(joiner.process!.output(), /state rebuilt from a snapshot and the ledger after it/);
    const startedFrom = joiner.process!.output().split("\n").find((l) => l.includes("state rebuilt from a snapshot"))!;
    assert.ok(startedFrom.includes(`"seqno":${seqnoOf(committedSnapshots(joiner).sort((a, b) => seqnoOf(b) - seqnoOf(a))[0]!)}`), startedFrom);
    // Two voters: while the joiner was down there was no majority; wait for a primary again.
    const after = await eventually(async () => {
      const r = await (await net.primary(30_000)).process!.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1001, msg: "after the restart" }) });
      return r.status === 200 ? r.headers["x-ms-ccf-transaction-id"] as string : undefined;
    }, "a write after the joiner's restart", 60_000);
    await joiner.process!.waitForStatus(after, "Committed", 20_000);
    assert.equal(await read(joiner, 1001), "after the restart");
    assert.equal(await read(joiner, 42), "message 42");
  } finally {
    await net.stop();
    ws.cleanup();
  }
});

test("a restarted node loads its newest valid snapshot, skipping a damaged one with its name and reason logged", { timeout: 180_000 }, async () => {
  const ws = tempWorkspace("coco-snap-");
  const net = await Network.start(ws.dir, 1, { snapshots: { tx_count: SNAPSHOT_TX_COUNT, keep_max: 5 } });
  try {
    const { firstTxid } = await writeUntilSnapshot(net, 0, 100);
    const { lastTxid } = await writeUntilSnapshot(net, 100, 100);
    const node = net.nodes[0]!;
    const names = committedSnapshots(node).sort((a, b) => seqnoOf(b) - seqnoOf(a));
    assert.ok(names.length >= 2, `two committed snapshots at least (${names})`);
    await net.kill(node);
    // Damage the newest: flip a byte of its public part. Its digest no longer matches its receipt.
    const newest = join(node.dir, "snapshots", names[0]!);
    const bytes = readFileSync(newest);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(newest, bytes);
    await net.restart(node);
    const output = node.process!.output();
    assert.match(output, new RegExp(`snapshot refused[^\\n]*${names[0]!.replace(".", "\\.")}|${names[0]!.replace(".", "\\.")}[^\\n]*snapshot refused`));
    assert.match(output, new RegExp(`"snapshot":"${names[1]!.replace(".", "\\.")}"`));
    assert.match(output, /state rebuilt from a snapshot and the ledger after it/);
    await node.process!.waitForStatus(lastTxid, "Committed", 15_000);
    for (const id of [0, 99, 150, 199]) assert.equal(await read(node, id), `message ${id}`);
    const receipt = await node.process!.request("GET", `/app/receipt?transaction_id=${lastTxid}`);
    assert.equal(receipt.status, 200, receipt.text);
    // Its ledger starts at seqno 1: the Merkle tree before the snapshot is rebuilt from it once the
    // node serves (until then such receipts answer 503 with Retry-After), so old receipts are still served.
    const deadline = Date.now() + 30_000;
    let old = await node.process!.request("GET", `/app/receipt?transaction_id=${firstTxid}`);
    while (old.status === 503 && Date.now() < deadline) {
      assert.equal(old.json().error.code, "MerkleHistoryNotReady", old.text);
      assert.ok(Number(old.headers["retry-after"]) >= 1, "a 503 says when to retry");
      await new Promise((r) => setTimeout(r, 200));
      old = await node.process!.request("GET", `/app/receipt?transaction_id=${firstTxid}`);
    }
    assert.equal(old.status, 200, old.text);
    assert.match(node.process!.output(), /Merkle tree before the snapshot rebuilt/);
    // The snapshotter kept the retained Merkle hashes at the newest snapshot, beyond the one used:
    // not used; the rebuild keeps them at the snapshot it started from instead.
    // (At the newest snapshot it took: the committed one it damaged, or a later one not yet committed.)
    const notUsed = node.process!.output().split("\n").find((l) => l.includes("retained Merkle hashes not used")) ?? "";
    const covered = /they cover (\d+) transactions, the snapshot (\d+)/.exec(notUsed);
    assert.ok(covered !== null && Number(covered[1]) >= seqnoOf(names[0]!) && Number(covered[2]) === seqnoOf(names[1]!),
      `the retained hashes the snapshotter kept at its newest snapshot are not used: ${notUsed}`);
    // Restarted again, the node starts from the retained hashes the last start kept (at the snapshot
    // it used; the snapshot it starts from now may be newer, if one pending at the kill committed
    // since) and hashes only what follows them.
    await net.kill(node);
    await net.restart(node);
    const rebuiltAgain = async () => node.process!.output().split("\n").find((line) => /Merkle tree before the snapshot rebuilt/.test(line));
    const until = Date.now() + 30_000;
    while ((await rebuiltAgain()) === undefined && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    const line = JSON.parse((await rebuiltAgain())!) as { seqno: number; from_retained: number; hashed: number };
    assert.ok(line.from_retained >= seqnoOf(names[1]!) && line.hashed === line.seqno - line.from_retained, (await rebuiltAgain())!);
    const again = await node.process!.request("GET", `/app/receipt?transaction_id=${firstTxid}`);
    assert.equal(again.status, 200, again.text);
  } finally {
    await net.stop();
    ws.cleanup();
  }
});

test("a recovery (command Recover) starts from the previous service's newest snapshot and restores its private maps with the shares", { timeout: 180_000 }, async () => {
  const ws = tempWorkspace("coco-snap-");
  const net = await Network.start(ws.dir, 1, { snapshots: { tx_count: SNAPSHOT_TX_COUNT }, recoveryMembers: 1, recoveryThreshold: 1 });
  try {
    await writeUntilSnapshot(net, 0, 120);
    const tail = await write(net.nodes[0]!, 500, "after the snapshot");
    await net.nodes[0]!.process!.waitForStatus(tail, "Committed", 15_000);
    await net.kill(net.nodes[0]!);
    const newest = committedSnapshots(net.nodes[0]!).sort((a, b) => seqnoOf(b) - seqnoOf(a))[0]!;
    const { node } = await net.recover(net.nodes[0]!, { withSnapshots: true });
    assert.match(node.process!.output(), /recovery: starting from the previous service's snapshot/);
    assert.match(node.process!.output(), new RegExp(`"snapshot":"${newest.replace(".", "\\.")}"`), `the newest snapshot, ${newest}`);
    const previousFile = join(node.dir, "previous_service_cert.pem");
    const opened = await runCli(["gov", "recovery", "open", "--url", `https://127.0.0.1:${node.rpcPort}`,
      "--service-cert", join(ws.dir, "service_cert.pem"), "--previous-service-cert", previousFile,
      "--member-cert", join(ws.dir, "member0_cert.pem"), "--member-key", join(ws.dir, "member0_privk.pem"), "--wait"]);
    assert.equal(opened.code, 0, opened.stderr + opened.stdout);
    const member = new GovernanceClient(net.member(node, 0));
    try {
      await submitMemberRecoveryShare(member, readFileSync(join(ws.dir, "member0_enc_privk.pem"), "utf8"));
    } finally {
      await member.close();
    }
    await eventually(async () => (await node.process!.request("GET", "/node/network", { identity: "none" })).json().service_status === "Open", "the recovered service to open");
    // Private records from the snapshot's state and from the ledger after it are all back.
    for (const id of [0, 60, 119]) assert.equal(await read(node, id), `message ${id}`, `record ${id}`);
    assert.equal(await read(node, 500), "after the snapshot");
  } finally {
    await net.stop();
    ws.cleanup();
  }
});

test("the trigger_snapshot action makes the primary take a snapshot at the next committed signature, whatever tx_count says", { timeout: 120_000 }, async () => {
  const ws = tempWorkspace("coco-snap-");
  const net = await Network.start(ws.dir, 1, { snapshots: { tx_count: 1_000_000 } });
  try {
    const node = net.nodes[0]!;
    const before = await write(node, 1, "before");
    await node.process!.waitForStatus(before, "Committed", 15_000);
    assert.deepEqual(committedSnapshots(node), [], "no snapshot is due");
    assert.equal((await node.process!.request("GET", "/node/snapshot", { identity: "none" })).status, 404);
    await net.propose([{ name: "trigger_snapshot", args: {} }]);
    const after = await write(node, 2, "after");
    await node.process!.waitForStatus(after, "Committed", 15_000);
    const name = await eventually(async () => committedSnapshots(node)[0], "the triggered snapshot");
    const redirect = await node.process!.request("GET", "/node/snapshot", { identity: "none" });
    assert.equal(redirect.status, 307);
    assert.equal(redirect.headers["location"], `/node/snapshot/${name}`);
    assert.equal((await node.process!.request("GET", `/node/snapshot?since=${seqnoOf(name)}`, { identity: "none" })).status, 404, "none newer than itself");
  } finally {
    await net.stop();
    ws.cleanup();
  }
});

test("a wiped backup that the primary cannot catch up (it joined from a snapshot) installs the primary's snapshot, learns the rekey it missed, and catches up", { timeout: 300_000 }, async () => {
  const ws = tempWorkspace("coco-snap-install-");
  // node 0 and node 1 hold the ledger from seqno 1.
  const net = await Network.start(ws.dir, 2, { snapshots: { tx_count: SNAPSHOT_TX_COUNT } });
  try {
    await writeUntilSnapshot(net, 0, 150);
    // Two nodes join from that snapshot: their ledgers start after it.
    const joined = [await net.join(), await net.join()];
    await net.waitForConfiguration(4);
    for (const node of joined) {
      const chunks = readdirSync(join(node.dir, "ledger")).filter((n) => n.startsWith("ledger_"));
      assert.ok(Math.min(...chunks.map((n) => Number(/^ledger_(\d+)/.exec(n)![1]))) > 1, `node ${node.index} joined from a snapshot`);
    }
    // The first node leaves the service: node 1 is now the only one whose ledger starts at 1.
    const [first, wiped] = [net.nodes[0]!, net.nodes[1]!];
    await net.propose([{ name: "remove_node", args: { node_id: first.nodeId } }]);
    await eventually(async () => {
      const r = await joined[0]!.process!.request("GET", "/node/consensus", { identity: "none" });
      return r.json().details.configuration.length === 3 ? true : undefined;
    }, "the first node out of the configuration");
    await net.kill(first);
    // Node 1's disk is replaced while it is down; meanwhile the ledger secret rotates and the
    // primary (a node that joined from a snapshot) takes a newer snapshot, sealed with the new secret.
    await net.kill(wiped);
    renameSync(join(wiped.dir, "ledger"), join(wiped.dir, "wiped-ledger"));
    await net.propose([{ name: "trigger_ledger_rekey", args: {} }]);
    const { snapshot } = await writeUntilSnapshot(net, 200, 2 * SNAPSHOT_TX_COUNT);
    const primary = await net.primary();
    assert.ok(joined.includes(primary), "a node that joined from a snapshot leads");
    // Restarted, node 1 needs entries from seqno 1, which the primary does not hold: it installs
    // the primary's snapshot (restarting in place), then catches up from there.
    await net.restart(wiped);
    const tail = await write(primary, 5000, "after the install");
    await eventually(async () => {
      const r = await wiped.process!.request("GET", `/node/tx?transaction_id=${tail}`, { identity: "none" });
      return r.status === 200 && r.json().status === "Committed" ? true : undefined;
    }, "the wiped node to commit a new write", 90_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${wiped.process!.output().split("\n").filter((l) => /snapshot|install|primary cannot|restart/i.test(l)).slice(-20).join("\n")}`);
    });
    for (const id of [0, 75, 149, 200, 5000]) {
      assert.equal(await eventually(async () => read(wiped, id), `record ${id} on the wiped node`), id === 5000 ? "after the install" : `message ${id}`);
    }
    const output = wiped.process!.output();
    assert.match(output, /fetching the primary's snapshot to install it/);
    assert.match(output, /installing the primary's snapshot: the old ledger is kept aside/);
    assert.match(output, /learned the ledger secret of a rekey this node missed from the snapshot/);
    assert.ok(seqnoOf(snapshot) > 0);
    const chunks = readdirSync(join(wiped.dir, "ledger")).filter((n) => n.startsWith("ledger_"));
    assert.ok(Math.min(...chunks.map((n) => Number(/^ledger_(\d+)/.exec(n)![1]))) > 1, "its ledger now starts after the snapshot");
    assert.ok(!readdirSync(wiped.dir).includes("install_snapshot.json"), "the pending install is done");
    // What let it find the primary with no state: the peers' RPC addresses kept in peers.json.
    const peers = JSON.parse(readFileSync(join(wiped.dir, "peers.json"), "utf8")) as { rpc_address?: unknown }[];
    assert.ok(peers.length > 0 && peers.every((p) => typeof p.rpc_address === "string"));
  } finally {
    await net.stop();
    ws.cleanup();
  }
});
