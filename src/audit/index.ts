// Public face of the audit layer: offline checks and readers of a whole ledger directory, for
// auditors and the `coco ledger` commands. Needs no running node.
export { verifyLedger, type VerifyOptions, type VerifyProgress, type VerifyReport } from "./verify.js";
export { AuditProblem, describeLocation, type AuditLocation, type AuditProblemInfo } from "./problem.js";
export { listChunks } from "./chunks.js";
export { readLedger, encodeBytes, type EncodedBytes, type ReadEntry, type ReadOptions, type ReadWrite } from "./read.js";
export { recoverLedgerSecrets, type RecoveredSecrets, type SecretRange } from "./secrets.js";
