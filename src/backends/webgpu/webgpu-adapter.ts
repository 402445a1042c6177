import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../../errors/argument-errors.js';
import { BackendUnavailableError } from '../../errors/runtime-errors.js';
import { WebGpuError } from '../../errors/webgpu-errors.js';
import { hasVulkanLoader, loadDawn } from './dawn-module.js';

/** Which native API Dawn drives: Vulkan (Linux), Metal (macOS), D3D12 (Windows), or OpenGL ES (compatibility). */
export type WebGpuNativeBackend = 'default' | 'opengles';

/** Options of {@link openWebGpuDevice} and {@link probeWebGpu}. */
export interface WebGpuAdapterOptions {
  /**
   * Use a fallback (software) adapter such as Mesa's lavapipe when no hardware one is there. Default false: a
   * software adapter computes correctly but slowly, so it is taken only when asked for.
   */
  readonly allowFallback?: boolean;
  /** Dawn's native backend: the platform's default or OpenGL ES (EGL, compatibility feature level). */
  readonly nativeBackend?: WebGpuNativeBackend;
  /**
   * The native backend of each of the runtime's devices, by index: device `i` opens its `GPUDevice` on the adapter
   * of `deviceBackends[i]`; devices past the list use `nativeBackend`. Two different entries put two adapters under
   * one runtime — `['default', 'opengles']` makes device 0 Vulkan and device 1 OpenGL ES (on Linux) — and a
   * migration between those devices moves a kernel from one adapter to the other. Each backend named must have an
   * adapter, or the build fails saying which.
   */
  readonly deviceBackends?: readonly WebGpuNativeBackend[];
}

const NATIVE_BACKENDS: readonly WebGpuNativeBackend[] = ['default', 'opengles'];
const ADAPTER_OPTIONS = ['allowFallback', 'nativeBackend', 'deviceBackends'];

/** A native backend's value checked; `field` names it in the error. */
function checkNativeBackend(value: unknown, field: string): void {
  if (NATIVE_BACKENDS.includes(value as WebGpuNativeBackend)) return;
  const error = typeof value === 'string' ? InvalidArgumentError : ArgumentTypeError;
  throw new error(field, `${field} must be 'default' or 'opengles', got ${describeValue(value)}`);
}

/**
 * Checks WebGPU adapter options up front.
 *
 * @throws {ArgumentTypeError} (code RK_INVALID_ARGUMENT) on a field of the wrong type or one that does not exist;
 * {@link InvalidArgumentError} on a value outside the valid ones. Both name the field and the valid values.
 * @internal
 */
export function checkWebGpuAdapterOptions(options: unknown, argument = 'options'): WebGpuAdapterOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ArgumentTypeError(
      argument,
      `${argument} must be an object ({ allowFallback, nativeBackend }), got ${describeValue(options)}`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!ADAPTER_OPTIONS.includes(key)) {
      throw new ArgumentTypeError(
        `${argument}.${key}`,
        `${argument}.${key} is not a WebGPU adapter option (the options are ${ADAPTER_OPTIONS.join(', ')})`,
      );
    }
  }
  const { allowFallback, nativeBackend, deviceBackends } = options as Record<string, unknown>;
  if (allowFallback !== undefined && typeof allowFallback !== 'boolean') {
    throw new ArgumentTypeError(
      `${argument}.allowFallback`,
      `${argument}.allowFallback must be true or false, got ${describeValue(allowFallback)}`,
    );
  }
  if (nativeBackend !== undefined) checkNativeBackend(nativeBackend, `${argument}.nativeBackend`);
  if (deviceBackends !== undefined) {
    if (!Array.isArray(deviceBackends) || deviceBackends.length === 0) {
      const got = Array.isArray(deviceBackends) ? 'an empty array' : describeValue(deviceBackends);
      throw new ArgumentTypeError(
        `${argument}.deviceBackends`,
        `${argument}.deviceBackends must be a non-empty array of 'default' or 'opengles', one per device, got ${got}`,
      );
    }
    for (const [device, backend] of deviceBackends.entries()) {
      checkNativeBackend(backend, `${argument}.deviceBackends[${device}]`);
    }
  }
  return options as WebGpuAdapterOptions;
}

/** The WebGPU adapter options as the runtime keeps them: every field set. */
export interface ResolvedWebGpuOptions {
  readonly allowFallback: boolean;
  readonly nativeBackend: WebGpuNativeBackend;
  /** Empty: every device on `nativeBackend`. */
  readonly deviceBackends: readonly WebGpuNativeBackend[];
}

/** The native backend of the runtime's device `device`. @internal */
export function nativeBackendOf(options: ResolvedWebGpuOptions, device: number): WebGpuNativeBackend {
  return options.deviceBackends[device] ?? options.nativeBackend;
}

/** What an adapter is, as its driver describes it. */
export interface WebGpuAdapterDescription {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** A software or otherwise limited adapter (lavapipe, SwiftShader). */
  readonly isFallback: boolean;
  readonly nativeBackend: WebGpuNativeBackend;
  /** Whether the adapter has `timestamp-query` (GPU timestamps per batch). */
  readonly timestampQuery: boolean;
}

/** A device ready for kernels, with what it is. @internal */
export interface OpenedWebGpuDevice {
  readonly device: GPUDevice;
  readonly adapter: WebGpuAdapterDescription;
}

/** Whether WebGPU can run here, and on what, or why not. */
export type WebGpuProbe =
  | { readonly available: true; readonly adapter: WebGpuAdapterDescription; readonly reason: string }
  | { readonly available: false; readonly reason: string };

/**
 * One Dawn instance per native backend for the thread's life: instances are heavy, and making several in one
 * process aborts it intermittently ("std::system_error: Invalid argument", measured with webgpu 0.6.2).
 */
const instances = new Map<WebGpuNativeBackend, GPU>();

async function requestAdapter(options: WebGpuAdapterOptions): Promise<{ adapter: GPUAdapter | null; why: string }> {
  const nativeBackend = options.nativeBackend ?? 'default';
  // Dawn is not loaded at all where there is no Vulkan to drive (it would warn on stderr at every probe).
  if (nativeBackend === 'default' && !hasVulkanLoader()) {
    return {
      adapter: null,
      why: 'no Vulkan loader (libvulkan.so.1) here: install a Vulkan driver, or on Linux without a GPU run scripts/fetch-webgpu-driver.sh and set RINGKERNEL_WEBGPU_DRIVER_DIR',
    };
  }
  const dawn = await loadDawn();
  let gpu = instances.get(nativeBackend);
  if (gpu === undefined) {
    gpu = dawn.create(nativeBackend === 'opengles' ? ['backend=opengles'] : []);
    instances.set(nativeBackend, gpu);
  }
  const request: GPURequestAdapterOptions =
    nativeBackend === 'opengles' ? { featureLevel: 'compatibility' } : { powerPreference: 'high-performance' };
  const adapter = await gpu.requestAdapter(request);
  if (adapter === null) {
    return {
      adapter,
      why:
        nativeBackend === 'opengles'
          ? 'Dawn found no OpenGL ES adapter (EGL_PLATFORM=surfaceless needs Mesa EGL)'
          : 'Dawn found no adapter: no Vulkan/Metal/D3D12 driver it accepts (on Linux without a GPU, run scripts/fetch-webgpu-driver.sh and set RINGKERNEL_WEBGPU_DRIVER_DIR)',
    };
  }
  return { adapter, why: '' };
}

function describe(adapter: GPUAdapter, nativeBackend: WebGpuNativeBackend): WebGpuAdapterDescription {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallback:
      info.isFallbackAdapter === true || (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true,
    nativeBackend,
    timestampQuery: adapter.features.has('timestamp-query'),
  };
}

/**
 * Says whether a WebGPU adapter can be had here and which, without keeping a device.
 *
 * @example
 * const probe = await probeWebGpu({ allowFallback: true });
 * if (!probe.available) console.log(`skipped: no WebGPU adapter (${probe.reason})`);
 * @throws {ArgumentTypeError | InvalidArgumentError} (rejects) on options that are wrong, naming the field.
 */
export async function probeWebGpu(options: WebGpuAdapterOptions = {}): Promise<WebGpuProbe> {
  const { probe } = await findAdapter(checkWebGpuAdapterOptions(options));
  return probe;
}

async function findAdapter(options: WebGpuAdapterOptions): Promise<{ probe: WebGpuProbe; adapter?: GPUAdapter }> {
  let found: Awaited<ReturnType<typeof requestAdapter>>;
  try {
    found = await requestAdapter(options);
  } catch (error) {
    return { probe: { available: false, reason: (error as Error).message } };
  }
  if (found.adapter === null) return { probe: { available: false, reason: found.why } };
  const adapter = describe(found.adapter, options.nativeBackend ?? 'default');
  const name = `${adapter.vendor} ${adapter.architecture} ${adapter.description}`.trim();
  if (adapter.isFallback && options.allowFallback !== true) {
    const reason = `only a fallback (software) adapter is here (${name}); allow it with allowFallback`;
    return { probe: { available: false, reason } };
  }
  const kind = adapter.isFallback ? 'fallback (software)' : 'hardware';
  return {
    probe: { available: true, adapter, reason: `${kind} adapter ${name} through Dawn (${adapter.nativeBackend})` },
    adapter: found.adapter,
  };
}

/**
 * Opens a device on the best adapter the options allow, with the adapter's own limits for storage buffers and
 * workgroup sizes (the defaults are far below what kernels' batches use).
 *
 * @throws {BackendUnavailableError} without the `webgpu` package or an adapter; {@link WebGpuError} when the
 * device cannot be created.
 * @internal
 */
export async function openWebGpuDevice(options: WebGpuAdapterOptions = {}): Promise<OpenedWebGpuDevice> {
  const { probe, adapter } = await findAdapter(options);
  if (!probe.available || adapter === undefined) throw new BackendUnavailableError('webgpu', probe.reason);
  const limits = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    maxBufferSize: limits.maxBufferSize,
    maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
    maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
  };
  const description = probe.adapter;
  try {
    const device = await adapter.requestDevice({
      requiredLimits,
      requiredFeatures: description.timestampQuery ? ['timestamp-query'] : [],
    });
    return { device, adapter: description };
  } catch (error) {
    throw new WebGpuError('internal', 'request device', (error as Error).message);
  }
}
