// The checks after each fault round: the network takes writes again, every node reaches the same
// commit (else it is wedged), every write ever seen Committed reads back with its exact value on
// every node, and statuses are polled once more on every node to catch flips.
import type { FaultCluster } from "./cluster.js";
import { delay } from "./cluster.js";
import type { Load } from "./load.js";
import type { WriteBook, WriteRecord } from "./book.js";

export interface CheckOptions {
  recoverTimeoutMs: number;
  /** Earlier rounds' committed writes re-read after each round (a random sample of them). */
  earlierReadSampleMax: number;
  /** Transaction ids re-polled on every node after a round. */
  statusRecheckMax: number;
  readTimeoutMs: number;
}

export interface RoundCheck {
  availableAfterMs?: number;
  commitSeqno?: number;
  reads: number;
  wedged: number[];
}

export async function checkRound(cluster: FaultCluster, load: Load, book: WriteBook, round: string, options: CheckOptions, random: () => number, expectedDown: number[] = []): Promise<RoundCheck> {
  const result: RoundCheck = { reads: 0, wedged: [] };
  const expectedUp = [...Array(cluster.size).keys()].filter((i) => !expectedDown.includes(i));
  const wedged = (node: number, detail: string) => {
    if (result.wedged.includes(node)) return;
    result.wedged.push(node);
    book.violation({ kind: "wedged", round, node, detail: `${detail}\n  log tail of node ${node}:\n${cluster.logTail(node)}` });
  };
  for (const i of expectedUp) if (!cluster.running(i)) wedged(i, "process is not running");
  const reportFatal = () => {
    const byNode = new Map<number, string[]>();
    for (const { node, line } of cluster.takeFatalLines()) byNode.set(node, [...(byNode.get(node) ?? []), line]);
    for (const [node, lines] of byNode) {
      book.violation({ kind: "wedged", round, node, detail: `node ${node} logged ${lines.length} fatal error(s):\n    ${lines.slice(0, 3).join("\n    ")}` });
      if (!result.wedged.includes(node)) result.wedged.push(node);
    }
  };
  reportFatal();

  // 1. The network takes a write again: retried through every running node until the deadline.
  const started = Date.now();
  const deadline = started + options.recoverTimeoutMs;
  let sentinel: WriteRecord | undefined;
  for (let attempt = 0; Date.now() < deadline && !sentinel; attempt++) {
    const live = expectedUp.filter((i) => cluster.answering(i));
    if (live.length === 0) break;
    const record = await load.writeOnce(live[attempt % live.length]!);
    if (record.txid) sentinel = record;
    else await delay(200);
  }
  if (!sentinel) {
    const lastErrors = expectedUp.map((i) => {
      const w = book.writes.filter((r) => r.viaNode === i && r.error !== undefined).at(-1);
      return `node ${i}: ${w ? `${w.httpStatus ?? "no answer"} ${w.error}` : "no failed write"}`;
    });
    book.violation({ kind: "unavailable", round, detail: `no write succeeded within ${options.recoverTimeoutMs} ms after the round; last errors: ${lastErrors.join(" | ")}` });
    reportFatal();
    return result;
  }
  result.availableAfterMs = Date.now() - started;
  const sentinelSeqno = Number(sentinel.txid!.split(".")[1]);

  // 2. Every running node commits the sentinel, and all reach the same commit seqno.
  const seqnos = new Map<number, number | undefined>();
  while (Date.now() < deadline) {
    for (const i of expectedUp) seqnos.set(i, cluster.running(i) ? await cluster.commitSeqno(i) : undefined);
    const values = [...seqnos.values()];
    if (values.every((s) => s !== undefined && s >= sentinelSeqno && s === values[0])) break;
    await delay(100);
  }
  for (const i of expectedUp) {
    const s = seqnos.get(i);
    if (s === undefined || s < sentinelSeqno) wedged(i, `commit seqno ${s ?? "unreachable"} never reached the sentinel write ${sentinel.txid} within ${options.recoverTimeoutMs} ms (others: ${JSON.stringify(Object.fromEntries(seqnos))})`);
  }
  const agreed = expectedUp.filter((i) => !result.wedged.includes(i)).map((i) => seqnos.get(i)!);
  if (agreed.length > 0 && agreed.some((s) => s !== agreed[0])) {
    book.violation({ kind: "wedged", round, detail: `nodes disagree on the commit seqno after ${options.recoverTimeoutMs} ms: ${JSON.stringify(Object.fromEntries(seqnos))}` });
  }
  result.commitSeqno = agreed[0];
  const healthy = expectedUp.filter((i) => !result.wedged.includes(i) && cluster.answering(i));

  // 3. Statuses once more on every healthy node: resolves this round's ids and catches flips.
  const roundIds = book.writes.filter((w) => w.round === round && w.txid).map((w) => w.txid!);
  const recheck = [...new Set([...roundIds.slice(-options.statusRecheckMax), ...book.unresolved().slice(-options.statusRecheckMax)])];
  for (const i of healthy) await load.pollNode(i, recheck);

  // 4. Every write ever Committed (this round's, and a sample of earlier ones) reads back exactly on every healthy node.
  const mine = book.committedWrites(round);
  const earlier = book.committedWrites().filter((w) => w.round !== round);
  const sample = pick(earlier, options.earlierReadSampleMax, random);
  for (const i of healthy) result.reads += await readBack(cluster, book, i, [...mine, ...sample], round, options);
  reportFatal();
  return result;
}

const LAG_RETRY_MS = 5_000;
const MISSES_REPORTED_PER_NODE_MAX = 10;

/**
 * Reads each write on node `i` (locally, on the read pool). Misses are re-read for a few seconds
 * in case the node lags; what is still missing or different then is a violation (the first few
 * reported in full, the rest counted in one line). Returns the number of reads made.
 */
export async function readBack(cluster: FaultCluster, book: WriteBook, i: number, writes: WriteRecord[], round: string, options: CheckOptions): Promise<number> {
  let reads = 0;
  const answers = new Map<WriteRecord, { status: number; got?: string }>();
  const readAll = async (batch: WriteRecord[]) => {
    let next = 0;
    const worker = async () => {
      while (next < batch.length) {
        const w = batch[next++]!;
        reads++;
        try {
          const r = await cluster.clients[i]!.read(`/app/log/${w.table}?id=${w.key}`, options.readTimeoutMs);
          answers.set(w, r.status === 200 ? { status: 200, got: r.json().msg } : { status: r.status, got: r.text.slice(0, 120) });
        } catch (e) {
          answers.set(w, { status: -1, got: (e as Error).message.slice(0, 120) });
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  };
  const misses = () => writes.filter((w) => { const a = answers.get(w); return !(a?.status === 200 && a.got === w.value); });
  await readAll(writes);
  const deadline = Date.now() + LAG_RETRY_MS;
  for (let missing = misses(); missing.length > 0 && Date.now() < deadline; missing = misses()) {
    await delay(500);
    await readAll(missing.slice(0, 500));
  }
  const missing = misses();
  for (const w of missing.slice(0, MISSES_REPORTED_PER_NODE_MAX)) {
    const a = answers.get(w)!;
    book.violation({
      kind: a.status === 200 ? "wrong-value" : "lost", round, node: i, txid: w.txid,
      detail: `key ${w.key} (${w.table}, written in ${w.round} via node ${w.viaNode}) was Committed; node ${i} answers ${a.status} ${JSON.stringify(a.got)} instead of ${JSON.stringify(w.value)}; statuses: ${book.history(w.txid!)}`,
    });
  }
  if (missing.length > MISSES_REPORTED_PER_NODE_MAX) {
    book.violation({ kind: "lost", round, node: i, detail: `${missing.length - MISSES_REPORTED_PER_NODE_MAX} more Committed writes missing or different on node ${i}; txids e.g. ${missing.slice(MISSES_REPORTED_PER_NODE_MAX, MISSES_REPORTED_PER_NODE_MAX + 10).map((w) => w.txid).join(", ")}` });
  }
  return reads;
}

export function pick<T>(items: T[], countMax: number, random: () => number): T[] {
  if (items.length <= countMax) return items;
  const out: T[] = [];
  for (let k = 0; k < countMax; k++) out.push(items[Math.floor(random() * items.length)]!);
  return out;
}

/**
 * The end of a network's run: every answering node must reach the highest commit seqno any node
 * reports (else it is wedged, not lossy), then every write ever Committed (a bounded sample) must
 * read back exactly on each of them.
 */
export async function finalCheck(cluster: FaultCluster, book: WriteBook, options: CheckOptions, random: () => number, readsPerNodeMax: number): Promise<number> {
  const nodes = [...Array(cluster.size).keys()].filter((i) => cluster.answering(i));
  const deadline = Date.now() + options.recoverTimeoutMs;
  const seqnos = new Map<number, number | undefined>();
  for (;;) {
    for (const i of nodes) seqnos.set(i, await cluster.commitSeqno(i));
    const target = Math.max(...[...seqnos.values()].map((s) => s ?? 0));
    const behind = nodes.filter((i) => (seqnos.get(i) ?? -1) < target);
    if (behind.length === 0 || Date.now() > deadline) {
      for (const i of behind) book.violation({ kind: "wedged", round: "final", node: i, detail: `commit seqno ${seqnos.get(i) ?? "unreachable"} never reached ${target} within ${options.recoverTimeoutMs} ms\n  log tail of node ${i}:\n${cluster.logTail(i)}` });
      const committed = book.committedWrites();
      let reads = 0;
      for (const i of nodes.filter((n) => !behind.includes(n))) reads += await readBack(cluster, book, i, pick(committed, readsPerNodeMax, random), "final", options);
      return reads;
    }
    await delay(200);
  }
}
