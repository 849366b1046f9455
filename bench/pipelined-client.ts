// Purpose-built load client: C TLS connections, each keeping up to D HTTP/1.1 requests in
// flight (pipelining), either as fast as responses come back (closed loop) or at a target
// rate. It records send time, response time, status and CCF transaction id per request in
// flat arrays so the client itself stays cheap next to the server under test.
import * as tls from "node:tls";
import { performance } from "node:perf_hooks";
import { HttpResponseParser, type ParsedResponse } from "./http-response-parser.js";
import { GrowableFloat64 } from "./stats.js";

export interface TlsTarget {
  readonly host: string;
  readonly port: number;
  /** CA that issued the server's certificate (the service certificate for a node). */
  readonly ca: Buffer;
  /** Client certificate and key for mutual TLS. */
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface LoadOptions {
  readonly target: TlsTarget;
  readonly path: string;
  readonly connections: number;
  /** Requests in flight per connection (pipelining depth). */
  readonly depth: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Total requests per second across connections; undefined = as fast as the server answers. */
  readonly rateTarget?: number;
  /** After the window, how long to wait for responses still in flight. */
  readonly drainMsMax?: number;
  /** First id put in request bodies; ids increase by one per request. */
  readonly firstId?: number;
  /** Ids wrap around below this (the long-run benchmark: a bounded key space, so state stays flat). */
  readonly keySpace?: number;
  /** Called (synchronously) as the measured window opens and closes, e.g. to sample /proc. */
  readonly onWindowStart?: () => void;
  readonly onWindowEnd?: () => void;
}

/** Per-request records, indexed by request number (send order). Times are performance.now() ms. */
export interface LoadRecords {
  readonly sendMs: GrowableFloat64;
  /** NaN while no response arrived (lost or still in flight at the end). */
  readonly responseMs: GrowableFloat64;
  readonly status: GrowableFloat64;
  /** From `x-ms-ccf-transaction-id`; NaN when the response had none. */
  readonly view: GrowableFloat64;
  readonly seqno: GrowableFloat64;
}

export interface LoadResult {
  readonly records: LoadRecords;
  readonly windowStartMs: number;
  readonly windowEndMs: number;
  readonly sent: number;
  readonly answered: number;
  readonly connectionErrors: number;
  readonly statusCounts: Record<string, number>;
  /** Body of the first non-2xx response, to make failures explain themselves. */
  readonly firstErrorBody: string | null;
  /** Bench-process CPU (user+system) in seconds during the measured window. */
  readonly clientCpuSeconds: number;
}

const RECONNECTS_MAX = 100;
const RATE_TICK_MS = 1;

interface Connection {
  socket: tls.TLSSocket;
  parser: HttpResponseParser;
  /** Request numbers in flight, oldest first (responses come back in order). */
  inFlight: number[];
  inFlightHead: number;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const records: LoadRecords = {
    sendMs: new GrowableFloat64(),
    responseMs: new GrowableFloat64(),
    status: new GrowableFloat64(),
    view: new GrowableFloat64(),
    seqno: new GrowableFloat64(),
  };
  const statusCounts: Record<string, number> = {};
  let firstErrorBody: string | null = null;
  let nextId = options.firstId ?? 1;
  let answered = 0;
  let connectionErrors = 0;
  let reconnects = 0;
  let sending = true;
  let finished = false;
  let onQuiet: (() => void) | null = null;
  const hostHeader = `${options.target.host}:${options.target.port}`;
  // Declared before any socket exists: close handlers may run while connections open.
  let connections: Connection[] = [];

  const inFlightCount = (c: Connection): number => c.inFlight.length - c.inFlightHead;
  const totalInFlight = (): number => connections.reduce((n, c) => n + inFlightCount(c), 0);

  function requestText(): string {
    const id = options.keySpace === undefined ? nextId++ : nextId++ % options.keySpace;
    const body = `{"id":${id},"msg":"coco bench message ${id}"}`;
    return (
      `POST ${options.path} HTTP/1.1\r\nHost: ${hostHeader}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
    );
  }

  /** Sends `count` requests on `c` in one write. */
  function send(c: Connection, count: number): void {
    if (count <= 0) return;
    let text = "";
    const now = performance.now();
    for (let i = 0; i < count; i++) {
      text += requestText();
      const index = records.sendMs.push(now);
      records.responseMs.push(NaN);
      records.status.push(NaN);
      records.view.push(NaN);
      records.seqno.push(NaN);
      c.inFlight.push(index);
    }
    c.socket.write(text);
  }

  function onResponse(c: Connection, response: ParsedResponse): void {
    const index = c.inFlight[c.inFlightHead++];
    if (index === undefined) throw new Error("HTTP response received with no request in flight");
    if (c.inFlightHead > 4096) {
      c.inFlight = c.inFlight.slice(c.inFlightHead);
      c.inFlightHead = 0;
    }
    answered++;
    records.responseMs.set(index, performance.now());
    records.status.set(index, response.status);
    statusCounts[response.status] = (statusCounts[response.status] ?? 0) + 1;
    if (response.status >= 300 && firstErrorBody === null) firstErrorBody = response.body.toString("utf8").slice(0, 500);
    if (response.transactionId !== null) {
      const dot = response.transactionId.indexOf(".");
      records.view.set(index, Number(response.transactionId.slice(0, dot)));
      records.seqno.set(index, Number(response.transactionId.slice(dot + 1)));
    }
  }

  function open(): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: options.target.host,
        port: options.target.port,
        ca: options.target.ca,
        cert: options.target.cert,
        key: options.target.key,
        minVersion: "TLSv1.3",
        // The chain is still verified against `ca`; only the host name check is skipped,
        // because the benchmark connects by IP to certificates that may name a host.
        checkServerIdentity: () => undefined,
      });
      socket.setNoDelay(true);
      const c: Connection = { socket, parser: new HttpResponseParser(), inFlight: [], inFlightHead: 0 };
      socket.once("secureConnect", () => resolve(c));
      socket.once("error", reject);
      socket.on("data", (data: Buffer) => {
        const before = answered;
        c.parser.push(data, (r) => onResponse(c, r));
        const done = answered - before;
        if (sending && options.rateTarget === undefined) send(c, Math.min(done, options.depth - inFlightCount(c)));
        if (onQuiet !== null && totalInFlight() === 0) onQuiet();
      });
      socket.on("close", () => void onClosed(c));
    });
  }

  async function onClosed(c: Connection): Promise<void> {
    if (finished) return;
    // Requests in flight on a closed connection are lost; count them and reconnect.
    connectionErrors += 1;
    const lost = inFlightCount(c);
    statusCounts["lost"] = (statusCounts["lost"] ?? 0) + lost;
    c.inFlight = [];
    c.inFlightHead = 0;
    const slot = connections.indexOf(c);
    if (!sending || reconnects >= RECONNECTS_MAX || slot < 0) return;
    reconnects++;
    try {
      const fresh = await open();
      fresh.socket.on("error", () => undefined);
      connections[slot] = fresh;
      if (options.rateTarget === undefined) send(fresh, options.depth);
    } catch {
      connectionErrors += 1;
    }
  }

  connections = await Promise.all(Array.from({ length: options.connections }, () => open()));
  for (const c of connections) c.socket.on("error", () => undefined); // counted on close

  const startMs = performance.now();
  const windowStartMs = startMs + options.warmupMs;
  const windowEndMs = windowStartMs + options.durationMs;
  let cpuAtWindowStart: NodeJS.CpuUsage | null = null;
  let clientCpuSeconds = 0;

  let rateTimer: NodeJS.Timeout | null = null;
  if (options.rateTarget === undefined) {
    for (const c of connections) send(c, options.depth);
  } else {
    const rate = options.rateTarget;
    let sentTotal = 0;
    let cursor = 0;
    rateTimer = setInterval(() => {
      if (!sending) return;
      let allowed = Math.floor((rate * (performance.now() - startMs)) / 1000) - sentTotal;
      // Round-robin over connections with free pipeline slots; queue nothing beyond `depth`.
      let idle = 0;
      while (allowed > 0 && idle < connections.length) {
        const c = connections[cursor]!;
        cursor = (cursor + 1) % connections.length;
        const free = options.depth - inFlightCount(c);
        if (free <= 0 || c.socket.destroyed) {
          idle++;
          continue;
        }
        idle = 0;
        const n = Math.min(free, Math.max(1, Math.ceil(allowed / connections.length)), allowed);
        send(c, n);
        allowed -= n;
        sentTotal += n;
      }
      // When every slot is busy the client falls behind; it does not catch up in a burst.
      if (allowed > 0) sentTotal += allowed;
    }, RATE_TICK_MS);
  }

  await sleepUntil(windowStartMs);
  cpuAtWindowStart = process.cpuUsage();
  options.onWindowStart?.();
  await sleepUntil(windowEndMs);
  options.onWindowEnd?.();
  const cpu = process.cpuUsage(cpuAtWindowStart);
  clientCpuSeconds = (cpu.user + cpu.system) / 1e6;
  sending = false;
  if (rateTimer !== null) clearInterval(rateTimer);

  // Drain: wait for the responses still in flight, bounded.
  if (totalInFlight() > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, options.drainMsMax ?? 10_000);
      onQuiet = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  finished = true;
  for (const c of connections) c.socket.destroy();

  return {
    records,
    windowStartMs,
    windowEndMs,
    sent: records.sendMs.length,
    answered,
    connectionErrors,
    statusCounts,
    firstErrorBody,
    clientCpuSeconds,
  };
}

function sleepUntil(deadlineMs: number): Promise<void> {
  const waitMs = deadlineMs - performance.now();
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, waitMs)));
}
