/**
 * ringkernel's CUDA backend, for applications that opt into it (`ringkernel/cuda`): the backend's errors and
 * the types a CUDA kernel spec and its devices are described in. The backend itself is chosen with
 * `RingKernelRuntime.builder().backend('cuda')`; this entry holds what only a CUDA user needs to name.
 *
 * @example
 * ```ts
 * import { CudaCompileError } from 'ringkernel/cuda';
 *
 * try {
 *   await runtime.launch(Scale, { name: 'scale' });
 * } catch (error) {
 *   if (error instanceof CudaCompileError) console.error(error.log); // NVRTC's own messages
 *   throw error;
 * }
 * ```
 *
 * @packageDocumentation
 */

export type { CudaDeviceInfo } from './backends/cuda/driver.js';
export { CudaCompileError, CudaDeviceLostError, CudaError, NvmlError } from './errors/cuda-errors.js';
export type { CudaKernelSpec } from './kernel/cuda-kernel-spec.js';
export type { LostCudaDevice } from './runtime/runtime.js';
