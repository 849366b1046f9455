// What every governance endpoint shares: the dependencies the node supplies, CCF's api-version
// rule, hex id parsing, member COSE authentication with the member tables, and CCF's 401 shape.
import type { Transaction } from "../kv/index.js";
import type { JsRuntime } from "../js/index.js";
import type { EndpointContext, Handler, HandlerResult } from "../rpc/index.js";
import { parseQuery } from "../rpc/index.js";
import { CocoError } from "../util/errors.js";
import { authenticateMemberCose, COSE_SIGN1_WWW_AUTHENTICATE, type MemberCoseIdentity } from "./cose-auth.js";
import type { GovernanceHooks } from "./resolve.js";
import { type MemberInfo, readJson, readPem, TABLES } from "./tables.js";

export interface GovernanceDeps {
  /** Runs the constitution and ballots. */
  runtime: JsRuntime;
  /** Seconds since the epoch; `Date.now()` inside the constitution once it enables untrusted time. */
  nowSeconds(): number;
  /**
   * Node hooks for `apply` (e.g. triggerLedgerRekey). KV-only hooks (transitionServiceToOpen)
   * are built in and write through apply's overlay; a function form receives that overlay.
   * Entries given here replace the built-in ones.
   */
  hooks?: GovernanceHooks;
  /** PEM of the service certificate (shown by /gov/service/info if the table lacks it). */
  serviceCertPem: string;
  /**
   * Hex digest of the service state a member acknowledges (CCF: the Merkle root of the last
   * signature). Also binds proposal ids to the state they were made against.
   */
  stateDigest(): string;
  /**
   * CCF answers 500 InternalError and discards the whole transaction when a proposal ends
   * Failed. Default (false): Coco records the Failed state (apply's writes discarded) and answers 200.
   */
  discardFailedProposals?: boolean;
  /**
   * How far a request's signed ccf.gov.msg.created_at may lie from nowSeconds() (Coco; CCF has
   * no such window). Absent: no window, as in CCF. The node always sets it (coco.governance).
   */
  createdAtWindow?: CreatedAtWindow;
}

export interface CreatedAtWindow {
  maxAgeSeconds: number;
  maxFutureSeconds: number;
}

/** CCF's accepted api-version values for the gov API; absent means latest. */
export const GOV_API_VERSIONS = ["2023-06-01-preview", "2024-07-01", "latest"] as const;

export function checkApiVersion(query: string, minimum: (typeof GOV_API_VERSIONS)[number] = "2023-06-01-preview"): void {
  const version = parseQuery(query)["api-version"];
  if (version === undefined) return;
  const accepted = GOV_API_VERSIONS.slice(GOV_API_VERSIONS.indexOf(minimum));
  if (!(accepted as readonly string[]).includes(version)) {
    throw new CocoError("UnsupportedApiVersionValue",
      `Unsupported api-version '${version}'. The supported api-versions are: ${accepted.join(", ")}`, 400);
  }
}

const HEX_ID = /^[0-9a-fA-F]{64}$/;

/** CCF's parse_hex_id: ids are 32 bytes, hex encoded. */
export function parseHexId(value: string | undefined, kind: "member" | "proposal" | "node" | "user"): string {
  if (value === undefined || !HEX_ID.test(value)) {
    throw new CocoError("InvalidResourceName", `'${value ?? ""}' is not a valid hex-encoded ${kind} ID`, 400);
  }
  return value;
}

/** Splits a CCF path segment `{id}:action` (the router matches whole segments). */
export function splitAction(segment: string): { id: string; action: string | undefined } {
  const colon = segment.lastIndexOf(":");
  return colon < 0 ? { id: segment, action: undefined } : { id: segment.slice(0, colon), action: segment.slice(colon + 1) };
}

export function unknownPath(path: string): CocoError {
  return new CocoError("ResourceNotFound", `Unknown path: ${path}.`, 404);
}

export function memberStatus(tx: Transaction, memberId: string): MemberInfo | undefined {
  return readJson<MemberInfo>(tx, TABLES.membersInfo, memberId);
}

export interface AuthenticateArgs {
  msgType: string;
  /** CCF's ActiveMemberCOSESign1AuthnPolicy: proposals, ballots, withdrawals. */
  requireActive: boolean;
  proposalId?: string;
}

/** Authenticates a member-signed COSE body against the member tables of `tx`. */
export function authenticateMember(deps: GovernanceDeps, ctx: EndpointContext, args: AuthenticateArgs): MemberCoseIdentity {
  const contentType = ctx.request.headers["content-type"];
  const window = deps.createdAtWindow;
  const identity = authenticateMemberCose(ctx.request.body, {
    ...(window === undefined ? {} : { nowSeconds: deps.nowSeconds(), ...window }),
    // As CCF: a request that is not application/cose is refused before any CBOR parsing.
    contentType: typeof contentType === "string" ? contentType : "",
    lookupMemberCert: (memberId) => readPem(ctx.tx, TABLES.membersCerts, memberId),
    expectedMsgType: args.msgType,
    ...(args.proposalId === undefined ? {} : { expectedProposalId: args.proposalId }),
  });
  if (args.requireActive) {
    const status = memberStatus(ctx.tx, identity.memberId)?.status;
    if (status !== "Active") {
      throw new CocoError("InvalidAuthenticationInfo",
        `Signer ${identity.memberId} is not an active member (status: ${status ?? "unknown"}); ` +
        `a member becomes Active by acknowledging the state digest (POST /gov/members/state-digests/{memberId}:ack).`, 401);
    }
  }
  return identity;
}

function errorResult(error: CocoError, headers?: Record<string, string>): HandlerResult {
  return { status: error.status, ...(headers ? { headers } : {}), body: { error: { code: error.code, message: error.message } } };
}

/**
 * Wraps a gov handler: checks api-version, and answers 401s itself so it can add CCF's
 * WWW-Authenticate header (a thrown error cannot carry headers).
 */
export function govHandler(handler: (ctx: EndpointContext) => HandlerResult, minimumApiVersion?: (typeof GOV_API_VERSIONS)[number]): Handler {
  return (ctx) => {
    checkApiVersion(ctx.request.query, minimumApiVersion);
    try {
      return handler(ctx);
    } catch (error) {
      if (error instanceof CocoError && error.status === 401) {
        return errorResult(error, { "www-authenticate": COSE_SIGN1_WWW_AUTHENTICATE });
      }
      throw error;
    }
  };
}

export const JAVASCRIPT_CONTENT_TYPE = "text/javascript";
