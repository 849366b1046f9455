// The sandbox's disaster recovery, as CCF's sandbox.sh --recover does it: a workspace whose
// service stopped (Ctrl-C, SIGKILL, power loss) comes back only through recovery. The previous
// node's keys are set aside, node 0 starts with command Recover on the ledger, and member0 does
// its steps itself: it proposes and accepts transition_service_to_open, then fetches, decrypts
// and submits its recovery share. The service opens with a new identity (service_cert.pem).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateRsaEncryptionKeyPair } from "../crypto/index.js";
import { GovernanceClient, submitMemberRecoveryShare } from "../client/index.js";
import type { NodeConfigFile } from "../node/config.js";
import type { CocoNode } from "../node/node.js";

export const MEMBER0_ENC_PUBLIC_KEY = "member0_enc_pubk.pem";
export const MEMBER0_ENC_PRIVATE_KEY = "member0_enc_privk.pem";
const PREVIOUS_SERVICE_CERT = "previous_service_cert.pem";
/** Files of node 0's identity in the workspace: a recovering node makes new ones. */
const NODE_IDENTITY_FILES = ["node.key", "node.pem", "sealed_secrets.json", "node_encryption.key", "consensus_state.json", "peers.json"];
/** How long member0's steps may wait for the recovered service to reach each status. */
const RECOVERY_STEP_TIMEOUT_MS = 120_000;

/** member0's RSA encryption key pair (CCF's file names): it makes member0 a recovery member. */
export function ensureMember0EncryptionKey(workspace: string): void {
  if (existsSync(join(workspace, MEMBER0_ENC_PUBLIC_KEY)) && existsSync(join(workspace, MEMBER0_ENC_PRIVATE_KEY))) return;
  const keys = generateRsaEncryptionKeyPair();
  writeFileSync(join(workspace, MEMBER0_ENC_PRIVATE_KEY), keys.privateKeyPem, { mode: 0o600 });
  writeFileSync(join(workspace, MEMBER0_ENC_PUBLIC_KEY), keys.publicKeyPem);
}

/**
 * Whether this workspace's stopped service can be recovered: it has a ledger, the service
 * certificate and member0's encryption key (workspaces made before the sandbox had recovery
 * members restart from disk instead).
 */
export function canRecover(workspace: string): boolean {
  return existsSync(join(workspace, "ledger")) && existsSync(join(workspace, "service_cert.pem"))
    && existsSync(join(workspace, MEMBER0_ENC_PRIVATE_KEY));
}

/** A recovery that did not finish (its node stopped or failed): the next run recovers the same previous service. */
function unfinishedRecovery(workspace: string): boolean {
  try {
    const config = JSON.parse(readFileSync(join(workspace, "config.json"), "utf8")) as NodeConfigFile;
    return config.command.type === "Recover" && existsSync(join(workspace, PREVIOUS_SERVICE_CERT));
  } catch {
    return false;
  }
}

/** After a recovery: the config says Start again (the next run recovers anew from service_cert.pem). */
export function finishRecovery(workspace: string, file: NodeConfigFile, start: NodeConfigFile["command"]): void {
  file.command = start;
  writeFileSync(join(workspace, "config.json"), JSON.stringify(file, null, 2) + "\n");
}

/**
 * Prepares node 0 to recover: the previous service certificate is kept as the identity to
 * recover, node 0's old keys and the joiners' workspaces are moved to retired/<time>/ (they
 * belong to the stopped service), and the config becomes a Recover config.
 */
export function prepareRecovery(workspace: string, file: NodeConfigFile, nodeCount: number): { retiredDir: string } {
  const retiredDir = join(workspace, "retired", new Date().toISOString().replace(/[:.]/g, "-"));
  mkdirSync(retiredDir, { recursive: true });
  // An unfinished recovery may have written a new service_cert.pem already: keep the one it recovers.
  if (!unfinishedRecovery(workspace)) writeFileSync(join(workspace, PREVIOUS_SERVICE_CERT), readFileSync(join(workspace, "service_cert.pem")));
  for (const name of NODE_IDENTITY_FILES) {
    if (existsSync(join(workspace, name))) renameSync(join(workspace, name), join(retiredDir, name));
  }
  // Joiners of the stopped service join the recovered one afresh.
  for (let i = 1; i < Math.max(nodeCount, 64); i++) {
    const dir = join(workspace, `node${i}`);
    if (existsSync(dir)) renameSync(dir, join(retiredDir, `node${i}`));
  }
  file.command = { type: "Recover", service_certificate_file: "service_cert.pem", recover: { previous_service_identity_file: PREVIOUS_SERVICE_CERT } };
  return { retiredDir };
}

/** member0's steps: open the recovered service, then submit its recovery share; waits until Open. */
export async function completeRecoveryAsMember0(workspace: string, url: string, node: CocoNode): Promise<void> {
  const client = new GovernanceClient({
    url,
    serviceCertPem: readFileSync(join(workspace, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(workspace, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(workspace, "member0_privk.pem"), "utf8"),
  });
  try {
    await waitForStatus(node, "Recovering");
    let proposal = await client.propose({
      actions: [{
        name: "transition_service_to_open",
        args: { previous_service_identity: readFileSync(join(workspace, PREVIOUS_SERVICE_CERT), "utf8"), next_service_identity: node.identity.serviceCertPem },
      }],
    });
    if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
    if (proposal.proposalState === "Open") {
      // More members than member0 govern this service: they vote too (docs/recovery.md).
      console.log(`transition_service_to_open (proposal ${proposal.proposalId}) needs other members' votes: ` +
        `coco gov vote ${proposal.proposalId} --accept --url ${url} ...; waiting up to ${RECOVERY_STEP_TIMEOUT_MS / 1000} s`);
    } else if (proposal.proposalState !== "Accepted") {
      throw new Error(`the transition_service_to_open proposal is ${proposal.proposalState}: ${proposal.failure?.reason ?? JSON.stringify(proposal)}`);
    }
    await waitForStatus(node, "WaitingForRecoveryShares");
    const submitted = await submitMemberRecoveryShare(client, readFileSync(join(workspace, MEMBER0_ENC_PRIVATE_KEY), "utf8"));
    if (submitted.submittedCount < submitted.recoveryThreshold) {
      console.log(`member0 submitted its recovery share (${submitted.submittedCount}/${submitted.recoveryThreshold}): the other recovery members ` +
        `submit theirs (coco gov recovery share --member-enc-key ...); waiting up to ${RECOVERY_STEP_TIMEOUT_MS / 1000} s`);
    }
    await waitForStatus(node, "Open");
  } finally {
    await client.close();
  }
}

async function waitForStatus(node: CocoNode, status: string): Promise<void> {
  const deadline = Date.now() + RECOVERY_STEP_TIMEOUT_MS;
  for (;;) {
    const raw = node.engine.store.get("public:ccf.gov.service.info", Buffer.alloc(8));
    const current = raw === undefined ? undefined : (JSON.parse(raw.toString("utf8")) as { status: string }).status;
    if (current === status) return;
    if (Date.now() > deadline) throw new Error(`the recovered service did not reach ${status} within ${RECOVERY_STEP_TIMEOUT_MS / 1000} s (status: ${current}); see node.log`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
