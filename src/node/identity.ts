// The node's identity and secrets on disk. A new service makes its service key and
// certificate, the node key and a node certificate endorsed by the service key, and the ledger
// secret. The service key and ledger secret never touch disk in the clear: they are sealed
// (AES-256-GCM) under a key derived from the node key. On the `virtual` platform the node key
// is a file, so sealing only protects against copies of the workspace without node.key; on a
// real TEE the sealing key comes from the hardware instead (platform layer, later).
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join, dirname } from "node:path";
import { createPrivateKey, createPublicKey } from "node:crypto";
import {
  AesGcmKey, createCertificateSigningRequest, createIdentityCertificate, createNodeCertificate, createServiceCertificate,
  generateEcP384KeyPair, generateRsaEncryptionKeyPair, hkdfSha256, nodeIdFromPublicKey, randomBytes, type KeyPairPem,
} from "../crypto/index.js";
import type { JoinResult, JoinerIdentity } from "./join.js";
import { CocoError } from "../util/index.js";
import type { LedgerSecretVersion } from "../ledger/index.js";
import type { ResolvedConfig } from "./config.js";

export interface NodeIdentity {
  readonly nodeId: string;
  readonly nodeKeys: KeyPairPem;
  readonly nodeCertPem: string;
  /** RSA key pair other nodes wrap secrets to (ledger secrets after a rekey). */
  readonly encryptionKeys: KeyPairPem;
  readonly serviceKeys: KeyPairPem;
  readonly serviceCertPem: string;
  /** Every ledger secret of the service, each with the first seqno it encrypts. */
  readonly ledgerSecrets: LedgerSecretVersion[];
  /** True when this start created the service (genesis must be written). */
  readonly isNewService: boolean;
}

interface SealedSecrets {
  service_private_key_pem: string;
  service_public_key_pem: string;
  /** The first ledger secret (base64); later ones, after rekeys, are in ledger_secrets. */
  ledger_secret: string;
  ledger_secrets?: { from_seqno: number; secret: string }[];
}

const SEALED_FILE = "sealed_secrets.json";
const ENCRYPTION_KEY_FILE = "node_encryption.key";

function loadOrCreateEncryptionKeys(workspace: string): KeyPairPem {
  const file = join(workspace, ENCRYPTION_KEY_FILE);
  if (existsSync(file)) {
    const privateKeyPem = readFileSync(file, "utf8");
    return { privateKeyPem, publicKeyPem: createPublicKey(privateKeyPem).export({ format: "pem", type: "spki" }).toString() };
  }
  const keys = generateRsaEncryptionKeyPair();
  writeFileAtomic(file, keys.privateKeyPem, 0o600);
  return keys;
}

/** True when this workspace already holds a node identity (a restart rather than a first start). */
export function hasIdentity(config: ResolvedConfig): boolean {
  return existsSync(join(config.workspace, "node.key")) && existsSync(join(config.workspace, SEALED_FILE));
}

/** A joining node's fresh keys, self-signed certificate (for the join call) and CSR. */
export async function createJoinerIdentity(config: ResolvedConfig): Promise<JoinerIdentity> {
  const nodeKeys = generateEcP384KeyPair();
  const selfSignedCertPem = await createIdentityCertificate(nodeKeys, config.nodeCertificate.subjectName);
  const csrPem = await createCertificateSigningRequest(nodeKeys, {
    commonName: config.nodeCertificate.subjectName,
    ipAddresses: config.nodeCertificate.ipAddresses,
    dnsNames: config.nodeCertificate.dnsNames,
  });
  return { nodeKeys, selfSignedCertPem, csrPem, encryptionKeys: generateRsaEncryptionKeyPair() };
}

/** Persists what a join brought (the service key and ledger secrets sealed), then returns the identity. */
export function saveJoinedIdentity(config: ResolvedConfig, joiner: JoinerIdentity, result: JoinResult, serviceCertPem: string): NodeIdentity {
  writeFileAtomic(join(config.workspace, ENCRYPTION_KEY_FILE), joiner.encryptionKeys.privateKeyPem, 0o600);
  writeFileAtomic(join(config.workspace, "node.pem"), result.endorsedCertPem, 0o644);
  seal(join(config.workspace, SEALED_FILE), joiner.nodeKeys, {
    service_private_key_pem: result.serviceKeys.privateKeyPem,
    service_public_key_pem: result.serviceKeys.publicKeyPem,
    ledger_secret: result.ledgerSecrets[0]!.raw.toString("base64"),
    ledger_secrets: result.ledgerSecrets.map((v) => ({ from_seqno: v.fromSeqno, secret: v.raw.toString("base64") })),
  });
  // node.key last: its presence (with the sealed file) marks the join as complete.
  writeFileAtomic(join(config.workspace, "node.key"), joiner.nodeKeys.privateKeyPem, 0o600);
  return {
    nodeId: result.nodeId, nodeKeys: joiner.nodeKeys, nodeCertPem: result.endorsedCertPem, encryptionKeys: joiner.encryptionKeys,
    serviceKeys: result.serviceKeys, serviceCertPem, ledgerSecrets: result.ledgerSecrets, isNewService: false,
  };
}
const SEAL_SALT = Buffer.from("coco-virtual-sealing-v1");

function sealingKey(nodePrivateKeyPem: string): AesGcmKey {
  const der = createPrivateKey(nodePrivateKeyPem).export({ format: "der", type: "pkcs8" });
  return new AesGcmKey(hkdfSha256(der, SEAL_SALT, Buffer.from("sealed secrets"), 32));
}

/** Writes a file atomically (temp file + rename) so that a crash never leaves half a key. */
function writeFileAtomic(path: string, data: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  // fsync the data before the rename and the directory after it: a secret must be on disk
  // before any ledger entry encrypted with it can be.
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dir = openSync(dirname(path), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

function seal(path: string, nodeKeys: KeyPairPem, secrets: SealedSecrets): void {
  const iv = randomBytes(12);
  const sealed = sealingKey(nodeKeys.privateKeyPem).seal(iv, Buffer.from(JSON.stringify(secrets)), SEAL_SALT);
  writeFileAtomic(path, JSON.stringify({ version: 1, iv: iv.toString("base64"), sealed: sealed.toString("base64") }), 0o600);
}

function unseal(path: string, nodeKeys: KeyPairPem): SealedSecrets {
  try {
    const file = JSON.parse(readFileSync(path, "utf8")) as { iv: string; sealed: string };
    const plain = sealingKey(nodeKeys.privateKeyPem).open(Buffer.from(file.iv, "base64"), Buffer.from(file.sealed, "base64"), SEAL_SALT);
    return JSON.parse(plain.toString("utf8")) as SealedSecrets;
  } catch (error) {
    throw new CocoError("SealedSecretsUnreadable",
      `Cannot unseal '${path}' with this node's key (${(error as Error).message}). The file or node.key was altered or comes from another node; restore both from the same backup.`, 500);
  }
}

export async function loadOrCreateIdentity(config: ResolvedConfig, ledgerHasEntries: boolean): Promise<NodeIdentity> {
  const keyFile = join(config.workspace, "node.key");
  const certFile = join(config.workspace, "node.pem");
  const sealedFile = join(config.workspace, SEALED_FILE);
  if (existsSync(keyFile) && existsSync(sealedFile)) {
    const privateKeyPem = readFileSync(keyFile, "utf8");
    const publicKeyPem = createPublicKey(privateKeyPem).export({ format: "pem", type: "spki" }).toString();
    const nodeKeys = { privateKeyPem, publicKeyPem };
    const secrets = unseal(sealedFile, nodeKeys);
    if (!existsSync(config.serviceCertificateFile)) {
      throw new CocoError("InvalidConfiguration", `Service certificate '${config.serviceCertificateFile}' is missing; restore it (it is public) from any member.`, 400);
    }
    return {
      nodeId: nodeIdFromPublicKey(publicKeyPem),
      nodeKeys,
      nodeCertPem: readFileSync(certFile, "utf8"),
      encryptionKeys: loadOrCreateEncryptionKeys(config.workspace),
      serviceKeys: { privateKeyPem: secrets.service_private_key_pem, publicKeyPem: secrets.service_public_key_pem },
      serviceCertPem: readFileSync(config.serviceCertificateFile, "utf8"),
      ledgerSecrets: secrets.ledger_secrets?.map((v) => ({ fromSeqno: v.from_seqno, raw: Buffer.from(v.secret, "base64") }))
        ?? [{ fromSeqno: 1, raw: Buffer.from(secrets.ledger_secret, "base64") }],
      isNewService: false,
    };
  }
  if (ledgerHasEntries) {
    throw new CocoError("LedgerWithoutSecrets",
      `The ledger directory '${config.ledgerDirectory}' holds entries but this workspace has no node key and sealed secrets to read them. Restore node.key and ${SEALED_FILE}, or start from an empty ledger directory.`, 400);
  }
  return createServiceIdentity(config, 1);
}

/**
 * A new service identity (service key and certificate, node key and certificate, ledger secret
 * used from `ledgerSecretFromSeqno`), sealed to the workspace: a new service's (from seqno 1),
 * or a recovered service's, whose secret starts after the previous services' ledger.
 */
export async function createServiceIdentity(config: ResolvedConfig, ledgerSecretFromSeqno: number): Promise<NodeIdentity> {
  const keyFile = join(config.workspace, "node.key");
  const certFile = join(config.workspace, "node.pem");
  const sealedFile = join(config.workspace, SEALED_FILE);
  const serviceKeys = generateEcP384KeyPair();
  const serviceCertPem = await createServiceCertificate(serviceKeys, {});
  const nodeKeys = generateEcP384KeyPair();
  const nodeCertPem = await createNodeCertificate({
    nodePublicKeyPem: nodeKeys.publicKeyPem,
    serviceKeys,
    serviceCertPem,
    commonName: config.nodeCertificate.subjectName,
    ipAddresses: config.nodeCertificate.ipAddresses,
    dnsNames: config.nodeCertificate.dnsNames,
  });
  const ledgerSecret = randomBytes(32);
  writeFileAtomic(keyFile, nodeKeys.privateKeyPem, 0o600);
  writeFileAtomic(certFile, nodeCertPem, 0o644);
  seal(sealedFile, nodeKeys, {
    service_private_key_pem: serviceKeys.privateKeyPem,
    service_public_key_pem: serviceKeys.publicKeyPem,
    ledger_secret: ledgerSecret.toString("base64"),
    ledger_secrets: [{ from_seqno: ledgerSecretFromSeqno, secret: ledgerSecret.toString("base64") }],
  });
  writeFileAtomic(config.serviceCertificateFile, serviceCertPem, 0o644);
  return {
    nodeId: nodeIdFromPublicKey(nodeKeys.publicKeyPem), nodeKeys, nodeCertPem, encryptionKeys: loadOrCreateEncryptionKeys(config.workspace), serviceKeys, serviceCertPem,
    ledgerSecrets: [{ fromSeqno: ledgerSecretFromSeqno, raw: ledgerSecret }], isNewService: true,
  };
}

/** Re-seals the service key and every ledger secret (after a rekey), atomically. */
export function resealSecrets(config: ResolvedConfig, identity: NodeIdentity, ledgerSecrets: readonly LedgerSecretVersion[]): void {
  seal(join(config.workspace, SEALED_FILE), identity.nodeKeys, {
    service_private_key_pem: identity.serviceKeys.privateKeyPem,
    service_public_key_pem: identity.serviceKeys.publicKeyPem,
    ledger_secret: ledgerSecrets[0]!.raw.toString("base64"),
    ledger_secrets: ledgerSecrets.map((v) => ({ from_seqno: v.fromSeqno, secret: v.raw.toString("base64") })),
  });
}
