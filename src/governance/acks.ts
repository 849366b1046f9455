// Member acknowledgement (CCF's acks.h): a member fetches a fresh state digest (:update), signs
// it back (:ack), and so goes from Accepted to Active. The digest proves the member saw the
// service state it is joining.
import type { EndpointContext, EndpointRegistry, HandlerResult } from "../rpc/index.js";
import { CocoError } from "../util/errors.js";
import { authenticateMember, govHandler, type GovernanceDeps, memberStatus, splitAction, unknownPath } from "./common.js";
import { type MemberAck, type MemberInfo, TABLES, writeJson } from "./tables.js";

function signedMemberId(signer: string, fromPath: string): string {
  if (signer !== fromPath) {
    throw new CocoError("InvalidAuthenticationInfo",
      `Member ID from path parameter (${fromPath}) does not match member ID from body signature (${signer}).`, 400);
  }
  return signer;
}

function readAck(ctx: EndpointContext, memberId: string): MemberAck | undefined {
  const raw = ctx.tx.get(TABLES.membersAcks, Buffer.from(memberId, "utf8"));
  if (raw === undefined) return undefined;
  // CCF's constitution may create the record with no value: an ack still to be requested.
  return raw.length === 0 ? { state_digest: "" } : (JSON.parse(raw.toString("utf8")) as MemberAck);
}

function getStateDigest(ctx: EndpointContext, memberId: string): HandlerResult {
  const ack = readAck(ctx, memberId);
  if (ack === undefined) throw new CocoError("ResourceNotFound", `No ACK record exists for member ${memberId}.`, 404);
  return { body: { memberId, stateDigest: ack.state_digest } };
}

function updateStateDigest(deps: GovernanceDeps, ctx: EndpointContext, rawMemberId: string): HandlerResult {
  const identity = authenticateMember(deps, ctx, { msgType: "state_digest", requireActive: false });
  const memberId = signedMemberId(identity.memberId, rawMemberId);
  const ack: MemberAck = { ...(readAck(ctx, memberId) ?? { state_digest: "" }), state_digest: deps.stateDigest() };
  writeJson(ctx.tx, TABLES.membersAcks, memberId, ack);
  return { body: { memberId, stateDigest: ack.state_digest } };
}

function ackStateDigest(deps: GovernanceDeps, ctx: EndpointContext, rawMemberId: string): HandlerResult {
  const identity = authenticateMember(deps, ctx, { msgType: "ack", requireActive: false });
  const memberId = signedMemberId(identity.memberId, rawMemberId);
  const ack = readAck(ctx, memberId);
  if (ack === undefined) throw new CocoError("AuthorizationFailed", `No ACK record exists for member ${memberId}.`, 403);
  let signed: unknown;
  try {
    signed = JSON.parse(identity.payload.toString("utf8"));
  } catch {
    signed = undefined;
  }
  const actual = signed !== null && typeof signed === "object" ? (signed as { stateDigest?: unknown }).stateDigest : undefined;
  if (typeof actual !== "string") {
    throw new CocoError("InvalidInput", 'Signed request body is not a JSON object containing required string field "stateDigest"', 400);
  }
  if (actual !== ack.state_digest) {
    throw new CocoError("StateDigestMismatch",
      `Submitted state digest is not valid.\nExpected\n ${ack.state_digest}\nReceived\n ${actual}`, 400);
  }
  writeJson(ctx.tx, TABLES.membersAcks, memberId, { state_digest: ack.state_digest, cose_sign1_req: identity.envelope.toString("base64") });
  const info = memberStatus(ctx.tx, memberId);
  if (info === undefined) throw new CocoError("InternalError", `Error activating member: member ${memberId} has no info record`, 500);
  if (info.status !== "Active") writeJson(ctx.tx, TABLES.membersInfo, memberId, { ...info, status: "Active" } satisfies MemberInfo);
  return { status: 204 };
}

export function installAckEndpoints(registry: EndpointRegistry, deps: GovernanceDeps): void {
  const path = "/gov/members/state-digests/{memberId}";
  registry.install({
    method: "GET", path, authPolicies: ["no_auth"], mode: "readonly", summary: "Get a member's state digest",
    handler: govHandler((ctx) => getStateDigest(ctx, ctx.params.memberId!)),
  });
  registry.install({
    method: "POST", path, authPolicies: ["no_auth"], mode: "readwrite",
    summary: "POST .../{memberId}:update (ccf.gov.msg.type=state_digest) or .../{memberId}:ack (ccf.gov.msg.type=ack)",
    handler: govHandler((ctx) => {
      const { id, action } = splitAction(ctx.params.memberId!);
      if (action === "update") return updateStateDigest(deps, ctx, id);
      if (action === "ack") return ackStateDigest(deps, ctx, id);
      throw unknownPath(ctx.request.path);
    }),
  });
}
