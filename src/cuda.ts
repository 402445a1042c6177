/**
 * ringkernel's CUDA backend, for applications that opt into it (`ringkernel/cuda`): the backend's errors. The
 * types a CUDA kernel spec and its devices are described in are in the main entry, whose signatures name them.
 * The backend itself is chosen with `RingKernelRuntime.builder().backend('cuda')`.
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

export { CudaCompileError, CudaDeviceLostError, CudaError, NvmlError } from './errors/cuda-errors.js';
