// Per-user API keys for the EVM endpoint, for clients that cannot present a client certificate
// (browsers, wallets, Hardhat). A registered user creates a key with a request authenticated by
// its certificate or signed with its key (COSE Sign1); the key is shown once and stored only as
// its SHA-256 hash, so neither the KV nor the ledger can give it back. A key acts as its user
// for /app/evm only, and stops working when revoked or when the user is removed.
import { createHash, randomBytes } from "node:crypto";
import type { Transaction } from "../../kv/index.js";
import { USERS_CERTS_MAP, type Caller, type EndpointRegistry, type HandlerResult } from "../../rpc/index.js";

/**
 * SHA-256(key) -> JSON ApiKeyRecord. Private (encrypted in the ledger): the hashes of 256-bit
 * random keys could not be reversed even if public, but which users hold keys, how many and
 * since when is nobody else's business.
 */
export const API_KEYS = "evm.api_keys";
/** Random bytes in a key: 256 bits, beyond any guessing. */
export const API_KEY_RANDOM_BYTES = 32;
export const API_KEY_PREFIX = "coco_";
/** Keys one user may hold at once. */
export const API_KEYS_PER_USER_MAX = 16;
/** A key's name, for the user's own bookkeeping. */
export const API_KEY_NAME_CHARS_MAX = 64;
/** A COSE-signed key request must have been signed this recently (ccf.msg.created_at), so a copy of it cannot be replayed later. */
export const API_KEY_COSE_AGE_SECONDS_MAX = 300;
export const API_KEY_COSE_MSG_TYPE = "evm_api_key";
export const API_KEYS_PATH = "/app/evm/keys";

export interface ApiKeyRecord {
  /** The owning user's id (its certificate's SHA-256, hex). */
  readonly user_id: string;
  /** Public identifier: the first 8 bytes of the hash, hex. Names the key in lists and revocations. */
  readonly id: string;
  readonly created_at: string;
  readonly name: string | null;
}

const KEY_PATTERN = /^coco_[A-Za-z0-9_-]{43}$/;

export function isApiKeyShaped(value: string): boolean {
  return KEY_PATTERN.test(value);
}

function hashOf(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

function recordOf(raw: Buffer): ApiKeyRecord {
  return JSON.parse(raw.toString("utf8")) as ApiKeyRecord;
}

/** The user a key acts as, or why it does not. */
export function userOfApiKey(tx: Transaction, key: string): { user: string } | { reason: string } {
  if (!isApiKeyShaped(key)) return { reason: "the API key is malformed (expected coco_ followed by 43 base64url characters)" };
  const raw = tx.get(API_KEYS, hashOf(key));
  if (raw === undefined) return { reason: "unknown or revoked API key" };
  const record = recordOf(raw);
  if (!tx.has(USERS_CERTS_MAP, Buffer.from(record.user_id))) return { reason: "the API key's user is no longer a user of this service" };
  return { user: record.user_id };
}

function keysOf(tx: Transaction, user: string): { hash: Buffer; record: ApiKeyRecord }[] {
  const out: { hash: Buffer; record: ApiKeyRecord }[] = [];
  tx.forEach(API_KEYS, (value, key) => {
    const record = recordOf(value);
    if (record.user_id === user) out.push({ hash: key, record });
  });
  return out;
}

const error = (status: number, code: string, message: string): HandlerResult => ({ status, body: { error: { code, message } } });

/** The user a key request acts for, its signed (or plain) body, or an error answer. */
function requester(caller: Caller, body: Buffer, nowMs: number): { user: string; body: Buffer } | HandlerResult {
  if (caller.policy === "user_cert") return { user: caller.id, body };
  if (caller.policy === "user_cose_sign1") {
    const { msgType, createdAt, content } = caller.cose;
    if (msgType !== API_KEY_COSE_MSG_TYPE) return error(400, "InvalidInput", `a signed API key request must have ccf.msg.type "${API_KEY_COSE_MSG_TYPE}"`);
    if (createdAt === undefined || Math.abs(nowMs / 1000 - createdAt) > API_KEY_COSE_AGE_SECONDS_MAX) {
      return error(400, "InvalidInput", `a signed API key request must have ccf.msg.created_at within ${API_KEY_COSE_AGE_SECONDS_MAX} s of the node's clock`);
    }
    return { user: caller.id, body: content };
  }
  return error(401, "InvalidAuthenticationInfo", "API keys are managed by users: present a user certificate or sign the request (user_cose_sign1)");
}

function parseName(body: Buffer): string | null | HandlerResult {
  if (body.length === 0) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return error(400, "InvalidInput", "the body must be JSON: {} or {\"name\": \"...\"}");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return error(400, "InvalidInput", "the body must be a JSON object");
  const { name, ...rest } = parsed as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return error(400, "InvalidInput", `unknown field ${Object.keys(rest)[0]}: only "name" is accepted`);
  if (name === undefined) return null;
  if (typeof name !== "string" || name.length > API_KEY_NAME_CHARS_MAX) return error(400, "InvalidInput", `name must be a string of at most ${API_KEY_NAME_CHARS_MAX} characters`);
  return name;
}

function signsId(payload: Buffer, id: string): boolean {
  try {
    const parsed = JSON.parse(payload.toString("utf8")) as unknown;
    return typeof parsed === "object" && parsed !== null && (parsed as { id?: unknown }).id === id;
  } catch {
    return false;
  }
}

const isAnswer = (value: unknown): value is HandlerResult => typeof value === "object" && value !== null && ("status" in value);

/** Installs POST/GET /app/evm/keys and DELETE /app/evm/keys/{id}. */
export function installApiKeyEndpoints(registry: EndpointRegistry, nowMs: () => number = Date.now): void {
  registry.install({
    method: "POST", path: API_KEYS_PATH, mode: "readwrite", authPolicies: ["user_cert", "user_cose_sign1"],
    summary: "Create an API key for /app/evm, acting as the calling user; the key is shown only in this answer",
    handler: ({ caller, request, tx }) => {
      const who = requester(caller, request.body, nowMs());
      if (isAnswer(who)) return who;
      const name = parseName(who.body);
      if (isAnswer(name)) return name;
      if (keysOf(tx, who.user).length >= API_KEYS_PER_USER_MAX) {
        return error(400, "TooManyApiKeys", `a user may hold at most ${API_KEYS_PER_USER_MAX} API keys: revoke one first (DELETE ${API_KEYS_PATH}/<id>)`);
      }
      const key = API_KEY_PREFIX + randomBytes(API_KEY_RANDOM_BYTES).toString("base64url");
      const hash = hashOf(key);
      const record: ApiKeyRecord = { user_id: who.user, id: hash.subarray(0, 8).toString("hex"), created_at: new Date(nowMs()).toISOString(), name };
      tx.set(API_KEYS, hash, Buffer.from(JSON.stringify(record)));
      return { status: 201, body: { ...record, key, path: `/app/evm/${key}` } };
    },
  });
  registry.install({
    method: "GET", path: API_KEYS_PATH, mode: "readonly", authPolicies: ["user_cert"],
    summary: "The calling user's API keys (ids, names, creation times; never the keys)",
    handler: ({ caller, tx }) => {
      if (caller.policy !== "user_cert") return error(401, "InvalidAuthenticationInfo", "present a user certificate");
      return { body: { keys: keysOf(tx, caller.id).map(({ record }) => record) } };
    },
  });
  registry.install({
    method: "DELETE", path: `${API_KEYS_PATH}/{id}`, mode: "readwrite", authPolicies: ["user_cert", "user_cose_sign1"],
    summary: "Revoke one of the calling user's API keys",
    handler: ({ caller, request, params, tx }) => {
      const who = requester(caller, request.body, nowMs());
      if (isAnswer(who)) return who;
      if (caller.policy === "user_cose_sign1" && !signsId(who.body, params["id"]!)) {
        return error(400, "InvalidInput", `a signed revocation's payload must be {"id": "${params["id"]}"}: the signature must name the key it revokes`);
      }
      const found = keysOf(tx, who.user).find(({ record }) => record.id === params["id"]);
      if (found === undefined) return error(404, "ResourceNotFound", `the calling user has no API key with id ${params["id"]}`);
      tx.delete(API_KEYS, found.hash);
      return { status: 204 };
    },
  });
}
