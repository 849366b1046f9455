// Authentication policies, checked before a handler runs: `user_cert` and `member_cert`
// (mutual TLS: the client certificate's fingerprint must be in the users / members table, as
// CCF's tables `public:ccf.gov.users.certs` and `public:ccf.gov.members.certs` hold them) and
// `no_auth`. An endpoint lists several policies; the first that accepts the caller wins.
import type { Transaction } from "../kv/index.js";
import { CocoError } from "../util/index.js";
import type { RpcRequest } from "./http-server.js";
import { ErrorCodes } from "./errors.js";

export type AuthPolicyName = "user_cert" | "member_cert" | "no_auth";

export const USERS_CERTS_MAP = "public:ccf.gov.users.certs";
export const MEMBERS_CERTS_MAP = "public:ccf.gov.members.certs";

/** Shaped as CCF's `request.caller`. */
export type Caller =
  | { readonly policy: "no_auth" }
  | { readonly policy: "user_cert"; readonly id: string; readonly cert: string }
  | { readonly policy: "member_cert"; readonly id: string; readonly cert: string };

const NO_AUTH: Caller = Object.freeze({ policy: "no_auth" as const });

function certFromTable(tx: Transaction, map: string, id: string): string | undefined {
  const raw = tx.get(map, Buffer.from(id, "utf8"));
  if (raw === undefined) return undefined;
  // Values are JSON strings holding the PEM, as CCF's constitution writes them.
  return JSON.parse(raw.toString("utf8")) as string;
}

export function authenticate(policies: readonly AuthPolicyName[], request: RpcRequest, tx: Transaction): Caller {
  const reasons: string[] = [];
  for (const policy of policies) {
    if (policy === "no_auth") return NO_AUTH;
    const cert = request.callerCert;
    if (!cert) {
      reasons.push(`${policy}: no TLS client certificate was presented`);
      continue;
    }
    const map = policy === "user_cert" ? USERS_CERTS_MAP : MEMBERS_CERTS_MAP;
    const pem = certFromTable(tx, map, cert.fingerprint);
    if (pem === undefined) {
      reasons.push(`${policy}: could not find matching ${policy === "user_cert" ? "user" : "member"} certificate (id ${cert.fingerprint})`);
      continue;
    }
    return { policy, id: cert.fingerprint, cert: pem };
  }
  throw new CocoError(ErrorCodes.InvalidAuthenticationInfo,
    `Invalid authentication credentials. ${reasons.join("; ")}.`, 401);
}
