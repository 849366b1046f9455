// Authentication policies, checked before a handler runs, named as CCF names them:
// `user_cert` and `member_cert` (mutual TLS: the client certificate's fingerprint must be in
// `public:ccf.gov.users.certs` / `public:ccf.gov.members.certs`), `any_cert` (any client
// certificate), `jwt` (a bearer token signed by a key set_jwt_issuer recorded, see jwt.ts),
// `user_cose_sign1` (the body is a COSE_Sign1 signed by a user's key), `no_auth`, and CCF's
// `all_of` combination. An endpoint lists several policies; the first that accepts the caller
// wins, and a refusal lists every policy's reason. `request.caller` shapes follow CCF's JS API.
import { parseCoseSign1, verifyCoseSign1, COSE_HEADER_KID, COSE_CONTENT_TYPE, type CoseSign1 } from "../crypto/index.js";
import type { Transaction } from "../kv/index.js";
import { CocoError } from "../util/index.js";
import type { RpcRequest } from "./http-server.js";
import { ErrorCodes } from "./errors.js";
import { bearerToken, verifyJwt, type JwtIdentity } from "./jwt.js";

/** A single policy, or `all_of:["a","b"]` (how src/apps/js renders app.json's `{ "all_of": [...] }`). */
export type AuthPolicyName = "user_cert" | "member_cert" | "any_cert" | "jwt" | "user_cose_sign1" | "no_auth" | `all_of:${string}`;

export const USERS_CERTS_MAP = "public:ccf.gov.users.certs";
export const MEMBERS_CERTS_MAP = "public:ccf.gov.members.certs";
/** Protected headers of CCF's user COSE Sign1 policy (UserCOSESign1AuthnPolicy defaults). */
export const USER_COSE_MSG_TYPE_HEADER = "ccf.msg.type";
export const USER_COSE_MSG_CREATED_AT_HEADER = "ccf.msg.created_at";
const ALL_OF_PREFIX = "all_of:";
/** Policies inside one all_of; CCF's are a handful. */
const ALL_OF_POLICIES_MAX = 8;

/** What a `user_cose_sign1` caller signed (CCF's UserCOSESign1AuthnIdentity). */
export interface CoseCallerInfo {
  /** The signed payload: what the handler should act on, rather than the raw body. */
  readonly content: Buffer;
  readonly msgType: string | undefined;
  readonly createdAt: number | undefined;
  readonly signature: Buffer;
}

/** Shaped as CCF's `request.caller`. */
export type Caller =
  | { readonly policy: "no_auth" }
  | { readonly policy: "user_cert"; readonly id: string; readonly cert: string }
  | { readonly policy: "member_cert"; readonly id: string; readonly cert: string }
  | { readonly policy: "any_cert"; readonly cert: string }
  | { readonly policy: "jwt"; readonly jwt: JwtIdentity }
  | { readonly policy: "user_cose_sign1"; readonly id: string; readonly cert: string; readonly cose: CoseCallerInfo }
  | { readonly policy: readonly string[]; readonly identities: Readonly<Record<string, Caller>> };

const NO_AUTH: Caller = Object.freeze({ policy: "no_auth" as const });

/** CCF stores certificates as raw PEM (RawCopySerialisedMap<Id, Pem>); older tooling wrote a JSON string. */
function certText(raw: Buffer): string {
  const text = raw.toString("utf8");
  return text.startsWith('"') ? (JSON.parse(text) as string) : text;
}

/** `cert` is parsed only if a handler reads it: most never do, and auth is on the hot path. */
class CertCaller {
  constructor(readonly policy: "user_cert" | "member_cert", readonly id: string, private readonly raw: Buffer) {}
  get cert(): string {
    return certText(this.raw);
  }
  toJSON(): object {
    return { policy: this.policy, id: this.id, cert: this.cert };
  }
}

class AnyCertCaller {
  readonly policy = "any_cert" as const;
  constructor(private readonly der: Buffer) {}
  get cert(): string {
    const lines = this.der.toString("base64").match(/.{1,64}/g) ?? [];
    return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
  }
  toJSON(): object {
    return { policy: this.policy, cert: this.cert };
  }
}

class AllOfCaller {
  constructor(readonly policy: readonly string[], readonly identities: Readonly<Record<string, Caller>>) {}
  /** CCF: `{ policy: [names], <name>: <that policy's caller>, ... }`. */
  toJSON(): object {
    return { policy: this.policy, ...this.identities };
  }
}

/** A policy's verdict: the caller, or why it refused. */
type Outcome = Caller | string;

function certificatePolicy(policy: "user_cert" | "member_cert", request: RpcRequest, tx: Transaction): Outcome {
  const cert = request.callerCert;
  if (!cert) return `${policy}: no TLS client certificate was presented`;
  const raw = tx.get(policy === "user_cert" ? USERS_CERTS_MAP : MEMBERS_CERTS_MAP, cert.idKey);
  if (raw === undefined) return `${policy}: could not find matching ${policy === "user_cert" ? "user" : "member"} certificate (id ${cert.fingerprint})`;
  return new CertCaller(policy, cert.fingerprint, raw);
}

function jwtPolicy(request: RpcRequest, tx: Transaction, nowMs: number | undefined): Outcome {
  const bearer = bearerToken(request.headers.authorization);
  if ("reason" in bearer) return `jwt: ${bearer.reason}`;
  const outcome = verifyJwt(bearer.token, tx, Math.floor((nowMs ?? Date.now()) / 1000));
  if ("reason" in outcome) return `jwt: ${outcome.reason}`;
  return Object.freeze({ policy: "jwt" as const, jwt: outcome });
}

const isSeconds = (v: unknown): v is number | bigint => (typeof v === "number" && Number.isInteger(v) && v >= 0) || (typeof v === "bigint" && v >= 0n);

function userCosePolicy(request: RpcRequest, tx: Transaction): Outcome {
  const contentType = request.headers["content-type"];
  if (typeof contentType !== "string" || contentType.split(";")[0]!.trim().toLowerCase() !== COSE_CONTENT_TYPE) {
    return `user_cose_sign1: Content-Type must be ${COSE_CONTENT_TYPE}`;
  }
  let parsed: CoseSign1;
  try {
    parsed = parseCoseSign1(request.body);
  } catch (error) {
    return `user_cose_sign1: ${error instanceof Error ? error.message : String(error)}`;
  }
  const kid = parsed.protectedHeaders.get(COSE_HEADER_KID);
  if (!(kid instanceof Uint8Array)) return "user_cose_sign1: protected header kid (label 4) must be a byte string holding the user id";
  if (parsed.payload === null) return "user_cose_sign1: the payload must not be detached";
  const msgType = parsed.protectedHeaders.get(USER_COSE_MSG_TYPE_HEADER);
  if (msgType !== undefined && typeof msgType !== "string") return `user_cose_sign1: protected header ${USER_COSE_MSG_TYPE_HEADER} must be a text string`;
  const createdAt = parsed.protectedHeaders.get(USER_COSE_MSG_CREATED_AT_HEADER);
  if (createdAt !== undefined && !isSeconds(createdAt)) {
    return `user_cose_sign1: protected header ${USER_COSE_MSG_CREATED_AT_HEADER} must be a non-negative integer (seconds since the epoch)`;
  }
  const id = Buffer.from(kid).toString("latin1");
  const raw = tx.get(USERS_CERTS_MAP, Buffer.from(id, "latin1"));
  if (raw === undefined) return `user_cose_sign1: could not find matching user certificate (id ${id})`;
  const cert = certText(raw);
  let valid: boolean;
  try {
    valid = verifyCoseSign1(parsed, cert);
  } catch (error) {
    return `user_cose_sign1: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (!valid) return "user_cose_sign1: signature verification failed";
  const cose: CoseCallerInfo = Object.freeze({
    content: parsed.payload,
    msgType,
    createdAt: createdAt === undefined ? undefined : Number(createdAt),
    signature: parsed.signature,
  });
  return Object.freeze({ policy: "user_cose_sign1" as const, id, cert, cose });
}

function allOfPolicy(policy: string, request: RpcRequest, tx: Transaction, nowMs: number | undefined): Outcome {
  let names: unknown;
  try {
    names = JSON.parse(policy.slice(ALL_OF_PREFIX.length));
  } catch {
    names = undefined;
  }
  if (!Array.isArray(names) || names.length === 0 || names.length > ALL_OF_POLICIES_MAX ||
      !names.every((n): n is string => typeof n === "string" && !n.startsWith(ALL_OF_PREFIX))) {
    return `${policy}: all_of needs a list of 1 to ${ALL_OF_POLICIES_MAX} policy names`;
  }
  const identities: Record<string, Caller> = {};
  for (const name of names) {
    const outcome = check(name as AuthPolicyName, request, tx, nowMs);
    if (typeof outcome === "string") return `all_of: ${outcome}`;
    identities[name] = outcome;
  }
  return new AllOfCaller(names, identities);
}

function check(policy: AuthPolicyName, request: RpcRequest, tx: Transaction, nowMs: number | undefined): Outcome {
  switch (policy) {
    case "no_auth":
      return NO_AUTH;
    case "user_cert":
    case "member_cert":
      return certificatePolicy(policy, request, tx);
    case "any_cert":
      return request.callerCert ? new AnyCertCaller(request.callerCert.der) : "any_cert: no TLS client certificate was presented";
    case "jwt":
      return jwtPolicy(request, tx, nowMs);
    case "user_cose_sign1":
      return userCosePolicy(request, tx);
    default:
      if (policy.startsWith(ALL_OF_PREFIX)) return allOfPolicy(policy, request, tx, nowMs);
      return `${String(policy)}: unknown authentication policy`;
  }
}

/**
 * The caller under the first of `policies` that accepts the request, or a 401 listing why each
 * refused. `nowMs` (default: the host clock) is what JWT nbf/exp are checked against.
 */
export function authenticate(policies: readonly AuthPolicyName[], request: RpcRequest, tx: Transaction, nowMs?: number): Caller {
  let reasons: string[] | undefined;
  for (const policy of policies) {
    const outcome = check(policy, request, tx, nowMs);
    if (typeof outcome !== "string") return outcome;
    (reasons ??= []).push(outcome);
  }
  // As CCF, the last policy sets the error: the jwt policy adds an RFC 6750 challenge.
  const headers = policies[policies.length - 1] === "jwt" ? JWT_CHALLENGE : undefined;
  throw new CocoError(ErrorCodes.InvalidAuthenticationInfo,
    `Invalid authentication credentials. ${(reasons ?? []).join("; ")}.`, 401, headers === undefined ? undefined : { headers });
}

/** CCF's `WWW-Authenticate` for a refused bearer token (JwtAuthnPolicy::set_unauthenticated_error). */
const JWT_CHALLENGE: Readonly<Record<string, string>> = Object.freeze({ "www-authenticate": 'Bearer realm="JWT bearer token access", error="invalid_token"' });
