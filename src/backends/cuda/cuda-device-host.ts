/**
 * The Piscina task module of the runtime's CUDA device thread: `attach` compiles and launches one CUDA kernel and
 * returns once it is resident on its device. One such thread serves every CUDA device of a runtime (the driver's
 * contexts are switched per call), so one {@link PinnedHostMemory} sees every pinned page of the process.
 */
import { CudaDeviceLostError, CudaError } from '../../errors/cuda-errors.js';
import { attachKernel, type ExecutorBackend } from '../../executor/executor-shell.js';
import type { AttachResult, AttachTask } from '../../executor/protocol.js';
import { STICKY_CU_RESULTS } from './cu-result.js';
import { CuDeviceAttribute, type CudaDriver, requireCudaDriver } from './driver.js';
import { type CudaDeviceSlot, cudaFailureDetail, HostedCudaKernel } from './hosted-cuda-kernel.js';
import { PinnedHostMemory } from './pinned-host-memory.js';

/** How long one pump turn runs before it yields the event loop to control messages, ms. */
const SLICE_MS = 2;
/** After this long without device activity, ms, the pump sleeps between polls instead of spinning. */
const SPIN_MS = 0.05;
/** While recently busy, the pump sleeps this long between polls, ms: output doorbells within ~20 µs. */
const SHORT_SLEEP_MS = 0.02;
/** Idle this long, ms, and the pump sleeps the runtime's bridge poll interval instead. */
const BACKOFF_AFTER_MS = 5;
/**
 * Idle this long, ms, and the pump sleeps {@link DORMANT_SLEEP_MS}: a resident kernel nobody talks to should cost
 * next to nothing. The first output after that waits up to a millisecond for its doorbell (a `call` spins for
 * its answer itself, so only a parked `receive` sees it).
 */
const DORMANT_AFTER_MS = 100;
const DORMANT_SLEEP_MS = 1;

/** Whether a driver is the emulator (its kernels are host builds, not PTX). */
function isEmulated(driver: CudaDriver): boolean {
  return (driver as { emulated?: boolean }).emulated === true;
}

/**
 * The sticky error a device's context already holds, else undefined: an earlier runtime of this process may have
 * lost the device (a sticky error lasts as long as the process). Asked with a cheap context call.
 */
function stickyError(driver: CudaDriver, context: bigint): string | undefined {
  try {
    driver.setCurrentContext(context);
    driver.memGetInfo();
    return undefined;
  } catch (error) {
    if (error instanceof CudaError && STICKY_CU_RESULTS.has(error.cudaResult)) return error.cudaErrorName;
    throw error;
  }
}

/**
 * The device thread's state: the driver, a context per device, the pinned-page registry, and the pump that polls
 * every resident kernel (output doorbells, device failures, exits).
 */
class CudaDeviceService {
  static #instance: CudaDeviceService | undefined;
  readonly driver: CudaDriver;
  readonly #slots = new Map<number, CudaDeviceSlot>();
  readonly #kernels = new Set<HostedCudaKernel>();
  readonly #sleeper = new Int32Array(new SharedArrayBuffer(4));
  #pinned: PinnedHostMemory | undefined;
  #pumping = false;
  #idleSince = performance.now();
  #pollMs = 0.1;

  static get(): CudaDeviceService {
    CudaDeviceService.#instance ??= new CudaDeviceService();
    return CudaDeviceService.#instance;
  }

  private constructor() {
    this.driver = requireCudaDriver();
    this.driver.init();
  }

  slot(ordinal: number): CudaDeviceSlot {
    let slot = this.#slots.get(ordinal);
    if (slot !== undefined) return slot;
    const driver = this.driver;
    const device = driver.device(ordinal);
    const context = driver.primaryContextRetain(device);
    this.#pinned ??= PinnedHostMemory.open(
      driver,
      Array.from({ length: driver.deviceCount() }, (_, i) => driver.device(i)),
    );
    const major = driver.deviceAttribute(device, CuDeviceAttribute.ComputeCapabilityMajor);
    const minor = driver.deviceAttribute(device, CuDeviceAttribute.ComputeCapabilityMinor);
    slot = {
      driver,
      pinned: this.#pinned,
      ordinal,
      context,
      arch: isEmulated(driver) ? undefined : `sm_${major}${minor}`,
      cooperativeLaunch: driver.deviceAttribute(device, CuDeviceAttribute.CooperativeLaunch) === 1,
      lost: stickyError(driver, context),
    };
    this.#slots.set(ordinal, slot);
    return slot;
  }

  add(kernel: HostedCudaKernel, pollIntervalUs: number): void {
    this.#pollMs = Math.max(0.01, pollIntervalUs / 1000);
    this.#kernels.add(kernel);
    kernel.onExit = () => this.#kernels.delete(kernel);
    this.#idleSince = performance.now();
    if (!this.#pumping) {
      this.#pumping = true;
      setImmediate(this.#pump);
    }
  }

  /**
   * Polls every kernel for a slice, then yields to the event loop (control messages arrive there). A GPU cannot
   * wake a JS thread, so this is how the host learns of outputs: spin while busy, sleep briefly when idle.
   */
  readonly #pump = (): void => {
    const kernels = this.#kernels;
    if (kernels.size === 0) {
      this.#pumping = false;
      return;
    }
    const sliceEnd = performance.now() + SLICE_MS;
    do {
      let active = false;
      for (const kernel of kernels) if (kernel.poll()) active = true;
      const now = performance.now();
      if (active) {
        this.#idleSince = now;
      } else {
        const idle = now - this.#idleSince;
        if (idle > SPIN_MS) {
          const sleep =
            idle > DORMANT_AFTER_MS
              ? Math.max(this.#pollMs, DORMANT_SLEEP_MS)
              : idle > BACKOFF_AFTER_MS
                ? this.#pollMs
                : SHORT_SLEEP_MS;
          Atomics.wait(this.#sleeper, 0, 0, sleep);
        }
      }
    } while (kernels.size > 0 && performance.now() < sliceEnd);
    setImmediate(this.#pump);
  };
}

/**
 * The CUDA backend's executor: a kernel is prepared by compiling (or taking from the cache), loading and
 * allocating it on its device, and started by launching it, when the pump takes it on.
 */
const cudaExecutor: ExecutorBackend = {
  prepare(definition, shell) {
    const options = shell.task.cuda ?? { gridSize: 1, blockSize: 1, pollIntervalUs: 100 };
    const service = CudaDeviceService.get();
    const slot = service.slot(shell.task.device ?? 0);
    if (slot.lost !== undefined) throw new CudaDeviceLostError(slot.ordinal, slot.lost);
    const kernel = new HostedCudaKernel(definition, shell, slot, options);
    const { compiler, cached, key } = kernel.compiled;
    return {
      restore: (bytes) => kernel.restoreState(bytes),
      start() {
        kernel.launch();
        service.add(kernel, options.pollIntervalUs);
        return kernel;
      },
      discard: () => kernel.release(),
      attachInfo: { cuda: { compiler, cached, key } },
    };
  },
  failureDetail: cudaFailureDetail,
};

/** Piscina task: compiles (or takes from the cache), loads and launches one CUDA kernel; resolves once resident. */
export default function attach(task: AttachTask): Promise<AttachResult> {
  return attachKernel(task, cudaExecutor);
}
