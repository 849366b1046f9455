// CCF-style error bodies: every error answer is `{"error":{"code","message"}}` with CCF's
// code names where CCF has one, so CCF clients and scripts read Coco's errors unchanged.
import { CocoError } from "../util/index.js";

/** CCF error codes Coco answers with (see CCF's "troubleshooting / error codes" page). */
export const ErrorCodes = {
  InvalidInput: "InvalidInput",
  InvalidQueryParameterValue: "InvalidQueryParameterValue",
  ResourceNotFound: "ResourceNotFound",
  UnsupportedHttpVerb: "UnsupportedHttpVerb",
  InvalidAuthenticationInfo: "InvalidAuthenticationInfo",
  RequestBodyTooLarge: "RequestBodyTooLarge",
  UnsupportedContentType: "UnsupportedContentType",
  TransactionPendingOrUnknown: "TransactionPendingOrUnknown",
  TransactionInvalid: "TransactionInvalid",
  TransactionConflict: "TransactionConflict",
  InternalError: "InternalError",
  ServiceUnavailable: "ServiceUnavailable",
  FrontendNotOpen: "FrontendNotOpen",
  TooManyPendingTransactions: "TooManyPendingTransactions",
  /** A backup forwarded the request, then lost the primary before its answer: outcome unknown. */
  ForwardedPrimaryLost: "ForwardedPrimaryLost",
  /** The primary did not answer a forwarded request in time: outcome unknown. */
  RequestForwardingTimedOut: "RequestForwardingTimedOut",
  /** A client is over a rate limit (e.g. new nodes asking to join from one address); 429 with Retry-After. */
  TooManyRequests: "TooManyRequests",
  /** The backup holds as many forwarded requests as it may (never sent: safe to retry). */
  TooManyForwardedRequests: "TooManyForwardedRequests",
} as const;

/** Seconds a client is told to wait (`Retry-After`) before retrying a 503 or 429 that suggests nothing else. */
export const RETRY_AFTER_SECONDS_DEFAULT = 1;

/** Statuses that tell the client to come back later, and so always carry `Retry-After`. */
function asksToRetryLater(status: number): boolean {
  return status === 503 || status === 429;
}

/**
 * The headers of an answer with `status`, with `retry-after` added (RETRY_AFTER_SECONDS_DEFAULT)
 * to a 503 or 429 that has none, whatever its letter case. Returns `headers` itself otherwise.
 */
export function withRetryAfter<T extends Readonly<Record<string, string>>>(status: number, headers: T): T | (T & { "retry-after": string }) {
  if (!asksToRetryLater(status)) return headers;
  for (const name of Object.keys(headers)) if (name.toLowerCase() === "retry-after") return headers;
  return { ...headers, "retry-after": String(RETRY_AFTER_SECONDS_DEFAULT) };
}

/** A 503 error suggesting when to retry (`Retry-After`, whole seconds, at least 1). */
export function serviceUnavailable(code: string, message: string, retryAfterSeconds: number = RETRY_AFTER_SECONDS_DEFAULT): CocoError {
  const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
  return new CocoError(code, message, 503, { headers: { "retry-after": String(seconds) } });
}

export function httpError(status: number, code: string, message: string): CocoError {
  return new CocoError(code, message, status);
}

export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}
