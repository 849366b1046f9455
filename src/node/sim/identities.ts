// Keys and certificates for the shell simulator's nodes, made once per process: a service
// identity and node certificates it endorses, so the engine's signature checks run for real.
import { createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey, randomBytes } from "../../crypto/index.js";

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
