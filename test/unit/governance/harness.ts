// In-process harness for the governance API: a Store, an EndpointRegistry with the gov
// endpoints, and a dispatcher that mirrors the node's frontend (run the handler in a
// transaction, commit only on 2xx). Members sign requests as CCF's tooling does.
import {
  certificateFingerprint, createIdentityCertificate, generateEcP384KeyPair, type KeyPairPem,
} from "../../../src/crypto/index.js";
import { JsRuntime } from "../../../src/js/index.js";
import { Store } from "../../../src/kv/index.js";
import { EndpointRegistry } from "../../../src/rpc/index.js";
import { CocoError } from "../../../src/util/errors.js";
import {
  installGovernanceEndpoints, signGovernanceRequest, SINGLETON_KEY, TABLES, type GovMsgType, type GovernanceDeps,
} from "../../../src/governance/index.js";

export interface Identity {
  id: string;
  certPem: string;
  keys: KeyPairPem;
}

export async function makeIdentity(name: string): Promise<Identity> {
  const keys = generateEcP384KeyPair();
  const certPem = await createIdentityCertificate(keys, name);
  return { id: certificateFingerprint(certPem), certPem, keys };
}

export interface Response {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: any;
}

export const SERVICE_CERT = "-----BEGIN CERTIFICATE-----\nservice\n-----END CERTIFICATE-----\n";
export const NODE_ID = "b".repeat(64);
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/**
 * Test constitution: validate knows a few actions; resolve accepts on a strict majority of
 * Active members (or at once for `always_accept`); apply writes to public:test.values.
 */
export const TEST_CONSTITUTION = String.raw`
const KNOWN = new Set(["set_value", "always_accept", "apply_throws", "resolve_throws", "set_constitution", "open_service", "read_in_ballot"]);
export function validate(input) {
  const p = JSON.parse(input);
  if (!Array.isArray(p.actions)) return { valid: false, description: "actions must be an array" };
  for (const a of p.actions) if (!KNOWN.has(a.name)) return { valid: false, description: "unknown action " + a.name };
  return { valid: true, description: "OK" };
}
export function resolve(proposal, proposerId, votes, proposalId) {
  const p = JSON.parse(proposal);
  if (p.actions.some((a) => a.name === "resolve_throws")) throw new Error("resolve exploded");
  if (p.actions.some((a) => a.name === "always_accept")) return "Accepted";
  let active = 0;
  ccf.kv["public:ccf.gov.members.info"].forEach((v) => { if (ccf.bufToJsonCompatible(v).status === "Active") active++; });
  const yes = votes.filter((v) => v.vote === true).length;
  const no = votes.filter((v) => v.vote !== true).length;
  if (yes > active / 2) return "Accepted";
  if (no > active / 2) return "Rejected";
  return "Open";
}
export function apply(proposal, proposalId) {
  for (const { name, args } of JSON.parse(proposal).actions) {
    if (name === "set_value" || name === "always_accept") {
      ccf.kv["public:test.values"].set(ccf.strToBuf(args.key), ccf.strToBuf(args.value));
    } else if (name === "apply_throws") {
      ccf.kv["public:test.values"].set(ccf.strToBuf("partial"), ccf.strToBuf("written before the throw"));
      throw new Error("apply exploded");
    } else if (name === "set_constitution") {
      ccf.kv["public:ccf.gov.constitution"].set(new ArrayBuffer(8), ccf.jsonCompatibleToBuf(args.constitution));
    } else if (name === "open_service") {
      ccf.node.transitionServiceToOpen(undefined, ccf.strToBuf(args.next_service_identity));
    }
  }
}
`;

export class GovHarness {
  readonly store = new Store();
  readonly registry = new EndpointRegistry();
  readonly runtime = new JsRuntime({ timeLimitMs: 300 });
  nowSeconds = 1_720_000_000;
  stateDigest = "ab".repeat(32);
  private createdAt = 1_720_000_000;

  constructor(constitution: string, depsExtra: Partial<GovernanceDeps> = {}) {
    installGovernanceEndpoints(this.registry, {
      runtime: this.runtime,
      nowSeconds: () => this.nowSeconds,
      serviceCertPem: SERVICE_CERT,
      stateDigest: () => this.stateDigest,
      ...depsExtra,
    });
    const tx = this.store.begin();
    tx.set(TABLES.constitution, SINGLETON_KEY, json(constitution));
    tx.set(TABLES.serviceInfo, SINGLETON_KEY, json({ cert: SERVICE_CERT, status: "Opening", recovery_count: 0, service_data: null, current_service_create_txid: "2.1" }));
    tx.set(TABLES.nodesInfo, Buffer.from(NODE_ID), json({
      cert: "node-cert", status: "Trusted", quote_info: { format: "Insecure_Virtual" }, node_data: null,
      rpc_interfaces: { primary_rpc_interface: { bind_address: "127.0.0.1:8000" } },
    }));
    this.store.commit(tx, this.store.currentVersion + 1);
  }

  /** Registers a member directly in the tables (as genesis would). */
  addMember(member: Identity, status: "Active" | "Accepted" = "Active"): void {
    const tx = this.store.begin();
    tx.set(TABLES.membersCerts, Buffer.from(member.id), json(member.certPem));
    tx.set(TABLES.membersInfo, Buffer.from(member.id), json({ status, member_data: null }));
    this.store.commit(tx, this.store.currentVersion + 1);
  }

  /** Mirrors src/node/frontend.ts: route, run in a transaction, commit on 2xx. */
  request(method: string, target: string, body: Buffer = Buffer.alloc(0)): Response {
    const [path, query = ""] = target.split("?") as [string, string?];
    try {
      const { endpoint, params } = this.registry.route(method, path);
      const tx = this.store.begin();
      const requestHeaders: Record<string, string> = method === "POST" ? { "content-type": "application/cose" } : {};
      const result = endpoint.handler({ request: { method, path, query, headers: requestHeaders, body, callerCert: undefined }, params, caller: { policy: "no_auth" }, tx });
      if (result instanceof Promise) throw new Error("governance handlers are synchronous");
      const status = result.status ?? 200;
      if (status >= 200 && status < 300 && tx.hasWrites) this.store.commit(tx, this.store.currentVersion + 1);
      const headers = result.headers ?? {};
      const text = result.body === undefined ? "" : typeof result.body === "string" || Buffer.isBuffer(result.body) ? result.body.toString() : JSON.stringify(result.body);
      return { status, headers, text, json: parse(text) };
    } catch (error) {
      if (!(error instanceof CocoError)) throw error;
      const text = JSON.stringify({ error: { code: error.code, message: error.message } });
      return { status: error.status, headers: {}, text, json: JSON.parse(text) };
    }
  }

  /** A signed body with a fresh created_at (so signatures never collide unless a test replays one). */
  sign(member: Identity, msgType: GovMsgType, payload: unknown, proposalId?: string): Buffer {
    return signGovernanceRequest({
      memberCertPem: member.certPem,
      memberKeyPem: member.keys.privateKeyPem,
      msgType,
      createdAt: this.createdAt++,
      ...(proposalId === undefined ? {} : { proposalId }),
      payload: typeof payload === "string" ? payload : JSON.stringify(payload),
    });
  }

  propose(member: Identity, actions: unknown[]): Response {
    return this.request("POST", "/gov/members/proposals:create?api-version=2024-07-01", this.sign(member, "proposal", { actions }));
  }

  vote(member: Identity, proposalId: string, ballot: string): Response {
    return this.request("POST", `/gov/members/proposals/${proposalId}/ballots/${member.id}:submit?api-version=2024-07-01`,
      this.sign(member, "ballot", { ballot }, proposalId));
  }

  withdraw(member: Identity, proposalId: string): Response {
    return this.request("POST", `/gov/members/proposals/${proposalId}:withdraw?api-version=2024-07-01`, this.sign(member, "withdrawal", "", proposalId));
  }

  proposal(proposalId: string): Response {
    return this.request("GET", `/gov/members/proposals/${proposalId}?api-version=2024-07-01`);
  }

  value(key: string): string | undefined {
    return this.store.begin().get("public:test.values", Buffer.from(key))?.toString();
  }
}

function parse(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export const YES = "export function vote(proposal, proposerId) { return true; }";
export const NO = "export function vote(proposal, proposerId) { return false; }";
