// The node configuration: CCF-shaped fields, defaults, and errors that name the field at fault.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS, parseDuration, parseSize, resolveConfig, rpcInterfacesRecord, type NodeConfigFile } from "../../../src/node/config.js";

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

test("the created_at window and admission limits have documented defaults", () => {
  const c = resolveConfig(base(), "/x");
  assert.deepEqual(c.governance, { createdAtMaxAgeSeconds: 300, createdAtMaxFutureSeconds: 60 });
  assert.deepEqual(c.admission.rpc, { handshakeTimeoutMs: 10_000, idleTimeoutMs: 30_000, connectionsPerAddressMax: 128, privilegedConnectionsReserved: 16 });
  assert.deepEqual(c.admission.nodeToNode, { handshakeTimeoutMs: 5_000, connectionsPerAddressMax: 16, connectionsMax: 256 });
  assert.equal(c.admission.join.bodyBytesMax, 64 * 1024);
  assert.equal(c.admission.join.nodeDataBytesMax, 4 * 1024);
  assert.deepEqual(c.admission.join.perAddress, { refillPerSecond: 0.5, capacity: 5 });
});

test("the created_at window and admission limits are read from coco.governance and coco.admission", () => {
  const file = base();
  file.network.rpc_interfaces.primary!.max_open_sessions_hard = 50;
  file.coco = {
    governance: { created_at_max_age: "1min", created_at_max_future: "5s" },
    admission: {
      tls_handshake_timeout: "2s", idle_timeout: "1min", connections_per_address_max: 8, member_connections_reserved: 0,
      node_to_node: { tls_handshake_timeout: 750, connections_per_address_max: 3, connections_max: 20 },
      join: { body_size_max: "8KiB", node_data_size_max: 100, certificate_size_max: "2KiB", quote_size_max: "1KiB", per_address_rate: 2, per_address_burst: 1, global_rate: 0.5, global_burst: 7 },
    },
  };
  const c = resolveConfig(file, "/x");
  assert.deepEqual(c.governance, { createdAtMaxAgeSeconds: 60, createdAtMaxFutureSeconds: 5 });
  assert.deepEqual(c.admission.rpc, { handshakeTimeoutMs: 2_000, idleTimeoutMs: 60_000, connectionsPerAddressMax: 8, privilegedConnectionsReserved: 0 });
  assert.deepEqual(c.admission.nodeToNode, { handshakeTimeoutMs: 750, connectionsPerAddressMax: 3, connectionsMax: 20 });
  assert.deepEqual(c.admission.join, {
    bodyBytesMax: 8192, nodeDataBytesMax: 100, certificateBytesMax: 2048, quoteBytesMax: 1024,
    perAddress: { refillPerSecond: 2, capacity: 1 }, global: { refillPerSecond: 0.5, capacity: 7 }, addressesMax: 4096,
  });
});

test("admission settings that cannot work are refused, naming the field", () => {
  const reserveAll = base();
  reserveAll.network.rpc_interfaces.primary!.max_open_sessions_hard = 10;
  reserveAll.coco = { admission: { member_connections_reserved: 10 } };
  assert.throws(() => resolveConfig(reserveAll, "/x"), /coco\.admission\.member_connections_reserved/);
  const zeroCap = base();
  zeroCap.coco = { admission: { connections_per_address_max: 0 } };
  assert.throws(() => resolveConfig(zeroCap, "/x"), /coco\.admission\.connections_per_address_max/);
  const badRate = base();
  badRate.coco = { admission: { join: { global_rate: -1 } } };
  assert.throws(() => resolveConfig(badRate, "/x"), /coco\.admission\.join\.global_rate/);
  const subSecond = base();
  subSecond.coco = { governance: { created_at_max_age: "500ms" } };
  assert.throws(() => resolveConfig(subSecond, "/x"), /coco\.governance\.created_at_max_age/);
});

test("coco.memory.heap_growing_percent: 100 by default, 0 for V8's own factor, and anything else outside 0..400 is refused by name", () => {
  assert.equal(resolveConfig(base(), "/x").memory.heapGrowingPercent, 100);
  for (const value of [0, 50, 400]) {
    const file = base();
    file.coco = { memory: { heap_growing_percent: value } };
    assert.equal(resolveConfig(file, "/x").memory.heapGrowingPercent, value);
  }
  for (const value of [-1, 401, 1.5, "100" as unknown as number]) {
    const file = base();
    file.coco = { memory: { heap_growing_percent: value } };
    assert.throws(() => resolveConfig(file, "/x"), /coco\.memory\.heap_growing_percent: expected an integer from 0/);
  }
});

test("coco.memory.ledger_index_entries: 2^18 by default; a positive integer, or refused by name", () => {
  assert.equal(resolveConfig(base(), "/x").memory.ledgerIndexEntries, 262_144);
  const file = base();
  file.coco = { memory: { ledger_index_entries: 64 } };
  assert.equal(resolveConfig(file, "/x").memory.ledgerIndexEntries, 64);
  for (const value of [0, -5, 1.5, "64" as unknown as number]) {
    const bad = base();
    bad.coco = { memory: { ledger_index_entries: value } };
    assert.throws(() => resolveConfig(bad, "/x"), /coco\.memory\.ledger_index_entries: expected a positive integer/);
  }
});

test("coco.memory.signature_index_entries: 2^16 by default; a positive integer, or refused by name", () => {
  assert.equal(resolveConfig(base(), "/x").memory.signatureIndexEntries, 65_536);
  const file = base();
  file.coco = { memory: { signature_index_entries: 8 } };
  assert.equal(resolveConfig(file, "/x").memory.signatureIndexEntries, 8);
  for (const value of [0, -1, 2.5, "8" as unknown as number]) {
    const bad = base();
    bad.coco = { memory: { signature_index_entries: value } };
    assert.throws(() => resolveConfig(bad, "/x"), /coco\.memory\.signature_index_entries: expected a positive integer/);
  }
});

// Multi-host deployments (docs/deployment.md): a node binds one address and publishes another.
const multiHost = (): NodeConfigFile => ({
  network: {
    rpc_interfaces: { primary_rpc_interface: { bind_address: "0.0.0.0:8000", published_address: "10.0.0.2:8000" } },
    node_to_node_interface: { bind_address: "0.0.0.0:8001", published_address: "10.0.0.2:8001" },
  },
  command: { type: "Join", service_certificate_file: "service_cert.pem", join: { target_rpc_address: "10.0.0.1:8000" } },
});

test("an RPC interface's published address is what nodes.info records; without one, the bind address alone", () => {
  const c = resolveConfig(multiHost(), "/x");
  assert.equal(c.rpc.host, "0.0.0.0");
  assert.equal(c.rpc.publishedAddress, "10.0.0.2:8000");
  assert.deepEqual(rpcInterfacesRecord(c), { primary_rpc_interface: { bind_address: "0.0.0.0:8000", published_address: "10.0.0.2:8000" } });
  assert.deepEqual(c.nodeToNode, { host: "0.0.0.0", port: 8001, publishedAddress: "10.0.0.2:8001" });
  const plain = resolveConfig(base(), "/x");
  assert.equal(plain.rpc.publishedAddress, undefined);
  assert.deepEqual(rpcInterfacesRecord(plain), { primary: { bind_address: "127.0.0.1:8000" } });
});

test("a wildcard node-to-node bind address needs a published address: other nodes would dial themselves", () => {
  for (const wildcard of ["0.0.0.0:8001", "[::]:8001"]) {
    const file = multiHost();
    file.network.node_to_node_interface = { bind_address: wildcard };
    assert.throws(() => resolveConfig(file, "/x"), /network\.node_to_node_interface\.published_address: required when bind_address is a wildcard/);
  }
  // A wildcard RPC bind address stays allowed (as in CCF): it only changes what clients are told.
  const rpcOnly = multiHost();
  delete rpcOnly.network.rpc_interfaces.primary_rpc_interface!.published_address;
  assert.equal(resolveConfig(rpcOnly, "/x").rpc.publishedAddress, undefined);
});

test("a published address that no other host can dial is refused, naming the field", () => {
  const cases: [string, RegExp][] = [
    ["0.0.0.0:8000", /published_address: "0\.0\.0\.0:8000" is a wildcard/],
    ["[::]:8000", /published_address: "\[::\]:8000" is a wildcard/],
    ["10.0.0.2:0", /published_address: "10\.0\.0\.2:0" has port 0/],
    ["10.0.0.2", /published_address: expected "host:port"/],
  ];
  for (const [address, error] of cases) {
    const rpc = multiHost();
    rpc.network.rpc_interfaces.primary_rpc_interface!.published_address = address;
    assert.throws(() => resolveConfig(rpc, "/x"), new RegExp(`network\\.rpc_interfaces\\.primary_rpc_interface\\.${error.source}`));
    const n2n = multiHost();
    n2n.network.node_to_node_interface!.published_address = address;
    assert.throws(() => resolveConfig(n2n, "/x"), new RegExp(`network\\.node_to_node_interface\\.${error.source}`));
  }
  const notString = multiHost();
  (notString.network.rpc_interfaces.primary_rpc_interface as any).published_address = 8000;
  assert.throws(() => resolveConfig(notString, "/x"), /primary_rpc_interface\.published_address: expected "host:port", got 8000/);
});
