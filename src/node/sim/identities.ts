// Keys and certificates for the shell simulator's nodes, made once per process: a service
// identity and node certificates it endorses, so the engine's signature checks run for real.
import { createHmac } from "node:crypto";
import type { RootSignatures } from "../engine.js";
import { publicKeyPemFromCertificate, createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey, randomBytes } from "../../crypto/index.js";

export interface SimIdentities {
  readonly serviceCertPem: string;
  readonly ledgerSecret: Buffer;
  readonly nodes: readonly { nodeId: string; privateKeyPem: string; certPem: string }[];
}

export async function makeSimIdentities(count: number): Promise<SimIdentities> {
  const serviceKeys = generateEcP384KeyPair();
  const serviceCertPem = await createServiceCertificate(serviceKeys, {});
  const nodes = [];
  for (let i = 0; i < count; i++) {
    const keys = generateEcP384KeyPair();
    const certPem = await createNodeCertificate({ nodePublicKeyPem: keys.publicKeyPem, serviceKeys, serviceCertPem, ipAddresses: ["127.0.0.1"] });
    nodes.push({ nodeId: nodeIdFromPublicKey(keys.publicKeyPem), privateKeyPem: keys.privateKeyPem, certPem });
  }
  // Sorted by id: voter sets are kept sorted, so n1 < n2 < ... makes every run of a seed take
  // the same decisions whatever random keys this process drew.
  nodes.sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
  return { serviceCertPem, ledgerSecret: randomBytes(32), nodes };
}

/**
 * The simulator's root signatures: an HMAC keyed by the signer's public key, so a backup checks
 * exactly what it would check with ECDSA (this root, this node) at a thousandth of the cost.
 * It proves nothing cryptographically, and only the simulator uses it.
 */
export function simRootSignatures(identities: SimIdentities): RootSignatures {
  const publicByPrivate = new Map(identities.nodes.map((n) => [n.privateKeyPem, publicKeyPemFromCertificate(n.certPem)]));
  const mac = (publicKeyPem: string, root: Buffer) => createHmac("sha256", publicKeyPem).update(root).digest();
  return {
    sign: (privateKeyPem, root) => mac(publicByPrivate.get(privateKeyPem)!, root),
    verify: (publicKeyPem, root, signature) => mac(publicKeyPem, root).equals(signature),
  };
}
