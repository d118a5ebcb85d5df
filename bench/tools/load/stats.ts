// Latency recording for the load tools: every sample is kept (exact percentiles, no histogram error).

/** p50, p90, p99, p99.9, max and mean of a set of latencies, in milliseconds rounded to the microsecond. */
export interface LatencySummary {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

export const round = (n: number, digits = 3): number => (Number.isFinite(n) ? Number(n.toFixed(digits)) : n);

/**
 * The nearest-rank percentile of ascending `sorted`: the smallest sample such that at least p% of all samples are at
 * or below it (rank ceil(p/100 * n), 1-based). NaN when there is no sample.
 */
export function percentileOfSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  // The epsilon keeps float error (0.999 * 1000 = 999.0000000000001) from moving the rank up by one.
  const rank = Math.ceil((p * n) / 100 - 1e-9);
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))]!;
}

/**
 * Every sample, in a growing Float64Array (8 bytes each: 10 s at 100,000 req/s is 8 MB), so percentiles are exact
 * rather than an HDR histogram's bucket approximation.
 */
export class Samples {
  #values = new Float64Array(4096);
  #count = 0;
  #sum = 0;
  #max = -Infinity;
  #sorted: Float64Array | undefined;

  add(value: number): void {
    if (this.#count === this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#values[this.#count++] = value;
    this.#sum += value;
    if (value > this.#max) this.#max = value;
    this.#sorted = undefined;
  }

  get count(): number {
    return this.#count;
  }

  /** The samples in ascending order (a copy, cached until the next add). */
  sorted(): Float64Array {
    this.#sorted ??= this.#values.slice(0, this.#count).sort();
    return this.#sorted;
  }

  /** How many samples are at or above `value`. */
  countAtLeast(value: number): number {
    let n = 0;
    for (let i = 0; i < this.#count; i++) if (this.#values[i]! >= value) n++;
    return n;
  }

  percentile(p: number): number {
    return percentileOfSorted(this.sorted(), p);
  }

  summary(): LatencySummary {
    const sorted = this.sorted();
    return {
      p50Ms: round(percentileOfSorted(sorted, 50)),
      p90Ms: round(percentileOfSorted(sorted, 90)),
      p99Ms: round(percentileOfSorted(sorted, 99)),
      p999Ms: round(percentileOfSorted(sorted, 99.9)),
      maxMs: round(this.#count ? this.#max : NaN),
      meanMs: round(this.#count ? this.#sum / this.#count : NaN),
    };
  }
}

/** The same summary with every key prefixed (`uncorrected` + `P50Ms` ...), for flat JSON reports. */
export function prefixed<P extends string>(prefix: P, s: LatencySummary): Record<`${P}${Capitalize<keyof LatencySummary & string>}`, number> {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [prefix + k[0]!.toUpperCase() + k.slice(1), v])) as Record<
    `${P}${Capitalize<keyof LatencySummary & string>}`,
    number
  >;
}

/** Counts by key (error kinds, statuses). */
export class Tally {
  readonly counts: Record<string, number> = {};
  add(key: string, n = 1): void {
    this.counts[key] = (this.counts[key] ?? 0) + n;
  }
}
