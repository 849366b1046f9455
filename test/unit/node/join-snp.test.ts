// POST /node/join with real SEV-SNP evidence (CCF's Milan vector): governance decides admission.
// Each allow list, once set, moves the refusal to the next check; the real report can never bind
// a key generated here, so the last refusal (report_data) is the expected end state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Store } from "../../../src/kv/index.js";
import { createCertificateSigningRequest, createIdentityCertificate, generateEcP384KeyPair, generateRsaEncryptionKeyPair } from "../../../src/crypto/index.js";
import { handleJoin, VIRTUAL_FORMAT, VIRTUAL_MEASUREMENT, VIRTUAL_MEASUREMENTS_MAP } from "../../../src/node/join.js";
import { SNP_HOST_DATA_MAP, SNP_MEASUREMENTS_MAP, SNP_TCB_VERSIONS_MAP, snpAllowListsOf, trustGenesisSnpPlatform } from "../../../src/node/attestation-tables.js";
import { AttestationError, SNP_FORMAT, admitSnpEvidence, verifySnpReport, type AttestationCheck } from "../../../src/attestation/index.js";
import { MILAN_ENDORSEMENTS, MILAN_REPORT } from "../../helpers/snp-fixtures.js";

const MEASUREMENT = "5feee30d6d7e1a29f403d70a4198237ddfb13051a2d6976439487c609388ed7f98189887920ab2fa0096903a0c23fca1";
const HOST_DATA = "4f4448c67f3c8dfc8de8a5e37125d807dadcc41f06cf23f615dbd52eec777d10";

test("a join with real SEV-SNP evidence is refused for the measurement, then host data, then TCB, then the key binding", async () => {
  const store = new Store();
  const keys = generateEcP384KeyPair();
  const cert = await createIdentityCertificate(keys, "CCF Node");
  const body = {
    node_info_network: { rpc_interfaces: { primary_rpc_interface: { bind_address: "127.0.0.1:8001" } }, node_to_node_interface: { bind_address: "127.0.0.1:8101" } },
    quote_info: { format: SNP_FORMAT, quote: MILAN_REPORT.toString("base64"), endorsements: Buffer.from(MILAN_ENDORSEMENTS).toString("base64") },
    public_encryption_key: generateRsaEncryptionKeyPair().publicKeyPem,
    certificate_signing_request: await createCertificateSigningRequest(keys, {}),
  };
  const ctx = { serviceCertPem: "", serviceKeys: generateEcP384KeyPair(), ledgerSecrets: () => [] };
  const refusedFor = (check: AttestationCheck, message: RegExp) => assert.throws(() => handleJoin(store.begin(), cert, body, ctx), (e: unknown) => {
    assert.ok(e instanceof AttestationError, String(e));
    assert.equal(e.check, check, e.message);
    assert.equal(e.status, 403);
    assert.match(e.message, message);
    return true;
  });
  const allow = (map: string, key: string, value: unknown) => {
    const tx = store.begin();
    tx.set(map, Buffer.from(key), Buffer.from(JSON.stringify(value)));
    store.commit(tx, store.currentVersion + 1);
  };
  refusedFor("measurement", /measurement 5feee30d.* add_snp_measurement/);
  allow(SNP_MEASUREMENTS_MAP, MEASUREMENT, "AllowedToJoin");
  refusedFor("host_data", /host data 4f4448c6.* add_snp_host_data/);
  allow(SNP_HOST_DATA_MAP, HOST_DATA, "");
  refusedFor("tcb", /no minimum TCB is set for CPUID 00a00f11/);
  allow(SNP_TCB_VERSIONS_MAP, "00a00f11", { boot_loader: 4, tee: 0, snp: 0x19, microcode: 0xdb });
  refusedFor("tcb", /snp 24 < 25/);
  allow(SNP_TCB_VERSIONS_MAP, "00a00f11", { boot_loader: 4, tee: 0, snp: 0x18, microcode: 0xdb, hexstring: "db18000000000004" });
  refusedFor("report_data", /not the key of the TLS certificate the node presented/);
  // The virtual format is judged by its own tables, untouched by the SNP allow lists.
  assert.throws(() => handleJoin(store.begin(), cert, { ...body, quote_info: { format: VIRTUAL_FORMAT, quote: "" } }, ctx), /not valid virtual-platform evidence|does not bind|not trusted/);
});

test("a service started on SEV-SNP trusts its own measurement, host data and TCB, and not the virtual platform", async () => {
  const store = new Store();
  const tx = store.begin();
  const verified = verifySnpReport(MILAN_REPORT, MILAN_ENDORSEMENTS);
  trustGenesisSnpPlatform(tx, verified);
  store.commit(tx, 1);
  const read = store.begin();
  const allow = snpAllowListsOf(read);
  assert.equal(allow.hasMeasurement(MEASUREMENT), true);
  assert.equal(allow.hasHostData(HOST_DATA), true);
  assert.deepEqual(allow.minimumTcb("00a00f11"), { boot_loader: 4, tee: 0, snp: 0x18, microcode: 0xdb });
  assert.equal(read.get(VIRTUAL_MEASUREMENTS_MAP, Buffer.from(VIRTUAL_MEASUREMENT)), undefined);
  // The same hardware's evidence for another key is refused only for the binding.
  assert.throws(() => admitSnpEvidence({ format: SNP_FORMAT, quote: MILAN_REPORT.toString("base64"), endorsements: Buffer.from(MILAN_ENDORSEMENTS).toString("base64") },
    allow, "ab".repeat(32)), /\(report_data\)/);
});
