// The recovery endpoints, with CCF's paths and bodies (governance API 2024-07-01):
// `POST /gov/recovery/members/{memberId}:recover` takes a member's decrypted recovery share
// (COSE Sign1, ccf.gov.msg.type "recovery_share", payload {"share": base64}), and
// `GET /node/service/previous_identity` names the service this one recovered.
import {
  COSE_SIGN1_WWW_AUTHENTICATE, TABLES, authenticateMember, checkApiVersion, splitAction, unknownPath, type GovernanceDeps, type ServiceInfo,
} from "../governance/index.js";
import type { EndpointContext, EndpointRegistry, HandlerResult } from "../rpc/index.js";
import { CocoError } from "../util/index.js";
import type { Recovery } from "./recovery.js";
import { SERVICE_INFO_MAP } from "./service-status.js";
import { SINGLETON_KEY } from "./signatures.js";

/** Every node answers who the previous service was (it is in the replicated state). */
export function installPreviousIdentityEndpoint(registry: EndpointRegistry): void {
  registry.install({
    method: "GET", path: "/node/service/previous_identity", authPolicies: ["no_auth"], mode: "readonly", forwarding: "never",
    summary: "The certificate of the service this one recovered (404 if it never recovered)",
    handler: (ctx) => {
      const previous = parseJson<string>(ctx.tx.get(TABLES.previousServiceIdentity, SINGLETON_KEY));
      if (previous === undefined) throw new CocoError("ResourceNotFound", "This service was not recovered from a previous one: it has no previous identity.", 404);
      return { body: { previous_service_identity: previous } };
    },
  });
}

/**
 * Share submission. Only the node that recovers the service (its primary while it is
 * public-only) installs it; any other node answers 404 for the path, as for unknown paths.
 */
export function installRecoveryShareEndpoint(registry: EndpointRegistry, recovery: Recovery, deps: GovernanceDeps): void {
  registry.install({
    method: "POST", path: "/gov/recovery/members/{memberId}", authPolicies: ["no_auth"], mode: "readwrite",
    summary: "POST .../{memberId}:recover (ccf.gov.msg.type=recovery_share): a member's decrypted recovery share",
    handler: asyncGovHandler(async (ctx) => {
      const { id, action } = splitAction(ctx.params["memberId"]!);
      if (action !== "recover") throw unknownPath(ctx.request.path);
      const status = parseJson<ServiceInfo>(ctx.tx.get(SERVICE_INFO_MAP, SINGLETON_KEY))?.status;
      if (status !== "WaitingForRecoveryShares") {
        throw new CocoError("ServiceNotWaitingForRecoveryShares",
          `Service is not waiting for recovery shares (status: ${status ?? "unknown"}); members first accept transition_service_to_open.`, 403);
      }
      if (recovery.isReadingPrivateLedger) throw new CocoError("NodeAlreadyRecovering", "Node is already recovering private ledger.", 403);
      const identity = authenticateMember(deps, ctx, { msgType: "recovery_share", requireActive: true });
      if (identity.memberId !== id) {
        throw new CocoError("InvalidAuthenticationInfo",
          `Member ID from path parameter (${id}) does not match member ID from body signature (${identity.memberId}).`, 400);
      }
      if (!recovery.holdsShare(id)) {
        throw new CocoError("AuthorizationFailed", `Member ${id} holds no recovery share of the previous service.`, 403);
      }
      const share = parseShare(identity.payload);
      try {
        const result = await recovery.submitShare(id, share);
        const message = `${result.submittedCount}/${result.threshold} recovery shares successfully submitted` +
          (result.recovering ? "\nEnd of recovery procedure initiated" : "");
        return { body: { message, submittedCount: result.submittedCount, recoveryThreshold: result.threshold, fullKeySubmitted: false } };
      } finally {
        share.fill(0);
      }
    }),
  });
}

function parseShare(payload: Buffer): Buffer {
  let body: unknown;
  try {
    body = JSON.parse(payload.toString("utf8"));
  } catch {
    body = undefined;
  }
  const share = body !== null && typeof body === "object" ? (body as { share?: unknown }).share : undefined;
  if (typeof share !== "string" || share.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(share)) {
    throw new CocoError("InvalidInput", 'Signed request body is not a JSON object containing required base64 string field "share"', 400);
  }
  return Buffer.from(share, "base64");
}

function parseJson<T>(value: Buffer | undefined): T | undefined {
  return value === undefined || value.length === 0 ? undefined : (JSON.parse(value.toString("utf8")) as T);
}

/** As governance's handlers: api-version checked, a 401 answered with CCF's WWW-Authenticate. */
function asyncGovHandler(handler: (ctx: EndpointContext) => Promise<HandlerResult>): (ctx: EndpointContext) => Promise<HandlerResult> {
  return async (ctx) => {
    checkApiVersion(ctx.request.query);
    try {
      return await handler(ctx);
    } catch (error) {
      if (error instanceof CocoError && error.status === 401) {
        return { status: 401, headers: { "www-authenticate": COSE_SIGN1_WWW_AUTHENTICATE }, body: { error: { code: error.code, message: error.message } } };
      }
      throw error;
    }
  };
}
