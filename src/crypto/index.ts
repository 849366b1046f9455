// Public face of the crypto layer: every other folder imports cryptography from here only.
// Thin wrappers over node:crypto, @noble/curves (prehashed ECDSA) and @peculiar/x509.
export * from "./hash.js";
export * from "./aead.js";
export * from "./keys.js";
export * from "./signatures.js";
export * from "./x509.js";
export * from "./cose.js";
export * from "./wrap.js";
export * from "./x509-endorse.js";
