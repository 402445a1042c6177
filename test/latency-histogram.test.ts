import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LATENCY_BUCKETS, LatencyHistogram, latencyBucket } from '../src/kernel/latency-histogram.js';
import { Random, TEST_SEED } from './support/random.js';

/** The bucket by definition: the power of two at or below `ns` found by doubling, then its quarter. */
function referenceBucket(ns: number): number {
  if (ns < 1) return 0;
  let exponent = 0;
  while (exponent < 31 && 2 ** (exponent + 1) <= ns) exponent++;
  const base = 2 ** exponent;
  return exponent * 4 + Math.min(3, Math.floor(((ns - base) / base) * 4));
}

describe('latency histogram buckets', () => {
  it('puts every duration in the quarter of its power of two, at the edges too', () => {
    const edges: number[] = [0, 0.5, 1, 1.5, 2, 3, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40, 1e15];
    for (let exponent = 0; exponent < 33; exponent++) {
      const base = 2 ** exponent;
      for (const quarter of [0, 1, 2, 3]) {
        const start = base + (base * quarter) / 4;
        edges.push(start, start - 1e-6 * base, start + 1e-6 * base, start * (1 - 2 ** -52));
      }
    }
    for (const ns of edges) assert.equal(latencyBucket(ns), referenceBucket(ns), `${ns} ns`);
    assert.equal(latencyBucket(2 ** 40), LATENCY_BUCKETS - 1);
  });

  it(`matches the definition over random durations (seed ${TEST_SEED})`, () => {
    const random = new Random(TEST_SEED);
    for (let i = 0; i < 20_000; i++) {
      // Log-uniform from 1 ns to about 8 s, with fractions.
      const ns = 2 ** ((random.u32() / 0x1_0000_0000) * 33) * (1 + random.u32() / 0x1_0000_0000);
      assert.equal(latencyBucket(ns), referenceBucket(ns), `${ns} ns`);
    }
  });

  it('records into the bucket and the sum', () => {
    const histogram = new LatencyHistogram();
    histogram.record(1_500);
    histogram.record(1_500);
    histogram.record(3e9);
    const { counts, sumNs } = histogram.snapshot();
    assert.equal(counts[referenceBucket(1_500)], 2);
    assert.equal(counts[referenceBucket(3e9)], 1);
    assert.equal(sumNs, 3e9 + 3_000);
  });
});
