// The same load driven by autocannon, an HTTP benchmark client a user would bring, so the
// headline figures are not an artefact of our own client. autocannon sends one fixed body
// (every write goes to the same id), with the same connections, pipelining and TLS identity.
import { createRequire } from "node:module";
import type { TlsTarget } from "./pipelined-client.js";

interface Histogram {
  readonly average: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

interface AutocannonResult {
  readonly requests: Histogram & { readonly total: number };
  readonly latency: Histogram;
  readonly duration: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly statusCodeStats?: Record<string, { count: number }>;
}

type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;

const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

export interface AutocannonFigures {
  readonly requestsPerSecond: number;
  readonly requestsTotal: number;
  readonly durationSeconds: number;
  /** autocannon measures latency from write to response of each request (ms). */
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number; readonly mean: number };
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly statusCodes: Record<string, number>;
}

export async function runAutocannon(options: {
  target: TlsTarget;
  path: string;
  connections: number;
  pipelining: number;
  durationSeconds: number;
}): Promise<AutocannonFigures> {
  const { target } = options;
  const result = await autocannon({
    url: `https://${target.host}:${target.port}${options.path}`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id: 1, msg: "coco bench message from autocannon" }),
    connections: options.connections,
    pipelining: options.pipelining,
    duration: options.durationSeconds,
    tlsOptions: { ca: target.ca, cert: target.cert, key: target.key, minVersion: "TLSv1.3" },
  });
  const statusCodes: Record<string, number> = {};
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = Number(stat.count);
  return {
    requestsPerSecond: Math.round((10 * result.requests.total) / result.duration) / 10,
    requestsTotal: result.requests.total,
    durationSeconds: result.duration,
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max, mean: result.latency.average },
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes,
  };
}
