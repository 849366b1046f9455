// The evidence a node presents when it starts a service or joins one, on its configured
// platform (virtual, SEV-SNP, TDX), and what the first node of a service trusts in genesis:
// its own platform's measurement, as CCF's first node does.
import { CocoError } from "../util/index.js";
import type { Transaction } from "../kv/index.js";
import { virtualEvidence, VIRTUAL_FORMAT, VIRTUAL_HOST_DATA_MAP, VIRTUAL_MEASUREMENT, VIRTUAL_MEASUREMENTS_MAP } from "./join.js";
import { snpNodeEvidence, type NodeEvidence, type PlatformConfig } from "./platform.js";
import { tdxNodeEvidence } from "./platform-tdx.js";
import { TDX_MEASUREMENTS_MAP, trustGenesisSnpPlatform } from "./attestation-tables.js";

export interface EvidenceConfig {
  platform: PlatformConfig;
  virtualHostData: string;
  /** Tests only: a format other than Insecure_Virtual is claimed with an empty quote. */
  attestationFormat?: string;
}

/** This node's evidence for `nodePublicKeyPem`. `purpose` "start" refuses evidence that does not bind the key. */
export function nodeEvidence(config: EvidenceConfig, nodePublicKeyPem: string, purpose: "start" | "join", nowMs: number = Date.now()): NodeEvidence {
  const platform = config.platform;
  if (platform.kind === "snp") return snpNodeEvidence(platform, nodePublicKeyPem);
  if (platform.kind === "tdx") {
    const { quoteInfo, verified, bindsNodeKey } = tdxNodeEvidence(platform, nodePublicKeyPem, { nowMs });
    if (!bindsNodeKey && purpose === "start") {
      throw new CocoError("PlatformUnavailable", "attestation.tdx_quote_file does not bind this node's key: a service cannot be started on it (use configfs-tsm on a TDX guest).", 500);
    }
    return { kind: "tdx", quoteInfo, verified };
  }
  if (config.attestationFormat !== undefined && config.attestationFormat !== VIRTUAL_FORMAT) {
    return { kind: "virtual", quoteInfo: { format: config.attestationFormat, quote: "" } };
  }
  return { kind: "virtual", quoteInfo: virtualEvidence(nodePublicKeyPem, config.virtualHostData) };
}

/** Genesis: the first node's own platform is trusted; no other platform is until members add it. */
export function trustGenesisPlatform(tx: Transaction, evidence: NodeEvidence, virtualHostData: string): void {
  if (evidence.kind === "snp") {
    trustGenesisSnpPlatform(tx, evidence.verified);
  } else if (evidence.kind === "tdx") {
    tx.set(TDX_MEASUREMENTS_MAP, Buffer.from(evidence.verified.measurementHex), Buffer.from(JSON.stringify({})));
  } else {
    tx.set(VIRTUAL_MEASUREMENTS_MAP, Buffer.from(VIRTUAL_MEASUREMENT), Buffer.from(JSON.stringify("AllowedToJoin")));
    // CCF keeps this table as a set: 8 zero bytes as the value.
    tx.set(VIRTUAL_HOST_DATA_MAP, Buffer.from(virtualHostData), Buffer.alloc(8));
  }
}
