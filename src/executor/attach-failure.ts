import { CudaCompileError, CudaDeviceLostError, CudaError } from '../errors/cuda-errors.js';
import { StateSnapshotError } from '../errors/device-errors.js';
import { KernelFailedError, KernelModuleError } from '../errors/runtime-errors.js';
import { reviveWebGpuError } from '../errors/webgpu-errors.js';
import type { AttachFailure } from './protocol.js';

/**
 * The host's side of the one attach-failure convention: rebuilds the typed error of an attach that failed on its
 * executor (errors cross threads as data). `kernelId` is the definition's id, `name` the launch's name.
 *
 * @example
 * const attached = await pool.run(task, { transferList: [port] });
 * if (attached.failure !== undefined) throw attachFailureError(attached.failure, definition, name, 'its worker');
 */
export function attachFailureError(
  failure: AttachFailure,
  kernel: { readonly id: string; readonly moduleUrl: string },
  name: string,
  executor: string,
): Error {
  const kernelId = kernel.id;
  if (failure.deviceLost !== undefined) {
    const { device, cudaErrorName } = failure.deviceLost;
    return new CudaDeviceLostError(device, cudaErrorName, `kernel '${kernelId}' cannot be launched there`);
  }
  if (failure.webgpu !== undefined) return reviveWebGpuError(failure.webgpu);
  if (failure.compiler !== undefined) return new CudaCompileError(kernelId, failure.compiler, failure.log ?? '');
  if (failure.operation !== undefined) {
    return new CudaError(failure.operation, failure.cudaResult ?? 0, failure.cudaErrorName ?? 'CUDA_ERROR_UNKNOWN');
  }
  // The executor could not rebuild the checkpoint's state (the `restore` hook, or v8, threw).
  if (failure.stage === 'restore') return new StateSnapshotError(name, 'restore', failure.error.message);
  // The kernel's module is the user's to fix (kernel-module.ts says how, in their terms).
  if (failure.kernelModule !== undefined) return new KernelModuleError(kernel, failure.kernelModule);
  return new KernelFailedError(kernelId, `${executor} could not launch it: ${failure.error.message}`);
}
