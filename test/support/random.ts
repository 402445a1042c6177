/**
 * Seeded randomness for tests: every stress test prints its seed and can be replayed with
 * `RINGKERNEL_SEED=<n> npm test`.
 */

/** The seed for this run: `RINGKERNEL_SEED` when set, else a fixed default so CI is reproducible. */
export const TEST_SEED = Number(process.env.RINGKERNEL_SEED ?? 0x5eed_2026) >>> 0;

/** mulberry32: a small, fast, seedable 32-bit PRNG. */
export class Random {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniformly distributed u32. */
  u32(): number {
    this.#state = (this.#state + 0x6d2b_79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor((this.u32() / 0x1_0000_0000) * (max - min + 1));
  }

  /** A float in [0, 1). */
  next(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** Fills `bytes` with random bytes. */
  fill(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
    for (let i = start; i < end; i++) bytes[i] = this.u32() & 0xff;
    return bytes;
  }
}

/**
 * The deterministic content of stress-test frame `index`: both threads compute it from the seed alone, so the
 * consumer can check every byte without the producer sending a reference. Returns the payload length.
 */
export function fillPayload(seed: number, index: number, bytes: Uint8Array, maxSize: number): number {
  // xorshift32 keyed by (seed, index): cheap enough to run for every byte of 10^6 frames.
  let x = (seed ^ Math.imul(index + 1, 0x9e37_79b1)) >>> 0 || 1;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  const size = (x >>> 0) % (maxSize + 1);
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return size;
}
