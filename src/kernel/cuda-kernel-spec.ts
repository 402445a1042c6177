import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';

/**
 * A kernel's device side on the CUDA backend: a CUDA C handler (a `__device__` function with `rk_handle`'s
 * signature, see `native/cuda/rk_handler.cuh`) that the runtime compiles into the persistent-kernel template at
 * launch. Give the handler as a file or as text, and name it with `entry` unless it is `rk_handle` itself.
 *
 * The handler may `#include "rk_kernel_messages.h"`: the C structs of the kernel's message schemas, generated
 * from the same `defineMessage` tables the host encodes with (natural alignment, static-asserted offsets).
 *
 * @example
 * export const AddOne = defineKernel({
 *   id: 'add-one',
 *   input: Words,
 *   output: Words,
 *   cpu: (words) => words.map((w) => w + 1),
 *   cuda: { file: new URL('./add_one.cu', import.meta.url) },
 * });
 */
export interface CudaKernelSpec {
  /** The handler's `.cu` file: a `file:` URL or an absolute path. Exactly one of `file` and `source`. */
  readonly file?: string | URL;
  /** The handler's CUDA C text. Exactly one of `file` and `source`. */
  readonly source?: string;
  /**
   * The handler function's name: a `__device__ uint32_t entry(const rk_frame_header *, const uint8_t *,
   * rk_handler_output *, void *)` in the source. Default `rk_handle`, which must then define `RK_HANDLER_DEFINED`
   * too. One source file may hold several handlers; each kernel names the one it runs.
   */
  readonly entry?: string;
  /**
   * Threads per block of the persistent kernel: each thread of the grid handles one frame of a batch. Default 128
   * on a GPU, 1 on the emulated device (its threads are CPU threads).
   */
  readonly blockSize?: number;
  /** Frames the kernel takes per round (one grid-wide batch). Default 64. */
  readonly batchMax?: number;
  /**
   * Bytes of kernel state in device memory, zeroed at launch (or filled from a checkpoint's `restore`): the
   * handler's `user_state`. It lives as long as the kernel and is what `handle.checkpoint()` copies back, taken
   * between batches. Handlers of one batch run concurrently (one thread each): with `blockSize` above 1, update
   * shared state with atomics. Default 0 (no state).
   */
  readonly stateBytes?: number;
  /**
   * A PTX file built ahead of time (`file:` URL or absolute path), used when this machine has neither NVRTC nor
   * nvcc. It must be the template compiled with this handler, for an architecture the device can run.
   */
  readonly ptx?: string | URL;
}

/** A checked {@link CudaKernelSpec}: paths resolved, defaults still to apply (they depend on the device). */
export interface ResolvedCudaKernelSpec {
  readonly file: string | undefined;
  readonly source: string | undefined;
  /** The handler's name, `undefined` for `rk_handle`. */
  readonly entry: string | undefined;
  readonly blockSize: number | undefined;
  readonly batchMax: number | undefined;
  readonly stateBytes: number;
  readonly ptx: string | undefined;
}

/** The largest block the template supports (CUDA's own limit). */
export const MAX_CUDA_BLOCK_SIZE = 1024;
/** The largest batch: the scratch area holds a frame slot and two frame copies per batch entry. */
export const MAX_CUDA_BATCH = 4096;
/** The largest device state a kernel may ask for (1 GiB). */
export const MAX_CUDA_STATE_BYTES = 1 << 30;

/** What `cuda.entry` may be: a C identifier. */
const C_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

function resolvePath(kernelId: string, name: string, value: unknown): string {
  if (value instanceof URL) {
    if (value.protocol !== 'file:') {
      throw new ArgumentTypeError(
        `spec.cuda.${name}`,
        `kernel '${kernelId}': cuda.${name} must be a file: URL, got ${value.protocol}`,
      );
    }
    return fileURLToPath(value);
  }
  if (typeof value === 'string' && value.startsWith('file:')) return fileURLToPath(value);
  if (typeof value === 'string' && isAbsolute(value)) return value;
  throw new ArgumentTypeError(
    `spec.cuda.${name}`,
    `kernel '${kernelId}': cuda.${name} must be a file: URL or an absolute path, got ${JSON.stringify(value)}`,
  );
}

function optionalCount(kernelId: string, name: string, value: unknown, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ArgumentTypeError(
      `spec.cuda.${name}`,
      `kernel '${kernelId}': cuda.${name} must be an integer, got ${String(value)}`,
    );
  }
  if (value < 1 || value > max) {
    throw new InvalidArgumentError(
      `spec.cuda.${name}`,
      `kernel '${kernelId}': cuda.${name} must be between 1 and ${max}, got ${value}`,
    );
  }
  return value;
}

/**
 * Checks a kernel's `cuda` part.
 * @throws {ArgumentTypeError | InvalidArgumentError} (RK_INVALID_ARGUMENT) with the field's name.
 */
export function resolveCudaKernelSpec(kernelId: string, spec: unknown): ResolvedCudaKernelSpec {
  if (typeof spec !== 'object' || spec === null) {
    throw new ArgumentTypeError('spec.cuda', `kernel '${kernelId}': cuda must be an object ({ file } or { source })`);
  }
  const { file, source, entry, blockSize, batchMax, stateBytes, ptx } = spec as Record<string, unknown>;
  if ((file === undefined) === (source === undefined)) {
    throw new ArgumentTypeError('spec.cuda', `kernel '${kernelId}': cuda needs exactly one of file and source`);
  }
  if (source !== undefined && (typeof source !== 'string' || source.trim() === '')) {
    throw new ArgumentTypeError(
      'spec.cuda.source',
      `kernel '${kernelId}': cuda.source must be the handler's CUDA C text`,
    );
  }
  if (entry !== undefined && (typeof entry !== 'string' || !C_IDENTIFIER.test(entry))) {
    throw new ArgumentTypeError(
      'spec.cuda.entry',
      `kernel '${kernelId}': cuda.entry must be a C identifier, got ${JSON.stringify(entry)}`,
    );
  }
  return {
    file: file === undefined ? undefined : resolvePath(kernelId, 'file', file),
    source: source as string | undefined,
    entry: entry === 'rk_handle' ? undefined : (entry as string | undefined),
    blockSize: optionalCount(kernelId, 'blockSize', blockSize, MAX_CUDA_BLOCK_SIZE),
    batchMax: optionalCount(kernelId, 'batchMax', batchMax, MAX_CUDA_BATCH),
    stateBytes: optionalCount(kernelId, 'stateBytes', stateBytes, MAX_CUDA_STATE_BYTES) ?? 0,
    ptx: ptx === undefined ? undefined : resolvePath(kernelId, 'ptx', ptx),
  };
}
