import type { CudaDriver } from '../backends/cuda/driver.js';

/** One device's memory as the driver counts it. */
export interface DeviceMemoryReading {
  /** Bytes in use on the device, by every process (total − free). */
  readonly usedBytes: number;
  /** The device's memory, bytes. */
  readonly totalBytes: number;
}

/**
 * Reads CUDA devices' memory with `cuMemGetInfo_v2` for the coordinator and the Prometheus gauge. `cuMemGetInfo`
 * answers for the current context's device, so each device's primary context is retained on first read and held
 * until {@link CudaDeviceMemory.close} — retaining and releasing it per read would create and destroy the context
 * each time while no kernel holds it (hundreds of ms on a GPU). It is the same primary context the runtime's
 * kernels use, so holding it costs no extra device memory once a kernel runs there. The calling thread's current
 * context is unset after each read.
 *
 * @example
 * const memory = new CudaDeviceMemory(requireCudaDriver());
 * const { usedBytes, totalBytes } = memory.read(0);
 * memory.close();
 */
export class CudaDeviceMemory {
  readonly #driver: CudaDriver;
  readonly #contexts = new Map<number, bigint>();

  constructor(driver: CudaDriver) {
    this.#driver = driver;
  }

  /** Device `ordinal`'s used and total memory, now. @throws {CudaError} from the driver. */
  read(ordinal: number): DeviceMemoryReading {
    const driver = this.#driver;
    let context = this.#contexts.get(ordinal);
    if (context === undefined) {
      context = driver.primaryContextRetain(driver.device(ordinal));
      this.#contexts.set(ordinal, context);
    } else {
      driver.setCurrentContext(context);
    }
    try {
      const { freeBytes, totalBytes } = driver.memGetInfo();
      return { usedBytes: Number(totalBytes - freeBytes), totalBytes: Number(totalBytes) };
    } finally {
      driver.setCurrentContext(0n);
    }
  }

  /** Releases the primary contexts it retained (best effort: it runs in shutdown, which must finish). */
  close(): void {
    for (const ordinal of this.#contexts.keys()) {
      try {
        this.#driver.primaryContextRelease(this.#driver.device(ordinal));
      } catch {
        // A driver that fails to release a context at shutdown leaves nothing for us to undo.
      }
    }
    this.#contexts.clear();
  }
}
