// The primary's ledger-entry encoder on a worker thread. Turning a committed write set into a
// ledger entry costs a commit-evidence digest, an AES-256-GCM pass over the private domain and
// two SHA-256 passes for the Merkle leaf: ~7 µs per transaction, about a fifth of the primary's
// main thread under load. The main thread serialises the write sets of an event-loop turn and
// hands them over as one transferred buffer; the worker answers with the encoded entries and
// their leaves, in order, while the main thread goes on parsing and executing requests.
//
// The worker also signs signature transactions' Merkle roots with the node key (~1 ms of ECDSA
// P-384 each, 40 times a second under load). Whatever must see the log up to date (a
// reconfiguration; close) calls `waitFor`, which blocks on a shared counter until the worker
// has answered and takes the answer synchronously from the port, so those paths stay
// synchronous. Output is byte-for-byte what encodeEntry/entryLeaf give on the
// main thread (both are deterministic), which the tests check.
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import type { LedgerSecretVersion } from "../ledger/index.js";
import type { CoseSignatureKeys } from "../merkle/index.js";
import { WORKER_RESOURCE_LIMITS } from "../util/index.js";

/** One write set to encode: the private domain is still plaintext (it never leaves the process). */
export interface EncodeItem {
  readonly claimsDigest: Buffer;
  readonly publicDomain: Buffer;
  readonly privateDomain: Buffer;
}

export interface EncodedBatch {
  readonly kind: "entries";
  readonly id: number;
  /** Encoded ledger entries, seqnos firstSeqno.. in order (views into one buffer). */
  readonly entries: Buffer[];
  /** Merkle leaf of entry i at bytes [32 i, 32 i + 32). */
  readonly leaves: Buffer;
}

/** A Merkle root signed by the worker (signDigest with the node key, DER), and by the service key as COSE_Sign1 when asked. */
export interface SignedRoot {
  readonly kind: "signature";
  readonly id: number;
  readonly signature: Buffer;
  readonly coseSignature?: Buffer;
}

/** What the worker needs to make CCF 6's COSE signature of a root (see merkle/cose-receipt.ts). */
export interface CoseSigning {
  readonly txid: string;
  readonly issuedAtSeconds: number;
}

/** @internal Messages to the worker. */
export type EncoderRequest =
  | { op: "secrets"; secrets: LedgerSecretVersion[] }
  | { op: "key"; privateKeyPem: string; cose?: CoseSignatureKeys }
  | { op: "encode"; id: number; keyNonce: Uint8Array; view: number; firstSeqno: number; count: number; input: ArrayBuffer }
  | { op: "sign"; id: number; root: Uint8Array; rootPreimage?: Uint8Array; cose?: CoseSigning };

/** @internal Replies from the worker. */
export type EncoderReply =
  | { id: number; ok: true; entries: ArrayBuffer; lengths: Uint32Array; leaves: ArrayBuffer }
  | { id: number; ok: true; signature: Uint8Array; coseSignature?: Uint8Array }
  | { id: number; ok: false; message: string };

/** Per item in the input buffer: claims digest (32) | public length u32 | private length u32 | public | private. */
export const ITEM_HEADER_BYTES = 32 + 4 + 4;

/** How long a synchronous wait may block before the worker is declared stuck. */
const WAIT_LIMIT_MS = 30_000;

export class EntryEncoder {
  private nextId = 1;
  private failure: Error | undefined;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    /** [0]: replies the worker has posted so far (it notifies after each). */
    private readonly posted: Int32Array,
    private readonly deliver: (reply: EncodedBatch | SignedRoot) => void,
    private readonly onFailure: (error: Error) => void,
  ) {}

  /**
   * Starts the worker. `deliver` receives every answer in request order, from the event loop
   * or from inside `waitFor`; `onFailure` is called once if the worker fails.
   */
  static start(secrets: readonly LedgerSecretVersion[], nodePrivateKeyPem: string,
    deliver: (reply: EncodedBatch | SignedRoot) => void, onFailure: (error: Error) => void, cose?: CoseSignatureKeys): EntryEncoder {
    const posted = new Int32Array(new SharedArrayBuffer(4));
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(new URL("./entry-worker.js", import.meta.url), {
      workerData: { port: port2, posted },
      transferList: [port2],
      resourceLimits: WORKER_RESOURCE_LIMITS,
    });
    const encoder = new EntryEncoder(worker, port1, posted, deliver, onFailure);
    port1.on("message", (reply: EncoderReply) => encoder.receive(reply));
    worker.on("error", (error) => encoder.fail(error));
    worker.on("exit", (code) => { if (!encoder.closed) encoder.fail(new Error(`entry encoder worker exited with code ${code}`)); });
    // Neither keeps the process alive: the engine closes the encoder when the node stops.
    worker.unref();
    port1.unref();
    encoder.setSecrets(secrets);
    encoder.post({ op: "key", privateKeyPem: nodePrivateKeyPem, ...(cose === undefined ? {} : { cose }) });
    return encoder;
  }

  get failed(): Error | undefined { return this.failure; }

  /** Ledger secrets by first seqno (after a rekey, a join or a rollback of a rekey). */
  setSecrets(secrets: readonly LedgerSecretVersion[]): void {
    this.post({ op: "secrets", secrets: secrets.map((s) => ({ fromSeqno: s.fromSeqno, raw: s.raw })) });
  }

  /** Queues the entries of seqnos firstSeqno.. (all in `view`, under the term's `keyNonce`); returns the batch id. */
  submit(keyNonce: Buffer, view: number, firstSeqno: number, items: readonly EncodeItem[]): number {
    let size = 0;
    for (const item of items) size += ITEM_HEADER_BYTES + item.publicDomain.length + item.privateDomain.length;
    const input = new ArrayBuffer(size);
    const out = Buffer.from(input);
    let at = 0;
    for (const item of items) {
      item.claimsDigest.copy(out, at);
      out.writeUInt32BE(item.publicDomain.length, at + 32);
      out.writeUInt32BE(item.privateDomain.length, at + 36);
      at += ITEM_HEADER_BYTES;
      at += item.publicDomain.copy(out, at);
      at += item.privateDomain.copy(out, at);
    }
    const id = this.nextId++;
    this.post({ op: "encode", id, keyNonce: new Uint8Array(keyNonce), view, firstSeqno, count: items.length, input }, [input]);
    return id;
  }

  /** Queues the signing of a Merkle root with the node key (and the service key, given `cose`); returns the request id. */
  sign(root: Buffer, rootPreimage: Buffer | undefined, cose?: CoseSigning): number {
    const id = this.nextId++;
    this.post({ op: "sign", id, root: new Uint8Array(root), ...(rootPreimage === undefined ? {} : { rootPreimage: new Uint8Array(rootPreimage) }), ...(cose === undefined ? {} : { cose }) });
    return id;
  }

  /**
   * Blocks until request `id` (and every request before it) has been delivered. Throws if the
   * worker failed or did not answer within WAIT_LIMIT_MS.
   */
  waitFor(id: number, delivered: () => number): void {
    const deadline = Date.now() + WAIT_LIMIT_MS;
    while (delivered() < id) {
      if (this.failure) throw this.failure;
      const seen = Atomics.load(this.posted, 0);
      const next = receiveMessageOnPort(this.port);
      if (next !== undefined) {
        this.receive(next.message as EncoderReply);
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        this.fail(new Error(`entry encoder worker did not answer batch ${id} within ${WAIT_LIMIT_MS} ms`));
        throw this.failure!;
      }
      // The worker posts its reply, then bumps the counter: once it moves, the reply is queued.
      Atomics.wait(this.posted, 0, seen, Math.min(left, 1000));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.port.close();
    await this.worker.terminate();
  }

  private post(message: EncoderRequest, transfer: ArrayBuffer[] = []): void {
    if (this.failure) return;
    this.port.postMessage(message, transfer);
  }

  private receive(reply: EncoderReply): void {
    if (this.failure) return;
    if (!reply.ok) {
      this.fail(new Error(`entry encoder worker: ${reply.message}`));
      return;
    }
    if ("signature" in reply) {
      this.deliver({
        kind: "signature", id: reply.id, signature: Buffer.from(reply.signature),
        ...(reply.coseSignature === undefined ? {} : { coseSignature: Buffer.from(reply.coseSignature) }),
      });
      return;
    }
    const entries: Buffer[] = new Array(reply.lengths.length);
    let offset = 0;
    for (let i = 0; i < reply.lengths.length; i++) {
      entries[i] = Buffer.from(reply.entries, offset, reply.lengths[i]!);
      offset += reply.lengths[i]!;
    }
    this.deliver({ kind: "entries", id: reply.id, entries, leaves: Buffer.from(reply.leaves) });
  }

  private fail(error: Error): void {
    if (this.failure || this.closed) return;
    this.failure = error;
    this.onFailure(error);
  }
}
