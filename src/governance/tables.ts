// The governance tables under CCF's names and the JSON shapes CCF's constitution and tooling
// read from them. Keys are the UTF-8 bytes of ids; values are JSON unless noted. Kept in one
// place so that the endpoints, the resolution and the tests agree byte for byte.
import type { Transaction } from "../kv/index.js";

export const TABLES = {
  constitution: "public:ccf.gov.constitution",
  proposals: "public:ccf.gov.proposals",
  proposalsInfo: "public:ccf.gov.proposals_info",
  coseRecentProposals: "public:ccf.gov.cose_recent_proposals",
  coseHistory: "public:ccf.gov.cose_history",
  membersCerts: "public:ccf.gov.members.certs",
  membersInfo: "public:ccf.gov.members.info",
  membersAcks: "public:ccf.gov.members.acks",
  membersEncryptionPublicKeys: "public:ccf.gov.members.encryption_public_keys",
  usersCerts: "public:ccf.gov.users.certs",
  usersInfo: "public:ccf.gov.users.info",
  nodesInfo: "public:ccf.gov.nodes.info",
  nodesEndorsedCertificates: "public:ccf.gov.nodes.endorsed_certificates",
  serviceInfo: "public:ccf.gov.service.info",
  serviceConfig: "public:ccf.gov.service.config",
  /** The certificate of the service this one recovered (a JSON string), as CCF. */
  previousServiceIdentity: "public:ccf.gov.service.previous_service_identity",
  jsEndpoints: "public:ccf.gov.endpoints",
  jsModules: "public:ccf.gov.modules",
} as const;

/** Key of CCF's single-value maps (constitution, service info, config): 8 zero bytes. */
export const SINGLETON_KEY: Buffer = Buffer.alloc(8);

/** CCF's default `recent_cose_proposals_window_size`. */
export const RECENT_COSE_PROPOSALS_WINDOW_SIZE_DEFAULT = 100;
/**
 * Coco's ceiling on that window, whatever the service configuration says: every proposal reads
 * the whole table, so it must stay small. Replays of entries that fall out of it are still
 * refused, by the median rule (ProposalCreatedTooLongAgo) and by the created_at clock window.
 */
export const RECENT_COSE_PROPOSALS_WINDOW_SIZE_MAX = 10_000;

export type ProposalState = "Open" | "Accepted" | "Withdrawn" | "Rejected" | "Failed" | "Dropped";

/** CCF's jsgov::Failure. */
export interface Failure {
  reason: string;
  trace?: string;
}

/** Value of public:ccf.gov.proposals_info (CCF's jsgov::ProposalInfo, snake_case as stored). */
export interface ProposalInfo {
  proposer_id: string;
  state: ProposalState;
  /** member id -> ballot source (an ES module exporting `vote`). */
  ballots: Record<string, string>;
  final_votes?: Record<string, boolean>;
  vote_failures?: Record<string, Failure>;
  failure?: Failure;
}

export type MemberStatus = "Accepted" | "Active";

/** Value of public:ccf.gov.members.info. */
export interface MemberInfo {
  status: MemberStatus;
  member_data?: unknown;
  recovery_role?: "NonParticipant" | "Participant" | "Owner";
}

/** Value of public:ccf.gov.members.acks (CCF's MemberAck). */
export interface MemberAck {
  state_digest: string;
  /** Base64 of the COSE_Sign1 of the member's last ack. */
  cose_sign1_req?: string;
}

/** Value of public:ccf.gov.service.info (CCF's ServiceInfo). */
export interface ServiceInfo {
  cert: string;
  status: "Opening" | "Open" | "WaitingForRecoveryShares" | "Recovering";
  previous_service_identity_version?: number;
  recovery_count?: number;
  service_data?: unknown;
  /** "view.seqno" */
  current_service_create_txid?: string;
}

export const utf8 = (text: string): Buffer => Buffer.from(text, "utf8");
export const jsonBytes = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), "utf8");

/** Parses a JSON value of a governance table; an empty value (CCF's "set with no value") is undefined. */
export function parseJson<T>(value: Uint8Array | undefined): T | undefined {
  if (value === undefined || value.length === 0) return undefined;
  return JSON.parse(Buffer.from(value).toString("utf8")) as T;
}

export function readJson<T>(tx: Transaction, map: string, key: string | Uint8Array): T | undefined {
  return parseJson<T>(tx.get(map, typeof key === "string" ? utf8(key) : key));
}

export function writeJson(tx: Transaction, map: string, key: string | Uint8Array, value: unknown): void {
  tx.set(map, typeof key === "string" ? utf8(key) : key, jsonBytes(value));
}

/** The constitution source, stored as a JSON string under the singleton key. */
export function readConstitution(tx: Transaction): string | undefined {
  return parseJson<string>(tx.get(TABLES.constitution, SINGLETON_KEY));
}

/**
 * A PEM stored under an id. CCF stores PEMs as JSON strings; raw PEM text (as some
 * constitutions write with ccf.strToBuf) is accepted too.
 */
export function readPem(tx: Transaction, map: string, id: string): string | undefined {
  const raw = tx.get(map, utf8(id));
  if (raw === undefined || raw.length === 0) return undefined;
  const text = raw.toString("utf8");
  return text.startsWith('"') ? (JSON.parse(text) as string) : text;
}
