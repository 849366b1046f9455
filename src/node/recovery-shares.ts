// Recovery shares, as CCF issues them: a fresh ledger-secret wrapping key wraps the latest
// ledger secret; the wrapping key is split with Shamir's scheme (threshold set by governance)
// and each share is encrypted (RSA-OAEP-SHA256) to one recovery member, i.e. an Active member
// with an encryption key. The result goes in the public table `public:ccf.internal.recovery_shares`:
// anyone can see it, only a threshold of members can use it.
import { constants, createCipheriv, createDecipheriv, createPublicKey, privateDecrypt, publicEncrypt, randomBytes } from "node:crypto";
import { combine, split } from "shamir-secret-sharing";
import type { Store } from "../kv/index.js";
import { CocoError } from "../util/index.js";
import { SINGLETON_KEY } from "./signatures.js";

export const RECOVERY_SHARES_MAP = "public:ccf.internal.recovery_shares";
/**
 * Written at each rotation of the ledger secret (and when a recovered service opens): the
 * previous secret encrypted under the next one, so that from the latest secret alone (which the
 * recovery shares wrap) every earlier secret can be decrypted in turn, as CCF's table of the
 * same name.
 */
export const HISTORICAL_SECRETS_MAP = "public:ccf.internal.historical_encrypted_ledger_secret";

export interface HistoricalEncryptedSecret {
  /** First seqno the previous secret encrypts. */
  previous_from_seqno: number;
  /** The previous secret, AES-256-GCM under the next secret: iv (12) || ciphertext || tag, base64. */
  encrypted_previous_secret: string;
  /** First seqno the next secret (the key of this record) encrypts. */
  next_from_seqno: number;
}

/** The record that chains `previous` to `next` (see HISTORICAL_SECRETS_MAP). */
export function encryptPreviousSecret(previous: { fromSeqno: number; raw: Buffer }, next: { fromSeqno: number; raw: Buffer }): HistoricalEncryptedSecret {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", next.raw, iv);
  cipher.setAAD(Buffer.from(`coco previous ledger secret ${previous.fromSeqno} ${next.fromSeqno}`));
  const sealed = Buffer.concat([iv, cipher.update(previous.raw), cipher.final(), cipher.getAuthTag()]);
  return { previous_from_seqno: previous.fromSeqno, encrypted_previous_secret: sealed.toString("base64"), next_from_seqno: next.fromSeqno };
}

/** Decrypts the previous secret of a record with the next one; throws if it is not that secret. */
export function decryptPreviousSecret(record: HistoricalEncryptedSecret, nextRaw: Buffer): Buffer {
  const sealed = Buffer.from(record.encrypted_previous_secret, "base64");
  const decipher = createDecipheriv("aes-256-gcm", nextRaw, sealed.subarray(0, 12));
  decipher.setAAD(Buffer.from(`coco previous ledger secret ${record.previous_from_seqno} ${record.next_from_seqno}`));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
}
const MEMBERS_INFO = "public:ccf.gov.members.info";
const MEMBERS_ENCRYPTION_KEYS = "public:ccf.gov.members.encryption_public_keys";
const SERVICE_CONFIG = "public:ccf.gov.service.config";

export interface RecoverySharesInfo {
  /** Latest ledger secret, AES-256-GCM under the wrapping key: iv (12) || ciphertext || tag, base64. */
  wrapped_latest_ledger_secret: string;
  /** Member id -> RSA-OAEP-SHA256 encrypted share, base64. */
  encrypted_shares: Record<string, string>;
  /** Seqno from which the wrapped secret encrypts the ledger. */
  latest_ledger_secret_seqno: number;
  recovery_threshold: number;
}

/** Active members with an encryption key, by id: the members who hold recovery shares. */
export function recoveryMembers(store: Store): Map<string, string> {
  const out = new Map<string, string>();
  const probe = store.begin();
  probe.forEach(MEMBERS_ENCRYPTION_KEYS, (value, key) => {
    const id = key.toString("utf8");
    const info = probe.get(MEMBERS_INFO, key);
    const status = info ? (JSON.parse(info.toString("utf8")) as { status?: string }).status : undefined;
    if (status === "Active") {
      const text = value.toString("utf8");
      out.set(id, text.startsWith('"') ? (JSON.parse(text) as string) : text);
    }
  });
  return out;
}

export function recoveryThreshold(store: Store): number {
  const raw = store.get(SERVICE_CONFIG, SINGLETON_KEY);
  const config = raw ? (JSON.parse(raw.toString("utf8")) as { recovery_threshold?: number }) : {};
  return config.recovery_threshold ?? 0;
}

/** Builds fresh shares for `members`, or undefined when there are no recovery members. */
export async function buildRecoveryShares(members: Map<string, string>, threshold: number, latestSecret: Buffer, latestSecretSeqno: number): Promise<RecoverySharesInfo | undefined> {
  if (members.size === 0) return undefined;
  if (threshold < 1 || threshold > members.size) {
    throw new CocoError("InvalidRecoveryThreshold", `Recovery threshold ${threshold} must be between 1 and the number of recovery members (${members.size}).`, 400);
  }
  const wrappingKey = randomBytes(32);
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", wrappingKey, iv);
  const wrapped = Buffer.concat([iv, cipher.update(latestSecret), cipher.final(), cipher.getAuthTag()]);
  // With one share needed (or one member), any share must rebuild the key on its own: a
  // threshold-1 Shamir polynomial is the constant, so the share is the key itself.
  const shares = threshold === 1 || members.size === 1
    ? [...members.keys()].map(() => Uint8Array.from(wrappingKey))
    : await split(Uint8Array.from(wrappingKey), members.size, threshold);
  const encrypted: Record<string, string> = {};
  let i = 0;
  for (const [id, pem] of [...members.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    encrypted[id] = publicEncrypt({ key: createPublicKey(pem), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, shares[i++]!).toString("base64");
  }
  return { wrapped_latest_ledger_secret: wrapped.toString("base64"), encrypted_shares: encrypted, latest_ledger_secret_seqno: latestSecretSeqno, recovery_threshold: threshold };
}

/** What a recovery (later) does with a threshold of decrypted shares: rebuild the key, unwrap the secret. */
export async function recoverLatestSecret(info: RecoverySharesInfo, decryptedShares: Uint8Array[]): Promise<Buffer> {
  const key = info.recovery_threshold === 1 || decryptedShares.length === 1 ? Buffer.from(decryptedShares[0]!) : Buffer.from(await combine(decryptedShares.map((s) => Uint8Array.from(s))));
  const wrapped = Buffer.from(info.wrapped_latest_ledger_secret, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, wrapped.subarray(0, 12));
  decipher.setAuthTag(wrapped.subarray(wrapped.length - 16));
  return Buffer.concat([decipher.update(wrapped.subarray(12, wrapped.length - 16)), decipher.final()]);
}

/** A member decrypts its share with its encryption private key (members do this, not nodes). */
export function decryptShare(encryptedShareBase64: string, memberEncryptionPrivateKeyPem: string): Buffer {
  return privateDecrypt({ key: memberEncryptionPrivateKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, Buffer.from(encryptedShareBase64, "base64"));
}
