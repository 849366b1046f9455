// Small statistics helpers shared by the benchmark phases: percentiles over latency samples
// and rounding for the printed table. Kept here so every phase reports figures the same way.

export interface LatencySummaryMs {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Nearest-rank percentiles over `values` (milliseconds); `null` when there are no samples. */
export function summariseLatencyMs(values: ArrayLike<number>): LatencySummaryMs | null {
  const count = values.length;
  if (count === 0) return null;
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i]!;
  const rank = (p: number): number => sorted[Math.min(count - 1, Math.max(0, Math.ceil((p / 100) * count) - 1))]!;
  return {
    count,
    p50: round(rank(50), 3),
    p90: round(rank(90), 3),
    p99: round(rank(99), 3),
    max: round(sorted[count - 1]!, 3),
    mean: round(sum / count, 3),
  };
}

export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Grows by doubling; avoids per-request objects on the client's hot path. */
export class GrowableFloat64 {
  private data: Float64Array;
  length = 0;

  constructor(initialCapacity = 1 << 16) {
    this.data = new Float64Array(initialCapacity);
  }

  push(value: number): number {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length] = value;
    return this.length++;
  }

  get(index: number): number {
    return this.data[index]!;
  }

  set(index: number, value: number): void {
    this.data[index] = value;
  }
}
