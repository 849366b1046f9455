// A node's identity for tests that drive an engine directly: a fresh service certificate, and a
// node key and certificate issued by it.
import { createNodeCertificate, createServiceCertificate, generateEcP384KeyPair, nodeIdFromPublicKey } from "../../src/crypto/index.js";

export async function testNodeIdentity() {
  const serviceKeys = generateEcP384KeyPair();
  const serviceCertPem = await createServiceCertificate(serviceKeys, {});
  const nodeKeys = generateEcP384KeyPair();
  const nodeCertPem = await createNodeCertificate({ nodePublicKeyPem: nodeKeys.publicKeyPem, serviceKeys, serviceCertPem, ipAddresses: ["127.0.0.1"] });
  return { serviceCertPem, nodeKeys, nodeCertPem, nodeId: nodeIdFromPublicKey(nodeKeys.publicKeyPem) };
}

export type TestNodeIdentity = Awaited<ReturnType<typeof testNodeIdentity>>;
