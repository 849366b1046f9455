// `coco sandbox` run again on a workspace whose service was SIGKILLed brings it back through
// disaster recovery (member0 proposes transition_service_to_open and submits its recovery
// share itself, as CCF's sandbox --recover does): all data, users and members are back, and
// service_cert.pem is the new identity.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NodeProcess, tempWorkspace } from "../helpers/node-process.js";
import { GovernanceClient, verifyReceipt } from "../../src/client/index.js";

const ws = tempWorkspace("coco-sandbox-recovery-");
let sandbox: NodeProcess | undefined;
after(async () => {
  await sandbox?.stop("SIGKILL");
  ws.cleanup();
});

test("a SIGKILLed one-node sandbox comes back through recovery with all its data, users and members", { timeout: 180_000 }, async () => {
  sandbox = await NodeProcess.sandbox(ws.dir);
  const firstCert = readFileSync(join(ws.dir, "service_cert.pem"), "utf8");
  let last = "";
  for (let i = 0; i < 10; i++) {
    for (const kind of ["private", "public"]) {
      const r = await sandbox.request("POST", `/app/log/${kind}`, { body: JSON.stringify({ id: i, msg: `${kind} ${i}` }) });
      assert.equal(r.status, 200, r.text);
      last = String(r.headers["x-ms-ccf-transaction-id"]);
    }
  }
  await sandbox.waitForStatus(last);
  let receipt;
  for (let attempt = 0; attempt < 200 && receipt === undefined; attempt++) {
    const r = await sandbox.request("GET", `/app/receipt?transaction_id=${last}`);
    if (r.status === 200) receipt = r.json();
    else await sandbox.request("POST", "/app/log/public", { body: JSON.stringify({ id: 500, msg: "nudge" }) });
  }
  assert.ok(receipt, "a receipt before the disaster");
  await sandbox.stop("SIGKILL");

  sandbox = await NodeProcess.sandbox(ws.dir);
  assert.match(sandbox.output(), /recovered from its ledger: disaster recovery 1/);
  const network = (await sandbox.request("GET", "/node/network", { identity: "none" })).json();
  assert.equal(network.service_status, "Open");
  assert.equal(network.recovery_count, 1);
  const currentCert = readFileSync(join(ws.dir, "service_cert.pem"), "utf8");
  assert.equal(network.service_certificate.trim(), currentCert.trim(), "service_cert.pem is the current identity");
  assert.notEqual(currentCert.trim(), firstCert.trim());
  // user0 (same users) reads every write back.
  for (let i = 0; i < 10; i++) {
    for (const kind of ["private", "public"]) {
      assert.deepEqual((await sandbox.request("GET", `/app/log/${kind}?id=${i}`)).json(), { msg: `${kind} ${i}` });
    }
  }
  verifyReceipt(receipt, firstCert);
  const again = await sandbox.request("GET", `/app/receipt?transaction_id=${last}`);
  assert.equal(again.status, 200, again.text);
  verifyReceipt(again.json(), currentCert);
  // member0 (same members) still governs.
  const member0 = new GovernanceClient({
    url: `https://127.0.0.1:${sandbox.port}`, serviceCertPem: currentCert,
    memberCertPem: readFileSync(join(ws.dir, "member0_cert.pem"), "utf8"), memberKeyPem: readFileSync(join(ws.dir, "member0_privk.pem"), "utf8"),
  });
  try {
    assert.equal((await member0.members()).find((m) => m.memberId === member0.memberId)?.status, "Active");
  } finally {
    await member0.close();
  }
  const w = await sandbox.request("POST", "/app/log/private", { body: JSON.stringify({ id: 99, msg: "after recovery" }) });
  await sandbox.waitForStatus(String(w.headers["x-ms-ccf-transaction-id"]));
});

test("a SIGKILLed three-node sandbox (whole process group) comes back through recovery, with fresh nodes joining", { timeout: 300_000 }, async () => {
  const ws3 = tempWorkspace("coco-sandbox-recovery3-");
  let group: NodeProcess | undefined;
  const killGroup = async (p: NodeProcess) => {
    const exited = new Promise<void>((res) => { if (p.child.exitCode !== null) res(); else p.child.once("exit", () => res()); });
    p.closeAgents();
    try { process.kill(-p.child.pid!, "SIGKILL"); } catch { /* already gone */ }
    await exited;
  };
  try {
    group = await NodeProcess.sandbox(ws3.dir, ["--nodes", "3"], { detached: true });
    const w = await group.request("POST", "/app/log/private", { body: JSON.stringify({ id: 1, msg: "three nodes" }) });
    assert.equal(w.status, 200, w.text);
    await group.waitForStatus(String(w.headers["x-ms-ccf-transaction-id"]));
    await killGroup(group);
    group = await NodeProcess.sandbox(ws3.dir, ["--nodes", "3"], { detached: true });
    assert.match(group.output(), /recovered from its ledger: disaster recovery 1.*2 node\(s\) joined afresh/);
    assert.deepEqual((await group.request("GET", "/app/log/private?id=1")).json(), { msg: "three nodes" });
    const consensus = (await group.request("GET", "/node/consensus", { identity: "none" })).json();
    assert.equal(consensus.details.configuration.length, 3);
    const network = (await group.request("GET", "/node/network", { identity: "none" })).json();
    assert.equal(network.recovery_count, 1);
    assert.equal(network.service_certificate.trim(), readFileSync(join(ws3.dir, "service_cert.pem"), "utf8").trim());
  } finally {
    if (group !== undefined) await killGroup(group);
    ws3.cleanup();
  }
});
