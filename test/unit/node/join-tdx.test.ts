// Intel TDX in joins, over the real TDX quote and collateral (Phala's dcap-qvl samples, provenance
// in test/fixtures/attestation/README.md), and the TEE manifest: a platform with no allowed
// measurement cannot join, the virtual platform can be disallowed, platforms can be mixed.
// The collateral is valid 2025-06-19..2025-07-19, so the service judges evidence at 2025-06-20
// (JoinServiceContext.attestationTimeMs); the real quote binds a key made elsewhere, so
// report_data is the expected last refusal.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Store } from "../../../src/kv/index.js";
import { createCertificateSigningRequest, createIdentityCertificate, generateEcP384KeyPair, generateRsaEncryptionKeyPair, type KeyPairPem } from "../../../src/crypto/index.js";
import { handleJoin, virtualEvidence, VIRTUAL_HOST_DATA_MAP, VIRTUAL_MEASUREMENT, VIRTUAL_MEASUREMENTS_MAP } from "../../../src/node/join.js";
import { SNP_HOST_DATA_MAP, SNP_MEASUREMENTS_MAP, SNP_TCB_VERSIONS_MAP, TDX_MEASUREMENTS_MAP, tdxAllowListsOf } from "../../../src/node/attestation-tables.js";
import { AttestationError, SNP_FORMAT, TDX_FORMAT, admitTdxEvidence, type AttestationCheck } from "../../../src/attestation/index.js";
import { CocoError } from "../../../src/util/index.js";
import { MILAN_ENDORSEMENTS, MILAN_REPORT, fixture } from "../../helpers/snp-fixtures.js";

const TDX_QUOTE = fixture("tdx/tdx-quote.bin");
const TDX_COLLATERAL = fixture("tdx/tdx-quote-collateral.json");
const MRTD = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";
const RTMR1 = "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b3093d54e579e9378";
const REPORT_DATA_KEY = "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9";
const COLLATERAL_VALID_MS = Date.parse("2025-06-20T12:00:00Z");
const HOST_DATA = "sandbox-host";

const TDX_QUOTE_INFO = { format: TDX_FORMAT, quote: TDX_QUOTE.toString("base64"), endorsements: TDX_COLLATERAL.toString("base64") };
const SNP_QUOTE_INFO = { format: SNP_FORMAT, quote: MILAN_REPORT.toString("base64"), endorsements: Buffer.from(MILAN_ENDORSEMENTS).toString("base64") };

interface Joiner { keys: KeyPairPem; cert: string; body(quoteInfo: unknown): unknown }

async function newJoiner(): Promise<Joiner> {
  const keys = generateEcP384KeyPair();
  const cert = await createIdentityCertificate(keys, "CCF Node");
  const csr = await createCertificateSigningRequest(keys, {});
  const encryption = generateRsaEncryptionKeyPair().publicKeyPem;
  return {
    keys, cert,
    body: (quoteInfo) => ({
      node_info_network: { rpc_interfaces: { primary_rpc_interface: { bind_address: "127.0.0.1:8001" } }, node_to_node_interface: { bind_address: "127.0.0.1:8101" } },
      quote_info: quoteInfo, public_encryption_key: encryption, certificate_signing_request: csr,
    }),
  };
}

function service(nowMs = COLLATERAL_VALID_MS) {
  const store = new Store();
  const ctx = { serviceCertPem: "", serviceKeys: generateEcP384KeyPair(), ledgerSecrets: () => [], attestationTimeMs: () => nowMs };
  const set = (map: string, key: string, value: unknown) => {
    const tx = store.begin();
    tx.set(map, Buffer.from(key), Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value)));
    store.commit(tx, store.currentVersion + 1);
  };
  const remove = (map: string, key: string) => {
    const tx = store.begin();
    tx.delete(map, Buffer.from(key));
    store.commit(tx, store.currentVersion + 1);
  };
  const join = (joiner: Joiner, quoteInfo: unknown) => handleJoin(store.begin(), joiner.cert, joiner.body(quoteInfo), ctx);
  return { store, set, remove, join };
}

function refusedFor(check: AttestationCheck, run: () => unknown, message: RegExp): void {
  assert.throws(run, (e: unknown) => {
    assert.ok(e instanceof AttestationError, String(e));
    assert.equal(e.check, check, e.message);
    assert.equal(e.status, 403);
    assert.match(e.message, message);
    return true;
  });
}

test("a TDX join with the real quote is refused for the MRTD until add_tdx_measurement, then for pinned RTMRs, then for the key binding", async () => {
  const s = service();
  const joiner = await newJoiner();
  refusedFor("measurement", () => s.join(joiner, TDX_QUOTE_INFO), new RegExp(`MRTD ${MRTD} is not trusted.*add_tdx_measurement`));
  s.set(TDX_MEASUREMENTS_MAP, MRTD, { rtmr1: "00".repeat(48) });
  refusedFor("measurement", () => s.join(joiner, TDX_QUOTE_INFO), new RegExp(`RTMR1 ${RTMR1} is not the 0000`));
  s.set(TDX_MEASUREMENTS_MAP, MRTD, { rtmr1: RTMR1 });
  refusedFor("report_data", () => s.join(joiner, TDX_QUOTE_INFO), new RegExp(`binds key digest ${REPORT_DATA_KEY}, not the key of the TLS certificate`));
  // Nothing was recorded for the refused node.
  let count = 0;
  s.store.begin().forEach("public:ccf.gov.nodes.info", () => void count++);
  assert.equal(count, 0);
});

test("the TDX quote is verified before any allow list: a changed MRTD byte, expired collateral, an SGX quote as TDX", async () => {
  const s = service();
  s.set(TDX_MEASUREMENTS_MAP, MRTD, {});
  const joiner = await newJoiner();
  const changed = Buffer.from(TDX_QUOTE);
  changed[48 + 136] = changed[48 + 136]! ^ 1; // MRTD, inside the signed TD report
  refusedFor("quote", () => s.join(joiner, { ...TDX_QUOTE_INFO, quote: changed.toString("base64") }), /DCAP verification failed/);
  refusedFor("quote", () => service(Date.parse("2026-01-01T00:00:00Z")).join(joiner, TDX_QUOTE_INFO), /expired/);
  const sgx = { format: TDX_FORMAT, quote: fixture("tdx/sgx-quote.bin").toString("base64"), endorsements: fixture("tdx/sgx-quote-collateral.json").toString("base64") };
  refusedFor("format", () => s.join(joiner, sgx), /is an SGX quote/);
  refusedFor("format", () => s.join(joiner, { format: TDX_FORMAT, quote: TDX_QUOTE.toString("base64") }), /quote_info\.endorsements must be base64/);
});

test("admitTdxEvidence accepts a quote that binds the expected key and answers its MRTD and RTMRs", () => {
  const allow = { measurement: (m: string) => (m === MRTD ? {} : undefined) };
  const verified = admitTdxEvidence(TDX_QUOTE_INFO, allow, REPORT_DATA_KEY, { nowMs: COLLATERAL_VALID_MS });
  assert.equal(verified.measurementHex, MRTD);
  assert.equal(verified.rtmrHex?.[1], RTMR1);
  // The governance reader answers the stored RTMR requirements.
  const s = service();
  s.set(TDX_MEASUREMENTS_MAP, MRTD, { rtmr1: RTMR1, other: "ignored" });
  assert.deepEqual(tdxAllowListsOf(s.store.begin()).measurement(MRTD), { rtmr1: RTMR1 });
});

test("TEE manifest: a platform with no allowed measurement cannot join; an unknown platform cannot join", async () => {
  const s = service();
  // Only the virtual platform is trusted (a fresh development service).
  s.set(VIRTUAL_MEASUREMENTS_MAP, VIRTUAL_MEASUREMENT, "AllowedToJoin");
  s.set(VIRTUAL_HOST_DATA_MAP, HOST_DATA, Buffer.alloc(8));
  const joiner = await newJoiner();
  refusedFor("measurement", () => s.join(joiner, SNP_QUOTE_INFO), /add_snp_measurement/);
  refusedFor("measurement", () => s.join(joiner, TDX_QUOTE_INFO), /add_tdx_measurement/);
  assert.throws(() => s.join(joiner, { format: "OE_SGX_v1", quote: "AAAA" }), (e: unknown) => {
    assert.ok(e instanceof CocoError && e.status === 403, String(e));
    assert.match(e.message, /format 'OE_SGX_v1' cannot be verified by this service/);
    return true;
  });
});

test("TEE manifest: mixed platforms are judged each by its own allow list, and virtual can be disallowed while the others stay", async () => {
  const s = service();
  s.set(VIRTUAL_MEASUREMENTS_MAP, VIRTUAL_MEASUREMENT, "AllowedToJoin");
  s.set(VIRTUAL_HOST_DATA_MAP, HOST_DATA, Buffer.alloc(8));
  s.set(SNP_MEASUREMENTS_MAP, "5feee30d6d7e1a29f403d70a4198237ddfb13051a2d6976439487c609388ed7f98189887920ab2fa0096903a0c23fca1", "AllowedToJoin");
  s.set(SNP_HOST_DATA_MAP, "4f4448c67f3c8dfc8de8a5e37125d807dadcc41f06cf23f615dbd52eec777d10", "");
  s.set(SNP_TCB_VERSIONS_MAP, "00a00f11", { boot_loader: 4, tee: 0, snp: 0x18, microcode: 0xdb });
  s.set(TDX_MEASUREMENTS_MAP, MRTD, {});
  const virtualNode = await newJoiner();
  assert.equal(s.join(virtualNode, virtualEvidence(virtualNode.keys.publicKeyPem, HOST_DATA)).node_status, "Pending");
  // SEV-SNP and TDX evidence pass every allow list; only the binding to a key made here fails.
  const other = await newJoiner();
  refusedFor("report_data", () => s.join(other, SNP_QUOTE_INFO), /not the key of the TLS certificate/);
  refusedFor("report_data", () => s.join(other, TDX_QUOTE_INFO), /not the key of the TLS certificate/);
  // Production: members remove the virtual platform; hardware platforms are unaffected.
  s.remove(VIRTUAL_MEASUREMENTS_MAP, VIRTUAL_MEASUREMENT);
  const lateVirtual = await newJoiner();
  assert.throws(() => s.join(lateVirtual, virtualEvidence(lateVirtual.keys.publicKeyPem, HOST_DATA)), /Measurement 'coco-virtual-platform-v1' is not trusted/);
  refusedFor("report_data", () => s.join(other, TDX_QUOTE_INFO), /not the key of the TLS certificate/);
});
