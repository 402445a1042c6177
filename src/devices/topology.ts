/** What kind of device: the CPU backend's virtual devices, or GPUs (CUDA; not on these machines). */
export type DeviceKind = 'cpu' | 'cuda';

/** One device of the runtime's topology. */
export interface DeviceInfo {
  /** 0-based, as `LaunchOptions.device` and `migrateKernel` take it. */
  readonly id: number;
  readonly name: string;
  readonly kind: DeviceKind;
  /** The device's memory budget, MiB (CPU: `config.deviceMemoryMB`, or its share of the machine's memory). */
  readonly memoryMB: number;
  /** Compute units: CPU — the device's worker threads; CUDA — streaming multiprocessors. */
  readonly computeUnits: number;
  /** The worker threads of a CPU virtual device. */
  readonly workerThreadIds: readonly number[];
}

/** How data gets between two devices. */
export type DeviceLinkKind = 'host' | 'pcie' | 'nvlink';

/** A link between two devices (one per unordered pair). */
export interface DeviceLink {
  readonly from: number;
  readonly to: number;
  /**
   * `host`: both sides share host memory (CPU virtual devices: their rings are the same SharedArrayBuffers, so a
   * message crossing devices is not copied at all — only migrated state is).
   */
  readonly kind: DeviceLinkKind;
  /** Measured copy bandwidth, GB/s (see {@link measureHostLink}). */
  readonly bandwidthGBps: number;
  /** Measured latency of one 64-byte frame copied in and published, µs (see {@link measureHostLink}). */
  readonly latencyUs: number;
}

/**
 * The runtime's devices and the links between them.
 *
 * @example
 * const { devices, links } = runtime.gpuTopology();
 * const roomiest = devices.reduce((a, b) => (b.memoryMB > a.memoryMB ? b : a));
 */
export interface GpuTopology {
  readonly devices: readonly DeviceInfo[];
  readonly links: readonly DeviceLink[];
}

let hostLink: { readonly bandwidthGBps: number; readonly latencyUs: number } | undefined;

/**
 * Measures host memory once per process (cached): bandwidth is the best of five 8 MiB copies between two
 * SharedArrayBuffers (`Uint8Array.set`, the copy a checkpoint's state and queued frames take); latency is the
 * median cost of copying one 64-byte frame into shared memory and publishing it with a release store — what a
 * producer pays per message. The cross-thread wake-up a consumer adds is not in it (the benchmark measures ring
 * round trips: `docs/benchmarks.md`).
 *
 * @example
 * const { bandwidthGBps, latencyUs } = measureHostLink();
 */
export function measureHostLink(): { readonly bandwidthGBps: number; readonly latencyUs: number } {
  if (hostLink !== undefined) return hostLink;
  const size = 8 << 20;
  const from = new Uint8Array(new SharedArrayBuffer(size)).fill(7);
  const to = new Uint8Array(new SharedArrayBuffer(size));
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    to.set(from);
    best = Math.min(best, performance.now() - started);
  }
  const frame = from.subarray(0, 64);
  const index = new Int32Array(new SharedArrayBuffer(4));
  const rounds = 4096;
  const samples: number[] = [];
  for (let s = 0; s < 7; s++) {
    const started = performance.now();
    for (let i = 0; i < rounds; i++) {
      to.set(frame, (i * 64) & (size - 1));
      Atomics.store(index, 0, i);
    }
    samples.push(((performance.now() - started) * 1000) / rounds);
  }
  samples.sort((a, b) => a - b);
  hostLink = Object.freeze({
    bandwidthGBps: Math.round((size / 1e9 / (Math.max(best, 1e-3) / 1000)) * 10) / 10,
    latencyUs: Math.round((samples[3] as number) * 1000) / 1000,
  });
  return hostLink;
}
