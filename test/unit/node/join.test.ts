// The service side of the join protocol: what a joining node must prove, and what it receives.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Store } from "../../../src/kv/index.js";
import {
  createCertificateSigningRequest, createIdentityCertificate, createServiceCertificate, generateEcP384KeyPair,
  generateRsaEncryptionKeyPair, nodeIdFromPublicKey, randomBytes, unwrapWithKey,
} from "../../../src/crypto/index.js";
import {
  ENDORSED_CERTS_MAP, NODES_INFO_MAP, VIRTUAL_HOST_DATA_MAP, VIRTUAL_MEASUREMENT, VIRTUAL_MEASUREMENTS_MAP,
  handleJoin, virtualEvidence,
} from "../../../src/node/join.js";

const HOST_DATA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

async function setup() {
  const store = new Store();
  const tx = store.begin();
  tx.set(VIRTUAL_MEASUREMENTS_MAP, Buffer.from(VIRTUAL_MEASUREMENT), Buffer.from('"AllowedToJoin"'));
  tx.set(VIRTUAL_HOST_DATA_MAP, Buffer.from(HOST_DATA), Buffer.alloc(8));
  store.commit(tx, 1);
  const serviceKeys = generateEcP384KeyPair();
  const serviceCertPem = await createServiceCertificate(serviceKeys, {});
  const secret = randomBytes(32);
  const ctx = { serviceCertPem, serviceKeys, ledgerSecrets: () => [{ fromSeqno: 1, raw: secret }] };
  const keys = generateEcP384KeyPair();
  const cert = await createIdentityCertificate(keys, "CCF Node");
  const encryption = generateRsaEncryptionKeyPair();
  const body = (overrides: Record<string, unknown> = {}) => ({
    node_info_network: { rpc_interfaces: { primary_rpc_interface: { bind_address: "127.0.0.1:8001" } }, node_to_node_interface: { bind_address: "127.0.0.1:8101" } },
    quote_info: virtualEvidence(keys.publicKeyPem, HOST_DATA),
    public_encryption_key: encryption.publicKeyPem,
    consensus_type: "CFT",
    ...overrides,
  });
  return { store, ctx, keys, cert, encryption, body, secret, csr: await createCertificateSigningRequest(keys, {}) };
}

test("a node with trusted evidence and a matching CSR is recorded Pending, then receives wrapped secrets once trusted", async () => {
  const s = await setup();
  let tx = s.store.begin();
  const pending = handleJoin(tx, s.cert, s.body({ certificate_signing_request: s.csr }), s.ctx);
  assert.deepEqual(pending, { node_status: "Pending", node_id: nodeIdFromPublicKey(s.keys.publicKeyPem) });
  s.store.commit(tx, 2);
  // Trusted but not yet endorsed: still Pending for the joiner.
  tx = s.store.begin();
  const info = JSON.parse(tx.get(NODES_INFO_MAP, Buffer.from(pending.node_id))!.toString());
  tx.set(NODES_INFO_MAP, Buffer.from(pending.node_id), Buffer.from(JSON.stringify({ ...info, status: "Trusted" })));
  s.store.commit(tx, 3);
  assert.equal(handleJoin(s.store.begin(), s.cert, undefined, s.ctx).node_status, "Pending");
  tx = s.store.begin();
  tx.set(ENDORSED_CERTS_MAP, Buffer.from(pending.node_id), Buffer.from("endorsed"));
  s.store.commit(tx, 4);
  const trusted = handleJoin(s.store.begin(), s.cert, undefined, s.ctx);
  assert.equal(trusted.node_status, "Trusted");
  const network = trusted.network_info!;
  assert.equal(network.endorsed_certificate, "endorsed");
  assert.ok(unwrapWithKey(s.encryption.privateKeyPem, network.ledger_secrets[0]!.wrapped_secret).equals(s.secret));
  assert.equal(unwrapWithKey(s.encryption.privateKeyPem, network.wrapped_service_key).toString(), s.ctx.serviceKeys.privateKeyPem);
  assert.ok(!JSON.stringify(network).includes(s.secret.toString("base64")), "the ledger secret is never sent in the clear");
});

test("refusals: untrusted host data or measurement, foreign attestation format, unbound evidence, another key's CSR, bad addresses", async () => {
  const s = await setup();
  const other = generateEcP384KeyPair();
  const attempt = (overrides: Record<string, unknown>) => () => handleJoin(s.store.begin(), s.cert, s.body({ certificate_signing_request: s.csr, ...overrides }), s.ctx);
  assert.throws(attempt({ quote_info: virtualEvidence(s.keys.publicKeyPem, "ab".repeat(32)) }), /Host data 'abab.*' is not trusted/);
  assert.throws(attempt({ quote_info: { format: "OE_SGX_v1", quote: "" } }), /cannot be verified/);
  assert.throws(attempt({ quote_info: { format: "AMD_SEV_SNP_v1", quote: "" } }), /Attestation refused \(format\)/);
  assert.throws(attempt({ quote_info: virtualEvidence(other.publicKeyPem, HOST_DATA) }), /does not bind the key/);
  assert.throws(attempt({ certificate_signing_request: await createCertificateSigningRequest(other, {}) }), /for another key/);
  assert.throws(attempt({ certificate_signing_request: "not a csr" }), /certificate_signing_request/);
  assert.throws(attempt({ node_info_network: { rpc_interfaces: {}, node_to_node_interface: { bind_address: "nowhere" } } }), /bind_address/);
  assert.throws(() => handleJoin(s.store.begin(), undefined, s.body(), s.ctx), /TLS client certificate/);
  const tx = s.store.begin();
  tx.delete(VIRTUAL_MEASUREMENTS_MAP, Buffer.from(VIRTUAL_MEASUREMENT));
  s.store.commit(tx, 2);
  assert.throws(attempt({}), /Measurement .* is not trusted/);
});
