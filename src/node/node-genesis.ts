// The genesis transaction of a new service, written by its first node (see writeGenesis).
import { readFileSync } from "node:fs";
import { certificateFingerprint, createCertificateSigningRequest } from "../crypto/index.js";
import { CONSTITUTION_MAP, defaultConstitutionSource, loadConstitutionFiles } from "../governance/index.js";
import { MEMBERS_CERTS_MAP } from "../rpc/index.js";
import { rpcInterfacesRecord, type ResolvedConfig } from "./config.js";
import { RAFT_CONFIGURATION_MAP, type TransactionEngine } from "./engine.js";
import type { NodeIdentity } from "./identity.js";
import { ENDORSED_CERTS_MAP, NODES_INFO_MAP } from "./join.js";
import { nodeEvidence, trustGenesisPlatform } from "./node-evidence.js";
import { SINGLETON_KEY } from "./signatures.js";

/**
 * The genesis transaction of a new service, as CCF's first node writes it: the members of the
 * start configuration (status Accepted until each acknowledges the service state), the
 * constitution, this node (Trusted) and the service (Opening). Users, apps and the opening of
 * the service come later, through proposals.
 */
export function writeGenesis(engine: TransactionEngine, identity: NodeIdentity, config: ResolvedConfig, nodeToNodeAddress: string | undefined, csrPem: string): void {
  const tx = engine.store.begin();
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  for (const member of config.genesis.members) {
    const pem = readFileSync(member.certificateFile, "utf8");
    const id = certificateFingerprint(pem);
    tx.set(MEMBERS_CERTS_MAP, Buffer.from(id), Buffer.from(pem));
    const memberData = member.dataJsonFile ? JSON.parse(readFileSync(member.dataJsonFile, "utf8")) as unknown : null;
    tx.set("public:ccf.gov.members.info", Buffer.from(id), json({ status: "Accepted", member_data: memberData }));
    tx.set("public:ccf.gov.members.acks", Buffer.from(id), json({ state_digest: "" }));
    if (member.encryptionPublicKeyFile) {
      tx.set("public:ccf.gov.members.encryption_public_keys", Buffer.from(id), Buffer.from(readFileSync(member.encryptionPublicKeyFile, "utf8")));
    }
  }
  const constitution = config.genesis.constitutionFiles.length > 0
    ? loadConstitutionFiles(config.genesis.constitutionFiles)
    : defaultConstitutionSource();
  tx.set(CONSTITUTION_MAP, SINGLETON_KEY, json(constitution));
  // CCF's service configuration (the constitution's set_recovery_threshold and node actions
  // read it). The threshold defaults to 1 when any member can hold a recovery share.
  const recoveryMembers = config.genesis.members.filter((m) => m.encryptionPublicKeyFile !== undefined).length;
  tx.set("public:ccf.gov.service.config", SINGLETON_KEY, json({
    consensus: "CFT",
    reconfiguration_type: "OneTransaction",
    recovery_threshold: config.genesis.recoveryThreshold ?? (recoveryMembers > 0 ? 1 : 0),
    maximum_node_certificate_validity_days: 365,
    maximum_service_certificate_validity_days: 365,
    recent_cose_proposals_window_size: 100,
  }));
  const evidence = nodeEvidence(config, identity.nodeKeys.publicKeyPem, "start");
  tx.set(NODES_INFO_MAP, Buffer.from(identity.nodeId), json({
    cert: identity.nodeCertPem,
    status: "Trusted",
    certificate_signing_request: csrPem,
    quote_info: evidence.quoteInfo,
    encryption_pub_key: identity.encryptionKeys.publicKeyPem,
    node_data: null,
    rpc_interfaces: rpcInterfacesRecord(config),
    ...(nodeToNodeAddress ? { node_to_node_interface: { bind_address: nodeToNodeAddress, ...(config.nodeToNode?.publishedAddress ? { published_address: config.nodeToNode.publishedAddress } : {}) } } : {}),
  }));
  tx.set(ENDORSED_CERTS_MAP, Buffer.from(identity.nodeId), Buffer.from(identity.nodeCertPem));
  // As CCF does for the first node: its own platform is trusted from the start.
  trustGenesisPlatform(tx, evidence, config.virtualHostData);
  tx.set(RAFT_CONFIGURATION_MAP, SINGLETON_KEY, json([identity.nodeId]));
  tx.set("public:ccf.gov.service.info", SINGLETON_KEY, json({
    cert: identity.serviceCertPem,
    status: "Opening",
    recovery_count: 0,
    service_data: null,
  }));
  engine.commit(tx);
}


/**
 * The first node's certificate signing request, recorded at genesis as CCF records it: governance
 * renews the node's certificate from it (set_node_certificate_validity, set_all_nodes_certificate_validity).
 */
export async function genesisCertificateSigningRequest(identity: NodeIdentity, config: ResolvedConfig): Promise<string> {
  return createCertificateSigningRequest(identity.nodeKeys, {
    commonName: config.nodeCertificate.subjectName,
    ipAddresses: config.nodeCertificate.ipAddresses,
    dnsNames: config.nodeCertificate.dnsNames,
  });
}
