// Proposal resolution, as CCF's resolve_proposal: run every ballot's `vote`, hand the votes to
// the constitution's `resolve`, and, once Accepted, run `apply` against an overlay whose writes
// reach the transaction only if apply returns. Deterministic given the transaction: time and
// randomness come from the caller.
import { createHash } from "node:crypto";
import type { Transaction } from "../kv/index.js";
import type { JsRuntime, KvAccess, NodeHooks } from "../js/index.js";
import { CocoError } from "../util/errors.js";
import { removeJwtPublicSigningKeys, setJwtPublicSigningKeys } from "./jwt-keys.js";
import { OverlayKv, readOnlyKv } from "./overlay-kv.js";
import { governanceKv } from "./kv-permissions.js";
import {
  type Failure, type ProposalInfo, type ProposalState, type ServiceInfo,
  jsonBytes, parseJson, readConstitution, readJson, SINGLETON_KEY, TABLES, utf8, writeJson,
} from "./tables.js";

/** Node hooks for a governance call; given the KV the call writes through (the apply overlay). */
export type GovernanceHooks = Partial<NodeHooks> | ((kv: KvAccess) => Partial<NodeHooks>);

export interface ResolveContext {
  runtime: JsRuntime;
  nowMs: number;
  hooks?: GovernanceHooks;
}

const TIMEOUT_REASON = "Operation took too long to complete.";
const RESOLVABLE_STATES: ReadonlySet<string> = new Set<ProposalState>(["Open", "Accepted", "Rejected"]);

const sha256Hex = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/** CCF's (reason, trace) of a JS exception; a timeout gets CCF's fixed reason. */
function sandboxFrames(stack: string | undefined): string | undefined {
  if (stack === undefined) return undefined;
  const lines = stack.split("\n").filter((line) => !/\((?:file|node):|at (?:file|node):|node:internal|\/dist\/|\/src\//.test(line));
  return lines.length > 0 ? lines.join("\n") : undefined;
}

export function failureOf(error: unknown, prefix = ""): Failure {
  if (error instanceof CocoError && error.code === "JsTimeout") return { reason: prefix + TIMEOUT_REASON };
  const cause = error instanceof CocoError && error.cause !== undefined ? error.cause : error;
  if (cause instanceof Error) {
    const name = cause.name && cause.name !== "Error" ? `${cause.name}: ` : "";
    const failure: Failure = { reason: `${prefix}${name}${cause.message}` };
    // The trace goes into the public ledger: keep only frames from the sandboxed JS, never the
    // host's (they would reveal install paths and node internals).
    const trace = sandboxFrames(cause.stack);
    if (trace !== undefined) failure.trace = trace;
    return failure;
  }
  return { reason: prefix + String(cause) };
}

/**
 * Loads the constitution stored in the transaction into the runtime (once per distinct source:
 * the module is named by the source's hash) and returns its module name.
 */
export function loadConstitution(runtime: JsRuntime, tx: Transaction): string {
  const source = readConstitution(tx);
  if (source === undefined) {
    throw new CocoError("InternalError", "No constitution is set - proposals cannot be evaluated", 500);
  }
  const name = `/ccf.gov.constitution/${sha256Hex(source)}.js`;
  if (!runtime.hasModule(name)) runtime.loadModules([{ name, source }]);
  return name;
}

/** Loads a ballot as its own module (named by its hash, so identical ballots compile once). */
function loadBallot(runtime: JsRuntime, source: string): string {
  const name = `/ccf.gov.ballots/${sha256Hex(source)}.js`;
  if (!runtime.hasModule(name)) runtime.loadModules([{ name, source }]);
  return name;
}

/** The KV-only node hooks, writing through `kv`: CCF's gov effects that touch nothing but tables. */
export function kvOnlyHooks(kv: KvAccess): Partial<NodeHooks> {
  return {
    transitionServiceToOpen(previousServiceIdentity, nextServiceIdentity) {
      const info = parseJson<ServiceInfo>(kv.get(TABLES.serviceInfo, SINGLETON_KEY));
      if (info === undefined) throw new Error("transitionServiceToOpen: no service info in public:ccf.gov.service.info");
      const next = Buffer.from(nextServiceIdentity).toString("utf8").trim();
      if (next.length > 0 && next !== info.cert.trim()) {
        throw new Error("transitionServiceToOpen: the next service identity is not the current service certificate");
      }
      if (info.status === "Open") return;
      if (info.status === "WaitingForRecoveryShares") {
        throw new Error("transitionServiceToOpen: the service already waits for recovery shares; members submit them to open it");
      }
      if (info.status === "Recovering") {
        // As CCF: a recovered service opens only once members name the service it recovered;
        // it then waits for a threshold of recovery shares to restore the private state.
        const recorded = parseJson<string>(kv.get(TABLES.previousServiceIdentity, SINGLETON_KEY));
        const previous = previousServiceIdentity === undefined ? "" : Buffer.from(previousServiceIdentity).toString("utf8").trim();
        if (recorded === undefined || previous !== recorded.trim()) {
          throw new Error("transitionServiceToOpen: the previous service identity is not the certificate of the service this one recovered");
        }
        kv.set(TABLES.serviceInfo, SINGLETON_KEY, jsonBytes({ ...info, status: "WaitingForRecoveryShares" }));
        return;
      }
      kv.set(TABLES.serviceInfo, SINGLETON_KEY, jsonBytes({ ...info, status: "Open" }));
    },
    // Coco's runtime compiles modules from source (no QuickJS bytecode), so there is no cache to refresh.
    refreshAppBytecodeCache() {},
    setJwtPublicSigningKeys(issuer, _metadata, jwks) {
      setJwtPublicSigningKeys(kv, issuer, jwks);
    },
    removeJwtPublicSigningKeys(issuer) {
      removeJwtPublicSigningKeys(kv, issuer);
    },
  };
}

function hooksFor(kv: KvAccess, hooks: GovernanceHooks | undefined): Partial<NodeHooks> {
  const extra = typeof hooks === "function" ? hooks(kv) : hooks ?? {};
  return { ...kvOnlyHooks(kv), ...extra };
}

/** Runs each ballot (in member id order, as CCF's std::map): true votes count, exceptions are vote failures. */
function runBallots(
  ctx: ResolveContext, tx: Transaction, proposalId: string, proposal: string, info: ProposalInfo,
): { votes: Record<string, boolean>; voteFailures: Record<string, Failure> } {
  const votes: Record<string, boolean> = {};
  const voteFailures: Record<string, Failure> = {};
  for (const memberId of Object.keys(info.ballots).sort()) {
    const kv = governanceKv(readOnlyKv(tx, `The ballot of member ${memberId} on proposal ${proposalId}`), "read-only governance");
    try {
      const module = loadBallot(ctx.runtime, info.ballots[memberId]!);
      const result = ctx.runtime.call(module, "vote", [proposal, info.proposer_id], { kv, nowMs: ctx.nowMs, hooks: {} });
      votes[memberId] = result === true;
    } catch (error) {
      voteFailures[memberId] = failureOf(error);
    }
  }
  return { votes, voteFailures };
}

/** CCF removes every other finished proposal whenever one finishes, keeping the tables small. */
export function removeOtherFinishedProposals(tx: Transaction, proposalId: string): void {
  const finished: Buffer[] = [];
  tx.forEach(TABLES.proposalsInfo, (value, key) => {
    if (key.toString("utf8") === proposalId) return;
    if (parseJson<ProposalInfo>(value)?.state !== "Open") finished.push(Buffer.from(key));
  });
  for (const key of finished) {
    tx.delete(TABLES.proposals, key);
    tx.delete(TABLES.proposalsInfo, key);
  }
}

/** After a constitution change every other Open proposal is Dropped: its votes were cast under other rules. */
function dropOtherOpenProposals(tx: Transaction, proposalId: string): void {
  const open: [Buffer, ProposalInfo][] = [];
  tx.forEach(TABLES.proposalsInfo, (value, key) => {
    if (key.toString("utf8") === proposalId) return;
    const info = parseJson<ProposalInfo>(value);
    if (info?.state === "Open") open.push([Buffer.from(key), info]);
  });
  for (const [key, info] of open) writeJson(tx, TABLES.proposalsInfo, key, { ...info, state: "Dropped" });
}

/**
 * Resolves an Open proposal in `tx`: updates `info` in place and writes it to
 * public:ccf.gov.proposals_info. Never throws for JS failures: they end as vote failures or Failed.
 */
export function resolveProposal(ctx: ResolveContext, tx: Transaction, proposalId: string, proposal: string, info: ProposalInfo): ProposalInfo {
  const constitution = loadConstitution(ctx.runtime, tx);
  const { votes, voteFailures } = runBallots(ctx, tx, proposalId, proposal, info);
  const voteList = Object.entries(votes).map(([member_id, vote]) => ({ member_id, vote }));
  try {
    const kv = governanceKv(readOnlyKv(tx, "The constitution's resolve()"), "read-only governance");
    const state = ctx.runtime.call(constitution, "resolve", [proposal, info.proposer_id, voteList, proposalId], { kv, nowMs: ctx.nowMs, hooks: {} });
    if (typeof state === "string" && RESOLVABLE_STATES.has(state)) {
      info.state = state as ProposalState;
    } else {
      info.state = "Failed";
      info.failure = { reason: `resolve() returned invalid status value: "${typeof state === "string" ? state : String(state)}"` };
    }
  } catch (error) {
    info.state = "Failed";
    info.failure = failureOf(error, "Failed to resolve(): ");
  }
  const key = utf8(proposalId);
  if (info.state === "Open") {
    writeJson(tx, TABLES.proposalsInfo, key, info);
    return info;
  }
  removeOtherFinishedProposals(tx, proposalId);
  info.final_votes = votes;
  info.vote_failures = voteFailures;
  writeJson(tx, TABLES.proposalsInfo, key, info);
  if (info.state !== "Accepted") return info;

  const overlay = new OverlayKv(tx);
  try {
    // CCF's read-write governance access: governance tables read-write, internal ones read-only,
    // public app tables write-only (6.0.8), private tables not at all (kv-permissions.ts).
    ctx.runtime.call(constitution, "apply", [proposal, proposalId], {
      kv: governanceKv(overlay, "read-write governance"), nowMs: ctx.nowMs, hooks: hooksFor(overlay, ctx.hooks),
    });
  } catch (error) {
    // apply's writes stay in the discarded overlay; only the Failed state is recorded.
    info.state = "Failed";
    info.failure = failureOf(error, "Failed to apply(): ");
    writeJson(tx, TABLES.proposalsInfo, key, info);
    return info;
  }
  const replacedConstitution = overlay.wrote(TABLES.constitution);
  overlay.commitInto();
  if (replacedConstitution) dropOtherOpenProposals(tx, proposalId);
  // apply may have rewritten this proposal's own info (CCF keeps what apply wrote).
  return readJson<ProposalInfo>(tx, TABLES.proposalsInfo, key) ?? info;
}
