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

/**
 * A CUDA kernel's device handler did not compile. `compiler` says which compiler ran (`'nvrtc'`, `'nvcc'`, or
 * `'g++'` for the emulated device) and `log` is its full output; `message` carries the log's first lines.
 *
 * @example
 * try {
 *   await runtime.launch(MyCudaKernel);
 * } catch (error) {
 *   if (error instanceof CudaCompileError) console.error(error.log);
 * }
 */
export class CudaCompileError extends RingKernelError {
  /** The kernel definition whose handler failed to compile. */
  readonly kernelId: string;
  /** Which compiler ran, or `'none'` when none could be found. */
  readonly compiler: string;
  /** The compiler's whole output. */
  readonly log: string;

  constructor(kernelId: string, compiler: string, log: string) {
    const head = log
      .split('\n')
      .filter((line) => line.trim() !== '')
      .slice(0, 8)
      .join('\n');
    super(
      ErrorCode.CudaCompileFailed,
      `kernel '${kernelId}': the CUDA handler did not compile (${compiler}):\n${head}`,
    );
    this.kernelId = kernelId;
    this.compiler = compiler;
    this.log = log;
  }
}
