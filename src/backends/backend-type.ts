import { BackendUnavailableError } from '../errors/runtime-errors.js';
import { probeCuda } from './cuda/driver.js';

/** The backends ringkernel knows. */
export type BackendType = 'cpu' | 'cuda' | 'wgpu' | 'metal';

/** Every backend name, for validation. */
export const BACKEND_TYPES: readonly BackendType[] = ['cpu', 'cuda', 'wgpu', 'metal'];

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
    case 'wgpu':
      return { backend, available: false, reason: 'this build has no WebGPU backend yet' };
    case 'metal':
      return process.platform === 'darwin'
        ? { backend, available: false, reason: 'this build has no Metal backend yet' }
        : { backend, available: false, reason: `Metal needs macOS; this is ${process.platform}` };
  }
}

/**
 * The backend to use: the one asked for (or a typed error saying why it cannot run), or, with none asked for,
 * the best available — CUDA, then CPU.
 */
export function selectBackend(requested: BackendType | undefined): { backend: BackendType; probes: BackendProbe[] } {
  if (requested !== undefined) {
    const probe = probeBackend(requested);
    if (!probe.available) throw new BackendUnavailableError(requested, probe.reason);
    return { backend: requested, probes: [probe] };
  }
  const probes = (['cuda', 'wgpu', 'cpu'] as const).map(probeBackend);
  const chosen = probes.find((probe) => probe.available) as BackendProbe;
  return { backend: chosen.backend, probes };
}
