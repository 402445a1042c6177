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

/**
 * A CUDA device is lost to this process: a kernel on it faulted (an illegal address, `__trap()`, a failed device
 * assert), and CUDA's errors from such a fault are sticky. The fault poisons the device's context, so every
 * kernel on the device fails, and CUDA documents no way back but a new process. The runtime stops placing
 * kernels there: a launch asking for the device gets this error, and a supervised `mapped` kernel is restarted on
 * another device when there is one.
 *
 * @example
 * runtime.deadLetters.on('deadLetter', (letter) => {
 *   if (letter.error.code === 'RK_CUDA_DEVICE_LOST') alertOps(letter.kernel);
 * });
 * try {
 *   await runtime.launch(MyCudaKernel, 1, 128, { device: 0 });
 * } catch (error) {
 *   if (error instanceof CudaDeviceLostError) console.error(`GPU ${error.device} is gone: ${error.cudaErrorName}`);
 * }
 */
export class CudaDeviceLostError extends RingKernelError {
  /** The device's ordinal. */
  readonly device: number;
  /** The sticky error that lost it, e.g. `'CUDA_ERROR_ILLEGAL_ADDRESS'`. */
  readonly cudaErrorName: string;

  constructor(device: number, cudaErrorName: string, detail = '') {
    super(
      ErrorCode.CudaDeviceLost,
      `CUDA device ${device} is lost to this process (${cudaErrorName}, a sticky error: restart the process to use it again)${detail === '' ? '' : `: ${detail}`}`,
    );
    this.device = device;
    this.cudaErrorName = cudaErrorName;
  }
}

/**
 * An NVML call (libnvidia-ml, the NVIDIA management library) failed. `nvmlErrorName` is the `nvmlReturn_t`
 * constant's name (`NVML_ERROR_NOT_SUPPORTED`), `nvmlResult` its number, `operation` the call that returned it; the
 * message carries NVML's own description (`nvmlErrorString`).
 *
 * @example
 * try {
 *   nvml.init();
 * } catch (error) {
 *   if (error instanceof NvmlError && error.nvmlErrorName === 'NVML_ERROR_DRIVER_NOT_LOADED') useCudaOnly();
 * }
 */
export class NvmlError extends RingKernelError {
  /** The NVML function that failed, e.g. `'nvmlInit_v2'`. */
  readonly operation: string;
  /** The `nvmlReturn_t` number, e.g. 9. */
  readonly nvmlResult: number;
  /** The `nvmlReturn_t` name, e.g. `'NVML_ERROR_DRIVER_NOT_LOADED'`. */
  readonly nvmlErrorName: string;

  constructor(operation: string, nvmlResult: number, nvmlErrorName: string, description: string) {
    super(ErrorCode.NvmlError, `${operation} failed: ${nvmlErrorName} (${nvmlResult}): ${description}`);
    this.operation = operation;
    this.nvmlResult = nvmlResult;
    this.nvmlErrorName = nvmlErrorName;
  }
}
