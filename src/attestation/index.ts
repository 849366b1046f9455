// Public face of the attestation layer: evidence of what a node runs and where (AMD SEV-SNP
// reports, Intel TDX/SGX DCAP quotes) verified against vendor roots, and admission against the
// allow lists governance keeps. Below node/, rpc/ and js/; uses crypto/ and util/ only.
export * from "./errors.js";
export * from "./snp-report.js";
export * from "./snp-tcb.js";
export * from "./snp-roots.js";
export * from "./snp-endorsements.js";
export * from "./snp-verify.js";
export * from "./admission.js";
export * from "./ccf-result.js";
export * from "./dcap.js";
export * from "./did-x509.js";
export * from "./uvm-endorsements.js";
export * from "./tdx-admission.js";
