// Member authentication for the governance API (2024-07-01): every request body is a COSE_Sign1
// signed by the member's key, with kid = member id and the ccf.gov.msg.* protected headers that
// bind it to one action. Checks follow CCF's member_cose_sign1 policy, error codes and messages.
import { createHash } from "node:crypto";
import {
  certificateFingerprint,
  coseSign1ToBeSigned,
  COSE_HEADER_ALG,
  COSE_HEADER_KID,
  isCoseEcdsaAlgorithm,
  isLowSCoseSignature,
  parseCoseSign1,
  signCoseSign1,
  verifyCoseSign1,
  type CoseHeaderMap,
} from "../crypto/index.js";
import { CocoError } from "../util/errors.js";

export const GOV_MSG_TYPE_HEADER = "ccf.gov.msg.type";
export const GOV_MSG_CREATED_AT_HEADER = "ccf.gov.msg.created_at";
export const GOV_MSG_PROPOSAL_ID_HEADER = "ccf.gov.msg.proposal_id";

/** Message types that act on an existing proposal and so must sign its id. */
export const GOV_MSG_TYPES_WITH_PROPOSAL_ID = ["ballot", "withdrawal"] as const;
/** The values of ccf.gov.msg.type CCF's tooling signs. */
export const GOV_MSG_TYPES = [
  "proposal",
  "ack",
  "state_digest",
  "recovery_share",
  "encrypted_recovery_share",
  ...GOV_MSG_TYPES_WITH_PROPOSAL_ID,
] as const;
export type GovMsgType = (typeof GOV_MSG_TYPES)[number];

/** WWW-Authenticate value CCF sends with a 401 from this policy. */
export const COSE_SIGN1_WWW_AUTHENTICATE = 'COSE-SIGN1 realm="Signed request access"';

/**
 * created_at is kept as a 10-digit zero-padded decimal in public:ccf.gov.cose_recent_proposals
 * (so keys sort as text); CCF rejects larger values. 10 digits last until the year 2286.
 */
export const GOV_MSG_CREATED_AT_MAX = 9_999_999_999;
const CREATED_AT_DIGITS = 10;

export interface MemberCoseAuthOptions {
  /** PEM certificate of the member with this id (active members only, if the endpoint needs that). */
  lookupMemberCert(memberId: string): string | undefined;
  /** The ccf.gov.msg.type this endpoint accepts (CCF: one per endpoint). */
  expectedMsgType: string | readonly string[];
  /** Proposal id from the URL: the signed ccf.gov.msg.proposal_id must equal it. */
  expectedProposalId?: string;
  /** Request Content-Type, when the caller wants it checked here (must be application/cose). */
  contentType?: string;
  /**
   * Coco extension, off unless `nowSeconds` is given: CCF itself applies no clock window to
   * created_at (only the proposal replay window). With it, created_at must lie within
   * [now - maxAgeSeconds, now + maxFutureSeconds], both ends included. The node passes its
   * clock and the configured window (coco.governance, docs/configuration.md).
   */
  nowSeconds?: number;
  maxAgeSeconds?: number;
  maxFutureSeconds?: number;
  /** Replay hook, given `replayKey` (CCF's cose_recent_proposals key); true rejects the request. */
  isReplay?(replayKey: string): boolean;
}

export const DEFAULT_GOV_MSG_MAX_AGE_SECONDS = 300;
export const DEFAULT_GOV_MSG_MAX_FUTURE_SECONDS = 60;

export interface MemberCoseIdentity {
  memberId: string;
  memberCertPem: string;
  msgType: string;
  /** Seconds since the Unix epoch, as signed. */
  createdAt: number;
  proposalId?: string;
  /** The signed content: the proposal, ballot, etc. */
  payload: Buffer;
  /** The whole COSE_Sign1, as CCF records it in public:ccf.gov.cose_history. */
  envelope: Buffer;
  signature: Buffer;
  /**
   * SHA-256 of the Sig_structure the member signed (protected header + payload), an input of the
   * proposal id and of the replay key. CCF hashes the signature bytes instead, which an attacker
   * can change without the key (s -> n - s); what was signed, the attacker cannot change.
   */
  requestDigest: Buffer;
  /** "<created_at zero-padded to 10>:<hex requestDigest>", the key of public:ccf.gov.cose_recent_proposals. */
  replayKey: string;
}

function unauthenticated(message: string): CocoError {
  return new CocoError("InvalidAuthenticationInfo", message, 401);
}

function malformed(message: string): CocoError {
  return new CocoError("InvalidCoseSign1", message, 400);
}

function requireKid(headers: CoseHeaderMap): string {
  const kid = headers.get(COSE_HEADER_KID);
  if (kid === undefined) throw malformed("Missing kid (label 4) in protected header.");
  // CCF reads kid as a byte string holding the member id's hex characters.
  if (!(kid instanceof Uint8Array)) throw malformed("Protected header kid (label 4) must be a byte string.");
  return Buffer.from(kid).toString("latin1");
}

function optionalText(headers: CoseHeaderMap, label: string): string | undefined {
  const value = headers.get(label);
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw malformed(`Protected header ${label} must be a text string.`);
  return value;
}

function requireCreatedAt(headers: CoseHeaderMap): number {
  const value = headers.get(GOV_MSG_CREATED_AT_HEADER);
  if (value === undefined) throw malformed(`Missing ${GOV_MSG_CREATED_AT_HEADER} in protected header.`);
  const isInteger = typeof value === "bigint" || (typeof value === "number" && Number.isInteger(value));
  if (!isInteger) throw malformed(`Protected header ${GOV_MSG_CREATED_AT_HEADER} must be an integer (seconds since the epoch).`);
  if (value < 0) throw malformed(`Protected header ${GOV_MSG_CREATED_AT_HEADER} must be non-negative.`);
  if (value > GOV_MSG_CREATED_AT_MAX) {
    throw new CocoError("InvalidCreatedAt", "Header parameter created_at value is too large", 400);
  }
  return Number(value);
}

function checkMsgType(msgType: string | undefined, expected: string | readonly string[]): string {
  const allowed = typeof expected === "string" ? [expected] : expected;
  const described = allowed.join(" or ");
  if (msgType === undefined) {
    throw unauthenticated(`Missing ${GOV_MSG_TYPE_HEADER}, expected ${GOV_MSG_TYPE_HEADER} to be ${described}`);
  }
  if (!allowed.includes(msgType)) {
    throw unauthenticated(`Found ${GOV_MSG_TYPE_HEADER} set to ${msgType}, expected ${GOV_MSG_TYPE_HEADER} to be ${described}`);
  }
  return msgType;
}

function checkClockWindow(createdAt: number, opts: MemberCoseAuthOptions): void {
  if (opts.nowSeconds === undefined) return;
  const maxAge = opts.maxAgeSeconds ?? DEFAULT_GOV_MSG_MAX_AGE_SECONDS;
  const maxFuture = opts.maxFutureSeconds ?? DEFAULT_GOV_MSG_MAX_FUTURE_SECONDS;
  if (createdAt < opts.nowSeconds - maxAge) {
    throw new CocoError("InvalidCreatedAt",
      `Header parameter created_at ${createdAt} is more than ${maxAge}s in the past (now ${opts.nowSeconds}); sign the request again.`, 400);
  }
  if (createdAt > opts.nowSeconds + maxFuture) {
    throw new CocoError("InvalidCreatedAt",
      `Header parameter created_at ${createdAt} is more than ${maxFuture}s in the future (now ${opts.nowSeconds}); check the signer's clock.`, 400);
  }
}

/** CCF's cose_recent_proposals key for a request. */
export function coseRecentProposalKey(createdAt: number, requestDigest: Uint8Array): string {
  return `${String(createdAt).padStart(CREATED_AT_DIGITS, "0")}:${Buffer.from(requestDigest).toString("hex")}`;
}

/**
 * Authenticates a governance request body signed by a member. Order and wording follow CCF:
 * structure (400 InvalidCoseSign1), alg / kid / signature / msg type (401
 * InvalidAuthenticationInfo; answer with WWW-Authenticate: COSE_SIGN1_WWW_AUTHENTICATE), then
 * proposal id (400 InvalidResourceName), created_at (400 InvalidCreatedAt), replay (400 ProposalReplay).
 */
export function authenticateMemberCose(body: Uint8Array, opts: MemberCoseAuthOptions): MemberCoseIdentity {
  if (opts.contentType !== undefined && opts.contentType.split(";")[0]!.trim().toLowerCase() !== "application/cose") {
    throw unauthenticated("Content type is not set to application/cose");
  }
  const parsed = parseCoseSign1(body);
  const headers = parsed.protectedHeaders;
  const alg = headers.get(COSE_HEADER_ALG);
  if (alg === undefined) throw malformed("Missing alg (label 1) in protected header.");
  const memberId = requireKid(headers);
  const createdAt = requireCreatedAt(headers);
  const msgType = optionalText(headers, GOV_MSG_TYPE_HEADER);
  const proposalId = optionalText(headers, GOV_MSG_PROPOSAL_ID_HEADER);
  if (parsed.payload === null) throw malformed("COSE_Sign1 payload must not be detached.");

  if (!isCoseEcdsaAlgorithm(alg)) throw unauthenticated(`Unsupported algorithm: ${String(alg)}`);
  const memberCertPem = opts.lookupMemberCert(memberId);
  if (memberCertPem === undefined) throw unauthenticated("Signer is not a known member");
  if (!verifyCoseSign1(parsed, memberCertPem)) throw unauthenticated("Failed to validate COSE Sign1");
  if (!isLowSCoseSignature(parsed)) {
    throw unauthenticated("COSE Sign1 signature is not in low-S form (s > n/2, a malleable ECDSA encoding): " +
      "sign again with a signer that normalises s, or replace s by n - s before sending");
  }
  const checkedMsgType = checkMsgType(msgType, opts.expectedMsgType);

  if (opts.expectedProposalId !== undefined && proposalId !== opts.expectedProposalId) {
    throw new CocoError("InvalidResourceName", "Authenticated proposal id does not match URL", 400);
  }
  checkClockWindow(createdAt, opts);

  const requestDigest = createHash("sha256").update(coseSign1ToBeSigned(parsed.protectedRaw, parsed.payload)).digest();
  const replayKey = coseRecentProposalKey(createdAt, requestDigest);
  if (opts.isReplay?.(replayKey)) {
    throw new CocoError("ProposalReplay", `Request submission replay: ${replayKey} was already submitted`, 400);
  }
  return {
    memberId,
    memberCertPem,
    msgType: checkedMsgType,
    createdAt,
    ...(proposalId === undefined ? {} : { proposalId }),
    payload: parsed.payload,
    envelope: Buffer.from(body),
    signature: parsed.signature,
    requestDigest,
    replayKey,
  };
}

export interface SignGovernanceRequestArgs {
  memberCertPem: string;
  memberKeyPem: string;
  msgType: GovMsgType;
  /** Seconds since the Unix epoch. */
  createdAt: number;
  /** Required for ballots and withdrawals. */
  proposalId?: string;
  payload: Uint8Array | string;
}

/**
 * Client side: the COSE_Sign1 body of a governance request, shaped as CCF's ccf_cose_sign1 tool
 * makes it (kid = member id as bytes; send with Content-Type: application/cose).
 */
export function signGovernanceRequest(args: SignGovernanceRequestArgs): Buffer {
  if (!(GOV_MSG_TYPES as readonly string[]).includes(args.msgType)) {
    throw new CocoError("InvalidInput", `Unknown governance message type "${args.msgType}"; expected one of ${GOV_MSG_TYPES.join(", ")}.`, 400);
  }
  if (!Number.isSafeInteger(args.createdAt) || args.createdAt < 0 || args.createdAt > GOV_MSG_CREATED_AT_MAX) {
    throw new CocoError("InvalidInput", `createdAt must be whole seconds since the epoch, 0..${GOV_MSG_CREATED_AT_MAX}; got ${args.createdAt}.`, 400);
  }
  const needsProposalId = (GOV_MSG_TYPES_WITH_PROPOSAL_ID as readonly string[]).includes(args.msgType);
  if (needsProposalId && args.proposalId === undefined) {
    throw new CocoError("InvalidInput", `Message type ${args.msgType} requires a proposal id.`, 400);
  }
  const protectedHeaders: CoseHeaderMap = new Map<string, unknown>([
    [GOV_MSG_TYPE_HEADER, args.msgType],
    [GOV_MSG_CREATED_AT_HEADER, args.createdAt],
  ]);
  if (args.proposalId !== undefined) protectedHeaders.set(GOV_MSG_PROPOSAL_ID_HEADER, args.proposalId);
  const payload = typeof args.payload === "string" ? Buffer.from(args.payload, "utf8") : args.payload;
  return signCoseSign1({
    privateKeyPem: args.memberKeyPem,
    protectedHeaders,
    payload,
    kid: certificateFingerprint(args.memberCertPem),
  });
}
