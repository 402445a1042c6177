import type { MetricValueWithName, Registry } from 'prom-client';
import { cumulativeAtPowersOfTwo, type LatencySnapshot } from '../kernel/latency-histogram.js';

/**
 * Bucket bounds in ns: the powers of two from 256 ns to about 4.3 s. The runtime's latency histograms split every
 * power of two into four, so the cumulative count at each of these bounds is exact, not interpolated.
 */
const BOUNDS_NS: readonly number[] = Array.from({ length: 25 }, (_, i) => 2 ** (i + 8));
const BOUND_LABELS: readonly string[] = BOUNDS_NS.map((ns) => String(ns / 1e9));

/** One labelled latency histogram read at scrape time (exposed in seconds at power-of-two bounds of ns). */
export interface HistogramSample {
  readonly labels: Readonly<Record<string, string>>;
  readonly latency: LatencySnapshot;
}

/** One labelled histogram already bucketed at the metric's own `bounds` (cumulative counts), read at scrape time. */
export interface BucketedSample {
  readonly labels: Readonly<Record<string, string>>;
  /** Observations at or under each of the metric's bounds. */
  readonly cumulative: readonly number[];
  readonly count: number;
  /** Sum of the observations, in the metric's unit. */
  readonly sum: number;
}

/**
 * A Prometheus histogram (`_bucket` with `le`, `_sum`, `_count`, seconds) read at scrape time from the runtime's
 * log-linear latency histograms. prom-client's own `Histogram` only counts observations it is handed one by one;
 * these latencies are counted by the executors in shared memory, so the metric exposes their snapshot in the same
 * format, registered like any prom-client metric.
 */
export class SnapshotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly #read: () => readonly (HistogramSample | BucketedSample)[];
  readonly #bounds: readonly string[];

  /**
   * `read` gives latency snapshots (exposed in seconds) or, with `bounds` (in the metric's unit, ascending), counts
   * already bucketed at those bounds.
   */
  constructor(options: {
    readonly name: string;
    readonly help: string;
    readonly registers: readonly Registry[];
    readonly read: () => readonly (HistogramSample | BucketedSample)[];
    readonly bounds?: readonly number[];
  }) {
    this.name = options.name;
    this.help = options.help;
    this.#read = options.read;
    this.#bounds = options.bounds === undefined ? BOUND_LABELS : options.bounds.map(String);
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  /** The exposition values: cumulative buckets, `+Inf`, sum and count per labelled histogram. */
  async get(): Promise<{
    readonly name: string;
    readonly help: string;
    readonly type: 'histogram';
    readonly aggregator: 'sum';
    readonly values: MetricValueWithName<string>[];
  }> {
    const values: MetricValueWithName<string>[] = [];
    for (const sample of this.#read()) {
      const { labels, cumulative, count, sum } = 'latency' in sample ? inSeconds(sample) : sample;
      cumulative.forEach((value, i) => {
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: this.#bounds[i] as string }, value });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count });
      values.push({ metricName: `${this.name}_sum`, labels, value: sum });
      values.push({ metricName: `${this.name}_count`, labels, value: count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** The registry's `resetMetrics()`: nothing to reset, the counts live with the kernels. */
  reset(): void {}
}

/** A latency snapshot bucketed at the default bounds, in seconds. */
function inSeconds({ labels, latency }: HistogramSample): BucketedSample {
  return {
    labels,
    cumulative: cumulativeAtPowersOfTwo(latency.counts, BOUNDS_NS),
    count: latency.counts.reduce((a, b) => a + b, 0),
    sum: latency.sumNs / 1e9,
  };
}
