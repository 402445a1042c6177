import { createFrameRing, type FrameRingMemory, type FrameRingOptions } from './frame-ring.js';
import { RingSignalOffset } from './ring-signal.js';

/** Options of {@link FrameRingPool}. */
export interface FrameRingPoolOptions {
  /** The most ring bytes (data and doorbells) the pool keeps for reuse; past it a released ring is let go. */
  readonly maxPooledBytes?: number;
}

/** What a {@link FrameRingPool} has done. */
export interface FrameRingPoolStats {
  /** Rings made new (the pool had none of the size). */
  readonly created: number;
  /** Rings handed out again from the pool. */
  readonly reused: number;
  /** Rings waiting in the pool now, and their bytes. */
  readonly pooled: number;
  readonly pooledBytes: number;
  /** Rings released while the pool was full (left to the garbage collector). */
  readonly discarded: number;
}

/** 256 MiB: rings of a few hundred ended kernels of the default size, waiting for the next launches. */
const DEFAULT_MAX_POOLED_BYTES = 256 * 1024 * 1024;

/**
 * Recycles frame rings by size class (storage size, largest payload, integrity). A kernel's rings go back to the
 * pool when the kernel has ended and nothing reads them any more; the next launch of the same size takes them,
 * reset, instead of a new allocation. The memory of ended kernels is then reused at once, deterministically —
 * not freed whenever the garbage collectors of the host and of the worker that hosted the kernel (each holds a
 * reference) get to it, and not allocated again in a heap that may hand out fully resident pages.
 *
 * Only rings no thread touches any more may be released: the host's own ends detached, the worker's instance
 * gone (its exit reported, or its thread dead), no mirror copying them.
 */
export class FrameRingPool {
  readonly #maxPooledBytes: number;
  readonly #free = new Map<string, FrameRingMemory[]>();
  /** Rings this pool handed out and has not had back, with the size class each was asked for. */
  readonly #out = new WeakMap<FrameRingMemory, string>();
  #pooledBytes = 0;
  #pooled = 0;
  #created = 0;
  #reused = 0;
  #discarded = 0;

  constructor(options: FrameRingPoolOptions = {}) {
    this.#maxPooledBytes = options.maxPooledBytes ?? DEFAULT_MAX_POOLED_BYTES;
  }

  /** A ring of the given size: one from the pool (reset, empty), or a new one. */
  acquire(options: FrameRingOptions): FrameRingMemory {
    const key = `${options.capacityBytes}/${options.maxPayloadSize ?? 'max'}/${options.integrity === true}`;
    const memory = this.#free.get(key)?.pop();
    if (memory === undefined) {
      const fresh = createFrameRing(options);
      this.#created++;
      this.#out.set(fresh, key);
      return fresh;
    }
    this.#pooled--;
    this.#pooledBytes -= bytesOf(memory);
    this.#reused++;
    this.#out.set(memory, key);
    return memory;
  }

  /**
   * Gives a ring back. The caller vouches that no thread reads or writes it any more. Its indices and doorbell
   * are reset now, so a ring in the pool is always a new, empty one. Rings not made by this pool are ignored.
   */
  release(memory: FrameRingMemory): void {
    const key = this.#out.get(memory);
    if (key === undefined) return;
    this.#out.delete(memory);
    const bytes = bytesOf(memory);
    if (this.#pooledBytes + bytes > this.#maxPooledBytes) {
      this.#discarded++;
      return;
    }
    // Write index and read index (ringbuf.js's first two words), then every doorbell word.
    Atomics.store(new Uint32Array(memory.ring, 0, 2), 0, 0);
    Atomics.store(new Uint32Array(memory.ring, 0, 2), 1, 0);
    new Int32Array(memory.signal).fill(0, 0, RingSignalOffset.SIZE >> 2);
    let free = this.#free.get(key);
    if (free === undefined) {
      free = [];
      this.#free.set(key, free);
    }
    free.push(memory);
    this.#pooled++;
    this.#pooledBytes += bytes;
  }

  stats(): FrameRingPoolStats {
    return {
      created: this.#created,
      reused: this.#reused,
      pooled: this.#pooled,
      pooledBytes: this.#pooledBytes,
      discarded: this.#discarded,
    };
  }

  /** Lets every pooled ring go (for the garbage collector). */
  clear(): void {
    this.#free.clear();
    this.#pooled = 0;
    this.#pooledBytes = 0;
  }
}

function bytesOf(memory: FrameRingMemory): number {
  return memory.ring.byteLength + memory.signal.byteLength;
}
