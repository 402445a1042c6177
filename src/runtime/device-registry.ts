import { totalmem } from 'node:os';
import type { BackendType } from '../backends/backend-type.js';
import { STICKY_CU_RESULTS } from '../backends/cuda/cu-result.js';
import { type CudaDeviceInfo, requireCudaDriver } from '../backends/cuda/driver.js';
import type { WebGpuAdapterDescription } from '../backends/webgpu/webgpu-adapter.js';
import { CudaDeviceMemory } from '../devices/cuda-device-memory.js';
import { cudaTopology } from '../devices/cuda-topology.js';
import {
  type DeviceLoad,
  type DeviceSelector,
  type LoadBalancingStrategy,
  MultiGpuCoordinator,
} from '../devices/multi-gpu-coordinator.js';
import { type DeviceInfo, type DeviceKind, type GpuTopology, measureHostLink } from '../devices/topology.js';
import { CudaDeviceLostError, CudaError } from '../errors/cuda-errors.js';
import { PlacementError } from '../errors/device-errors.js';
import type { RuntimeConfig } from './config.js';
import type { KernelHandle } from './kernel-handle.js';
import type { RuntimeLogger } from './logger.js';
import type { WorkerPools } from './worker-pools.js';

/** A CUDA device lost to the process: see `RingKernelRuntime.lostDevices`. */
export interface LostCudaDevice {
  /** The device's ordinal. */
  readonly device: number;
  /** The sticky error a kernel there failed with, e.g. `'CUDA_ERROR_ILLEGAL_ADDRESS'`. */
  readonly cudaErrorName: string;
  /** When the runtime learned of it. */
  readonly at: Date;
}

/** One device's memory: used against its budget (CPU) or its total (CUDA), bytes. */
export interface DeviceMemoryReport {
  readonly device: number;
  readonly kind: DeviceKind;
  readonly usedBytes: number;
  readonly budgetBytes: number;
}

/** Where a launch asks to go: a device, or next to another kernel (else the coordinator chooses). */
export interface PlacementRequest {
  readonly device?: number | undefined;
  readonly colocateWith?: string | undefined;
}

/** What the device registry reads of the runtime. */
export interface DeviceHost {
  /** Every live kernel. */
  kernels(): Iterable<KernelHandle>;
  /** Bytes a kernel owns (rings, control block), counted against its device's budget. */
  bytesOf(kernel: KernelHandle): number;
  /** The device of the live kernel launched under `name` (throws when there is none). */
  deviceOfKernel(name: string): number;
  readonly log: RuntimeLogger;
}

/** The machine's CUDA devices, as the driver describes them (the runtime's devices on the CUDA backend). */
function cudaDevices(): CudaDeviceInfo[] {
  const driver = requireCudaDriver();
  driver.init();
  return Array.from({ length: driver.deviceCount() }, (_, ordinal) => driver.deviceInfo(ordinal));
}

/**
 * A runtime's devices: CPU virtual devices (each a group of the worker threads with a memory budget) or the
 * machine's CUDA devices; which are lost; their memory, load and topology; and where a launch goes (the
 * coordinator's choice, never a lost CUDA device, never past a budget).
 */
export class DeviceRegistry {
  readonly #backend: BackendType;
  readonly #host: DeviceHost;
  readonly #workers: WorkerPools<KernelHandle>;
  readonly #devices: DeviceInfo[] = [];
  /** CUDA devices lost to a sticky error: nothing more is launched there (CUDA kernels go elsewhere). */
  readonly #lost = new Map<number, LostCudaDevice>();
  #coordinator: MultiGpuCoordinator | undefined;
  /** The CUDA topology, measured on the first `topology()` (CUDA backend). */
  #cudaTopology: GpuTopology | undefined;
  /** Reads CUDA devices' memory (`cuMemGetInfo`) for placement and metrics; opened on first use. */
  #cudaMemory: CudaDeviceMemory | undefined;
  /** WebGPU backend: each device's adapter, as the device thread reported it at an attach there. */
  readonly #webgpuAdapters = new Map<number, WebGpuAdapterDescription>();

  /** Makes the devices, and each one's worker pool in `workers`. */
  constructor(backend: BackendType, config: RuntimeConfig, workers: WorkerPools<KernelHandle>, host: DeviceHost) {
    this.#backend = backend;
    this.#host = host;
    this.#workers = workers;
    // CUDA: the machine's GPUs are the devices (each also gets CPU workers, for kernels with no cuda part).
    const gpus = backend === 'cuda' ? cudaDevices() : undefined;
    const devices = gpus?.length ?? config.devices;
    const budgetMB = config.deviceMemoryMB || Math.floor(totalmem() / 2 ** 20 / devices);
    for (let device = 0; device < devices; device++) {
      // The workers split as evenly as can be: the first `workers % devices` devices get one more.
      const threads = Math.max(1, Math.floor(config.workers / devices) + (device < config.workers % devices ? 1 : 0));
      workers.addDevice(threads);
      const gpu = gpus?.[device];
      this.#devices.push(
        gpu === undefined
          ? {
              id: device,
              name: `cpu:${device}`,
              kind: 'cpu',
              memoryMB: budgetMB,
              computeUnits: threads,
              workerThreadIds: [],
            }
          : {
              id: device,
              name: gpu.name,
              kind: 'cuda',
              memoryMB: Math.floor(Number(gpu.totalMemoryBytes / 1_048_576n)),
              computeUnits: gpu.multiprocessorCount,
              workerThreadIds: [],
            },
      );
    }
  }

  /** A WebGPU kernel was attached on `device`, whose `GPUDevice` is on `adapter` (a lost one's replacement too). */
  attachedWebGpu(device: number, adapter: WebGpuAdapterDescription): void {
    this.#webgpuAdapters.set(device, adapter);
  }

  /** How many devices the runtime has. */
  get count(): number {
    return this.#devices.length;
  }

  /** Whether `device` is a CUDA device lost to this process. */
  isLost(device: number): boolean {
    return this.#lost.has(device);
  }

  /**
   * The launch's device: the one it names, or the coordinator's choice; a CUDA kernel never goes to a lost device.
   * @throws {PlacementError}
   * @throws {CudaDeviceLostError} a CUDA kernel asked for a lost device, or every device is lost.
   */
  place(options: PlacementRequest, memoryBytes: number, onCuda: boolean): number {
    const device = options.device;
    const lost = onCuda ? [...this.#lost.keys()] : [];
    if (device === undefined && lost.length > 0 && lost.length >= this.#devices.length) {
      throw this.lostError(lost[0] as number, 'every CUDA device of this runtime is lost');
    }
    // One device: nothing to choose (and no load to measure on every launch).
    if (device === undefined && this.#devices.length === 1) return 0;
    if (device === undefined) {
      return this.coordinator().selectDevice({
        memoryBytes,
        ...(options.colocateWith === undefined ? {} : { colocateWith: options.colocateWith }),
        ...(lost.length === 0 ? {} : { excludeDevices: lost }),
      });
    }
    if (!Number.isInteger(device) || device < 0 || device >= this.#devices.length) {
      throw new PlacementError(`device ${device} does not exist (devices 0…${this.#devices.length - 1})`);
    }
    if (lost.includes(device)) throw this.lostError(device, 'a launch asked for it');
    const free = this.freeBytes(device);
    if (memoryBytes > free) {
      throw new PlacementError(`device ${device} has ${free} bytes of budget free, the kernel needs ${memoryBytes}`);
    }
    return device;
  }

  /** The budget left on `device`, bytes (its kernels' rings and control blocks counted). */
  freeBytes(device: number): number {
    const info = this.#devices[device] as DeviceInfo;
    let used = 0;
    for (const handle of this.#host.kernels()) if (handle.device === device) used += this.#host.bytesOf(handle);
    return info.memoryMB * 2 ** 20 - used;
  }

  /**
   * The runtime's devices and the links between them. On the CPU backend: `config.devices` virtual devices, each a
   * group of worker threads (its compute units) with a memory budget; every pair linked through host memory, with
   * a bandwidth and latency measured once (see {@link measureHostLink}). On the CUDA backend: the CUDA devices and
   * their links (`nvlink` through NVML, `pcie` with peer access, else `host`), measured on the first call (see
   * `cudaTopology`) and kept.
   *
   * @example
   * const { devices, links } = runtime.gpuTopology();
   * console.log(devices.map((d) => `${d.name}: ${d.computeUnits} workers, ${d.memoryMB} MiB`));
   */
  topology(): GpuTopology {
    const withWorkers = (device: DeviceInfo): DeviceInfo => {
      const webgpuAdapter = this.#webgpuAdapters.get(device.id);
      return {
        ...device,
        workerThreadIds: this.#workers.threads(device.id).map((thread) => thread.threadId),
        ...(webgpuAdapter === undefined ? {} : { webgpuAdapter }),
      };
    };
    if (this.#backend === 'cuda') {
      this.#cudaTopology ??= cudaTopology(requireCudaDriver());
      return { ...this.#cudaTopology, devices: this.#cudaTopology.devices.map(withWorkers) };
    }
    const devices = this.#devices.map(withWorkers);
    const { bandwidthGBps, latencyUs } = measureHostLink();
    const links = [];
    for (let from = 0; from < devices.length; from++) {
      for (let to = from + 1; to < devices.length; to++) {
        // One host memory: each side reaches the other's rings directly, Atomics included.
        links.push({
          from,
          to,
          kind: 'host' as const,
          bandwidthGBps,
          latencyUs,
          peerAccess: true,
          nativeAtomics: true,
          p2pPerformanceRank: 0,
          nvlinks: 0,
          nvswitch: false,
          measuredWith: 'host-memcpy' as const,
        });
      }
    }
    return { devices, links, linkSource: 'host-memory', notes: [] };
  }

  /**
   * Every device's memory, now: CPU virtual devices — the bytes of rings and control blocks their kernels own
   * against the device's budget (`config.deviceMemoryMB`); CUDA devices — the device's memory in use (by every
   * process: `cuMemGetInfo`, total − free) against its total. The coordinator's `MemoryBased` strategy and the
   * `ringkernel_device_memory_bytes` gauge read it.
   *
   * @example
   * for (const { device, usedBytes, budgetBytes } of runtime.deviceMemory()) console.log(device, usedBytes / budgetBytes);
   */
  memory(): DeviceMemoryReport[] {
    return this.#devices.map((device) => {
      if (device.kind === 'cuda') {
        // A lost device answers every call with its sticky error: it counts as full (nothing goes there).
        const full = device.memoryMB * 2 ** 20;
        if (this.#lost.has(device.id)) {
          return { device: device.id, kind: device.kind, usedBytes: full, budgetBytes: full };
        }
        this.#cudaMemory ??= new CudaDeviceMemory(requireCudaDriver());
        try {
          const { usedBytes, totalBytes } = this.#cudaMemory.read(device.id);
          return { device: device.id, kind: device.kind, usedBytes, budgetBytes: totalBytes };
        } catch (error) {
          // A sticky error: the device was lost in this process (under another runtime, say). Now it is known.
          if (!(error instanceof CudaError) || !STICKY_CU_RESULTS.has(error.cudaResult)) throw error;
          this.markLost(device.id, error.cudaErrorName);
          return { device: device.id, kind: device.kind, usedBytes: full, budgetBytes: full };
        }
      }
      let usedBytes = 0;
      for (const handle of this.#host.kernels()) {
        if (handle.device === device.id) usedBytes += this.#host.bytesOf(handle);
      }
      return { device: device.id, kind: device.kind, usedBytes, budgetBytes: device.memoryMB * 2 ** 20 };
    });
  }

  /** Every device's load, measured now (event-loop utilization since the last measurement). */
  #loads(): DeviceLoad[] {
    const memory = this.memory();
    return this.#devices.map((device) => {
      const utilization = this.#workers.utilization(device.id);
      const threads = this.#workers.threads(device.id);
      let kernels = 0;
      let queuedFrames = 0;
      let queueCapacity = 0;
      for (const handle of this.#host.kernels()) {
        if (handle.device !== device.id) continue;
        const metrics = handle.metrics();
        kernels++;
        queuedFrames += metrics.inputQueueDepth;
        queueCapacity += metrics.inputQueueCapacity;
      }
      const { usedBytes: memoryUsedBytes, budgetBytes: memoryBudgetBytes } = memory[device.id] as {
        usedBytes: number;
        budgetBytes: number;
      };
      const queuePressure = queueCapacity === 0 ? 0 : queuedFrames / queueCapacity;
      return {
        device: { ...device, workerThreadIds: threads.map((thread) => thread.threadId) },
        kernels,
        queuedFrames,
        queueCapacity,
        utilization,
        memoryUsedBytes,
        memoryBudgetBytes,
        score: utilization + queuePressure + (0.01 * kernels) / Math.max(1, device.computeUnits),
      };
    });
  }

  /**
   * The runtime's multi-device coordinator (one per runtime; `strategy` applies on first use): places launches
   * that name no device.
   *
   * @example
   * runtime.multiGpuCoordinator().setStrategy(LoadBalancingStrategy.RoundRobin);
   */
  coordinator(strategy?: LoadBalancingStrategy | DeviceSelector): MultiGpuCoordinator {
    this.#coordinator ??= new MultiGpuCoordinator(
      {
        loads: () => this.#loads(),
        deviceOfKernel: (name) => this.#host.deviceOfKernel(name),
      },
      strategy,
    );
    return this.#coordinator;
  }

  /** A kernel on `device` failed with a sticky CUDA error: the device is lost to this process. */
  markLost(device: number, cudaErrorName: string): void {
    if (this.#lost.has(device)) return;
    this.#lost.set(device, { device, cudaErrorName, at: new Date() });
    this.#host.log.error(
      `CUDA device ${device} is lost (${cudaErrorName}, a sticky error): its kernels failed, and new CUDA kernels go to other devices`,
    );
  }

  /** The error for something that needed a lost device. */
  lostError(device: number, detail: string): CudaDeviceLostError {
    const lost = this.#lost.get(device) as LostCudaDevice;
    return new CudaDeviceLostError(device, lost.cudaErrorName, detail);
  }

  /**
   * The CUDA devices lost to this process: a kernel on each faulted (an illegal address, a trap, a failed device
   * assert), and CUDA's errors from a fault are sticky. Every kernel there failed; launches go to the other
   * devices, and supervised `mapped` kernels restart on them. Only a new process can use a lost device again.
   *
   * @example
   * for (const { device, cudaErrorName, at } of runtime.lostDevices()) console.error(`GPU ${device}: ${cudaErrorName} at ${at}`);
   */
  lostDevices(): LostCudaDevice[] {
    return [...this.#lost.values()];
  }

  /** Lets go of the driver handles it opened. */
  close(): void {
    this.#cudaMemory?.close();
  }
}
