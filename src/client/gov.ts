// Member client for CCF's governance REST API (api-version 2024-07-01): proposals, ballots,
// withdrawals and state-digest acks, each sent as a COSE_Sign1 signed with the member's key.
// Reads are plain GETs. Every non-2xx answer becomes a CocoError with the service's CCF code.
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request, type Dispatcher } from "undici";
import { certificateFingerprint } from "../crypto/index.js";
import { signGovernanceRequest, type GovMsgType } from "../governance/cose-auth.js";
import { CocoError } from "../util/errors.js";

export const GOV_API_VERSION = "2024-07-01";
export const TRANSACTION_ID_HEADER = "x-ms-ccf-transaction-id";

/** Ballot that votes for any proposal. */
export const ACCEPT_BALLOT = "export function vote (proposal, proposerId) { return true; }";
/** Ballot that votes against any proposal. */
export const REJECT_BALLOT = "export function vote (proposal, proposerId) { return false; }";

/** Bounds for one response body: governance answers are small; a proposal list stays well under this. */
export const GOV_RESPONSE_BYTES_MAX = 16 * 1024 * 1024;
export const DEFAULT_WAIT_FOR_COMMIT_TIMEOUT_MS = 30_000;
export const DEFAULT_WAIT_FOR_COMMIT_INTERVAL_MS = 100;

export interface ProposalAction {
  name: string;
  args?: unknown;
}

export interface Proposal {
  actions: ProposalAction[];
}

export type ProposalState = "Open" | "Accepted" | "Withdrawn" | "Rejected" | "Failed" | "Dropped";

export interface GovFailure {
  reason: string;
  trace?: string;
}

/** CCF's proposal summary (convert_proposal_to_api_format), plus the write's transaction id. */
export interface ProposalInfo {
  proposalId: string;
  proposerId: string;
  proposalState: ProposalState;
  ballotCount: number;
  /** Member id -> vote, once the proposal has left Open. */
  finalVotes?: Record<string, boolean>;
  /** Member id -> why its ballot threw, once the proposal has left Open. */
  voteFailures?: Record<string, GovFailure>;
  /** Why resolve() or apply() failed (state Failed). */
  failure?: GovFailure;
  /** From the x-ms-ccf-transaction-id response header of a write (not part of CCF's body). */
  transactionId?: string;
}

export interface MemberInfo {
  memberId: string;
  status: "Accepted" | "Active" | string;
  memberData?: unknown;
  certificate?: string;
  publicEncryptionKey?: string;
  recoveryRole?: "NonParticipant" | "Participant" | "Owner" | string;
}

export interface ServiceInfo {
  status: "Opening" | "Open" | "WaitingForRecoveryShares" | "Recovering" | string;
  certificate: string;
  recoveryCount?: number;
  creationTransactionId?: string;
  previousServiceCreationTransactionId?: string;
  serviceData?: unknown;
  configuration?: Record<string, unknown>;
}

/** CCF's answer to a submitted recovery share. */
export interface RecoveryShareResult {
  message: string;
  submittedCount: number;
  recoveryThreshold: number;
  fullKeySubmitted: boolean;
}

export interface StateDigest {
  memberId: string;
  stateDigest: string;
}

export type TransactionStatus = "Unknown" | "Pending" | "Committed" | "Invalid";

export interface GovernanceClientOptions {
  /** Base URL of any node, e.g. https://127.0.0.1:8000. */
  url: string;
  /** The service certificate (service_cert.pem): the only TLS trust anchor. */
  serviceCertPem: string;
  /** The member's identity; required for signed requests (propose, vote, withdraw, ack). */
  memberCertPem?: string;
  memberKeyPem?: string;
  /** Clock in milliseconds since the epoch (default Date.now); signs ccf.gov.msg.created_at. */
  now?: () => number;
}

export interface WaitForCommitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

interface Response {
  status: number;
  body: Buffer;
  transactionId?: string;
}

export class GovernanceClient {
  readonly url: string;
  /** This member's id: SHA-256 of its certificate's DER, hex (undefined without a member certificate). */
  readonly memberId: string | undefined;
  private readonly agent: Agent;
  private readonly memberCertPem: string | undefined;
  private readonly memberKeyPem: string | undefined;
  private readonly now: () => number;

  constructor(options: GovernanceClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new CocoError("InvalidInput", `'${options.url}' is not a URL; expected e.g. https://127.0.0.1:8000.`, 400);
    }
    if (parsed.protocol !== "https:") {
      throw new CocoError("InvalidInput", `'${options.url}' must use https: governance requests go over TLS to the service.`, 400);
    }
    this.url = parsed.origin;
    this.memberCertPem = options.memberCertPem;
    this.memberKeyPem = options.memberKeyPem;
    this.memberId = options.memberCertPem === undefined ? undefined : certificateFingerprint(options.memberCertPem);
    this.now = options.now ?? Date.now;
    const withClientCert = options.memberCertPem !== undefined && options.memberKeyPem !== undefined;
    this.agent = new Agent({
      connect: {
        ca: options.serviceCertPem,
        // CCF authenticates governance writes by the COSE signature; the TLS client
        // certificate is sent only because it costs nothing and some endpoints accept it.
        ...(withClientCert ? { cert: options.memberCertPem, key: options.memberKeyPem } : {}),
      },
    });
  }

  /** Closes the client's connections; pending requests are allowed to finish. */
  async close(): Promise<void> {
    await this.agent.close();
  }

  // ---- Proposals -------------------------------------------------------------------------

  /** POST /gov/members/proposals:create — submits a proposal; it may be Accepted at once. */
  async propose(proposal: Proposal): Promise<ProposalInfo> {
    const payload = JSON.stringify(proposal);
    const createdAt = Math.floor(this.now() / 1000);
    let response: Response;
    try {
      response = await this.signed("POST", "/gov/members/proposals:create", "proposal", payload, undefined, createdAt);
    } catch (error) {
      // created_at has a resolution of one second, and the service refuses a second proposal with the
      // same content and created_at as a replay. A caller that asks to propose is asking for a new
      // proposal (say, deploying the same bundle twice within a second), so sign it again with a later
      // created_at. Only the holder of the member key can do this; a replayed envelope is still refused.
      if (!(error instanceof CocoError) || error.code !== "ProposalReplay") throw error;
      const wait = (createdAt + 1) * 1000 - this.now();
      if (wait > 0) await sleep(wait);
      response = await this.signed("POST", "/gov/members/proposals:create", "proposal", payload, undefined, Math.max(createdAt + 1, Math.floor(this.now() / 1000)));
    }
    return withTransactionId(parseJson<ProposalInfo>(response), response);
  }

  /** POST /gov/members/proposals/{id}/ballots/{memberId}:submit with a JS ballot `vote(proposal, proposerId)`. */
  async vote(proposalId: string, ballotSource: string): Promise<ProposalInfo> {
    const memberId = this.requireMemberId();
    const path = `/gov/members/proposals/${segment(proposalId)}/ballots/${segment(memberId)}:submit`;
    const response = await this.signed("POST", path, "ballot", JSON.stringify({ ballot: ballotSource }), proposalId);
    return withTransactionId(parseJson<ProposalInfo>(response), response);
  }

  accept(proposalId: string): Promise<ProposalInfo> {
    return this.vote(proposalId, ACCEPT_BALLOT);
  }

  reject(proposalId: string): Promise<ProposalInfo> {
    return this.vote(proposalId, REJECT_BALLOT);
  }

  /**
   * POST /gov/members/proposals/{id}:withdraw (proposer only, while Open). Like CCF, undefined
   * (204) when the service does not know the proposal: withdrawal is idempotent.
   */
  async withdraw(proposalId: string): Promise<ProposalInfo | undefined> {
    const path = `/gov/members/proposals/${segment(proposalId)}:withdraw`;
    const response = await this.signed("POST", path, "withdrawal", "", proposalId);
    if (response.status === 204 || response.body.length === 0) return undefined;
    return withTransactionId(parseJson<ProposalInfo>(response), response);
  }

  /** GET /gov/members/proposals — every proposal the service still holds. */
  async list(): Promise<ProposalInfo[]> {
    const response = await this.getPath("/gov/members/proposals");
    return parseJson<{ value: ProposalInfo[] }>(response).value;
  }

  /** GET /gov/members/proposals/{id}. */
  async get(proposalId: string): Promise<ProposalInfo> {
    return parseJson<ProposalInfo>(await this.getPath(`/gov/members/proposals/${segment(proposalId)}`));
  }

  /** GET /gov/members/proposals/{id}/actions — the proposal as submitted. */
  async actions(proposalId: string): Promise<Proposal> {
    return parseJson<Proposal>(await this.getPath(`/gov/members/proposals/${segment(proposalId)}/actions`));
  }

  // ---- Service ---------------------------------------------------------------------------

  /** GET /gov/service/members. */
  async members(): Promise<MemberInfo[]> {
    return parseJson<{ value: MemberInfo[] }>(await this.getPath("/gov/service/members")).value;
  }

  /** GET /gov/service/info. */
  async serviceInfo(): Promise<ServiceInfo> {
    return parseJson<ServiceInfo>(await this.getPath("/gov/service/info"));
  }

  // ---- Member activation -----------------------------------------------------------------

  /** POST /gov/members/state-digests/{memberId}:update — a fresh digest for this member to ack. */
  async updateStateDigest(): Promise<StateDigest> {
    const path = `/gov/members/state-digests/${segment(this.requireMemberId())}:update`;
    return parseJson<StateDigest>(await this.signed("POST", path, "state_digest", ""));
  }

  /** POST /gov/members/state-digests/{memberId}:ack — signs the digest; an Accepted member becomes Active. */
  async ack(stateDigest?: string): Promise<void> {
    const digest = stateDigest ?? (await this.updateStateDigest()).stateDigest;
    const path = `/gov/members/state-digests/${segment(this.requireMemberId())}:ack`;
    await this.signed("POST", path, "ack", JSON.stringify({ stateDigest: digest }));
  }

  // ---- Recovery ----------------------------------------------------------------------------

  /** GET /gov/recovery/encrypted-shares/{memberId}: a recovery member's share, encrypted to its encryption key (base64). */
  async encryptedRecoveryShare(memberId?: string): Promise<string> {
    const id = memberId ?? this.requireMemberId();
    const response = await this.getPath(`/gov/recovery/encrypted-shares/${segment(id)}`);
    return parseJson<{ encryptedShare: string }>(response).encryptedShare;
  }

  /**
   * POST /gov/recovery/members/{memberId}:recover with this member's decrypted share, while a
   * recovered service waits for recovery shares (CCF's body: {"share": base64}).
   */
  async submitRecoveryShare(share: Uint8Array): Promise<RecoveryShareResult> {
    const path = `/gov/recovery/members/${segment(this.requireMemberId())}:recover`;
    const response = await this.signed("POST", path, "recovery_share", JSON.stringify({ share: Buffer.from(share).toString("base64") }));
    return parseJson<RecoveryShareResult>(response);
  }

  // ---- Transactions ----------------------------------------------------------------------

  /** GET /node/tx?transaction_id= */
  async transactionStatus(transactionId: string): Promise<TransactionStatus> {
    const response = await this.request("GET", "/node/tx", { query: { transaction_id: transactionId } });
    return parseJson<{ status: TransactionStatus }>(response).status;
  }

  /** Polls /node/tx until the transaction is Committed; throws if it became Invalid or time ran out. */
  async waitForCommit(transactionId: string, options: WaitForCommitOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_FOR_COMMIT_TIMEOUT_MS;
    const intervalMs = options.intervalMs ?? DEFAULT_WAIT_FOR_COMMIT_INTERVAL_MS;
    const deadline = Date.now() + timeoutMs;
    let last: TransactionStatus = "Unknown";
    for (;;) {
      last = await this.transactionStatus(transactionId);
      if (last === "Committed") return;
      if (last === "Invalid") {
        throw new CocoError("TransactionInvalid", `Transaction ${transactionId} is Invalid: it was rolled back by an election and will never commit; submit it again.`, 409);
      }
      if (Date.now() + intervalMs > deadline) break;
      await sleep(intervalMs);
    }
    throw new CocoError("TransactionNotCommitted", `Transaction ${transactionId} is still ${last} after ${timeoutMs} ms; check that the service has a primary and a majority of its nodes.`, 504);
  }

  // ---- Plumbing --------------------------------------------------------------------------

  private requireMemberId(): string {
    if (this.memberId === undefined) {
      throw new CocoError("InvalidInput", "This request acts as a member: give the client memberCertPem and memberKeyPem.", 400);
    }
    return this.memberId;
  }

  private async signed(method: "POST", path: string, msgType: GovMsgType, payload: string, proposalId?: string, createdAt = Math.floor(this.now() / 1000)): Promise<Response> {
    this.requireMemberId();
    if (this.memberKeyPem === undefined) {
      throw new CocoError("InvalidInput", "This request is signed by the member: give the client memberKeyPem.", 400);
    }
    const body = signGovernanceRequest({
      memberCertPem: this.memberCertPem!,
      memberKeyPem: this.memberKeyPem,
      msgType,
      createdAt,
      ...(proposalId === undefined ? {} : { proposalId }),
      payload,
    });
    return this.request(method, path, { body, contentType: "application/cose", apiVersion: true });
  }

  private getPath(path: string): Promise<Response> {
    return this.request("GET", path, { apiVersion: true });
  }

  private async request(
    method: Dispatcher.HttpMethod,
    path: string,
    options: { body?: Buffer; contentType?: string; apiVersion?: boolean; query?: Record<string, string> },
  ): Promise<Response> {
    const url = new URL(path, this.url);
    if (options.apiVersion) url.searchParams.set("api-version", GOV_API_VERSION);
    for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, value);
    let result: Dispatcher.ResponseData;
    try {
      result = await request(url, {
        dispatcher: this.agent,
        method,
        headers: options.contentType === undefined ? {} : { "content-type": options.contentType },
        ...(options.body === undefined ? {} : { body: options.body }),
      });
    } catch (error) {
      throw new CocoError("ConnectionFailed", `Cannot reach the service at ${this.url}: ${(error as Error).message}. Is the node running, and is the service certificate the right one?`, 503, { cause: error });
    }
    const body = await readBody(result.body, method, url);
    const txHeader = result.headers[TRANSACTION_ID_HEADER];
    const transactionId = Array.isArray(txHeader) ? txHeader[0] : txHeader;
    if (result.statusCode < 200 || result.statusCode > 299) throw errorFromResponse(result.statusCode, body, method, url);
    return { status: result.statusCode, body, ...(transactionId === undefined ? {} : { transactionId }) };
  }
}

/** Encodes one path segment (ids are hex, but nothing else should be able to change the route). */
function segment(value: string): string {
  return encodeURIComponent(value);
}

async function readBody(body: Dispatcher.ResponseData["body"], method: string, url: URL): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > GOV_RESPONSE_BYTES_MAX) {
      body.destroy();
      throw new CocoError("ResponseTooLarge", `${method} ${url.pathname} answered more than ${GOV_RESPONSE_BYTES_MAX} bytes.`, 502);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The service's `{"error":{"code","message"}}` as a CocoError; anything else named by its status. */
function errorFromResponse(status: number, body: Buffer, method: string, url: URL): CocoError {
  const text = body.toString("utf8");
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const code = parsed.error?.code;
    const message = parsed.error?.message;
    if (typeof code === "string" && typeof message === "string") return new CocoError(code, message, status);
  } catch {
    // Not a CCF error body; described below.
  }
  const detail = text.length > 0 ? `: ${text.slice(0, 500)}` : "";
  return new CocoError(`Http${status}`, `${method} ${url.pathname} failed with HTTP ${status}${detail}`, status);
}

function parseJson<T>(response: Response): T {
  try {
    return JSON.parse(response.body.toString("utf8")) as T;
  } catch {
    throw new CocoError("InvalidResponse", `The service answered HTTP ${response.status} with a body that is not JSON.`, 502);
  }
}

function withTransactionId<T extends object>(value: T, response: Response): T & { transactionId?: string } {
  return response.transactionId === undefined ? value : { ...value, transactionId: response.transactionId };
}
