import type { BackendType } from '../backends/backend-type.js';

/**
 * How a kernel's rings reach the memory its executor reads:
 * - `direct`: the executor reads the host's SharedArrayBuffer rings itself (CPU-backend workers): no copy.
 * - `dma`: the native mirror thread keeps a device-side replica of each ring and copies new bytes across
 *   (the seed's `RingBufferBridge`); on the CPU backend the "device" is a second SharedArrayBuffer.
 * - `mapped`: reserved for CUDA zero-copy (host memory registered with `cuMemHostRegister`); not in this build.
 */
export type TransferStrategy = 'direct' | 'dma' | 'mapped';

/**
 * Every transfer strategy name, for validation.
 * @example
 * if (!TRANSFER_STRATEGIES.includes(option)) throw new TypeError(`unknown strategy ${option}`);
 */
export const TRANSFER_STRATEGIES: readonly TransferStrategy[] = ['direct', 'dma', 'mapped'];

/** A strategy and why it was picked. */
export interface TransferStrategyChoice {
  readonly strategy: TransferStrategy;
  readonly reason: string;
}

/**
 * The transfer strategy a backend uses unless a launch asks for another (the seed's
 * `detect_transfer_strategy`), with the reason.
 *
 * @example
 * detectTransferStrategy('cpu'); // { strategy: 'direct', reason: 'CPU-backend workers read … in place' }
 */
export function detectTransferStrategy(backend: BackendType): TransferStrategyChoice {
  switch (backend) {
    case 'cpu':
      return {
        strategy: 'direct',
        reason: "CPU-backend workers read the host's SharedArrayBuffer rings in place; a mirror would only add a copy",
      };
    case 'cuda':
      return {
        strategy: 'dma',
        reason: 'device memory is not host-visible; the mirror thread copies ring bytes (mapped zero-copy is reserved)',
      };
    case 'wgpu':
      return { strategy: 'dma', reason: 'WebGPU buffers are filled by copies; there is no shared mapping' };
    case 'metal':
      return { strategy: 'mapped', reason: 'Apple GPUs share memory with the CPU' };
  }
}

/**
 * Checks a launch's `transferStrategy` option against the backend.
 * @throws {TypeError} for a name that is not a strategy; {@link RangeError} for `mapped` off CUDA.
 * @internal
 */
export function checkTransferStrategy(value: unknown, backend: BackendType): TransferStrategy | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !TRANSFER_STRATEGIES.includes(value as TransferStrategy)) {
    throw new TypeError(
      `options.transferStrategy must be one of ${TRANSFER_STRATEGIES.join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
  if (value === 'mapped' && backend !== 'cuda') {
    throw new RangeError(
      `options.transferStrategy 'mapped' is reserved for CUDA zero-copy memory; the ${backend} backend takes 'direct' or 'dma'`,
    );
  }
  return value as TransferStrategy;
}
