// Type declarations of what CCF 6.0 LTS's `ccf` global offers beyond @microsoft/ccf-app 6.0.1's
// global.d.ts (the last types on npm): `ccf.tcbHexToPolicy` (6.0.9) and `ccf.gov` (the
// governance helpers the default constitution calls). Type-only: an app written in TypeScript
// declares `ccf` as `CcfLts` to use them; test/unit/js/ccf-app-types.test.ts typechecks and
// runs such an app in the sandbox.
import type { CCF } from "@microsoft/ccf-app/global.js";

/** CCF's TCB version policy: each component's minimum, and the hex form it came from. */
export interface TcbVersionPolicy {
  boot_loader?: number;
  tee?: number;
  snp?: number;
  microcode?: number;
  fmc?: number;
  hexstring?: string;
}

export interface CcfGov {
  /**
   * True if `constitution` is an ES module exporting validate(input), resolve(proposal,
   * proposerId, votes[, proposalId]) and apply(proposal, proposerId); otherwise throws a
   * TypeError naming what is wrong. Available while a constitution's validate runs.
   */
  validateConstitution(constitution: string): boolean;
}

export interface CcfLtsAdditions {
  /** The TCB policy of a 16-hex-character TCB version for the SEV-SNP family of `cpuid` (8 hex characters). */
  tcbHexToPolicy(cpuid: string, tcbVersion: string): TcbVersionPolicy;
  gov: CcfGov;
}

/** The `ccf` global of CCF 6.0 LTS as Coco provides it. */
export type CcfLts = CCF & CcfLtsAdditions;
