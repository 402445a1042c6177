import type { BackendType } from '../backends/backend-type.js';
import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';

/**
 * How a kernel's rings reach the memory its executor reads:
 * - `direct`: the executor reads the host's SharedArrayBuffer rings itself (CPU-backend workers): no copy.
 * - `dma`: the native mirror thread keeps a device-side replica of each ring and copies new bytes across
 *   (the seed's `RingBufferBridge`); on the CPU backend the "device" is a second SharedArrayBuffer.
 * - `mapped`: CUDA zero copy: the CUDA device thread pins the host's rings and ControlBlock (`cuMemHostRegister`)
 *   and maps them into the device, whose persistent kernel polls and writes them in place.
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
        strategy: 'mapped',
        reason:
          "the GPU reads and writes the host's rings in place, pinned and mapped into the device (zero copy); dma through the native mirror with CUDA copies is not built yet",
      };
    case 'webgpu':
    case 'wgpu':
      return {
        strategy: 'direct',
        reason:
          "the WebGPU device thread reads the host's rings in place and copies each batch into GPU buffers (WebGPU has no shared mapping)",
      };
    case 'metal':
      return { strategy: 'mapped', reason: 'Apple GPUs share memory with the CPU' };
  }
}

/**
 * Checks a launch's `transferStrategy` option against the backend.
 * @throws {ArgumentTypeError} for a name that is not a strategy; {@link InvalidArgumentError} for `mapped` off CUDA.
 *
 */
export function checkTransferStrategy(value: unknown, backend: BackendType): TransferStrategy | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !TRANSFER_STRATEGIES.includes(value as TransferStrategy)) {
    throw new ArgumentTypeError(
      'options.transferStrategy',
      `options.transferStrategy must be one of ${TRANSFER_STRATEGIES.join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
  if (value === 'mapped' && backend !== 'cuda') {
    throw new InvalidArgumentError(
      'options.transferStrategy',
      `options.transferStrategy 'mapped' is reserved for CUDA zero-copy memory; the ${backend} backend takes 'direct' or 'dma'`,
    );
  }
  return value as TransferStrategy;
}
