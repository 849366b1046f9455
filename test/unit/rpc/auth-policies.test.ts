// Authentication policies beyond user_cert: jwt against keys recorded as set_jwt_issuer records
// them, user_cose_sign1, any_cert, all_of, and the first-match rule of a policy list.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import { exportJWK, SignJWT } from "jose";
import { signCoseSign1 } from "../../../src/crypto/index.js";
import { setJwtPublicSigningKeys } from "../../../src/governance/jwt-keys.js";
import type { KvAccess } from "../../../src/js/index.js";
import { Store, type Transaction } from "../../../src/kv/index.js";
import { authenticate, type AuthPolicyName, type Caller, type RpcRequest } from "../../../src/rpc/index.js";
import { CocoError } from "../../../src/util/errors.js";
import { makeIdentity, type Identity } from "../governance/harness.js";

const ISSUER = "https://login.example.com";
const NOW_MS = 1_700_000_000_000;
const NOW_S = NOW_MS / 1000;
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const stranger = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const [user, otherUser] = (await Promise.all([makeIdentity("user0"), makeIdentity("user1")])) as [Identity, Identity];

function kvOf(tx: Transaction): KvAccess {
  return {
    get: (m, k) => tx.get(m, k), set: (m, k, v) => tx.set(m, k, v), has: (m, k) => tx.has(m, k), delete: (m, k) => tx.delete(m, k),
    clear: () => { throw new Error("unused"); }, size: () => { throw new Error("unused"); },
    forEach: (m, cb) => tx.forEach(m, (v, k) => void cb(v, k)),
  };
}

const store = new Store();
{
  const tx = store.begin();
  // As set_jwt_issuer records them: one key without constraint, one constrained to another issuer.
  setJwtPublicSigningKeys(kvOf(tx), ISSUER, { keys: [
    { ...(await exportJWK(rsa.publicKey)), kid: "rsa-key" },
    { ...(await exportJWK(ec.publicKey)), kid: "ec-key", issuer: "https://constrained.example.com" },
  ] });
  tx.set("public:ccf.gov.users.certs", Buffer.from(user.id), Buffer.from(user.certPem));
  store.commit(tx, 1);
}

function request(options: { headers?: Record<string, string>; body?: Buffer; certOf?: Identity } = {}): RpcRequest {
  return {
    method: "POST", path: "/app/x", query: "", headers: options.headers ?? {}, body: options.body ?? Buffer.alloc(0),
    callerCert: options.certOf === undefined ? undefined : { der: Buffer.from("30", "hex"), fingerprint: options.certOf.id, idKey: Buffer.from(options.certOf.id) },
  };
}

function auth(policies: AuthPolicyName[], req: RpcRequest): Caller {
  return authenticate(policies, req, store.begin(), NOW_MS);
}

function refused(policies: AuthPolicyName[], req: RpcRequest, reason: RegExp): void {
  assert.throws(() => auth(policies, req), (e: unknown) => e instanceof CocoError && e.status === 401 && e.code === "InvalidAuthenticationInfo" && reason.test(e.message));
}

async function token(options: { kid?: string; alg?: string; key?: object; iss?: string; exp?: number; nbf?: number; claims?: object } = {}): Promise<string> {
  const alg = options.alg ?? "RS256";
  let jwt = new SignJWT({ sub: "alice", ...options.claims }).setProtectedHeader({ alg, kid: options.kid ?? "rsa-key" }).setIssuer(options.iss ?? ISSUER);
  if (options.exp !== null) jwt = jwt.setExpirationTime(options.exp ?? NOW_S + 600);
  if (options.nbf !== undefined) jwt = jwt.setNotBefore(options.nbf);
  return jwt.sign((options.key ?? rsa.privateKey) as Parameters<SignJWT["sign"]>[0]);
}
const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });

describe("jwt policy", () => {
  it("accepts a token signed by a recorded key and exposes { policy, jwt: { keyIssuer, header, payload } }", async () => {
    const caller = auth(["jwt"], request(bearer(await token()))) as Extract<Caller, { policy: "jwt" }>;
    assert.equal(caller.policy, "jwt");
    assert.equal(caller.jwt.keyIssuer, ISSUER);
    assert.deepEqual(caller.jwt.header, { alg: "RS256", kid: "rsa-key" });
    assert.equal(caller.jwt.payload.sub, "alice");
    assert.deepEqual(JSON.parse(JSON.stringify(caller)).jwt.payload.iss, ISSUER);
  });

  it("accepts an ES256 token whose iss matches the key's issuer constraint", async () => {
    const t = await token({ alg: "ES256", kid: "ec-key", key: ec.privateKey, iss: "https://constrained.example.com" });
    assert.equal(auth(["jwt"], request(bearer(t))).policy, "jwt");
  });

  it("refuses a token whose iss does not match the key's issuer constraint", async () => {
    const t = await token({ alg: "ES256", kid: "ec-key", key: ec.privateKey, iss: "https://evil.example.com" });
    refused(["jwt"], request(bearer(t)), /issuer constraint/);
  });

  it("refuses an unknown kid, a bad signature, an expired token, a token not yet valid and a token without exp", async () => {
    refused(["jwt"], request(bearer(await token({ kid: "nope" }))), /JWT signing key not found/);
    refused(["jwt"], request(bearer(await token({ alg: "ES256", kid: "ec-key", key: stranger.privateKey, iss: "https://constrained.example.com" }))), /JWT signature is invalid/);
    refused(["jwt"], request(bearer(await token({ exp: NOW_S - 1 }))), /after token's Expiration Time/);
    refused(["jwt"], request(bearer(await token({ nbf: NOW_S + 60 }))), /before token's Not Before/);
    const noExp = await new SignJWT({}).setProtectedHeader({ alg: "RS256", kid: "rsa-key" }).sign(rsa.privateKey);
    refused(["jwt"], request(bearer(noExp)), /no Expiration Time/);
  });

  it("refuses a missing or malformed Authorization header and alg none", async () => {
    refused(["jwt"], request(), /Missing Authorization header/);
    refused(["jwt"], request({ headers: { authorization: "Basic abc" } }), /not a Bearer token/);
    refused(["jwt"], request(bearer("not.a.jwt")), /Malformed JWT/);
    const none = `${Buffer.from('{"alg":"none","kid":"rsa-key"}').toString("base64url")}.${Buffer.from(`{"exp":${NOW_S + 60}}`).toString("base64url")}.`;
    refused(["jwt"], request(bearer(none)), /algorithm none is not supported/);
  });
});

describe("user_cose_sign1 policy", () => {
  const cose = (signer: Identity, kid: string, headers: Array<[string, unknown]> = []) => signCoseSign1({
    privateKeyPem: signer.keys.privateKeyPem, kid, payload: Buffer.from('{"msg":"hi"}'),
    protectedHeaders: new Map<string | number, unknown>([["ccf.msg.type", "greeting"], ["ccf.msg.created_at", NOW_S], ...headers]),
  });
  const coseRequest = (body: Buffer, contentType = "application/cose") => request({ headers: { "content-type": contentType }, body });

  it("accepts a body signed by a user and exposes id, cert and the signed content", () => {
    const caller = auth(["user_cose_sign1"], coseRequest(cose(user, user.id))) as Extract<Caller, { policy: "user_cose_sign1" }>;
    assert.equal(caller.policy, "user_cose_sign1");
    assert.equal(caller.id, user.id);
    assert.equal(caller.cert, user.certPem);
    assert.equal(caller.cose.content.toString(), '{"msg":"hi"}');
    assert.equal(caller.cose.msgType, "greeting");
    assert.equal(caller.cose.createdAt, NOW_S);
  });

  it("refuses an unknown user, a signature by another key, a wrong content type and a malformed body", () => {
    refused(["user_cose_sign1"], coseRequest(cose(otherUser, otherUser.id)), /could not find matching user certificate/);
    refused(["user_cose_sign1"], coseRequest(cose(otherUser, user.id)), /signature verification failed/);
    refused(["user_cose_sign1"], coseRequest(cose(user, user.id), "application/json"), /Content-Type must be application\/cose/);
    refused(["user_cose_sign1"], coseRequest(Buffer.from("garbage")), /user_cose_sign1: Invalid COSE_Sign1/);
    refused(["user_cose_sign1"], coseRequest(cose(user, user.id, [["ccf.msg.created_at", "yesterday"]])), /ccf.msg.created_at must be a non-negative integer/);
  });
});

describe("certificate, combined and listed policies", () => {
  it("any_cert accepts any client certificate and renders it as PEM", () => {
    const caller = auth(["any_cert"], request({ certOf: otherUser })) as Extract<Caller, { policy: "any_cert" }>;
    assert.match(caller.cert, /^-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n$/);
    refused(["any_cert"], request(), /any_cert: no TLS client certificate/);
  });

  it("all_of needs every listed policy and exposes each identity under its name", async () => {
    const req = request({ certOf: user, ...bearer(await token()) });
    const caller = auth([`all_of:["user_cert","jwt"]`], req);
    const json = JSON.parse(JSON.stringify(caller));
    assert.deepEqual(json.policy, ["user_cert", "jwt"]);
    assert.equal(json.user_cert.id, user.id);
    assert.equal(json.jwt.jwt.keyIssuer, ISSUER);
    refused([`all_of:["user_cert","jwt"]`], request({ certOf: user }), /all_of: jwt: Missing Authorization header/);
  });

  it("a list accepts the first policy that succeeds and otherwise gives every reason", async () => {
    assert.equal(auth(["user_cert", "jwt"], request(bearer(await token()))).policy, "jwt");
    assert.equal(auth(["jwt", "user_cert"], request({ certOf: user })).policy, "user_cert");
    refused(["user_cert", "jwt"], request(), /user_cert: no TLS client certificate was presented; jwt: Missing Authorization header/);
  });

  it("a 401 carries CCF's WWW-Authenticate bearer challenge when the last policy is jwt, as CCF's last policy sets the error", () => {
    const headersOf = (policies: AuthPolicyName[]) => {
      try {
        auth(policies, request());
      } catch (error) {
        return (error as CocoError).headers;
      }
      assert.fail("expected a 401");
    };
    assert.deepEqual(headersOf(["user_cert", "jwt"]), { "www-authenticate": 'Bearer realm="JWT bearer token access", error="invalid_token"' });
    assert.equal(headersOf(["jwt", "user_cert"]), undefined);
  });
});
