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

/** `cert` is parsed only if a handler reads it: most never do, and auth is on the hot path. */
class CertCaller {
  constructor(readonly policy: "user_cert" | "member_cert", readonly id: string, private readonly raw: Buffer) {}
  get cert(): string {
    // CCF stores certificates as raw PEM text (RawCopySerialisedMap<Id, Pem>); accept a JSON
    // string too, as older tooling wrote.
    const text = this.raw.toString("utf8");
    return text.startsWith('"') ? (JSON.parse(text) as string) : text;
  }
  toJSON(): object {
    return { policy: this.policy, id: this.id, cert: this.cert };
  }
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
    const raw = tx.get(map, cert.idKey);
    if (raw === undefined) {
      reasons.push(`${policy}: could not find matching ${policy === "user_cert" ? "user" : "member"} certificate (id ${cert.fingerprint})`);
      continue;
    }
    return new CertCaller(policy, cert.fingerprint, raw);
  }
  throw new CocoError(ErrorCodes.InvalidAuthenticationInfo,
    `Invalid authentication credentials. ${reasons.join("; ")}.`, 401);
}
