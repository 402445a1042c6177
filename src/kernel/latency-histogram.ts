/**
 * A log-linear latency histogram in shared memory: the executor records (single writer, plain stores), the host
 * reads percentiles at any time without a message. Four sub-buckets per power of two of nanoseconds: about
 * ±12 % resolution from 1 ns to 4 s.
 */

const SUB_BUCKETS = 4;
/** Buckets in the histogram. */
export const LATENCY_BUCKETS = 32 * SUB_BUCKETS;
/** Bytes of shared memory one histogram needs. */
export const LATENCY_HISTOGRAM_BYTES = LATENCY_BUCKETS * 4;

/** The bucket a duration in nanoseconds falls in. */
export function latencyBucket(ns: number): number {
  if (ns < 1) return 0;
  const exponent = Math.min(31, Math.floor(Math.log2(ns)));
  const base = 2 ** exponent;
  const sub = Math.min(SUB_BUCKETS - 1, Math.floor(((ns - base) / base) * SUB_BUCKETS));
  return exponent * SUB_BUCKETS + sub;
}

/** The lower bound, in ns, of a bucket. */
function bucketStart(bucket: number): number {
  const exponent = Math.floor(bucket / SUB_BUCKETS);
  const base = 2 ** exponent;
  return base + (base * (bucket % SUB_BUCKETS)) / SUB_BUCKETS;
}

/** Executor side: counts one duration. */
export function recordLatency(histogram: Uint32Array, ns: number): void {
  const bucket = latencyBucket(ns);
  histogram[bucket] = ((histogram[bucket] as number) + 1) >>> 0;
}

/** Percentiles and count, in µs. */
export interface LatencySummary {
  readonly samples: number;
  readonly p50us: number;
  readonly p99us: number;
  readonly maxUs: number;
}

/** Host side: percentiles from a (racy, monotone) snapshot of the buckets. Bucket midpoints, in µs. */
export function summarizeLatency(histogram: Uint32Array): LatencySummary {
  const counts = Array.from(histogram);
  const samples = counts.reduce((a, b) => a + b, 0);
  if (samples === 0) return { samples: 0, p50us: 0, p99us: 0, maxUs: 0 };
  const at = (q: number): number => {
    const rank = Math.ceil(q * samples);
    let seen = 0;
    for (let b = 0; b < counts.length; b++) {
      seen += counts[b] as number;
      if (seen >= rank) return (bucketStart(b) + bucketStart(b + 1)) / 2 / 1000;
    }
    return 0;
  };
  let top = counts.length - 1;
  while (top > 0 && counts[top] === 0) top--;
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  return { samples, p50us: round(at(0.5)), p99us: round(at(0.99)), maxUs: round(bucketStart(top + 1) / 1000) };
}
