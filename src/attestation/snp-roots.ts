// AMD's root keys (ARK) for SEV-SNP, one per processor family, pinned by the SHA-256 of their
// SubjectPublicKeyInfo (DER). A chain is accepted only if it ends at the pinned key of the
// family the report names. Pinning the key, not the certificate, survives AMD re-issuing the
// self-signed ARK certificate with new dates, as CCF also pins the key
// (include/ccf/pal/attestation_sev_snp.h, amd_*_root_signing_public_key).
//
// Sources (AMD Key Distribution Service; the ARK is the last certificate of each chain):
//   Milan: https://kdsintf.amd.com/vcek/v1/Milan/cert_chain
//   Genoa: https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain
//   Turin: https://kdsintf.amd.com/vcek/v1/Turin/cert_chain
// Cross-checked against CCF's pinned keys (microsoft/CCF main, 2025-11) and, for Milan and
// Genoa, against the ARKs of the real chains in test/fixtures/attestation/snp/.
import type { SnpProduct } from "./snp-tcb.js";

export const AMD_ARK_SPKI_SHA256: Readonly<Record<SnpProduct, string>> = {
  Milan: "9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9",
  Genoa: "429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831",
  Turin: "4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08",
};
