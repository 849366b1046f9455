// Governance on a node: the constitution's runtime, the /gov endpoints, and what governance asks
// of the node itself (rekey, recovery shares, certificates, snapshots, ledger chunks), which all
// goes through GovernanceEffects and the hooks below.
import type { Logger } from "pino";
import { endorseCertificateSigningRequestSync, renewServiceCertificateSync } from "../crypto/index.js";
import { type GovernanceDeps, installGovernanceEndpoints } from "../governance/index.js";
import { JsRuntime } from "../js/index.js";
import type { EndpointRegistry } from "../rpc/index.js";
import type { ResolvedConfig } from "./config.js";
import { LEDGER_CHUNK_REQUESTS_MAP } from "./engine.js";
import { GovernanceEffects } from "./governance-effects.js";
import type { PeerAdmission } from "./membership.js";
import type { OpenedNode } from "./node-open.js";
import { installPreviousIdentityEndpoint, installRecoveryShareEndpoint } from "./recovery-endpoints.js";
import type { Replicator } from "./replication.js";
import { SINGLETON_KEY } from "./signatures.js";
import type { Snapshotter } from "./snapshots.js";

export interface NodeGovernance {
  readonly effects: GovernanceEffects;
  readonly deps: GovernanceDeps;
}

export function installGovernance(registry: EndpointRegistry, parts: {
  opened: OpenedNode; config: ResolvedConfig; logger: Logger;
  replicator: Replicator; admission: PeerAdmission; snapshotter: Snapshotter;
}): NodeGovernance {
  const { opened: { engine, identity, recovery }, config, logger, replicator, admission, snapshotter } = parts;
  // The constitution and ballots run here, isolated from the node (see docs/js-runtime.md).
  const runtime = new JsRuntime({
    timeLimitMs: config.jsTimeLimitMs, memoryLimitMiB: config.jsMemoryLimitMiB,
    // console.* in the constitution and ballots goes to the node log, as CCF logs it.
    console: (level, text) => {
      const details = { constitution: true, console: level };
      if (level === "error") logger.error(details, text);
      else if (level === "warn") logger.warn(details, text);
      else if (level === "debug") logger.debug(details, text);
      else logger.info(details, text);
    },
  });
  // What governance asks of the node (rekey, recovery shares), carried out on commit.
  const effects = new GovernanceEffects(engine, identity, config, logger, () => replicator);
  // Retiring a node rotates the ledger secret once the node has left the configuration (the
  // primary checks after every change of nodes.info or the configurations, and on taking over).
  const rekeyAfterRetirement = () => effects.rekeyIfRetiredNodesKnowSecret();
  admission.onChange(rekeyAfterRetirement);
  replicator.onCommit(() => { if (effects.rekeyAfterRetirementPending) setImmediate(rekeyAfterRetirement); });
  replicator.onRoleChange((change) => { if (change.role === "Primary") setImmediate(rekeyAfterRetirement); });
  const deps: GovernanceDeps = {
    runtime,
    hooks: (kv) => ({
      generateEndorsedCertificate: (csrPem: string, validFrom: string, validityPeriodDays: number) => endorseCertificateSigningRequestSync({
        csrPem, serviceKeys: identity.serviceKeys, serviceCertPem: identity.serviceCertPem,
        ...(validFrom !== undefined ? { validFrom } : {}), validityPeriodDays,
      }),
      generateNetworkCertificate: (validFrom: string, validityPeriodDays: number) => renewServiceCertificateSync({
        serviceKeys: identity.serviceKeys, serviceCertPem: identity.serviceCertPem, validFrom, validityPeriodDays,
      }),
      // CCF refreshes the certificates of ACME-endorsed interfaces; Coco has none, so, as a
      // CCF node configured without any, there is nothing to do once the names are checked.
      triggerAcmeRefresh: (interfaces: string[] | undefined) => {
        if (interfaces !== undefined && !(Array.isArray(interfaces) && interfaces.every((name) => typeof name === "string"))) {
          throw new TypeError("triggerACMERefresh: interfaces must be an array of strings");
        }
      },
      getLatestLedgerSecretSeqno: () => engine.ledgerSecrets[engine.ledgerSecrets.length - 1]!.fromSeqno,
      triggerLedgerRekey: () => effects.requestLedgerRekey(kv),
      triggerRecoverySharesRefresh: () => effects.requestRecoverySharesRefresh(kv),
      // The trigger_snapshot action: a snapshot at the next committed signature (snapshots.ts).
      triggerSnapshot: () => snapshotter.trigger(),
      // trigger_ledger_chunk: recorded in the transaction, so every node ends its chunk at the
      // same signature (engine.persist).
      triggerLedgerChunk: () => kv.set(LEDGER_CHUNK_REQUESTS_MAP, SINGLETON_KEY, Buffer.from("requested")),
    }),
    nowSeconds: () => Math.floor(Date.now() / 1000),
    createdAtWindow: { maxAgeSeconds: config.governance.createdAtMaxAgeSeconds, maxFutureSeconds: config.governance.createdAtMaxFutureSeconds },
    serviceCertPem: identity.serviceCertPem,
    // What members acknowledge: the Merkle root signed by the last signature transaction.
    stateDigest: () => engine.lastSignatureRoot,
  };
  installGovernanceEndpoints(registry, deps);
  effects.installEndpoints(registry);
  installPreviousIdentityEndpoint(registry);
  if (recovery !== undefined) {
    installRecoveryShareEndpoint(registry, recovery, deps);
    recovery.setCommitActions(effects);
  }
  return { effects, deps };
}
