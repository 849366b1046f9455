// Worker thread of SenderRecovery (sender-recovery.ts): decodes signed Ethereum transactions and
// recovers their senders (secp256k1, ~0.1 ms each even with libsecp256k1) off the main thread,
// with the same ethereumjs code and Common settings as the chain. Any failure answers null: the
// main thread then does the work itself and reports the error exactly as it always has.
import { parentPort } from "node:worker_threads";
import type { Common } from "@ethereumjs/common";
import { createTxFromRLP } from "@ethereumjs/tx";
import { sharedChainCommon } from "./common.js";

/** The signed transactions back to back in `bytes`; transaction i ends at `ends[i]`. */
export interface RecoveryRequest { id: number; chainId: number; bytes: Uint8Array; ends: number[] }
export interface RecoveredSender { hash: Uint8Array; publicKey: Uint8Array }
/** Results in request order; `hashes` and `publicKeys` packed (32 and 64 bytes each), `ok[i]` 0 where recovery failed. */
export interface RecoveryResponse { id: number; ok: Uint8Array; hashes: Uint8Array; publicKeys: Uint8Array }

const commons = new Map<number, Common>();

function commonFor(chainId: number): Common {
  let common = commons.get(chainId);
  if (common === undefined) commons.set(chainId, (common = sharedChainCommon(chainId)));
  return common;
}

parentPort?.on("message", (request: RecoveryRequest) => {
  const common = commonFor(request.chainId);
  const count = request.ends.length;
  const ok = new Uint8Array(count);
  const hashes = new Uint8Array(32 * count);
  const publicKeys = new Uint8Array(64 * count);
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = request.ends[i]!;
    try {
      const tx = createTxFromRLP(request.bytes.subarray(start, end), { common });
      const hash = tx.hash();
      const publicKey = tx.getSenderPublicKey();
      if (hash.length === 32 && publicKey.length === 64) {
        hashes.set(hash, 32 * i);
        publicKeys.set(publicKey, 64 * i);
        ok[i] = 1;
      }
    } catch {
      // ok[i] stays 0: the main thread recovers this one and reports its error.
    }
    start = end;
  }
  const response: RecoveryResponse = { id: request.id, ok, hashes, publicKeys };
  parentPort!.postMessage(response, [ok.buffer, hashes.buffer, publicKeys.buffer]);
});
