// A node that restarts from a snapshot serves before it has the Merkle tree of the transactions
// the snapshot covers (only receipts of those transactions need it). This builds that tree from
// the node's own ledger after the node serves: the ledger's worker reads and hashes the entries
// (describeRange), the main thread appends the leaves in batches between requests. Meanwhile
// receipts of those transactions answer 503 with Retry-After (engine.receiptParts). The tree is
// used only if its root at the snapshot's seqno is the root of the snapshot's own tree (which
// the snapshot's receipt proved); then the leaves the node committed since are copied over in
// batches and the engine takes the tree (adoptMerkleHistory), synchronously for the last few.
// With a `retainedDirectory`, the hashes the tree keeps of the leaves before the snapshot are
// written there once it is verified (merkle-retained-file.ts), and the next restart hashes only
// the entries after them: its cost follows what was written since, not the ledger's length.
import { setImmediate as nextTurn } from "node:timers/promises";
import type { EntryDescriptions, LedgerStore } from "../ledger/index.js";
import { MerkleTree } from "../merkle/index.js";
import { assert } from "../util/index.js";
import { MERKLE_RETAINED_HEIGHT, type TransactionEngine } from "./engine.js";
import { readRetainedHashes, removeRetainedHashes, writeRetainedHashes } from "./merkle-retained-file.js";

interface Logger { info(o: object, msg: string): void; warn(o: object, msg: string): void; error(o: object, msg: string): void }

/**
 * Bytes of entries the worker reads and hashes per request: small enough that a flush queued
 * behind it on the same worker waits little (commit latency while the tree is built).
 */
const DESCRIBE_READ_BYTES = 1024 * 1024;
/** Leaves copied from the engine's tree per turn of the event loop once the ledger part is done. */
const CATCH_UP_LEAVES_PER_TURN = 4096;
/** The engine's tree gains entries while the history catches up: the last ones are copied synchronously. */
const FINAL_COPY_LEAVES_MAX = CATCH_UP_LEAVES_PER_TURN;
/** Unused marker (the build needs leaves, not the configuration flag): no public domain is searched. */
const NO_MARKER = new Uint8Array(0);

export class MerkleHistoryBuild {
  #stopped = false;
  #done: Promise<void> | undefined;

  constructor(
    private readonly engine: TransactionEngine,
    private readonly ledger: Pick<LedgerStore, "describeRange">,
    /** The snapshot's seqno: the tree of leaves 1..seqno is built from the ledger. */
    readonly seqno: number,
    private readonly windowLeaves: number,
    private readonly logger: Logger,
    /** Where the retained hashes are kept between restarts (the ledger directory); undefined: never. */
    private readonly retainedDirectory?: string,
  ) {
    assert(seqno >= 1 && engine.snapshotStartSeqno === seqno, `the engine started from the snapshot at ${seqno}`);
    engine.setMerkleHistoryState("building");
  }

  /** Starts the build (once); the promise settles when the engine has the tree or the build gave up. */
  start(): Promise<void> {
    this.#done ??= this.#run();
    return this.#done;
  }

  /** Stops at the next batch (the node is stopping); receipts before the snapshot stay unavailable. */
  stop(): void {
    this.#stopped = true;
  }

  async #run(): Promise<void> {
    const started = Date.now();
    try {
      const frontierRoot = this.engine.tree.rootAt(this.seqno);
      let built = await this.#fromLedger(true);
      if (built === undefined) return;
      if (built.fromRetained > 0 && !built.tree.root().equals(frontierRoot)) {
        // The file passed its checksum but holds other hashes (another ledger's, or planted).
        this.logger.warn({ seqno: this.seqno, retained: built.fromRetained, directory: this.retainedDirectory },
          "retained Merkle hashes refused (they do not lead to the snapshot's root): hashing the whole ledger before the snapshot");
        await removeRetainedHashes(this.retainedDirectory!);
        built = await this.#fromLedger(false);
        if (built === undefined) return;
      }
      const { tree, fromRetained } = built;
      const ledgerMs = Date.now() - started;
      if (!tree.root().equals(frontierRoot)) {
        const reason = `the root of its ledger's first ${this.seqno} entries is ${tree.root().toString("hex")}, the snapshot's ${frontierRoot.toString("hex")}`;
        this.engine.setMerkleHistoryState({ failed: reason });
        this.logger.error({ seqno: this.seqno, reason }, "Merkle tree before the snapshot refused: receipts of earlier transactions are not served by this node");
        return;
      }
      if (this.retainedDirectory !== undefined && fromRetained < this.seqno) {
        try {
          await writeRetainedHashes(this.retainedDirectory, { size: this.seqno, retainHeight: MERKLE_RETAINED_HEIGHT, ...tree.retainedAt(this.seqno) });
        } catch (error) {
          this.logger.warn({ directory: this.retainedDirectory, err: (error as Error).message }, "could not keep the retained Merkle hashes: the next restart hashes the whole ledger again");
        }
      }
      if (!(await this.#catchUp(tree))) return;
      this.engine.adoptMerkleHistory(tree);
      this.logger.info({ seqno: this.seqno, from_retained: fromRetained, hashed: this.seqno - fromRetained, ledger_ms: ledgerMs, ms: Date.now() - started },
        "Merkle tree before the snapshot rebuilt: receipts of every transaction served");
    } catch (error) {
      if (this.#stopped) return;
      this.engine.setMerkleHistoryState({ failed: (error as Error).message });
      this.logger.error({ seqno: this.seqno, err: (error as Error).message }, "Merkle tree before the snapshot could not be rebuilt: receipts of earlier transactions are not served by this node");
    }
  }

  /** The retained hashes kept by an earlier restart, if usable here: the tree they make, else undefined (logged). */
  async #fromRetainedFile(): Promise<MerkleTree | undefined> {
    if (this.retainedDirectory === undefined) return undefined;
    const read = await readRetainedHashes(this.retainedDirectory);
    if (read === undefined) return undefined;
    let reason: string | undefined;
    if ("refused" in read) reason = read.refused;
    else if (read.retainHeight !== MERKLE_RETAINED_HEIGHT) reason = `retained height ${read.retainHeight}, this node's is ${MERKLE_RETAINED_HEIGHT}`;
    else if (read.size > this.seqno || read.size < 1) reason = `they cover ${read.size} transactions, the snapshot ${this.seqno}`;
    if (reason === undefined && !("refused" in read)) {
      try {
        return MerkleTree.fromRetained(read.size, read.retainHeight, read.lowFrontier, read.retainedBlocks);
      } catch (error) {
        reason = (error as Error).message;
      }
    }
    this.logger.warn({ directory: this.retainedDirectory, reason }, "retained Merkle hashes not used: hashing the whole ledger before the snapshot");
    return undefined;
  }

  /**
   * Leaves 1..seqno: those the retained hashes cover (if `useRetained` and they are usable), the
   * rest from the ledger (hashed on its worker), flushed as they go: bounded memory.
   */
  async #fromLedger(useRetained: boolean): Promise<{ tree: MerkleTree; fromRetained: number } | undefined> {
    const retained = useRetained ? await this.#fromRetainedFile() : undefined;
    const tree = retained ?? new MerkleTree(MERKLE_RETAINED_HEIGHT);
    const fromRetained = tree.size;
    const window = this.windowLeaves;
    // The next range is read and hashed on the worker while this one is appended here.
    const describe = (first: number) => this.ledger.describeRange(first, this.seqno, DESCRIBE_READ_BYTES, NO_MARKER);
    let describing: Promise<EntryDescriptions> | undefined = tree.size < this.seqno ? describe(tree.size + 1) : undefined;
    while (describing !== undefined) {
      const described: EntryDescriptions = await describing;
      if (this.#stopped) return undefined;
      const count = described.flags.length;
      assert(count > 0 && described.first === tree.size + 1, `the ledger describes entries from seqno ${tree.size + 1}`);
      describing = tree.size + count < this.seqno ? describe(tree.size + count + 1) : undefined;
      const leaves = Buffer.from(described.leaves);
      for (let i = 0; i < count; i++) tree.appendFrom(leaves, 32 * i);
      if (tree.size - window - tree.flushedIndex >= window) tree.flush(tree.size - window);
    }
    assert(tree.size === this.seqno, `the history has ${this.seqno} leaves`);
    return { tree, fromRetained };
  }

  /**
   * Copies the leaves committed since the snapshot from the engine's tree, a batch per turn:
   * committed leaves never change, so the copy stays right whatever the node does meanwhile.
   */
  async #catchUp(tree: MerkleTree): Promise<boolean> {
    for (;;) {
      if (this.#stopped) return false;
      const committed = Math.min(this.engine.commitTxId.seqno, this.engine.tree.size);
      if (this.engine.tree.size - tree.size <= FINAL_COPY_LEAVES_MAX || committed <= tree.size) return true;
      const until = Math.min(committed, tree.size + CATCH_UP_LEAVES_PER_TURN);
      for (let i = tree.size; i < until; i++) tree.append(this.engine.tree.leaf(i));
      await nextTurn();
    }
  }
}
