// Who may call /app/evm, and how a refusal looks. Ethereum clients understand only JSON-RPC, so
// the EVM endpoint authenticates callers itself (the frontend lets every request through to it)
// and answers every failure as a JSON-RPC error: a missing or unknown credential (401), too
// many requests (429 with Retry-After), a browser origin that is not allowed (403). Callers
// are users: by client certificate (or any policy the app is given), by API key in an
// `Authorization: Bearer` header, or by API key in the URL path (/app/evm/<key>).
import type { Transaction } from "../../kv/index.js";
import { authenticate, type AuthPolicyName, type HandlerResult, type RpcRequest } from "../../rpc/index.js";
import { CocoError } from "../../util/index.js";
import { isApiKeyShaped, userOfApiKey } from "./api-keys.js";
import { RateLimiter } from "./rate-limit.js";

/** JSON-RPC error codes of refusals (the implementation-defined server range, as hosted providers use it). */
export const AccessErrorCodes = {
  Unauthorized: -32001,
  Forbidden: -32003,
  /** EIP-1474's "limit exceeded". */
  RateLimited: -32005,
} as const;

/** Preflight answers may be cached by browsers this long. */
const CORS_MAX_AGE_SECONDS = 600;

export interface AccessOptions {
  /** How certificate callers are checked (default `user_cert`). */
  readonly authPolicies: readonly AuthPolicyName[];
  /** Browser origins allowed to call /app/evm (exact `scheme://host[:port]`, or "*"); none by default. */
  readonly corsAllowedOrigins: readonly string[];
  readonly rateLimiter: RateLimiter;
}

export type Access = { user: string } | { refusal: HandlerResult };

function refusal(status: number, code: number, message: string, headers: Record<string, string> = {}): { refusal: HandlerResult } {
  return { refusal: { status, headers, body: { jsonrpc: "2.0", id: null, error: { code, message } } } };
}

/** The caller's user id (certificate or API key) charged to its rate limit, or the JSON-RPC refusal to answer. */
export function authenticateEvmCaller(options: AccessOptions, request: RpcRequest, tx: Transaction, pathKey: string | undefined): Access {
  const identified = identifyEvmCaller(options, request, tx, pathKey);
  return "refusal" in identified ? identified : chargeRequest(options, identified.user);
}

/**
 * The caller's user id, or the refusal: its credential as the KV holds it now (not charged to
 * its rate limit). A WebSocket's handshake credential is checked again with this, so that a
 * revoked key or a removed user stops receiving notifications.
 */
export function identifyEvmCaller(options: AccessOptions, request: RpcRequest, tx: Transaction, pathKey: string | undefined): Access {
  let user: string;
  const authorization = request.headers.authorization;
  const bearer = typeof authorization === "string" && /^bearer /i.test(authorization) ? authorization.slice(7).trim() : undefined;
  if (pathKey !== undefined || (bearer !== undefined && isApiKeyShaped(bearer))) {
    const key = pathKey ?? bearer!;
    if (pathKey !== undefined && bearer !== undefined && bearer !== pathKey) {
      return refusal(401, AccessErrorCodes.Unauthorized, "unauthorized: the Authorization header and the URL path carry different API keys");
    }
    const found = userOfApiKey(tx, key);
    if ("reason" in found) return refusal(401, AccessErrorCodes.Unauthorized, `unauthorized: ${found.reason}`);
    user = found.user;
  } else {
    try {
      const caller = authenticate(options.authPolicies, request, tx);
      user = "id" in caller ? caller.id : "cert" in caller ? caller.cert : "jwt" in caller ? `jwt:${caller.jwt.keyIssuer}:${String(caller.jwt.payload["sub"])}` : "anonymous";
    } catch (error) {
      if (!(error instanceof CocoError)) throw error;
      return refusal(error.status, AccessErrorCodes.Unauthorized,
        `unauthorized: present a registered user certificate (mutual TLS) or an API key (Authorization: Bearer <key>, or the URL ${"/app/evm/<key>"}); create keys with POST /app/evm/keys. ${error.message}`);
    }
  }
  return { user };
}

/** Counts one request against the user's rate limit: the user, or the 429 refusal. */
export function chargeRequest(options: AccessOptions, user: string): Access {
  const waitSeconds = options.rateLimiter.take(user);
  if (waitSeconds > 0) {
    const retryAfter = Math.max(1, Math.ceil(waitSeconds));
    return refusal(429, AccessErrorCodes.RateLimited, `rate limit exceeded: too many requests from this user; retry after ${retryAfter} s`, { "retry-after": String(retryAfter) });
  }
  return { user };
}

/** The CORS headers for a request's Origin, or undefined when it has none or it is not allowed. */
export function corsHeaders(options: AccessOptions, request: RpcRequest): Record<string, string> | undefined {
  const origin = request.headers.origin;
  if (typeof origin !== "string") return undefined;
  const any = options.corsAllowedOrigins.includes("*");
  if (!any && !options.corsAllowedOrigins.includes(origin)) return undefined;
  return { "access-control-allow-origin": any ? "*" : origin, vary: "Origin" };
}

/** The answer to a CORS preflight (OPTIONS): what browsers need to send JSON-RPC with a key. */
export function preflight(options: AccessOptions, request: RpcRequest): HandlerResult {
  const headers = corsHeaders(options, request);
  if (headers === undefined) {
    return refusal(403, AccessErrorCodes.Forbidden, `forbidden: origin ${JSON.stringify(request.headers.origin ?? null)} is not allowed to call /app/evm (node configuration coco.evm.cors_allowed_origins)`).refusal;
  }
  return {
    status: 204,
    headers: {
      ...headers,
      "access-control-allow-methods": "POST, OPTIONS",
      "access-control-allow-headers": "authorization, content-type",
      "access-control-max-age": String(CORS_MAX_AGE_SECONDS),
    },
  };
}
