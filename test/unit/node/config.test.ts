// The node configuration: CCF-shaped fields, defaults, and errors that name the field at fault.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS, parseDuration, parseSize, resolveConfig, type NodeConfigFile } from "../../../src/node/config.js";

const base = (): NodeConfigFile => ({
  network: { rpc_interfaces: { primary: { bind_address: "127.0.0.1:8000" } } },
  command: { type: "Start", start: { members: [{ certificate_file: "member0_cert.pem" }] } },
});

test("defaults are applied and paths resolve against the config directory", () => {
  const c = resolveConfig(base(), "/srv/coco");
  assert.equal(c.rpc.port, 8000);
  assert.equal(c.ledgerDirectory, "/srv/coco/ledger");
  assert.equal(c.serviceCertificateFile, "/srv/coco/service_cert.pem");
  assert.equal(c.signatureDelayMs, DEFAULTS.signatureDelayMs);
  assert.equal(c.durability, "fsync");
  assert.deepEqual(c.genesis.members, [{ certificateFile: "/srv/coco/member0_cert.pem" }]);
  assert.deepEqual(c.genesis.constitutionFiles, []);
});

test("CCF's ledger_signatures and max_body_size settings are honoured", () => {
  const file = base();
  file.ledger_signatures = { tx_count: 100, delay: "1s" };
  file.network.rpc_interfaces.primary!.http_configuration = { max_body_size: "2MB" };
  const c = resolveConfig(file, "/x");
  assert.equal(c.signatureTxCount, 100);
  assert.equal(c.signatureDelayMs, 1000);
  assert.equal(c.rpc.bodyBytesMax, 2 * 1024 * 1024);
});

test("errors name the field at fault", () => {
  const bad = base();
  bad.network.rpc_interfaces.primary!.bind_address = "nonsense";
  assert.throws(() => resolveConfig(bad, "/x"), /network\.rpc_interfaces\.primary\.bind_address/);
  const noMembers = base();
  noMembers.command.start!.members = [];
  assert.throws(() => resolveConfig(noMembers, "/x"), /command\.start\.members/);
  const join = base();
  join.command.type = "Join";
  assert.throws(() => resolveConfig(join, "/x"), /command\.join\.target_rpc_address/);
  (join.command as any).join = { target_rpc_address: "127.0.0.1:8000" };
  assert.throws(() => resolveConfig(join, "/x"), /command\.service_certificate_file/);
  (join.command as any).service_certificate_file = "service_cert.pem";
  assert.throws(() => resolveConfig(join, "/x"), /network\.node_to_node_interface\.bind_address/);
  (join.network as any).node_to_node_interface = { bind_address: "127.0.0.1:8001" };
  const resolved = resolveConfig(join, "/x");
  assert.deepEqual(resolved.join, { targetHost: "127.0.0.1", targetPort: 8000, retryMs: 1000 });
  assert.deepEqual(resolved.nodeToNode, { host: "127.0.0.1", port: 8001 });
  const recover = base();
  recover.command.type = "Recover";
  assert.throws(() => resolveConfig(recover, "/x"), /command\.recover\.previous_service_identity_file/);
  (recover.command as any).recover = { previous_service_identity_file: "previous_service_cert.pem" };
  assert.deepEqual(resolveConfig(recover, "/x").recover, { previousServiceIdentityFile: "/x/previous_service_cert.pem" });
  assert.throws(() => parseSize("lots", "f"), /f: expected a size/);
  assert.throws(() => parseDuration("soon", "g"), /g: expected a duration/);
});

test("coco.forwarding sets the forwarding timeout and pending bound; absent, the forwarder's defaults apply", () => {
  assert.deepEqual(resolveConfig(base(), "/x").forwarding, {});
  const file = base();
  file.coco = { forwarding: { timeout: "5s", pending_requests_max: 100 } };
  assert.deepEqual(resolveConfig(file, "/x").forwarding, { responseTimeoutMs: 5000, pendingRequestsMax: 100 });
  const bad = base();
  bad.coco = { forwarding: { pending_requests_max: 0 } };
  assert.throws(() => resolveConfig(bad, "/x"), /coco\.forwarding\.pending_requests_max/);
  const badTimeout = base();
  badTimeout.coco = { forwarding: { timeout: "soon" } };
  assert.throws(() => resolveConfig(badTimeout, "/x"), /coco\.forwarding\.timeout/);
});
