import { existsSync } from 'node:fs';
import { ArgumentTypeError, InvalidArgumentError } from '../../errors/argument-errors.js';
import { CudaError } from '../../errors/cuda-errors.js';
import { BackendUnavailableError } from '../../errors/runtime-errors.js';
import { nativePath } from '../package-root.js';
import { CU_RESULT_NAMES } from './cu-result.js';
import { EMULATED_IMAGE_PREFIX } from './emulated-build.js';
import { loadNativeLibrary, memoByPath } from './native-library.js';

type Koffi = typeof import('koffi');
type KoffiFunction = ReturnType<ReturnType<Koffi['load']>['func']>;

/**
 * Device attributes ringkernel reads (`CUdevice_attribute` numbers from cuda.h; checked against it in the tests).
 *
 * @example
 * driver.deviceAttribute(driver.device(0), CuDeviceAttribute.MultiprocessorCount); // 132 on an H100 SXM
 */
export const CuDeviceAttribute = {
  MultiprocessorCount: 16,
  CanMapHostMemory: 19,
  UnifiedAddressing: 41,
  ComputeCapabilityMajor: 75,
  ComputeCapabilityMinor: 76,
  CooperativeLaunch: 95,
} as const;

/**
 * `cuMemHostRegister` flags (cuda.h `CU_MEMHOSTREGISTER_*`).
 *
 * @example
 * const devicePointer = driver.memHostRegister(new Uint8Array(sab), CuMemHostRegisterFlag.DeviceMap);
 */
export const CuMemHostRegisterFlag = { Portable: 0x01, DeviceMap: 0x02 } as const;

/**
 * Peer-to-peer attributes of a device pair (cuda.h `CUdevice_P2PAttribute`).
 *
 * @example
 * driver.deviceP2PAttribute(CuDeviceP2PAttribute.PerformanceRank, 0, 1); // 0 = the best link
 */
export const CuDeviceP2PAttribute = {
  PerformanceRank: 1,
  AccessSupported: 2,
  NativeAtomicSupported: 3,
  CudaArrayAccessSupported: 4,
} as const;

/** What one CUDA device is. */
export interface CudaDeviceInfo {
  readonly ordinal: number;
  readonly name: string;
  /** Compute capability, e.g. `{ major: 9, minor: 0 }` on an H100/H200. */
  readonly computeCapability: { readonly major: number; readonly minor: number };
  readonly multiprocessorCount: number;
  readonly totalMemoryBytes: bigint;
  /** Whether `cuLaunchCooperativeKernel` is supported (grid-wide sync for the persistent loop). */
  readonly cooperativeLaunch: boolean;
  /** Whether host memory can be mapped into the device address space (the `mapped` transfer strategy). */
  readonly canMapHostMemory: boolean;
}

/**
 * One kernel argument for {@link CudaDriver.launchKernel}: the driver copies each by value, so its C type matters.
 * `pointer` is a `CUdeviceptr` (or a mapped host pointer), 8 bytes.
 */
export type CudaKernelArg =
  | { readonly type: 'pointer' | 'u64' | 'i64'; readonly value: bigint }
  | { readonly type: 'u32' | 'i32' | 'f32' | 'f64'; readonly value: number };

/** Grid and block dimensions and dynamic shared memory of one launch. */
export interface CudaLaunchConfig {
  readonly grid: readonly [number, number, number];
  readonly block: readonly [number, number, number];
  readonly sharedMemBytes?: number;
  /** A stream from {@link CudaDriver.streamCreate}; 0n (the default) is the legacy default stream. */
  readonly stream?: bigint;
  /** Launch with `cuLaunchCooperativeKernel` (all blocks co-resident; needed for grid-wide synchronisation). */
  readonly cooperative?: boolean;
}

/** The driver, or why it cannot be used. */
export type CudaDriverLoad =
  | { readonly available: true; readonly driver: CudaDriver }
  | { readonly available: false; readonly reason: string };

/**
 * The library to load: `RINGKERNEL_LIBCUDA` when set (tests point it at a missing file or a stand-in library),
 * else `libcuda.so.1` through the dynamic loader's search path (the NVIDIA driver installs it there).
 */
export function libcudaPath(): string {
  const override = process.env.RINGKERNEL_LIBCUDA;
  return override !== undefined && override !== '' ? override : 'libcuda.so.1';
}

/**
 * The absolute path of the CUDA driver emulator (`native/build/libcuda-emu.so`, built by `npm run build:native`
 * from native/cuda/emu/libcuda_emu.c), or undefined when it was not built. The emulator runs kernels on CPU threads
 * where there is no GPU; point `RINGKERNEL_LIBCUDA` at it (before the first {@link loadCudaDriver}) to use it.
 *
 * @example
 * const emulator = emulatorLibraryPath();
 * if (emulator !== undefined) process.env.RINGKERNEL_LIBCUDA = emulator;
 */
export function emulatorLibraryPath(): string | undefined {
  const path = nativePath('build', 'libcuda-emu.so');
  return existsSync(path) ? path : undefined;
}

/**
 * The name of a `CUresult` from the static table (the driver's `cuGetErrorName` is preferred when it is loaded).
 *
 * @example
 * cudaErrorName(100); // 'CUDA_ERROR_NO_DEVICE'
 */
export function cudaErrorName(result: number): string {
  return CU_RESULT_NAMES.get(result) ?? `CUDA_ERROR_UNRECOGNIZED_${result}`;
}

const UINT32_MAX = 0xffff_ffff;
const INT32_MAX = 0x7fff_ffff;

function checkCount(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ArgumentTypeError(
      name,
      `${name} must be an integer, got ${typeof value === 'number' ? value : typeof value}`,
    );
  }
  if (value < min || value > max)
    throw new InvalidArgumentError(name, `${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function checkPointer(name: string, value: unknown): bigint {
  if (typeof value !== 'bigint')
    throw new ArgumentTypeError(name, `${name} must be a bigint device pointer, got ${typeof value}`);
  if (value < 0n || value >= 1n << 64n)
    throw new InvalidArgumentError(name, `${name} must be a 64-bit unsigned pointer, got ${value}`);
  return value;
}

function checkBytes(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgumentError(name, `${name} must be a positive safe integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Packs kernel arguments the way `cuLaunchKernel`'s `kernelParams` wants them: one 8-byte slot per argument in one
 * buffer, and an array of views (koffi passes each as the slot's address). Exported for the tests.
 */
export function packKernelArgs(args: readonly CudaKernelArg[]): Uint8Array[] {
  if (!Array.isArray(args)) throw new ArgumentTypeError('args', 'args must be an array of { type, value }');
  const storage = new ArrayBuffer(Math.max(8, args.length * 8));
  const view = new DataView(storage);
  return args.map((arg, index) => {
    const at = index * 8;
    switch (arg?.type) {
      case 'pointer':
      case 'u64':
        view.setBigUint64(at, checkPointer(`args[${index}].value`, arg.value), true);
        break;
      case 'i64':
        if (typeof arg.value !== 'bigint')
          throw new ArgumentTypeError(`args[${index}].value`, `args[${index}].value must be a bigint`);
        view.setBigInt64(at, BigInt.asIntN(64, arg.value), true);
        if (BigInt.asIntN(64, arg.value) !== arg.value)
          throw new InvalidArgumentError(`args[${index}].value`, `args[${index}].value is not a 64-bit integer`);
        break;
      case 'u32':
        view.setUint32(at, checkCount(`args[${index}].value`, arg.value, 0, UINT32_MAX), true);
        break;
      case 'i32':
        view.setInt32(at, checkCount(`args[${index}].value`, arg.value, -INT32_MAX - 1, INT32_MAX), true);
        break;
      case 'f32':
      case 'f64':
        if (typeof arg.value !== 'number')
          throw new ArgumentTypeError(`args[${index}].value`, `args[${index}].value must be a number`);
        if (arg.type === 'f32') view.setFloat32(at, arg.value, true);
        else view.setFloat64(at, arg.value, true);
        break;
      default:
        throw new ArgumentTypeError(
          `args[${index}].type`,
          `args[${index}].type must be one of pointer, u64, i64, u32, i32, f32, f64, got ${JSON.stringify((arg as { type?: unknown } | undefined)?.type)}`,
        );
    }
    return new Uint8Array(storage, at, 8);
  });
}

function checkDims(name: string, dims: unknown): readonly [number, number, number] {
  if (!Array.isArray(dims) || dims.length !== 3) throw new ArgumentTypeError(name, `${name} must be [x, y, z]`);
  return [
    checkCount(`${name}[0]`, dims[0], 1, INT32_MAX),
    checkCount(`${name}[1]`, dims[1], 1, 65_535),
    checkCount(`${name}[2]`, dims[2], 1, 65_535),
  ];
}

/** The bound driver-API functions. */
interface DriverFunctions {
  readonly [name: string]: KoffiFunction;
}

/**
 * The CUDA driver API (`libcuda.so.1`), bound with koffi. Every call checks its `CUresult` and throws a
 * {@link CudaError} naming the function and the CUDA error. Handles (contexts, modules, functions, streams) and
 * device pointers are BigInt; host memory goes as TypedArrays (their addresses are stable for SABs).
 *
 * Load it with {@link loadCudaDriver} (never throws) or {@link requireCudaDriver} (throws
 * `BackendUnavailableError` with the reason).
 *
 * @example
 * const driver = requireCudaDriver();
 * driver.init();
 * const device = driver.deviceInfo(0);
 * console.log(device.name, device.computeCapability);
 */
export class CudaDriver {
  /** Where it was loaded from. */
  readonly path: string;
  /**
   * True when the library is ringkernel's CUDA driver emulator (it exports `rkEmuVersion`): the "device" is CPU
   * threads, and modules must be emulated-device builds ({@link buildEmulatedKernel}), not PTX.
   */
  readonly emulated: boolean;
  readonly #koffi: Koffi;
  readonly #fn: DriverFunctions;

  /** @internal Use {@link loadCudaDriver}. */
  constructor(path: string, koffi: Koffi, functions: DriverFunctions, emulated = false) {
    this.path = path;
    this.emulated = emulated;
    this.#koffi = koffi;
    this.#fn = functions;
  }

  /** The driver's name for a `CUresult` (`cuGetErrorName`), or the static table's when the driver does not know it. */
  errorName(result: number): string {
    const out: (string | null)[] = [null];
    const rc = (this.#fn.cuGetErrorName as KoffiFunction)(result, out) as number;
    return rc === 0 && typeof out[0] === 'string' ? out[0] : cudaErrorName(result);
  }

  #call(operation: string, ...args: unknown[]): void {
    const rc = (this.#fn[operation] as KoffiFunction)(...args) as number;
    if (rc !== 0) throw new CudaError(operation, rc, this.errorName(rc));
  }

  /** `cuInit(0)`. Idempotent in the driver. */
  init(): void {
    this.#call('cuInit', 0);
  }

  /** `cuDriverGetVersion`, e.g. 13000. */
  driverVersion(): number {
    const out = [0];
    this.#call('cuDriverGetVersion', out);
    return out[0] as number;
  }

  /** `cuDeviceGetCount`. */
  deviceCount(): number {
    const out = [0];
    this.#call('cuDeviceGetCount', out);
    return out[0] as number;
  }

  /** `cuDeviceGet`: the `CUdevice` handle of an ordinal. */
  device(ordinal: number): number {
    checkCount('ordinal', ordinal, 0, INT32_MAX);
    const out = [0];
    this.#call('cuDeviceGet', out, ordinal);
    return out[0] as number;
  }

  /** `cuDeviceGetAttribute`. */
  deviceAttribute(device: number, attribute: number): number {
    checkCount('attribute', attribute, 0, INT32_MAX);
    const out = [0];
    this.#call('cuDeviceGetAttribute', out, attribute, device);
    return out[0] as number;
  }

  /** `cuDeviceGetName`. */
  deviceName(device: number): string {
    const buffer = Buffer.alloc(256);
    this.#call('cuDeviceGetName', buffer, buffer.length, device);
    const end = buffer.indexOf(0);
    return buffer.toString('utf8', 0, end < 0 ? buffer.length : end);
  }

  /** `cuDeviceTotalMem_v2`, bytes. */
  deviceTotalMemory(device: number): bigint {
    const out = new BigUint64Array(1);
    this.#call('cuDeviceTotalMem_v2', out, device);
    return out[0] as bigint;
  }

  /** Everything ringkernel wants to know about one device. */
  deviceInfo(ordinal: number): CudaDeviceInfo {
    const device = this.device(ordinal);
    return {
      ordinal,
      name: this.deviceName(device),
      computeCapability: {
        major: this.deviceAttribute(device, CuDeviceAttribute.ComputeCapabilityMajor),
        minor: this.deviceAttribute(device, CuDeviceAttribute.ComputeCapabilityMinor),
      },
      multiprocessorCount: this.deviceAttribute(device, CuDeviceAttribute.MultiprocessorCount),
      totalMemoryBytes: this.deviceTotalMemory(device),
      cooperativeLaunch: this.deviceAttribute(device, CuDeviceAttribute.CooperativeLaunch) === 1,
      canMapHostMemory: this.deviceAttribute(device, CuDeviceAttribute.CanMapHostMemory) === 1,
    };
  }

  /** `cuDevicePrimaryCtxRetain`, then `cuCtxSetCurrent` on this thread. Pair with {@link primaryContextRelease}. */
  primaryContextRetain(device: number): bigint {
    const out = new BigUint64Array(1);
    this.#call('cuDevicePrimaryCtxRetain', out, device);
    const context = out[0] as bigint;
    this.#call('cuCtxSetCurrent', context);
    return context;
  }

  /** `cuCtxSetCurrent`: makes a context (from {@link primaryContextRetain}) current on this thread. */
  setCurrentContext(context: bigint): void {
    this.#call('cuCtxSetCurrent', checkPointer('context', context));
  }

  /** `cuDevicePrimaryCtxRelease_v2`. */
  primaryContextRelease(device: number): void {
    this.#call('cuDevicePrimaryCtxRelease_v2', device);
  }

  /** `cuMemAlloc_v2`: device memory, returned as a `CUdeviceptr`. */
  memAlloc(bytes: number): bigint {
    checkBytes('bytes', bytes);
    const out = new BigUint64Array(1);
    this.#call('cuMemAlloc_v2', out, bytes);
    return out[0] as bigint;
  }

  /** `cuMemFree_v2`. */
  memFree(pointer: bigint): void {
    this.#call('cuMemFree_v2', checkPointer('pointer', pointer));
  }

  /**
   * `cuMemHostRegister_v2`: page-locks host memory (a view over a SharedArrayBuffer for the `mapped` strategy) and,
   * with `DeviceMap`, maps it into the device; returns the device pointer (`cuMemHostGetDevicePointer_v2`). Keep a
   * reference to the buffer until {@link memHostUnregister}.
   */
  memHostRegister(
    memory: Uint8Array,
    flags: number = CuMemHostRegisterFlag.Portable | CuMemHostRegisterFlag.DeviceMap,
  ): bigint {
    if (!(memory instanceof Uint8Array)) throw new ArgumentTypeError('memory', 'memory must be a Uint8Array');
    checkBytes('memory.byteLength', memory.byteLength);
    checkCount('flags', flags, 0, 0x0f);
    this.#call('cuMemHostRegister_v2', memory, memory.byteLength, flags);
    if ((flags & CuMemHostRegisterFlag.DeviceMap) === 0) return 0n;
    const out = new BigUint64Array(1);
    this.#call('cuMemHostGetDevicePointer_v2', out, memory, 0);
    return out[0] as bigint;
  }

  /** `cuMemHostUnregister`. */
  memHostUnregister(memory: Uint8Array): void {
    if (!(memory instanceof Uint8Array)) throw new ArgumentTypeError('memory', 'memory must be a Uint8Array');
    this.#call('cuMemHostUnregister', memory);
  }

  /**
   * `cuModuleLoadData` from PTX text (NUL-terminated here), or, on the emulator, from an emulated-device image
   * (`RKEMU-SO:<absolute path of the host build>`, as {@link buildEmulatedKernel} returns it). A real driver
   * refuses an emulated image and the emulator refuses PTX, both with CUDA_ERROR_NO_BINARY_FOR_GPU.
   */
  moduleLoadData(ptx: string): bigint {
    if (typeof ptx !== 'string' || !(ptx.includes('.entry') || ptx.startsWith(EMULATED_IMAGE_PREFIX))) {
      throw new ArgumentTypeError('ptx', 'ptx must be PTX text with at least one .entry');
    }
    const image = Buffer.from(`${ptx}\0`, 'utf8');
    const out = new BigUint64Array(1);
    this.#call('cuModuleLoadData', out, image);
    return out[0] as bigint;
  }

  /** `cuModuleUnload`. */
  moduleUnload(module: bigint): void {
    this.#call('cuModuleUnload', checkPointer('module', module));
  }

  /** `cuModuleGetFunction`. */
  moduleGetFunction(module: bigint, name: string): bigint {
    if (typeof name !== 'string' || name === '') throw new ArgumentTypeError('name', 'name must be a non-empty string');
    const out = new BigUint64Array(1);
    this.#call('cuModuleGetFunction', out, checkPointer('module', module), name);
    return out[0] as bigint;
  }

  /** `cuLaunchKernel`, or `cuLaunchCooperativeKernel` with `config.cooperative`. Asynchronous on its stream. */
  launchKernel(fn: bigint, config: CudaLaunchConfig, args: readonly CudaKernelArg[]): void {
    checkPointer('function', fn);
    const [gx, gy, gz] = checkDims('grid', config?.grid);
    const [bx, by, bz] = checkDims('block', config.block);
    if (bx * by * bz > 1024)
      throw new InvalidArgumentError('config.block', `block must have at most 1024 threads, got ${bx * by * bz}`);
    const shared = checkCount('sharedMemBytes', config.sharedMemBytes ?? 0, 0, INT32_MAX);
    const stream = checkPointer('stream', config.stream ?? 0n);
    const params = packKernelArgs(args);
    if (config.cooperative === true) {
      this.#call('cuLaunchCooperativeKernel', fn, gx, gy, gz, bx, by, bz, shared, stream, params);
    } else {
      this.#call('cuLaunchKernel', fn, gx, gy, gz, bx, by, bz, shared, stream, params, null);
    }
  }

  /** `cuStreamCreate` (non-blocking with respect to the legacy default stream when `nonBlocking`). */
  streamCreate(nonBlocking = true): bigint {
    const out = new BigUint64Array(1);
    this.#call('cuStreamCreate', out, nonBlocking ? 1 : 0);
    return out[0] as bigint;
  }

  /** `cuStreamSynchronize`. */
  streamSynchronize(stream: bigint): void {
    this.#call('cuStreamSynchronize', checkPointer('stream', stream));
  }

  /** `cuStreamDestroy_v2`. */
  streamDestroy(stream: bigint): void {
    this.#call('cuStreamDestroy_v2', checkPointer('stream', stream));
  }

  /** `cuEventCreate` (flags: 0 = default, 2 = disable timing). */
  eventCreate(flags = 0): bigint {
    checkCount('flags', flags, 0, 0x0f);
    const out = new BigUint64Array(1);
    this.#call('cuEventCreate', out, flags);
    return out[0] as bigint;
  }

  /** `cuEventRecord` on a stream. */
  eventRecord(event: bigint, stream: bigint): void {
    this.#call('cuEventRecord', checkPointer('event', event), checkPointer('stream', stream));
  }

  /** `cuEventSynchronize`. */
  eventSynchronize(event: bigint): void {
    this.#call('cuEventSynchronize', checkPointer('event', event));
  }

  /** `cuEventElapsedTime_v2`: milliseconds between two recorded events (about 0.5 µs resolution). */
  eventElapsedMs(start: bigint, end: bigint): number {
    const out = new Float32Array(1);
    this.#call('cuEventElapsedTime_v2', out, checkPointer('start', start), checkPointer('end', end));
    return out[0] as number;
  }

  /** `cuEventDestroy_v2`. */
  eventDestroy(event: bigint): void {
    this.#call('cuEventDestroy_v2', checkPointer('event', event));
  }

  /**
   * `cuOccupancyMaxActiveBlocksPerMultiprocessor`: how many blocks of `blockSize` threads fit on one SM at once.
   * A cooperative launch must not exceed this times the SM count (else CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE).
   */
  maxActiveBlocksPerMultiprocessor(fn: bigint, blockSize: number, sharedMemBytes = 0): number {
    checkCount('blockSize', blockSize, 1, 1024);
    checkCount('sharedMemBytes', sharedMemBytes, 0, INT32_MAX);
    const out = [0];
    this.#call(
      'cuOccupancyMaxActiveBlocksPerMultiprocessor',
      out,
      checkPointer('function', fn),
      blockSize,
      sharedMemBytes,
    );
    return out[0] as number;
  }

  /** `cuMemcpyHtoDAsync_v2`: copies `source` to device memory on `stream`. Keep `source` alive until the sync. */
  memcpyHtoDAsync(destination: bigint, source: Uint8Array, stream: bigint): void {
    if (!(source instanceof Uint8Array)) throw new ArgumentTypeError('source', 'source must be a Uint8Array');
    checkBytes('source.byteLength', source.byteLength);
    this.#call(
      'cuMemcpyHtoDAsync_v2',
      checkPointer('destination', destination),
      source,
      source.byteLength,
      checkPointer('stream', stream),
    );
  }

  /** `cuMemcpyDtoHAsync_v2`: copies device memory into `destination` on `stream`; read it after the sync. */
  memcpyDtoHAsync(destination: Uint8Array, source: bigint, stream: bigint): void {
    if (!(destination instanceof Uint8Array))
      throw new ArgumentTypeError('destination', 'destination must be a Uint8Array');
    checkBytes('destination.byteLength', destination.byteLength);
    this.#call(
      'cuMemcpyDtoHAsync_v2',
      destination,
      checkPointer('source', source),
      destination.byteLength,
      checkPointer('stream', stream),
    );
  }

  /** `cuCtxSynchronize`: waits until every launch and copy of the current context has finished. */
  contextSynchronize(): void {
    this.#call('cuCtxSynchronize');
  }

  /**
   * `cuStreamQuery`: whether everything submitted to `stream` has finished. False while work is pending
   * (CUDA_ERROR_NOT_READY, which is an answer, not an error); other results throw.
   */
  streamQuery(stream: bigint): boolean {
    const rc = (this.#fn.cuStreamQuery as KoffiFunction)(checkPointer('stream', stream)) as number;
    if (rc === 0) return true;
    if (rc === CUDA_ERROR_NOT_READY) return false;
    throw new CudaError('cuStreamQuery', rc, this.errorName(rc));
  }

  /** `cuMemsetD8_v2`: sets `bytes` bytes of device memory at `destination` to `value`. Synchronous. */
  memsetD8(destination: bigint, value: number, bytes: number): void {
    checkCount('value', value, 0, 255);
    checkBytes('bytes', bytes);
    this.#call('cuMemsetD8_v2', checkPointer('destination', destination), value, bytes);
  }

  /** `cuMemcpyHtoD_v2`: copies `source` to device memory; synchronous. */
  memcpyHtoD(destination: bigint, source: Uint8Array): void {
    if (!(source instanceof Uint8Array)) throw new ArgumentTypeError('source', 'source must be a Uint8Array');
    checkBytes('source.byteLength', source.byteLength);
    this.#call('cuMemcpyHtoD_v2', checkPointer('destination', destination), source, source.byteLength);
  }

  /** `cuMemcpyDtoH_v2`: copies device memory into `destination`; synchronous. */
  memcpyDtoH(destination: Uint8Array, source: bigint): void {
    if (!(destination instanceof Uint8Array))
      throw new ArgumentTypeError('destination', 'destination must be a Uint8Array');
    checkBytes('destination.byteLength', destination.byteLength);
    this.#call('cuMemcpyDtoH_v2', destination, checkPointer('source', source), destination.byteLength);
  }

  /** `cuMemGetInfo_v2`: free and total device memory of the current context's device, bytes. */
  memGetInfo(): { readonly freeBytes: bigint; readonly totalBytes: bigint } {
    const free = new BigUint64Array(1);
    const total = new BigUint64Array(1);
    this.#call('cuMemGetInfo_v2', free, total);
    return { freeBytes: free[0] as bigint, totalBytes: total[0] as bigint };
  }

  /** `cuDeviceCanAccessPeer`: whether `device` can access `peer`'s memory (false for a device and itself). */
  deviceCanAccessPeer(device: number, peer: number): boolean {
    checkCount('device', device, 0, INT32_MAX);
    checkCount('peer', peer, 0, INT32_MAX);
    const out = [0];
    this.#call('cuDeviceCanAccessPeer', out, device, peer);
    return out[0] === 1;
  }

  /** `cuDeviceGetP2PAttribute` of the link from `source` to `destination` ({@link CuDeviceP2PAttribute}). */
  deviceP2PAttribute(attribute: number, source: number, destination: number): number {
    checkCount('attribute', attribute, 1, INT32_MAX);
    checkCount('source', source, 0, INT32_MAX);
    checkCount('destination', destination, 0, INT32_MAX);
    const out = [0];
    this.#call('cuDeviceGetP2PAttribute', out, attribute, source, destination);
    return out[0] as number;
  }

  /** `cuDeviceGetPCIBusId`: the device's PCI address, `domain:bus:device.function`, e.g. `0000:01:00.0`. */
  devicePciBusId(device: number): string {
    checkCount('device', device, 0, INT32_MAX);
    const buffer = Buffer.alloc(64);
    this.#call('cuDeviceGetPCIBusId', buffer, buffer.length, device);
    const end = buffer.indexOf(0);
    return buffer.toString('latin1', 0, end < 0 ? buffer.length : end);
  }

  /** `cuCtxEnablePeerAccess`: lets the current context access memory of `peerContext` (a primary context). */
  contextEnablePeerAccess(peerContext: bigint): void {
    this.#call('cuCtxEnablePeerAccess', checkPointer('peerContext', peerContext), 0);
  }

  /**
   * `cuMemcpyPeerAsync`: copies `bytes` from `source` (memory of `sourceContext`'s device) to `destination`
   * (memory of `destinationContext`'s device) on `stream`.
   */
  memcpyPeerAsync(
    destination: bigint,
    destinationContext: bigint,
    source: bigint,
    sourceContext: bigint,
    bytes: number,
    stream: bigint,
  ): void {
    checkBytes('bytes', bytes);
    this.#call(
      'cuMemcpyPeerAsync',
      checkPointer('destination', destination),
      checkPointer('destinationContext', destinationContext),
      checkPointer('source', source),
      checkPointer('sourceContext', sourceContext),
      bytes,
      checkPointer('stream', stream),
    );
  }

  /** The koffi module the driver was bound with (for callers that marshal their own structures). */
  get koffi(): Koffi {
    return this.#koffi;
  }
}

/** The C prototypes bound, in cuda.h's words (handles as `void *`/`uint64_t`, `CUdeviceptr` as `uint64_t`). */
const PROTOTYPES = [
  'int cuGetErrorName(int error, _Out_ const char **name)',
  'int cuInit(uint32_t flags)',
  'int cuDriverGetVersion(_Out_ int *version)',
  'int cuDeviceGetCount(_Out_ int *count)',
  'int cuDeviceGet(_Out_ int *device, int ordinal)',
  'int cuDeviceGetAttribute(_Out_ int *value, int attribute, int device)',
  'int cuDeviceGetName(_Out_ uint8_t *name, int length, int device)',
  'int cuDeviceTotalMem_v2(_Out_ uint64_t *bytes, int device)',
  'int cuDevicePrimaryCtxRetain(_Out_ uint64_t *context, int device)',
  'int cuDevicePrimaryCtxRelease_v2(int device)',
  'int cuCtxSetCurrent(uint64_t context)',
  'int cuMemAlloc_v2(_Out_ uint64_t *pointer, size_t bytes)',
  'int cuMemFree_v2(uint64_t pointer)',
  'int cuMemHostRegister_v2(void *memory, size_t bytes, uint32_t flags)',
  'int cuMemHostUnregister(void *memory)',
  'int cuMemHostGetDevicePointer_v2(_Out_ uint64_t *pointer, void *memory, uint32_t flags)',
  'int cuModuleLoadData(_Out_ uint64_t *module, const void *image)',
  'int cuModuleUnload(uint64_t module)',
  'int cuModuleGetFunction(_Out_ uint64_t *fn, uint64_t module, const char *name)',
  'int cuLaunchKernel(uint64_t fn, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t bx, uint32_t by, uint32_t bz, uint32_t shared, uint64_t stream, void **params, void **extra)',
  'int cuLaunchCooperativeKernel(uint64_t fn, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t bx, uint32_t by, uint32_t bz, uint32_t shared, uint64_t stream, void **params)',
  'int cuStreamCreate(_Out_ uint64_t *stream, uint32_t flags)',
  'int cuStreamSynchronize(uint64_t stream)',
  'int cuStreamDestroy_v2(uint64_t stream)',
  'int cuEventCreate(_Out_ uint64_t *event, uint32_t flags)',
  'int cuEventRecord(uint64_t event, uint64_t stream)',
  'int cuEventSynchronize(uint64_t event)',
  'int cuEventElapsedTime_v2(_Out_ float *milliseconds, uint64_t start, uint64_t end)',
  'int cuEventDestroy_v2(uint64_t event)',
  'int cuOccupancyMaxActiveBlocksPerMultiprocessor(_Out_ int *blocks, uint64_t fn, int blockSize, size_t sharedBytes)',
  'int cuMemcpyHtoDAsync_v2(uint64_t destination, const void *source, size_t bytes, uint64_t stream)',
  'int cuMemcpyDtoHAsync_v2(void *destination, uint64_t source, size_t bytes, uint64_t stream)',
  'int cuCtxSynchronize()',
  'int cuStreamQuery(uint64_t stream)',
  'int cuMemsetD8_v2(uint64_t destination, uint8_t value, size_t count)',
  'int cuMemcpyHtoD_v2(uint64_t destination, const void *source, size_t bytes)',
  'int cuMemcpyDtoH_v2(void *destination, uint64_t source, size_t bytes)',
  'int cuMemGetInfo_v2(_Out_ size_t *free, _Out_ size_t *total)',
  'int cuDeviceCanAccessPeer(_Out_ int *canAccess, int device, int peer)',
  'int cuDeviceGetP2PAttribute(_Out_ int *value, int attribute, int source, int destination)',
  'int cuDeviceGetPCIBusId(_Out_ uint8_t *busId, int length, int device)',
  'int cuCtxEnablePeerAccess(uint64_t peerContext, uint32_t flags)',
  'int cuMemcpyPeerAsync(uint64_t destination, uint64_t destinationContext, uint64_t source, uint64_t sourceContext, size_t bytes, uint64_t stream)',
] as const;

/** cuda.h CUDA_ERROR_NOT_READY: `cuStreamQuery`'s "still running". */
const CUDA_ERROR_NOT_READY = 600;

/**
 * Loads (once per thread and path) the CUDA driver library and binds the driver API, or says why it cannot.
 * Never throws. Loading does not call `cuInit`; {@link probeCuda} does.
 *
 * @example
 * const load = loadCudaDriver();
 * if (!load.available) console.log(`no CUDA: ${load.reason}`);
 */
export function loadCudaDriver(): CudaDriverLoad {
  return loadDriverAt(libcudaPath());
}

const loadDriverAt = memoByPath((path): CudaDriverLoad => {
  const load = loadNativeLibrary(path, PROTOTYPES, [], ' (is the NVIDIA driver installed?)');
  if (!load.available) return load;
  // Only ringkernel's emulator exports rkEmuVersion; a real libcuda lacks it (koffi throws on a missing symbol).
  let emulated = false;
  try {
    emulated = (load.lib.func('int rkEmuVersion()')() as number) > 0;
  } catch {
    emulated = false;
  }
  return { available: true, driver: new CudaDriver(path, load.koffi, load.functions, emulated) };
});

/**
 * The driver, or a `BackendUnavailableError('cuda', reason)`.
 *
 * @example
 * const driver = requireCudaDriver(); // throws on a machine without the NVIDIA driver
 */
export function requireCudaDriver(): CudaDriver {
  const load = loadCudaDriver();
  if (!load.available) throw new BackendUnavailableError('cuda', load.reason);
  return load.driver;
}

/** Whether CUDA can run here: the driver loads, `cuInit` succeeds and there is at least one device. */
export type CudaProbe =
  | { readonly available: true; readonly deviceCount: number; readonly reason: string }
  | { readonly available: false; readonly deviceCount: 0; readonly reason: string };

/**
 * Loads libcuda, calls `cuInit(0)` and `cuDeviceGetCount`, and says whether CUDA can run here and why not.
 * Never throws.
 *
 * @example
 * const probe = probeCuda();
 * if (!probe.available) console.log(probe.reason);
 */
export function probeCuda(): CudaProbe {
  const load = loadCudaDriver();
  if (!load.available) return { available: false, deviceCount: 0, reason: load.reason };
  try {
    load.driver.init();
    const deviceCount = load.driver.deviceCount();
    if (deviceCount === 0) return { available: false, deviceCount: 0, reason: `${load.driver.path}: no CUDA device` };
    return {
      available: true,
      deviceCount,
      reason: `${load.driver.path}: ${deviceCount} CUDA device${deviceCount === 1 ? '' : 's'}`,
    };
  } catch (error) {
    return { available: false, deviceCount: 0, reason: `${load.driver.path}: ${(error as Error).message}` };
  }
}
