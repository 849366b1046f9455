// Recovering ledger secrets offline, from the ledger itself and members' encryption keys, as a
// disaster recovery would: every `public:ccf.internal.recovery_shares` write wraps the ledger
// secret then in force under a fresh key split among the recovery members. A threshold of shares
// opened with members' RSA keys rebuilds that key and unwraps the secret. Rekeys announce where
// each secret starts (`public:ccf.internal.ledger_secret_shares`.from_seqno), so the seqno ranges
// whose secret no share set covers can be named exactly.
import { readFile } from "node:fs/promises";
import { deserialiseDomain } from "../kv/index.js";
import { LedgerSecrets, type DecodedEntry, type LedgerSecretVersion } from "../ledger/index.js";
import { checkChunkStart, listChunks, walkChunk } from "./chunks.js";
import { LEDGER_SECRET_SHARES_MAP, RECOVERY_SHARES_MAP, decryptShare, recoverLatestSecret, type LedgerSecretSharesRecord, type RecoverySharesInfo } from "./tables.js";

export interface SecretRange {
  fromSeqno: number;
  /** Last seqno under this secret (the ledger's last seqno for the latest secret). */
  toSeqno: number;
  recovered: boolean;
  /** Why not, when not recovered. */
  reason?: string;
}

export interface RecoveredSecrets {
  /** Undefined when no secret could be recovered. */
  secrets: LedgerSecrets | undefined;
  ranges: SecretRange[];
}

const RECOVERY_SHARES_BYTES = Buffer.from(RECOVERY_SHARES_MAP);
const LEDGER_SECRET_SHARES_BYTES = Buffer.from(LEDGER_SECRET_SHARES_MAP);

/** Reads the ledger once for recovery shares and rekeys; opens what `memberKeyPems` can open. */
export async function recoverLedgerSecrets(dirs: readonly string[], memberKeyPems: readonly string[]): Promise<RecoveredSecrets> {
  const starts = new Set<number>([1]);
  const shareSets: RecoverySharesInfo[] = [];
  let lastSeqno = 0;
  const files = await listChunks(dirs);
  for (let i = 0; i < files.length; i++) {
    checkChunkStart(files[i]!, files[i - 1], lastSeqno + 1);
    lastSeqno = walkChunk(files[i]!, await readFile(files[i]!.path), (_offset, entry) => collect(entry, starts, shareSets));
  }
  const found = new Map<number, Buffer>();
  const failures = new Map<number, string>();
  for (const info of shareSets) {
    if (found.has(info.latest_ledger_secret_seqno)) continue;
    try {
      found.set(info.latest_ledger_secret_seqno, await openShareSet(info, memberKeyPems));
    } catch (error) {
      failures.set(info.latest_ledger_secret_seqno, (error as Error).message);
    }
  }
  const sorted = [...starts].sort((a, b) => a - b).filter((s) => s <= Math.max(lastSeqno, 1));
  const ranges: SecretRange[] = sorted.map((fromSeqno, k) => {
    const toSeqno = k + 1 < sorted.length ? sorted[k + 1]! - 1 : lastSeqno;
    if (found.has(fromSeqno)) return { fromSeqno, toSeqno, recovered: true };
    const reason = failures.get(fromSeqno) ?? "the ledger holds no recovery shares for the ledger secret used from this seqno";
    return { fromSeqno, toSeqno, recovered: false, reason };
  });
  const versions: LedgerSecretVersion[] = ranges.filter((r) => r.recovered).map((r) => ({ fromSeqno: r.fromSeqno, raw: found.get(r.fromSeqno)! }));
  return { secrets: versions.length > 0 ? new LedgerSecrets(versions) : undefined, ranges };
}

function collect(entry: DecodedEntry, starts: Set<number>, shareSets: RecoverySharesInfo[]): void {
  const domain = entry.publicDomain;
  if (!domain.includes(RECOVERY_SHARES_BYTES) && !domain.includes(LEDGER_SECRET_SHARES_BYTES)) return;
  for (const map of deserialiseDomain(domain, "public").maps) {
    for (const [, value] of map.writes) {
      if (value === null) continue;
      if (map.name === RECOVERY_SHARES_MAP) shareSets.push(JSON.parse(value.toString("utf8")) as RecoverySharesInfo);
      else if (map.name === LEDGER_SECRET_SHARES_MAP) starts.add((JSON.parse(value.toString("utf8")) as LedgerSecretSharesRecord).from_seqno);
    }
  }
}

/** Opens a threshold of one share set's shares with the given keys and unwraps its ledger secret. */
async function openShareSet(info: RecoverySharesInfo, memberKeyPems: readonly string[]): Promise<Buffer> {
  const opened = new Map<string, Uint8Array>();
  for (const [memberId, encrypted] of Object.entries(info.encrypted_shares)) {
    for (const key of memberKeyPems) {
      try {
        opened.set(memberId, decryptShare(encrypted, key));
        break;
      } catch { /* another member's share */ }
    }
  }
  if (opened.size < info.recovery_threshold) {
    throw new Error(`the given member keys open ${opened.size} of the ${info.recovery_threshold} recovery shares needed ` +
      `for the ledger secret used from seqno ${info.latest_ledger_secret_seqno}`);
  }
  return recoverLatestSecret(info, [...opened.values()].slice(0, info.recovery_threshold));
}
