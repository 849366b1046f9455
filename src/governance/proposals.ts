// The proposal and ballot endpoints of CCF's gov API (2024-07-01): create, withdraw, vote, and
// read back. Each write is one KV transaction; resolution runs inside it, so a proposal that
// passes is applied in the same transaction that passed it.
import { createHash } from "node:crypto";
import type { Transaction } from "../kv/index.js";
import type { EndpointContext, EndpointRegistry, HandlerResult } from "../rpc/index.js";
import { CocoError } from "../util/errors.js";
import {
  authenticateMember, govHandler, type GovernanceDeps, JAVASCRIPT_CONTENT_TYPE, parseHexId, splitAction, unknownPath,
} from "./common.js";
import { failureOf, loadConstitution, removeOtherFinishedProposals, resolveProposal } from "./resolve.js";
import type { MemberCoseIdentity } from "./cose-auth.js";
import {
  type ProposalInfo, readJson, RECENT_COSE_PROPOSALS_WINDOW_SIZE_DEFAULT, RECENT_COSE_PROPOSALS_WINDOW_SIZE_MAX, SINGLETON_KEY, TABLES, utf8, writeJson,
} from "./tables.js";
import { readOnlyKv } from "./overlay-kv.js";
import { governanceKv } from "./kv-permissions.js";
import { checkConstitutionSource, type JsRuntime, type NodeHooks } from "../js/index.js";

/** A proposed constitution is evaluated under at most this heap (CCF's whole constitution needs a few MiB). */
const CONSTITUTION_CHECK_MEMORY_MIB_MAX = 64;

/** The 2024-07-01 JSON of a proposal (CCF's convert_proposal_to_api_format). */
export function proposalToApi(proposalId: string, info: ProposalInfo): Record<string, unknown> {
  const body: Record<string, unknown> = {
    proposalId,
    proposerId: info.proposer_id,
    proposalState: info.state,
    ballotCount: Object.keys(info.ballots).length,
  };
  if (info.final_votes !== undefined) body.finalVotes = info.final_votes;
  if (info.vote_failures !== undefined) body.voteFailures = info.vote_failures;
  if (info.failure !== undefined) body.failure = info.failure;
  return body;
}

function proposalNotFound(proposalId: string): CocoError {
  return new CocoError("ProposalNotFound", `Could not find proposal ${proposalId}.`, 404);
}

/** CCF records the last signed governance request of each member. */
function recordCoseHistory(tx: Transaction, identity: MemberCoseIdentity): void {
  writeJson(tx, TABLES.coseHistory, identity.memberId, identity.envelope.toString("base64"));
}

/**
 * CCF's validate_proposal_submission_time: a (created_at, request digest) pair may be used once
 * within the window of recent proposals, and a proposal must not be older than the median kept.
 */
function checkSubmissionTime(tx: Transaction, identity: MemberCoseIdentity, proposalId: string): void {
  const key = identity.replayKey;
  const colliding = readJson<string>(tx, TABLES.coseRecentProposals, key);
  if (colliding !== undefined) {
    throw new CocoError("ProposalReplay", `Proposal submission replay, already exists as proposal ${colliding}`, 400);
  }
  const keys: string[] = [];
  tx.forEach(TABLES.coseRecentProposals, (_value, k) => void keys.push(k.toString("utf8")));
  keys.sort();
  if (keys.length > 0) {
    const minCreatedAt = keys[Math.floor(keys.length / 2)]!.split(":")[0]!;
    if (key.split(":")[0]! < minCreatedAt) {
      throw new CocoError("ProposalCreatedTooLongAgo", `Proposal created too long ago, created_at must be greater than ${minCreatedAt}`, 400);
    }
  }
  const config = readJson<{ recent_cose_proposals_window_size?: number }>(tx, TABLES.serviceConfig, SINGLETON_KEY);
  const configured = config?.recent_cose_proposals_window_size ?? RECENT_COSE_PROPOSALS_WINDOW_SIZE_DEFAULT;
  const windowSize = Math.min(RECENT_COSE_PROPOSALS_WINDOW_SIZE_MAX, Math.max(1, configured));
  writeJson(tx, TABLES.coseRecentProposals, key, proposalId);
  // Keep only the most recent windowSize entries (one was just added).
  const excess = keys.length - (windowSize - 1);
  for (let i = 0; i < excess; i++) tx.delete(TABLES.coseRecentProposals, utf8(keys[i]!));
}

/**
 * Coco's proposal id: hex SHA-256 of (request digest ‖ state digest ‖ proposal bytes), where the
 * request digest hashes what the member signed, not the signature (see MemberCoseIdentity). CCF hashes
 * (Merkle root at the read version ‖ request digest); the request digest alone already makes ids
 * unique, the state digest binds the id to the state it was proposed against.
 */
export function proposalIdFor(requestDigest: Uint8Array, stateDigest: string, proposal: Uint8Array): string {
  return createHash("sha256").update(requestDigest).update(stateDigest, "utf8").update(proposal).digest("hex");
}

function answer(deps: GovernanceDeps, proposalId: string, info: ProposalInfo): HandlerResult {
  if (info.state === "Failed" && deps.discardFailedProposals === true) {
    throw new CocoError("InternalError", JSON.stringify(info.failure ?? {}), 500);
  }
  return { body: proposalToApi(proposalId, info) };
}

function resolveContext(deps: GovernanceDeps) {
  return { runtime: deps.runtime, nowMs: deps.nowSeconds() * 1000, ...(deps.hooks ? { hooks: deps.hooks } : {}) };
}

/**
 * What the constitution's `validate` may call: only `ccf.gov.validateConstitution`, which
 * evaluates the proposed module in its own isolate under the sandbox's limits.
 */
function validationHooks(runtime: JsRuntime): Partial<NodeHooks> {
  const limits = { timeLimitMs: runtime.timeLimitMs, memoryLimitMiB: Math.min(runtime.memoryLimitMiB, CONSTITUTION_CHECK_MEMORY_MIB_MAX) };
  return { validateConstitution: (source) => checkConstitutionSource(source, limits) };
}

function createProposal(deps: GovernanceDeps, ctx: EndpointContext): HandlerResult {
  const identity = authenticateMember(deps, ctx, { msgType: "proposal", requireActive: true });
  const proposal = identity.payload.toString("utf8");
  const proposalId = proposalIdFor(identity.requestDigest, deps.stateDigest(), identity.payload);

  const constitution = loadConstitution(deps.runtime, ctx.tx);
  let validation: unknown;
  try {
    const kv = governanceKv(readOnlyKv(ctx.tx, "The constitution's validate()"), "read-only governance");
    validation = deps.runtime.call(constitution, "validate", [proposal], { kv, nowMs: deps.nowSeconds() * 1000, hooks: validationHooks(deps.runtime) });
  } catch (error) {
    const failure = failureOf(error);
    throw new CocoError("InternalError", `Failed to execute validation: ${failure.reason} ${failure.trace ?? ""}`.trimEnd(), 500);
  }
  if (validation === null || typeof validation !== "object") {
    throw new CocoError("InternalError", "Validation failed to return an object", 500);
  }
  const { valid, description } = validation as { valid?: unknown; description?: unknown };
  if (valid !== true) {
    throw new CocoError("ProposalFailedToValidate", `Proposal failed to validate: ${typeof description === "string" ? description : ""}`, 400);
  }
  // Before the collision check: a replay signed at the same state digest would collide.
  checkSubmissionTime(ctx.tx, identity, proposalId);
  if (ctx.tx.has(TABLES.proposals, utf8(proposalId))) {
    throw new CocoError("InternalError", "Proposal ID collision.", 500);
  }
  ctx.tx.set(TABLES.proposals, utf8(proposalId), identity.payload);
  const info: ProposalInfo = { proposer_id: identity.memberId, state: "Open", ballots: {} };
  writeJson(ctx.tx, TABLES.proposalsInfo, proposalId, info);
  recordCoseHistory(ctx.tx, identity);

  const resolved = resolveProposal(resolveContext(deps), ctx.tx, proposalId, proposal, info);
  return answer(deps, proposalId, resolved);
}

function withdrawProposal(deps: GovernanceDeps, ctx: EndpointContext, rawProposalId: string): HandlerResult {
  const identity = authenticateMember(deps, ctx, { msgType: "withdrawal", requireActive: true, proposalId: rawProposalId });
  const proposalId = parseHexId(rawProposalId, "proposal");
  const info = readJson<ProposalInfo>(ctx.tx, TABLES.proposalsInfo, proposalId);
  // Idempotent, as CCF: an unknown (perhaps long finished) proposal answers 204.
  if (info === undefined) return { status: 204 };
  if (identity.memberId !== info.proposer_id) {
    throw new CocoError("AuthorizationFailed",
      `Proposal ${proposalId} can only be withdrawn by proposer ${info.proposer_id}, not caller ${identity.memberId}.`, 403);
  }
  if (info.state !== "Open" && info.state !== "Withdrawn") {
    throw new CocoError("ProposalNotOpen", `Proposal ${proposalId} is currently in state ${info.state} and cannot be withdrawn.`, 400);
  }
  if (info.state === "Open") {
    info.state = "Withdrawn";
    writeJson(ctx.tx, TABLES.proposalsInfo, proposalId, info);
    removeOtherFinishedProposals(ctx.tx, proposalId);
    recordCoseHistory(ctx.tx, identity);
  }
  return { body: proposalToApi(proposalId, info) };
}

function readJsonValue(value: Buffer): ProposalInfo | undefined {
  return value.length === 0 ? undefined : (JSON.parse(value.toString("utf8")) as ProposalInfo);
}

function submitBallot(deps: GovernanceDeps, ctx: EndpointContext, rawProposalId: string, rawMemberId: string): HandlerResult {
  const identity = authenticateMember(deps, ctx, { msgType: "ballot", requireActive: true, proposalId: rawProposalId });
  const proposalId = parseHexId(rawProposalId, "proposal");
  const memberId = parseHexId(rawMemberId, "member");
  if (memberId !== identity.memberId) {
    throw new CocoError("InvalidResourceName", "Authenticated member id does not match URL", 400);
  }
  const info = readJson<ProposalInfo>(ctx.tx, TABLES.proposalsInfo, proposalId);
  if (info === undefined) throw proposalNotFound(proposalId);
  if (info.state !== "Open") {
    throw new CocoError("ProposalNotOpen",
      `Proposal ${proposalId} is currently in state ${info.state} - only Open proposals can receive votes`, 400);
  }
  const proposal = ctx.tx.get(TABLES.proposals, utf8(proposalId));
  if (proposal === undefined) throw proposalNotFound(proposalId);
  const ballot = parseBallot(identity.payload);
  const previous = info.ballots[memberId];
  if (previous !== undefined) {
    // Resubmitting the same ballot is idempotent; changing one's vote is not allowed.
    if (previous === ballot) return { body: proposalToApi(proposalId, info) };
    throw new CocoError("VoteAlreadyExists", `Different ballot already submitted by ${memberId} for ${proposalId}.`, 400);
  }
  info.ballots[memberId] = ballot;
  recordCoseHistory(ctx.tx, identity);
  const resolved = resolveProposal(resolveContext(deps), ctx.tx, proposalId, proposal.toString("utf8"), info);
  return answer(deps, proposalId, resolved);
}

function parseBallot(payload: Buffer): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString("utf8"));
  } catch {
    parsed = undefined;
  }
  const ballot = parsed !== null && typeof parsed === "object" ? (parsed as { ballot?: unknown }).ballot : undefined;
  if (typeof ballot !== "string") {
    throw new CocoError("InvalidInput", 'Signed request body is not a JSON object containing required string field "ballot"', 400);
  }
  return ballot;
}

function getProposal(ctx: EndpointContext, rawProposalId: string): HandlerResult {
  const proposalId = parseHexId(rawProposalId, "proposal");
  const info = readJson<ProposalInfo>(ctx.tx, TABLES.proposalsInfo, proposalId);
  if (info === undefined) throw proposalNotFound(proposalId);
  return { body: proposalToApi(proposalId, info) };
}

function listProposals(ctx: EndpointContext): HandlerResult {
  const value: Record<string, unknown>[] = [];
  ctx.tx.forEach(TABLES.proposalsInfo, (raw, key) => {
    const info = readJsonValue(raw);
    if (info !== undefined) value.push(proposalToApi(key.toString("utf8"), info));
  });
  return { body: { value } };
}

function getActions(ctx: EndpointContext, rawProposalId: string): HandlerResult {
  const proposalId = parseHexId(rawProposalId, "proposal");
  const proposal = ctx.tx.get(TABLES.proposals, utf8(proposalId));
  if (proposal === undefined) throw proposalNotFound(proposalId);
  return { headers: { "content-type": "application/json" }, body: Buffer.from(proposal) };
}

function getBallot(ctx: EndpointContext, rawProposalId: string, rawMemberId: string): HandlerResult {
  const proposalId = parseHexId(rawProposalId, "proposal");
  const memberId = parseHexId(rawMemberId, "member");
  const info = readJson<ProposalInfo>(ctx.tx, TABLES.proposalsInfo, proposalId);
  if (info === undefined) throw new CocoError("ProposalNotFound", `Proposal ${proposalId} does not exist.`, 404);
  const ballot = info.ballots[memberId];
  if (ballot === undefined) {
    throw new CocoError("VoteNotFound", `Member ${memberId} has not voted for proposal ${proposalId}.`, 404);
  }
  return { headers: { "content-type": JAVASCRIPT_CONTENT_TYPE }, body: ballot };
}

/**
 * CCF's `{proposalId}:withdraw` and `{memberId}:submit` segments are registered as whole-segment
 * templates (`{proposalId}`, `{memberId}`) shared with the GETs, and split on ":" here.
 */
export function installProposalEndpoints(registry: EndpointRegistry, deps: GovernanceDeps): void {
  const base = "/gov/members/proposals";
  registry.install({
    method: "POST", path: `${base}:create`, authPolicies: ["no_auth"], mode: "readwrite",
    summary: "Create a proposal (COSE Sign1, ccf.gov.msg.type=proposal)",
    handler: govHandler((ctx) => createProposal(deps, ctx)),
  });
  registry.install({
    method: "GET", path: base, authPolicies: ["no_auth"], mode: "readonly",
    summary: "List proposals", handler: govHandler(listProposals),
  });
  registry.install({
    method: "GET", path: `${base}/{proposalId}`, authPolicies: ["no_auth"], mode: "readonly",
    summary: "Get a proposal", handler: govHandler((ctx) => getProposal(ctx, ctx.params.proposalId!)),
  });
  registry.install({
    method: "POST", path: `${base}/{proposalId}`, authPolicies: ["no_auth"], mode: "readwrite",
    summary: "Withdraw a proposal: POST .../{proposalId}:withdraw (COSE Sign1, ccf.gov.msg.type=withdrawal)",
    handler: govHandler((ctx) => {
      const { id, action } = splitAction(ctx.params.proposalId!);
      if (action !== "withdraw") throw unknownPath(ctx.request.path);
      return withdrawProposal(deps, ctx, id);
    }),
  });
  registry.install({
    method: "GET", path: `${base}/{proposalId}/actions`, authPolicies: ["no_auth"], mode: "readonly",
    summary: "Get a proposal's actions", handler: govHandler((ctx) => getActions(ctx, ctx.params.proposalId!)),
  });
  registry.install({
    method: "GET", path: `${base}/{proposalId}/ballots/{memberId}`, authPolicies: ["no_auth"], mode: "readonly",
    summary: "Get a member's ballot", handler: govHandler((ctx) => getBallot(ctx, ctx.params.proposalId!, ctx.params.memberId!)),
  });
  registry.install({
    method: "POST", path: `${base}/{proposalId}/ballots/{memberId}`, authPolicies: ["no_auth"], mode: "readwrite",
    summary: "Submit a ballot: POST .../ballots/{memberId}:submit (COSE Sign1, ccf.gov.msg.type=ballot)",
    handler: govHandler((ctx) => {
      const { id, action } = splitAction(ctx.params.memberId!);
      if (action !== "submit") throw unknownPath(ctx.request.path);
      return submitBallot(deps, ctx, ctx.params.proposalId!, id);
    }),
  });
}
