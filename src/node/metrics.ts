// What a node tells its operators: Prometheus text at GET /metrics (prom-client, one registry per
// node so that nodes sharing a process never mix), and CCF's GET /node/metrics JSON. Per-request
// figures are plain array increments (RequestSeries); prom-client sees them only when scraped, as
// it sees everything read from other parts of the node (consensus, ledger files, channels).
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from "prom-client";
import type { EndpointRegistry, HttpSessionStats } from "../rpc/index.js";

/** What the scrape reads from consensus (owned by the replicator; asked, never copied). */
export interface ConsensusView {
  role: string;
  view: number;
  commitSeqno: number;
  lastSeqno: number;
  primaryId: string | undefined;
  /** Other nodes of the current configuration, with whether this node's channel to each is up. */
  peers: readonly { nodeId: string; connected: boolean }[];
}

export interface NodeMetricsSources {
  nodeId: string;
  /** The commit seqno when the node starts (committed transactions are counted from there). */
  startCommitSeqno: number;
  /** Read only when scraped (never while the node is still starting). */
  consensus(): ConsensusView;
  ledgerDirectory: string;
  snapshotsDirectory: string;
  sessions(): HttpSessionStats;
  /** CCF's soft and hard caps on open sessions of the RPC interface. */
  sessionCaps: { soft: number; hard: number };
  rpcInterfaceName: string;
}

const ROLES = ["Primary", "Backup", "Candidate", "PreCandidate"] as const;
/** Methods a label may carry; any other is "other", so a client cannot mint label values. */
const KNOWN_METHODS = new Set(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]);
/** The endpoint label of a request that matched no endpoint (404, 405, 413, bad query). */
export const UNMATCHED_ENDPOINT = "unmatched";
/** Local commits waiting for the global commit, at most; beyond it, latencies are not sampled. */
const PENDING_COMMITS_MAX = 100_000;
const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** CCF's per-endpoint counters (the shape of CCF's former `GET /api/metrics`). */
interface EndpointCounts { calls: number; errors: number; failures: number; retries: number }

/**
 * One (method, endpoint)'s figures. A request adds to them and nothing else: prom-client's own
 * counters and histograms validate and hash their labels on every call, even through a child
 * resolved once (~1 µs per request in a loop, 3.6 µs of the main thread's ~70 per transaction at
 * full load in a profile, 8 µs at half load). The scrape turns these into Prometheus series.
 */
class RequestSeries {
  /** Requests answered, by HTTP status. */
  readonly byStatus = new Map<number, number>();
  /** Per bucket of LATENCY_BUCKETS_SECONDS (not cumulative), then the overflow (+Inf only). */
  readonly buckets = new Float64Array(LATENCY_BUCKETS_SECONDS.length + 1);
  secondsSum = 0;
  secondsCount = 0;

  constructor(readonly method: string, readonly endpoint: string, readonly counts: EndpointCounts) {}

  answered(status: number, seconds: number): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    let bucket = 0;
    while (bucket < LATENCY_BUCKETS_SECONDS.length && seconds > LATENCY_BUCKETS_SECONDS[bucket]!) bucket++;
    this.buckets[bucket]!++;
    this.secondsSum += seconds;
    this.secondsCount++;
  }
}

/**
 * prom-client's registry asks a metric only for `get()` (name, help, type and the samples); these
 * two build their samples from the RequestSeries when scraped, in prom-client's own shapes
 * (a histogram: cumulative `_bucket` samples with `le`, then `+Inf`, `_sum` and `_count`).
 */
type Sample = { value: number; labels: Record<string, string | number>; metricName?: string };
function scrapeMetric(name: string, help: string, type: "counter" | "histogram", samples: () => Sample[]): Metric {
  const metric = {
    name, help, type, aggregator: "sum" as const,
    get: async () => ({ name, help, type, aggregator: "sum" as const, values: samples() }),
  };
  return metric as unknown as Metric;
}

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly committed: Counter;
  private readonly commitSeconds: Histogram;
  private readonly jsSeconds: Histogram;
  private readonly evmSeconds: Histogram;
  /** Keyed "METHOD path"; bounded by the endpoints installed (built-in and governance-deployed). */
  private readonly endpoints = new Map<string, EndpointCounts>();
  /** Request series keyed "METHOD endpoint" (UNMATCHED_ENDPOINT included). */
  private readonly series = new Map<string, RequestSeries>();
  /** Seqnos committed locally by this node's requests, with when (for the commit latency). */
  private pendingSeqnos: number[] = [];
  private pendingTimes: number[] = [];
  private pendingHead = 0;
  private lastCommitSeqno: number;

  constructor(private readonly sources: NodeMetricsSources) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node_id: sources.nodeId.slice(0, 16) });
    collectDefaultMetrics({ register: this.registry, prefix: "coco_" });
    const series = this.series;
    this.registry.registerMetric(scrapeMetric("coco_rpc_requests_total", "Requests answered, by endpoint (template path) and HTTP status", "counter", () => {
      const samples: Sample[] = [];
      for (const { method, endpoint, byStatus } of series.values()) {
        for (const [status, count] of byStatus) samples.push({ value: count, labels: { method, endpoint, status: String(status) } });
      }
      return samples;
    }));
    this.registry.registerMetric(scrapeMetric("coco_rpc_request_duration_seconds", "Time from a request's arrival to its answer", "histogram", () => {
      const samples: Sample[] = [];
      const bucketName = "coco_rpc_request_duration_seconds_bucket";
      for (const { method, endpoint, buckets, secondsSum, secondsCount } of series.values()) {
        let cumulative = 0;
        LATENCY_BUCKETS_SECONDS.forEach((le, i) => {
          cumulative += buckets[i]!;
          samples.push({ value: cumulative, labels: { le, method, endpoint }, metricName: bucketName });
        });
        samples.push(
          { value: secondsCount, labels: { le: "+Inf", method, endpoint }, metricName: bucketName },
          { value: secondsSum, labels: { method, endpoint }, metricName: "coco_rpc_request_duration_seconds_sum" },
          { value: secondsCount, labels: { method, endpoint }, metricName: "coco_rpc_request_duration_seconds_count" },
        );
      }
      return samples;
    }));
    this.committed = new Counter({ name: "coco_committed_transactions_total", help: "Transactions this node saw committed since it started (signature transactions included)", registers });
    this.commitSeconds = new Histogram({ name: "coco_commit_latency_seconds", help: "From a transaction's local commit by a request on this node to its global commit", buckets: LATENCY_BUCKETS_SECONDS, registers });
    this.jsSeconds = new Histogram({ name: "coco_js_execution_seconds", help: "Time inside the JS app's isolate per entry (one request, or one batch of requests)", buckets: LATENCY_BUCKETS_SECONDS, registers });
    this.evmSeconds = new Histogram({ name: "coco_evm_execution_seconds", help: "Time in EVM app endpoint handlers (/app/evm...)", buckets: LATENCY_BUCKETS_SECONDS, registers });
    this.lastCommitSeqno = sources.startCommitSeqno;
    this.installScrapeGauges(registers);
  }

  /** One answered request: `endpoint` is the template path it matched, or UNMATCHED_ENDPOINT. */
  requestAnswered(method: string, endpoint: string, status: number, seconds: number): void {
    const methodLabel = KNOWN_METHODS.has(method) ? method : "other";
    const key = `${methodLabel} ${endpoint}`;
    let series = this.series.get(key);
    if (series === undefined) {
      // Unmatched requests are not an endpoint of CCF's per-endpoint list: their counts stay here.
      const counts = endpoint === UNMATCHED_ENDPOINT ? { calls: 0, errors: 0, failures: 0, retries: 0 } : this.countsOf(methodLabel, endpoint);
      series = new RequestSeries(methodLabel, endpoint, counts);
      this.series.set(key, series);
    }
    series.answered(status, seconds);
    if (endpoint === UNMATCHED_ENDPOINT) return;
    const counts = series.counts;
    counts.calls++;
    if (status >= 500) counts.failures++;
    else if (status >= 400) counts.errors++;
  }

  /** A request ran again after a transaction conflict (CCF's `retries`). */
  requestRetried(method: string, endpoint: string): void {
    this.countsOf(KNOWN_METHODS.has(method) ? method : "other", endpoint).retries++;
  }

  /** A request's transaction committed locally at `seqno` (the commit latency starts). */
  committedLocally(seqno: number): void {
    if (this.pendingSeqnos.length - this.pendingHead >= PENDING_COMMITS_MAX) return;
    this.pendingSeqnos.push(seqno);
    this.pendingTimes.push(performance.now());
  }

  /** The commit point moved to `seqno`. */
  commitAdvanced(seqno: number): void {
    if (seqno > this.lastCommitSeqno) this.committed.inc(seqno - this.lastCommitSeqno);
    this.lastCommitSeqno = Math.max(this.lastCommitSeqno, seqno);
    const now = performance.now();
    while (this.pendingHead < this.pendingSeqnos.length && this.pendingSeqnos[this.pendingHead]! <= seqno) {
      this.commitSeconds.observe((now - this.pendingTimes[this.pendingHead]!) / 1000);
      this.pendingHead++;
    }
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pendingSeqnos.length) this.compactPending();
  }

  /** A rollback dropped what was not committed: those transactions never reach the commit. */
  rolledBack(toSeqno: number): void {
    while (this.pendingSeqnos.length > this.pendingHead && this.pendingSeqnos[this.pendingSeqnos.length - 1]! > toSeqno) {
      this.pendingSeqnos.pop();
      this.pendingTimes.pop();
    }
  }

  jsExecution(seconds: number): void {
    this.jsSeconds.observe(seconds);
  }

  evmExecution(seconds: number): void {
    this.evmSeconds.observe(seconds);
  }

  /** Prometheus text exposition. */
  prometheusText(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * CCF's GET /node/metrics: `sessions` as CCF answers it (open and peak sessions per RPC
   * interface, with their caps and errors), and `metrics`, the per-endpoint counters of CCF's
   * former GET /api/metrics (`path`, `method`, `calls`, `errors` = 4xx, `failures` = 5xx, `retries`).
   */
  nodeMetricsJson(): object {
    const stats = this.sources.sessions();
    const metrics = [...this.endpoints].map(([key, counts]) => {
      const space = key.indexOf(" ");
      return { path: key.slice(space + 1), method: key.slice(0, space), ...counts };
    }).sort((a, b) => (a.path === b.path ? a.method.localeCompare(b.method) : a.path.localeCompare(b.path)));
    return {
      sessions: {
        active: stats.active,
        peak: stats.peak,
        interfaces: {
          [this.sources.rpcInterfaceName]: {
            active: stats.active, peak: stats.peak, soft_cap: this.sources.sessionCaps.soft, hard_cap: this.sources.sessionCaps.hard,
            errors: { parsing: stats.parsingErrors, request_payload_too_large: stats.payloadTooLarge, request_header_too_large: stats.headerTooLarge },
          },
        },
      },
      metrics,
    };
  }

  /** Installs GET /metrics (Prometheus) and GET /node/metrics (CCF's JSON); both unauthenticated, as CCF's. */
  installEndpoints(registry: EndpointRegistry): void {
    registry.install({
      method: "GET", path: "/metrics", mode: "readonly", authPolicies: ["no_auth"], forwarding: "never",
      summary: "Prometheus metrics of this node (no private data: see docs/operations.md)",
      handler: async () => ({ headers: { "content-type": this.contentType }, body: await this.prometheusText() }),
    });
    registry.install({
      method: "GET", path: "/node/metrics", mode: "readonly", authPolicies: ["no_auth"], forwarding: "never",
      summary: "CCF's node metrics: RPC sessions, and calls, errors, failures and retries per endpoint",
      handler: () => ({ body: this.nodeMetricsJson() }),
    });
  }

  private countsOf(method: string, endpoint: string): EndpointCounts {
    const key = `${method} ${endpoint}`;
    let counts = this.endpoints.get(key);
    if (counts === undefined) this.endpoints.set(key, (counts = { calls: 0, errors: 0, failures: 0, retries: 0 }));
    return counts;
  }

  private compactPending(): void {
    this.pendingSeqnos = this.pendingSeqnos.slice(this.pendingHead);
    this.pendingTimes = this.pendingTimes.slice(this.pendingHead);
    this.pendingHead = 0;
  }

  /** Gauges computed when scraped: consensus, ledger files, snapshots, channels. */
  private installScrapeGauges(registers: Registry[]): void {
    const sources = this.sources;
    new Gauge({
      name: "coco_consensus_role", help: "1 for this node's current consensus role", labelNames: ["role"], registers,
      collect() {
        const role = sources.consensus().role;
        for (const r of ROLES) this.set({ role: r }, r === role ? 1 : 0);
      },
    });
    new Gauge({ name: "coco_consensus_view", help: "Current view (Raft term)", registers, collect() { this.set(sources.consensus().view); } });
    new Gauge({ name: "coco_consensus_commit_seqno", help: "Seqno of the last committed transaction this node knows", registers, collect() { this.set(sources.consensus().commitSeqno); } });
    new Gauge({ name: "coco_consensus_last_seqno", help: "Seqno of the last transaction in this node's ledger (committed or not)", registers, collect() { this.set(sources.consensus().lastSeqno); } });
    new Gauge({
      name: "coco_channel_connected", help: "1 when this node's channel to a peer of the configuration is up", labelNames: ["peer"], registers,
      collect() {
        this.reset();
        for (const peer of sources.consensus().peers) this.set({ peer: peer.nodeId.slice(0, 16) }, peer.connected ? 1 : 0);
      },
    });
    new Gauge({
      name: "coco_ledger_bytes", help: "Bytes of this node's ledger chunk files", registers,
      collect() { this.set(ledgerFiles(sources.ledgerDirectory).bytes); },
    });
    new Gauge({
      name: "coco_ledger_chunks", help: "Ledger chunk files, committed or not", labelNames: ["state"], registers,
      collect() {
        const files = ledgerFiles(sources.ledgerDirectory);
        this.set({ state: "committed" }, files.committed);
        this.set({ state: "uncommitted" }, files.chunks - files.committed);
      },
    });
    new Gauge({
      name: "coco_snapshot_age_seconds", help: "Age of the newest committed snapshot; NaN while there is none", registers,
      collect() { this.set(newestSnapshotAgeSeconds(sources.snapshotsDirectory)); },
    });
  }
}

function ledgerFiles(directory: string): { bytes: number; chunks: number; committed: number } {
  let bytes = 0;
  let chunks = 0;
  let committed = 0;
  for (const name of safeReaddir(directory)) {
    if (!name.startsWith("ledger_")) continue;
    try {
      bytes += statSync(join(directory, name)).size;
    } catch {
      continue; // renamed (committed) or removed between the listing and the stat
    }
    chunks++;
    if (name.endsWith(".committed")) committed++;
  }
  return { bytes, chunks, committed };
}

function newestSnapshotAgeSeconds(directory: string): number {
  let newestMs = -Infinity;
  for (const name of safeReaddir(directory)) {
    if (!name.startsWith("snapshot_") || !name.endsWith(".committed")) continue;
    try {
      newestMs = Math.max(newestMs, statSync(join(directory, name)).mtimeMs);
    } catch {
      continue;
    }
  }
  return newestMs === -Infinity ? Number.NaN : Math.max(0, (Date.now() - newestMs) / 1000);
}

function safeReaddir(directory: string): string[] {
  try {
    return readdirSync(directory);
  } catch {
    return [];
  }
}
