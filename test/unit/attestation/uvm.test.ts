// UVM endorsements (COSE Sign1 by a DID:x509 issuer) over CCF's real test vectors
// (test/fixtures/attestation/uvm/, provenance in the README), and each of their corruptions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { Decoder, Tag } from "cbor-x";
import {
  AttestationError, DEFAULT_UVM_ROOTS_OF_TRUST, SNP_FIELD_OFFSETS as O, SNP_FORMAT, admitSnpEvidence, matchUvmRootsOfTrust, resolveDidX509, verifyUvmEndorsements,
  type SnpAllowLists, type UvmRootOfTrust,
} from "../../../src/attestation/index.js";
import { FIXTURE_TIME_MS, MILAN_ENDORSEMENTS, MILAN_REPORT, fixture, milanLikeChain, withBytes } from "../../helpers/snp-fixtures.js";

const AKS_DID = "did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.2";
const ACI_DID = "did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.5";
const UVM_MEASUREMENT = "d0c9e2be22046e60779be88868cff64c2aa22047c15d3127ba495cee3fbc2854c5633f9da2096e6c64ae2b69bbff8082";

// The measurement each of CCF's vectors endorses, and what CCF's src/node/test/endorsements.cpp expects.
const VECTORS = [
  { file: "rsa_test1.cose", measurement: "02c3b0d5bf1d256fa4e3b5deefc07b55ff2f7029085ed350f60959140a1a51f1310753ba5ab2c03a0536b1c0c193af47", did: AKS_DID, feed: "ContainerPlat-AMD-UVM", svn: "100" },
  { file: "ecdsa_test1.cose", measurement: "1b66347ceafca663690ff17ed2144b8acdee661edc5d28e69a7c85dde7ba0c3a6f9862096e8b38da7aa622ddeed75c37", did: ACI_DID, feed: "ConfAKS-AMD-UVM", svn: "1" },
  { file: "int_svn.cose", measurement: UVM_MEASUREMENT, did: AKS_DID, feed: "ContainerPlat-AMD-UVM", svn: "102" },
  { file: "uvm_0.2.9.cose", measurement: UVM_MEASUREMENT, did: AKS_DID, feed: "ContainerPlat-AMD-UVM", svn: "103" },
] as const;

const UVM_0_2_9 = fixture("uvm/uvm_0.2.9.cose");

function refused(run: () => unknown, message: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof AttestationError, String(error));
    assert.equal(error.check, "uvm_endorsements", error.message);
    assert.match(error.message, message);
    return true;
  });
}

/** The x5chain of a vector's protected header (leaf first). */
function x5chain(cose: Buffer): Uint8Array[] {
  const decoder = new Decoder({ mapsAsObjects: false });
  const message = decoder.decode(cose) as Tag;
  const protectedHeaders = decoder.decode((message.value as Uint8Array[])[0]!) as Map<unknown, unknown>;
  return protectedHeaders.get(33) as Uint8Array[];
}

test("each of CCF's real UVM endorsements verifies for its measurement with CCF's expected issuer, feed and SVN", () => {
  for (const v of VECTORS) {
    const endorsed = verifyUvmEndorsements(fixture(`uvm/${v.file}`), v.measurement);
    assert.deepEqual(endorsed, { did: v.did, feed: v.feed, svn: v.svn }, v.file);
    matchUvmRootsOfTrust(endorsed, DEFAULT_UVM_ROOTS_OF_TRUST);
  }
});

test("an issuer that is not allowed is refused", () => {
  const endorsed = verifyUvmEndorsements(UVM_0_2_9, UVM_MEASUREMENT);
  refused(() => matchUvmRootsOfTrust(endorsed, [{ did: ACI_DID, feed: "ContainerPlat-AMD-UVM", svn: "1" }]), /issuer .*1\.2 is not trusted.*add_snp_uvm_endorsement/);
  refused(() => matchUvmRootsOfTrust(endorsed, []), /is not trusted/);
});

test("a feed that is not allowed is refused (CCF's 'Malicious' feed case)", () => {
  const endorsed = verifyUvmEndorsements(fixture("uvm/ecdsa_test1.cose"), VECTORS[1].measurement);
  refused(() => matchUvmRootsOfTrust(endorsed, [{ did: ACI_DID, feed: "Malicious-ConfAKS-AMD-UVM", svn: "1" }]), /feed ConfAKS-AMD-UVM .* not trusted/);
});

test("an SVN below the governed minimum is refused; at the minimum it is accepted", () => {
  const endorsed = verifyUvmEndorsements(UVM_0_2_9, UVM_MEASUREMENT);
  const root = (svn: string): UvmRootOfTrust[] => [{ did: AKS_DID, feed: "ContainerPlat-AMD-UVM", svn }];
  refused(() => matchUvmRootsOfTrust(endorsed, root("104")), /SVN 103 .* below the minimum 104/);
  matchUvmRootsOfTrust(endorsed, root("103"));
  matchUvmRootsOfTrust(endorsed, root("9")); // numeric, not string, comparison
  // int_svn.cose states its SVN as a CBOR-free JSON integer (102): compared as a number too.
  refused(() => matchUvmRootsOfTrust(verifyUvmEndorsements(fixture("uvm/int_svn.cose"), UVM_MEASUREMENT), root("103")), /SVN 102/);
});

test("a flipped signature byte is refused", () => {
  const corrupted = Buffer.from(UVM_0_2_9);
  corrupted[corrupted.length - 10] ^= 1; // the signature is the last element of the COSE array
  refused(() => verifyUvmEndorsements(corrupted, UVM_MEASUREMENT), /COSE signature is not by the key of issuer/);
});

test("a changed payload (the endorsed measurement) breaks the signature", () => {
  const at = UVM_0_2_9.indexOf(Buffer.from(UVM_MEASUREMENT));
  assert.ok(at > 0);
  const corrupted = Buffer.from(UVM_0_2_9);
  corrupted[at] = "e".charCodeAt(0); // d0c9… -> e0c9…
  refused(() => verifyUvmEndorsements(corrupted, `e${UVM_MEASUREMENT.slice(1)}`), /COSE signature is not by the key/);
});

test("an endorsement of another measurement is refused (the report's measurement is bound)", () => {
  refused(() => verifyUvmEndorsements(UVM_0_2_9, VECTORS[0].measurement), /endorsed launch measurement d0c9e2be.* is not the report's measurement 02c3b0d5/);
});

test("a truncated or non-COSE document is refused", () => {
  refused(() => verifyUvmEndorsements(UVM_0_2_9.subarray(0, 500), UVM_MEASUREMENT), /not a COSE Sign1 document/);
  refused(() => verifyUvmEndorsements(Buffer.from("{}"), UVM_MEASUREMENT), /not a COSE Sign1 document/);
});

test("DID:x509 resolution checks the CA fingerprint, the EKU and the chain", () => {
  const chain = x5chain(UVM_0_2_9);
  assert.equal(chain.length, 3);
  const leafKey = resolveDidX509(AKS_DID, chain);
  assert.equal(leafKey.asymmetricKeyType, "rsa");
  refused(() => resolveDidX509(AKS_DID.replace("I__iuL25", "J__iuL25"), chain), /no CA certificate of the x5chain has the sha256 fingerprint/);
  const leafFingerprint = createHash("sha256").update(chain[0]!).digest("base64url");
  refused(() => resolveDidX509(`did:x509:0:sha256:${leafFingerprint}::eku:1.3.6.1.4.1.311.76.59.1.2`, chain), /no CA certificate/); // the leaf does not count
  refused(() => resolveDidX509(AKS_DID.replace("59.1.2", "59.1.9"), chain), /no extended key usage 1\.3\.6\.1\.4\.1\.311\.76\.59\.1\.9/);
  refused(() => resolveDidX509(`${AKS_DID}::subject:CN:Someone%20Else`, chain), /subject has no CN=Someone Else/);
  assert.equal(resolveDidX509(`${AKS_DID}::subject:CN:ContainerPlat::subject:O:Microsoft%20Corporation:ST:Washington`, chain).asymmetricKeyType, "rsa"); // percent-decoded
  refused(() => resolveDidX509(`${AKS_DID}::subject:CN:Container`, chain), /subject has no CN=Container/); // equality, not a substring
  refused(() => resolveDidX509(AKS_DID, [chain[0]!, chain[2]!]), /certificate 0 .* is not signed by certificate 1/); // intermediate missing
  refused(() => resolveDidX509(AKS_DID, [chain[0]!]), /at least one CA certificate/);
  refused(() => resolveDidX509(AKS_DID.replace("::eku", "::san"), chain), /not supported/);
  refused(() => resolveDidX509("did:web:example.com", chain), /is not did:x509/);
});

const HOST_DATA = MILAN_REPORT.subarray(O.hostData, O.hostData + 32).toString("hex");

function allowLists(roots: UvmRootOfTrust[], measurements: string[] = []): SnpAllowLists {
  return { hasMeasurement: (m) => measurements.includes(m), hasHostData: (h) => h === HOST_DATA, minimumTcb: () => ({ boot_loader: 0, tee: 0, snp: 0, microcode: 0 }), uvmRootsOfTrust: () => roots };
}

test("at join, UVM endorsements replace the measurement allow list: governance's (did, feed, svn) decides", async () => {
  // A real report cannot carry the UVM's measurement and our key: the test chain re-signs the
  // real Milan report with both, then the real UVM endorsement is checked against it.
  const chain = await milanLikeChain();
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
  const keyDigest = createHash("sha256").update(publicKey.export({ type: "spki", format: "der" })).digest();
  const report = chain.sign(withBytes(withBytes(MILAN_REPORT, O.measurement, Buffer.from(UVM_MEASUREMENT, "hex")), O.reportData, keyDigest));
  const quoteInfo = { format: SNP_FORMAT, quote: report.toString("base64"), endorsements: Buffer.from(chain.endorsementsPem).toString("base64"), uvm_endorsements: UVM_0_2_9.toString("base64") };
  const options = { nowMs: FIXTURE_TIME_MS, rootKeysForTests: chain.rootKeys };
  const admit = (allow: SnpAllowLists) => admitSnpEvidence(quoteInfo, allow, keyDigest.toString("hex"), options);
  refused(() => admit(allowLists([])), /issuer .* is not trusted .*add_snp_uvm_endorsement/);
  refused(() => admit(allowLists([{ did: AKS_DID, feed: "ContainerPlat-AMD-UVM", svn: "104" }])), /below the minimum 104/);
  const admitted = admit(allowLists([{ did: AKS_DID, feed: "ContainerPlat-AMD-UVM", svn: "100" }]));
  assert.deepEqual(admitted.uvmEndorsements, { did: AKS_DID, feed: "ContainerPlat-AMD-UVM", svn: "103" });
  assert.equal(admitted.measurementHex, UVM_MEASUREMENT); // admitted although no add_snp_measurement allows it
  // Without UVM endorsements the same report needs the measurement itself to be allowed.
  const { uvm_endorsements: _u, ...bare } = quoteInfo;
  assert.throws(() => admitSnpEvidence(bare, allowLists([{ did: AKS_DID, feed: "ContainerPlat-AMD-UVM", svn: "100" }]), keyDigest.toString("hex"), options), /\(measurement\)/);
});

test("at join, real SEV-SNP evidence with a real UVM endorsement of another measurement is refused for the binding", () => {
  const quoteInfo = { format: SNP_FORMAT, quote: MILAN_REPORT.toString("base64"), endorsements: Buffer.from(MILAN_ENDORSEMENTS).toString("base64"), uvm_endorsements: UVM_0_2_9.toString("base64") };
  refused(() => admitSnpEvidence(quoteInfo, allowLists([...DEFAULT_UVM_ROOTS_OF_TRUST]), "ab".repeat(32), { nowMs: FIXTURE_TIME_MS }), /not the report's measurement 5feee30d/);
});
