import { createRequire } from 'node:module';
import { BackendUnavailableError } from '../errors/runtime-errors.js';
import { probeCuda } from './cuda/driver.js';
import { WEBGPU_INSTALL_HINT } from './webgpu/dawn-module.js';
import { probeWebGpu, type WebGpuAdapterOptions } from './webgpu/webgpu-adapter.js';

/** The backends ringkernel knows. `'wgpu'` is the seed's spelling of `'webgpu'` and means the same. */
export type BackendType = 'cpu' | 'cuda' | 'webgpu' | 'wgpu' | 'metal';

/** Every backend name, for validation. */
export const BACKEND_TYPES: readonly BackendType[] = ['cpu', 'cuda', 'webgpu', 'wgpu', 'metal'];

/** Whether the optional `webgpu` package can be loaded (resolved only: nothing is loaded here). */
function webgpuInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('webgpu');
    return true;
  } catch {
    return false;
  }
}

/** Why a backend can or cannot run here. */
export interface BackendProbe {
  readonly backend: BackendType;
  readonly available: boolean;
  readonly reason: string;
}

/**
 * Checks whether a backend can run on this machine, and says why not. For CUDA it loads libcuda (lazily, once) and
 * calls `cuInit` and `cuDeviceGetCount`.
 */
export function probeBackend(backend: BackendType): BackendProbe {
  switch (backend) {
    case 'cpu':
      return { backend, available: true, reason: 'worker threads are always available' };
    case 'cuda': {
      const cuda = probeCuda();
      return { backend, available: cuda.available, reason: cuda.reason };
    }
    case 'webgpu':
    case 'wgpu':
      return webgpuInstalled()
        ? {
            backend: 'webgpu',
            available: true,
            reason: 'the webgpu package is installed (the adapter is probed at build)',
          }
        : { backend: 'webgpu', available: false, reason: WEBGPU_INSTALL_HINT };
    case 'metal':
      return process.platform === 'darwin'
        ? { backend, available: false, reason: 'this build has no Metal backend yet' }
        : { backend, available: false, reason: `Metal needs macOS; this is ${process.platform}` };
  }
}

/**
 * The backend to use: the one asked for (or a typed error saying why it cannot run), or, with none asked for,
 * the best available — CUDA, then a hardware WebGPU adapter, then CPU. A software (fallback) WebGPU adapter is
 * used only when WebGPU is asked for with `allowFallback`. WebGPU is probed with a real adapter request.
 *
 * @throws {BackendUnavailableError} when the backend asked for cannot run here, saying why.
 */
export async function selectBackend(
  requested: BackendType | undefined,
  webgpu: WebGpuAdapterOptions = {},
): Promise<{ backend: BackendType; probes: BackendProbe[] }> {
  const asked = requested === 'wgpu' ? 'webgpu' : requested;
  if (asked === 'webgpu') {
    const probes = await probeWebGpuAdapters(webgpu);
    const missing = probes.find((probe) => !probe.available);
    if (missing !== undefined) throw new BackendUnavailableError('webgpu', missing.reason);
    return { backend: 'webgpu', probes };
  }
  if (asked !== undefined) {
    const probe = probeBackend(asked);
    if (!probe.available) throw new BackendUnavailableError(asked, probe.reason);
    return { backend: asked, probes: [probe] };
  }
  const cuda = probeBackend('cuda');
  if (cuda.available) return { backend: 'cuda', probes: [cuda] };
  const gpus = await probeWebGpuAdapters({ ...webgpu, allowFallback: false });
  const cpu = probeBackend('cpu');
  return { backend: gpus.every((gpu) => gpu.available) ? 'webgpu' : 'cpu', probes: [cuda, ...gpus, cpu] };
}

/** One probe per native backend the options name (`nativeBackend` and each of `deviceBackends`). */
function probeWebGpuAdapters(options: WebGpuAdapterOptions): Promise<BackendProbe[]> {
  const backends = new Set([options.nativeBackend ?? 'default', ...(options.deviceBackends ?? [])]);
  return Promise.all(
    [...backends].map((nativeBackend) =>
      probeWebGpuBackend({ allowFallback: options.allowFallback === true, nativeBackend }),
    ),
  );
}

/** Adapter probes by options: the adapter a process can have does not change while it runs. */
const webgpuProbes = new Map<string, Promise<BackendProbe>>();

function probeWebGpuBackend(options: WebGpuAdapterOptions): Promise<BackendProbe> {
  if (!webgpuInstalled()) return Promise.resolve({ backend: 'webgpu', available: false, reason: WEBGPU_INSTALL_HINT });
  const key = `${options.allowFallback === true}:${options.nativeBackend ?? 'default'}`;
  let probe = webgpuProbes.get(key);
  if (probe === undefined) {
    probe = probeWebGpu(options).then((found) => ({
      backend: 'webgpu' as const,
      available: found.available,
      reason: found.reason,
    }));
    webgpuProbes.set(key, probe);
  }
  return probe;
}
