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
} as const;

export function httpError(status: number, code: string, message: string): CocoError {
  return new CocoError(code, message, status);
}

export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}
