// Reading a ledger's content offline (`coco ledger read` / `export`), as CCF's read_ledger.py
// does: every entry's transaction id, flags and write sets, map by map. Public domains are plain;
// private domains are decrypted when ledger secrets are given (see secrets.ts). Checks chunk and
// frame integrity as it goes, but not the Merkle tree or signatures: run verifyLedger for that.
import { readFile } from "node:fs/promises";
import { deserialiseDomain, type MapWrites } from "../kv/index.js";
import { decryptPrivate, type DecodedEntry, type LedgerSecrets } from "../ledger/index.js";
import { checkChunkStart, listChunks, walkChunk } from "./chunks.js";
import type { SecretRange } from "./secrets.js";

export interface ReadOptions {
  fromSeqno?: number;
  toSeqno?: number;
  /** Only these maps (by full name, e.g. "public:records" or "records"). */
  tables?: ReadonlySet<string>;
  secrets?: LedgerSecrets;
  /** Which seqno ranges `secrets` covers (from recoverLedgerSecrets); others are not decrypted. */
  secretRanges?: readonly SecretRange[];
}

/** A key or value: UTF-8 text when the bytes are valid UTF-8, else base64. */
export type EncodedBytes = { text: string } | { base64: string };

export interface ReadWrite {
  key: EncodedBytes;
  /** Null: the key was deleted. */
  value: EncodedBytes | null;
}

export interface ReadEntry {
  view: number;
  seqno: number;
  isSignature: boolean;
  public: Map<string, ReadWrite[]>;
  /** Decrypted private maps; undefined when the entry has private data that was not decrypted. */
  private: Map<string, ReadWrite[]> | undefined;
  /** Bytes of ciphertext (0: no private data). */
  privateBytes: number;
  /** Why the private domain is not shown, when it is not. */
  privateError?: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function encodeBytes(bytes: Uint8Array): EncodedBytes {
  try {
    return { text: utf8.decode(bytes) };
  } catch {
    return { base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64") };
  }
}

/** Yields the entries of `dirs` in seqno order (one chunk in memory at a time). */
export async function* readLedger(dirs: readonly string[], options: ReadOptions = {}): AsyncIterable<ReadEntry> {
  const from = options.fromSeqno ?? 1;
  const to = options.toSeqno ?? Infinity;
  const files = await listChunks(dirs);
  let lastSeqno = 0;
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    checkChunkStart(file, files[i - 1], lastSeqno + 1);
    if (file.firstSeqno > to) return;
    const found: DecodedEntry[] = [];
    lastSeqno = walkChunk(file, await readFile(file.path), (_offset, entry) => {
      if (entry.seqno >= from && entry.seqno <= to) found.push(entry);
    });
    for (const entry of found) yield decodeForReading(entry, options);
  }
}

function decodeForReading(entry: DecodedEntry, options: ReadOptions): ReadEntry {
  const out: ReadEntry = {
    view: entry.view, seqno: entry.seqno, isSignature: entry.isSignature,
    public: mapsOf(deserialiseDomain(entry.publicDomain, "public").maps, options.tables),
    private: entry.privateCiphertext.length === 0 ? new Map() : undefined,
    privateBytes: entry.privateCiphertext.length,
  };
  if (out.private !== undefined) return out;
  if (options.secrets === undefined) {
    out.privateError = "encrypted (no ledger secret given)";
    return out;
  }
  const range = options.secretRanges?.find((r) => r.fromSeqno <= entry.seqno && entry.seqno <= r.toSeqno);
  if (range !== undefined && !range.recovered) {
    out.privateError = `no ledger secret recovered for seqnos ${range.fromSeqno}..${range.toSeqno}: ${range.reason}`;
    return out;
  }
  try {
    const plain = decryptPrivate(entry, options.secrets.forSeqno(entry.seqno));
    out.private = mapsOf(deserialiseDomain(plain, "private").maps, options.tables);
  } catch (error) {
    out.privateError = (error as Error).message;
  }
  return out;
}

function mapsOf(maps: readonly MapWrites[], tables: ReadonlySet<string> | undefined): Map<string, ReadWrite[]> {
  const out = new Map<string, ReadWrite[]>();
  for (const map of maps) {
    if (tables !== undefined && !tables.has(map.name)) continue;
    out.set(map.name, map.writes.map(([key, value]) => ({ key: encodeBytes(key), value: value === null ? null : encodeBytes(value) })));
  }
  return out;
}
