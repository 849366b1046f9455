// Shared by the ledger tests: deterministic entries (so what is read back can be compared with
// what was written) and a small tmpfs that can be filled to test a full disk.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LedgerSecret, encodeEntry } from "../../src/ledger/index.js";

const secret = new LedgerSecret(Buffer.alloc(32, 7));
const digest = Buffer.alloc(32, 1);
const keyNonce = Buffer.alloc(16, 3);

/** The entry for `seqno` written in `view`; every 10th seqno is a signature transaction. */
export function testEntry(seqno: number, view = 2): Buffer {
  return encodeEntry(
    {
      view,
      seqno,
      isSignature: seqno % 10 === 0,
      claimsDigest: digest,
      commitEvidenceDigest: digest,
      keyNonce,
      publicDomain: Buffer.from(`public ${seqno}`),
      privatePlaintext: Buffer.from(`private ${seqno}`.padEnd(100, ".")),
    },
    secret,
  );
}

export interface AppendTarget {
  append(entry: Buffer, seqno: number, isSignature: boolean): void;
}

/** Appends seqnos from..to in `view`; every 10th is a signature. */
export function appendEntries(ledger: AppendTarget, from: number, to: number, view = 2): void {
  for (let s = from; s <= to; s++) ledger.append(testEntry(s, view), s, s % 10 === 0);
}

/** A tmpfs of `sizeKiB` mounted on a fresh directory, or the reason it cannot be (not root, no mount). */
export async function mountTmpfs(sizeKiB: number): Promise<{ dir: string; unmount: () => Promise<void> } | { skip: string }> {
  const dir = await mkdtemp(join(tmpdir(), "coco-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeKiB}k`, "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    return { skip: `cannot mount a tmpfs to fill (needs root and mount permission): ${String((err as Error).message).split("\n")[0]}` };
  }
  return {
    dir,
    unmount: async () => {
      execFileSync("umount", [dir], { stdio: "pipe" });
      await rm(dir, { recursive: true, force: true });
    },
  };
}
