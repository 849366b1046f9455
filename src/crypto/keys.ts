// EC P-384 key pairs as PEM strings (PKCS#8 private, SPKI public): the identity keys of
// services, nodes, members and users. PEM is the interchange format CCF tools use.
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from "node:crypto";
import { CocoError } from "../util/errors.js";

export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

export function generateEcP384KeyPair(): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync("ec", {
    namedCurve: "P-384",
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** The SPKI PEM of the key a certificate certifies. */
export function publicKeyPemFromCertificate(certPem: string): string {
  return parseCertificate(certPem).publicKey.export({ type: "spki", format: "pem" }).toString();
}

/** SPKI DER of a public key (also accepts a private key or certificate PEM and takes its public half). */
export function publicKeyDer(publicKeyPem: string): Buffer {
  return publicKeyObject(publicKeyPem).export({ type: "spki", format: "der" });
}

/** Public key object from a public key, private key or certificate PEM. */
export function publicKeyObject(pem: string): KeyObject {
  try {
    if (pem.includes("BEGIN CERTIFICATE")) return new X509Certificate(pem).publicKey;
    return createPublicKey(pem);
  } catch (cause) {
    throw new CocoError("InvalidInput", "Not a valid PEM public key, private key or certificate.", 400, { cause });
  }
}

export function privateKeyObject(privateKeyPem: string): KeyObject {
  try {
    return createPrivateKey(privateKeyPem);
  } catch (cause) {
    throw new CocoError("InvalidInput", "Not a valid PEM private key (PKCS#8 or SEC1 expected).", 400, { cause });
  }
}

/**
 * `convert(pem)`, remembered in `cache` (emptied when it reaches `max` entries, since callers may
 * pass many distinct keys, e.g. a verifier walking an old ledger).
 */
export function cachedByPem<T>(cache: Map<string, T>, pem: string, convert: (pem: string) => T, max = 64): T {
  let value = cache.get(pem);
  if (value === undefined) {
    value = convert(pem);
    if (cache.size >= max) cache.clear();
    cache.set(pem, value);
  }
  return value;
}

const privateKeys = new Map<string, KeyObject>();

/**
 * privateKeyObject, remembered: a node signs with the same two keys (node and service) at every
 * signature transaction, and parsing the PEM each time took ~0.3 ms of the entry worker's CPU
 * per signature (as much as the COSE signature's own arithmetic).
 */
export function cachedPrivateKeyObject(privateKeyPem: string): KeyObject {
  return cachedByPem(privateKeys, privateKeyPem, privateKeyObject);
}

export function parseCertificate(certPem: string): X509Certificate {
  try {
    return new X509Certificate(certPem);
  } catch (cause) {
    throw new CocoError("InvalidInput", "Not a valid PEM X.509 certificate.", 400, { cause });
  }
}
