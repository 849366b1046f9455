// Write load and status polling of the fault suite: a bounded number of writer loops send unique
// writes to every node in turn (backups forward them to the primary), and one poller asks every
// answering node for the status of recent transaction ids, feeding both into the WriteBook.
import type { FaultCluster } from "./cluster.js";
import { delay, PROBE_TIMEOUT_MS } from "./cluster.js";
import type { TxStatus, WriteBook, WriteRecord } from "./book.js";

export interface LoadOptions {
  writersMax: number;
  /** Pause between two writes of one writer loop: keeps the load bounded on a shared machine. */
  writeIntervalMs: number;
  writeTimeoutMs: number;
  /** Transaction ids polled per poll pass (newest unresolved first). */
  pollBatchMax: number;
}

export class Load {
  private running = false;
  private loops: Promise<void>[] = [];
  round = "setup";

  constructor(private readonly cluster: FaultCluster, private readonly book: WriteBook, private readonly options: LoadOptions, private readonly random: () => number) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    for (let w = 0; w < this.options.writersMax; w++) this.loops.push(this.writer(w));
    this.loops.push(this.poller());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  /** One write through node `via`; resolves with the record (txid set when answered 200). */
  async writeOnce(via: number): Promise<WriteRecord> {
    const record = this.book.newWrite(via, this.round);
    try {
      const r = await this.cluster.clients[via]!.write(`/app/log/${record.table}`, { id: record.key, msg: record.value }, this.options.writeTimeoutMs);
      record.endedMs = Date.now();
      record.httpStatus = r.status;
      if (r.status === 200 && r.transactionId) this.book.acknowledged(record, r.transactionId);
      else record.error = r.text.slice(0, 200);
    } catch (e) {
      record.endedMs = Date.now();
      record.error = (e as Error).message.slice(0, 200);
    }
    return record;
  }

  private async writer(index: number): Promise<void> {
    let via = index % this.cluster.size;
    while (this.running) {
      via = (via + 1 + Math.floor(this.random() * 2)) % this.cluster.size;
      if (!this.cluster.running(via)) { await delay(this.options.writeIntervalMs); continue; }
      const record = await this.writeOnce(via);
      // A failed write backs off a little longer: an election is under way or the node is down.
      await delay(record.txid ? this.options.writeIntervalMs : 100);
    }
  }

  private async poller(): Promise<void> {
    while (this.running) {
      await this.pollPass(this.options.pollBatchMax);
      await delay(100);
    }
  }

  /** Asks every answering node for the status of up to `batchMax` unresolved transaction ids. */
  async pollPass(batchMax: number, txids?: string[]): Promise<void> {
    const ids = (txids ?? this.book.unresolved()).slice(-batchMax);
    for (let i = 0; i < this.cluster.size; i++) {
      if (!this.cluster.answering(i)) continue;
      await this.pollNode(i, ids);
    }
  }

  async pollNode(node: number, txids: string[], concurrencyMax = 8): Promise<void> {
    const incarnation = this.cluster.incarnations[node]!;
    let next = 0;
    // An answer from a newer process of the node must not be compared with the old one's.
    const worker = async () => {
      while (next < txids.length) {
        const txid = txids[next++]!;
        const body = await this.cluster.clients[node]!.readJson(`/node/tx?transaction_id=${txid}`, PROBE_TIMEOUT_MS);
        if (body === undefined) return; // the node stopped answering: leave the rest for later
        if (this.cluster.incarnations[node] !== incarnation) return;
        this.book.observe(txid, node, incarnation, body.status as TxStatus, this.round);
      }
    };
    await Promise.all(Array.from({ length: concurrencyMax }, worker));
  }
}
