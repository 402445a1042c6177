import type { WebGpuAdapterDescription } from '../backends/webgpu/webgpu-adapter.js';

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
  /**
   * WebGPU backend: the adapter of the device's `GPUDevice` (its own `GPUDevice` on the device thread), once a
   * WebGPU kernel has been placed there. Devices on different native backends (`deviceBackends`) have different
   * adapters.
   */
  readonly webgpuAdapter?: WebGpuAdapterDescription | undefined;
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
  /**
   * Measured copy bandwidth, GB/s: CPU — {@link measureHostLink}; CUDA — see `cudaTopology` (`measuredWith` says
   * which copy was timed).
   */
  readonly bandwidthGBps: number;
  /**
   * Measured latency, µs: CPU — one 64-byte frame copied in and published ({@link measureHostLink}); CUDA — one
   * 64-byte copy from `from` to `to` (see `cudaTopology`).
   */
  readonly latencyUs: number;
  /**
   * Whether each device can read and write the other's memory directly: CPU — always (one host memory); CUDA —
   * `cuDeviceCanAccessPeer` both ways. Without it a copy between them is staged through host memory.
   */
  readonly peerAccess: boolean;
  /** Whether atomics on the other device's memory are native (CUDA: `CU_DEVICE_P2P_ATTRIBUTE_NATIVE_ATOMIC_SUPPORTED`; CPU: `Atomics` on shared memory, yes). */
  readonly nativeAtomics: boolean;
  /** The driver's relative rank of this link, 0 the best (CUDA `CU_DEVICE_P2P_ATTRIBUTE_PERFORMANCE_RANK`; CPU 0). */
  readonly p2pPerformanceRank: number;
  /** NVLinks joining the pair (NVML; 0 for PCIe / host links, and when NVML is not there to ask). */
  readonly nvlinks: number;
  /** Whether the NVLink path goes through an NVSwitch (each GPU's links reach a switch, not each other). */
  readonly nvswitch: boolean;
  /**
   * What the bandwidth and latency timed: `host-memcpy` (CPU: SharedArrayBuffer copies), `cuMemcpyPeerAsync`
   * (CUDA peers: device to device, timed by CUDA events), `host-staged` (CUDA without peer access: device → pinned
   * host → device, timed by the host clock).
   */
  readonly measuredWith: 'host-memcpy' | 'cuMemcpyPeerAsync' | 'host-staged';
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
  /**
   * Where the link kinds come from: `host-memory` (CPU virtual devices), `cuda` (the driver's peer queries only:
   * NVLink could not be detected — `notes` says why), `cuda+nvml` (peer queries, and NVML for NVLinks).
   */
  readonly linkSource: 'host-memory' | 'cuda' | 'cuda+nvml';
  /** What the topology could not find out, or measured on a stand-in, and why (empty when nothing). */
  readonly notes: readonly string[];
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
