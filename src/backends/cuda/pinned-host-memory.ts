import { InvalidArgumentError } from '../../errors/argument-errors.js';
import { CudaError } from '../../errors/cuda-errors.js';
import { STICKY_CU_RESULTS } from './cu-result.js';
import { CuDeviceAttribute, type CudaDriver, CuMemHostRegisterFlag } from './driver.js';

type KoffiFunction = ReturnType<ReturnType<CudaDriver['koffi']['load']>['func']>;

/** Host pages as the driver pins them. */
const PAGE = 4096n;
/** `CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM`: device pointer = host pointer. */
const CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM = 91;

/** One `cuMemHostRegister` of whole pages, shared by every buffer that touches them. */
interface Registration {
  readonly start: bigint;
  readonly end: bigint;
  users: number;
}

/**
 * Page-locks SharedArrayBuffers and maps them into every device (the `mapped` transfer strategy): the kernel's
 * ControlBlock, rings and telemetry ring, which the GPU then reads and writes in place.
 *
 * Why a registry: the driver pins whole pages and refuses a range that overlaps one already registered
 * (`CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED`), while V8 places small SharedArrayBuffers side by side on the C
 * heap, several to a page. So this registers page ranges, each once: a buffer that shares a page with one
 * already pinned registers only its pages no registration covers, and every registration counts the buffers that
 * use it, so a page is unpinned only when no live buffer touches it. One registry per process (the runtime's
 * single CUDA device thread owns it); registrations are `Portable`, so they hold for every device's context.
 *
 * A buffer spanning two registrations is contiguous on the device only where the device addresses registered
 * memory by its host address (UVA; every 64-bit Linux GPU since Pascal): {@link PinnedHostMemory.open} checks it.
 *
 * @example
 * const pinned = PinnedHostMemory.open(driver, [driver.device(0)]);
 * const ring = new Uint8Array(createFrameRing({ capacityBytes: 1 << 16, maxPayloadSize: 256 }).ring);
 * const devicePointer = pinned.pin(ring); // pass to a kernel; pinned.unpin(ring) once it has exited
 */
export class PinnedHostMemory {
  readonly #driver: CudaDriver;
  readonly #register: KoffiFunction;
  readonly #unregister: KoffiFunction;
  readonly #devicePointer: KoffiFunction;
  /** Sorted by start; never overlapping. */
  readonly #registrations: Registration[] = [];
  /** What each pinned view holds, for {@link PinnedHostMemory.unpin}. */
  readonly #pinned = new Map<Uint8Array, Registration[]>();
  /** The devices whose contexts may undo a registration when the current one is lost. */
  readonly #devices: readonly number[];
  readonly #contexts = new Map<number, bigint>();

  private constructor(driver: CudaDriver, devices: readonly number[]) {
    this.#driver = driver;
    this.#devices = devices;
    // The same driver entry points as CudaDriver's, bound again with the address as an integer: a page range
    // starts before the buffer, outside any JS object koffi could take a pointer from.
    const lib = driver.koffi.load(driver.path);
    this.#register = lib.func('int cuMemHostRegister_v2(uint64_t memory, size_t bytes, uint32_t flags)');
    this.#unregister = lib.func('int cuMemHostUnregister(uint64_t memory)');
    this.#devicePointer = lib.func(
      'int cuMemHostGetDevicePointer_v2(_Out_ uint64_t *pointer, uint64_t memory, uint32_t flags)',
    );
  }

  /**
   * The registry for a driver whose devices can map host memory at its host address.
   * @throws {CudaError} `CUDA_ERROR_NOT_SUPPORTED` when a device cannot (use the `dma` strategy there).
   */
  static open(driver: CudaDriver, devices: readonly number[]): PinnedHostMemory {
    for (const device of devices) {
      const maps = driver.deviceAttribute(device, CuDeviceAttribute.CanMapHostMemory) === 1;
      const sameAddress = driver.deviceAttribute(device, CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM) === 1;
      if (!maps || !sameAddress) throw new CudaError('mapped host memory', 801, 'CUDA_ERROR_NOT_SUPPORTED');
    }
    return new PinnedHostMemory(driver, devices);
  }

  #call(operation: string, fn: KoffiFunction, ...args: unknown[]): void {
    const rc = fn(...args) as number;
    if (rc !== 0) throw new CudaError(operation, rc, this.#driver.errorName(rc));
  }

  /**
   * Pins the pages under `view` (registering those not pinned yet) and returns its device pointer.
   * Keep `view`'s buffer alive until {@link PinnedHostMemory.unpin}.
   */
  pin(view: Uint8Array): bigint {
    if (this.#pinned.has(view)) throw new InvalidArgumentError('view', 'pin: this view is already pinned');
    const address = this.#driver.koffi.address(view);
    const start = (address / PAGE) * PAGE;
    const end = ((address + BigInt(view.byteLength) + PAGE - 1n) / PAGE) * PAGE;
    const used: Registration[] = [];
    const added: Registration[] = [];
    try {
      let cursor = start;
      for (const registration of this.#registrations) {
        if (registration.end <= cursor) continue;
        if (registration.start >= end) break;
        if (registration.start > cursor) added.push(this.#registerRange(cursor, registration.start));
        used.push(registration);
        cursor = registration.end;
      }
      if (cursor < end) added.push(this.#registerRange(cursor, end));
    } catch (error) {
      for (const registration of added) this.#call('cuMemHostUnregister', this.#unregister, registration.start);
      throw error;
    }
    for (const registration of added) {
      used.push(registration);
      this.#registrations.push(registration);
    }
    this.#registrations.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (const registration of used) registration.users++;
    this.#pinned.set(view, used);
    const out = new BigUint64Array(1);
    this.#call('cuMemHostGetDevicePointer_v2', this.#devicePointer, out, address, 0);
    return out[0] as bigint;
  }

  #registerRange(start: bigint, end: bigint): Registration {
    const flags = CuMemHostRegisterFlag.Portable | CuMemHostRegisterFlag.DeviceMap;
    this.#call('cuMemHostRegister_v2', this.#register, start, Number(end - start), flags);
    return { start, end, users: 0 };
  }

  /**
   * Lets go of `view`: pages no other pinned buffer touches are unregistered. Idempotent. The current context may
   * be lost to a sticky error (the kernel that used the view faulted): registrations are `Portable`, so another
   * device's context undoes them (the current context may change). One no context will undo stays in the
   * registry, unused: a later pin of those pages takes it over instead of registering them again, which the
   * driver would refuse.
   * @throws {CudaError} the first unregistration the driver refused, after trying every one.
   */
  unpin(view: Uint8Array): void {
    const used = this.#pinned.get(view);
    if (used === undefined) return;
    this.#pinned.delete(view);
    let refused: unknown;
    for (const registration of used) {
      registration.users--;
      if (registration.users > 0) continue;
      try {
        this.#unregisterRange(registration.start);
        this.#registrations.splice(this.#registrations.indexOf(registration), 1);
      } catch (error) {
        refused ??= error;
      }
    }
    if (refused !== undefined) throw refused;
  }

  #unregisterRange(start: bigint): void {
    try {
      this.#call('cuMemHostUnregister', this.#unregister, start);
      return;
    } catch (error) {
      if (!(error instanceof CudaError) || !STICKY_CU_RESULTS.has(error.cudaResult)) throw error;
      for (const device of this.#devices) {
        try {
          let context = this.#contexts.get(device);
          if (context === undefined) {
            context = this.#driver.primaryContextRetain(device);
            this.#contexts.set(device, context);
          }
          this.#driver.setCurrentContext(context);
          this.#call('cuMemHostUnregister', this.#unregister, start);
          return;
        } catch {
          // That device is lost too: the next one.
        }
      }
      throw error;
    }
  }

  /** Page ranges registered now (for tests and metrics). */
  get registrations(): number {
    return this.#registrations.length;
  }

  /** Bytes pinned now. */
  get pinnedBytes(): number {
    return this.#registrations.reduce((sum, r) => sum + Number(r.end - r.start), 0);
  }
}
