import { InvalidArgumentError } from '../errors/argument-errors.js';

/**
 * A log-linear latency histogram, in shared memory for a kernel's handler latency (the executor records, single
 * writer, plain stores; the host reads at any time without a message) or in host memory for a host-side latency.
 * Four sub-buckets per power of two of nanoseconds: about ±12 % resolution from 1 ns to 4 s. The sum of the
 * recorded durations sits after the buckets, so Prometheus histograms (`_bucket`, `_sum`, `_count`) come out exact
 * at power-of-two bucket bounds.
 */

const SUB_BUCKETS = 4;
/** Buckets in the histogram. */
export const LATENCY_BUCKETS = 32 * SUB_BUCKETS;
/** Byte offset of the f64 sum of recorded durations, ns. */
const SUM_OFFSET = LATENCY_BUCKETS * 4;
/** Bytes of memory one histogram needs: the u32 buckets, then the f64 sum. */
export const LATENCY_HISTOGRAM_BYTES = SUM_OFFSET + 8;
/**
 * A kernel's shared latency histograms, one after the other: its handler latency at 0, and at
 * {@link LATENCY_HISTOGRAM_BYTES} the latency of kernel-to-kernel hops into it.
 */
export const KERNEL_HISTOGRAMS_BYTES = 2 * LATENCY_HISTOGRAM_BYTES;

/** The bucket a duration in nanoseconds falls in. */
export function latencyBucket(ns: number): number {
  if (ns < 1) return 0;
  // 2^32 ns and more: the last bucket (exponent 31, last sub-bucket).
  if (ns >= 0x1_0000_0000) return LATENCY_BUCKETS - 1;
  // The power of two at or below ns, exactly, from its integer part's leading zeros: a kernel records a sample
  // every few messages, and Math.log2 with 2 ** e cost about as much as the clock reads around the handler.
  const exponent = 31 - Math.clz32(ns);
  const base = exponent === 31 ? 0x8000_0000 : 1 << exponent;
  const sub = Math.min(SUB_BUCKETS - 1, Math.floor(((ns - base) / base) * SUB_BUCKETS));
  return exponent * SUB_BUCKETS + sub;
}

/** The lower bound, in ns, of a bucket. */
function bucketStart(bucket: number): number {
  const exponent = Math.floor(bucket / SUB_BUCKETS);
  const base = 2 ** exponent;
  return base + (base * (bucket % SUB_BUCKETS)) / SUB_BUCKETS;
}

/** Percentiles and count, in µs. */
export interface LatencySummary {
  readonly samples: number;
  readonly p50us: number;
  readonly p99us: number;
  readonly maxUs: number;
}

/** A copy of a histogram's counts and sum, taken at one moment. */
export interface LatencySnapshot {
  /** Samples per bucket ({@link LATENCY_BUCKETS} of them). */
  readonly counts: readonly number[];
  /** Sum of the recorded durations, ns. */
  readonly sumNs: number;
}

/** A histogram over `memory` (a SharedArrayBuffer to share it with an executor; zeroed memory is empty). */
export class LatencyHistogram {
  readonly #counts: Uint32Array;
  readonly #sum: Float64Array;

  constructor(memory: ArrayBufferLike = new ArrayBuffer(LATENCY_HISTOGRAM_BYTES), byteOffset = 0) {
    if (memory.byteLength < byteOffset + LATENCY_HISTOGRAM_BYTES || byteOffset % 8 !== 0) {
      throw new InvalidArgumentError(
        'memory',
        `a latency histogram needs ${LATENCY_HISTOGRAM_BYTES} bytes at an 8-byte aligned offset, got ${memory.byteLength} bytes at ${byteOffset}`,
      );
    }
    this.#counts = new Uint32Array(memory, byteOffset, LATENCY_BUCKETS);
    this.#sum = new Float64Array(memory, byteOffset + SUM_OFFSET, 1);
  }

  /** Counts one duration, ns (the only writer). */
  record(ns: number): void {
    const counts = this.#counts;
    const bucket = latencyBucket(ns);
    counts[bucket] = ((counts[bucket] as number) + 1) >>> 0;
    this.#sum[0] = (this.#sum[0] as number) + ns;
  }

  /** The counts and sum now (a racy but monotone read while the writer records). */
  snapshot(): LatencySnapshot {
    return { counts: Array.from(this.#counts), sumNs: this.#sum[0] as number };
  }

  /** Percentiles (bucket midpoints) and count, µs. */
  summary(): LatencySummary {
    return summarizeLatency(this.snapshot().counts);
  }
}

/**
 * Cumulative counts at `bounds` (ns, each a power of two, ascending): the samples at or under each bound, which
 * the log-linear buckets give exactly since every bucket lies wholly under or over a power of two.
 */
export function cumulativeAtPowersOfTwo(counts: readonly number[], bounds: readonly number[]): number[] {
  const result: number[] = [];
  let seen = 0;
  let bucket = 0;
  for (const bound of bounds) {
    const end = Math.min(counts.length, Math.log2(bound) * SUB_BUCKETS);
    for (; bucket < end; bucket++) seen += counts[bucket] as number;
    result.push(seen);
  }
  return result;
}

/** Percentiles and count from bucket counts. Bucket midpoints, in µs. */
export function summarizeLatency(counts: readonly number[]): LatencySummary {
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
