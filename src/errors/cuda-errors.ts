import { ErrorCode } from './codes.js';
import { RingKernelError } from './ringkernel-error.js';

/**
 * A CUDA driver-API call failed. `cudaErrorName` is the driver's own name for the `CUresult`
 * (`CUDA_ERROR_OUT_OF_MEMORY`), `cudaResult` its number, `operation` the call that returned it.
 *
 * @example
 * try {
 *   driver.memAlloc(1n << 40n);
 * } catch (error) {
 *   if (error instanceof CudaError && error.cudaErrorName === 'CUDA_ERROR_OUT_OF_MEMORY') shrink();
 * }
 */
export class CudaError extends RingKernelError {
  /** The driver-API function that failed, e.g. `'cuMemAlloc'`. */
  readonly operation: string;
  /** The `CUresult` number, e.g. 2. */
  readonly cudaResult: number;
  /** The `CUresult` name, e.g. `'CUDA_ERROR_OUT_OF_MEMORY'`. */
  readonly cudaErrorName: string;

  constructor(operation: string, cudaResult: number, cudaErrorName: string) {
    super(ErrorCode.CudaError, `${operation} failed: ${cudaErrorName} (${cudaResult})`);
    this.operation = operation;
    this.cudaResult = cudaResult;
    this.cudaErrorName = cudaErrorName;
  }
}
