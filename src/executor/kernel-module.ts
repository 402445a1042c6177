/**
 * How a worker finds a kernel: it imports the kernel's module, which defines it. What can go wrong there is the
 * user's to fix, so it is said in their terms (errors cross back to the host by message: the host turns one that
 * starts with {@link KERNEL_MODULE_FAILED} into a `KernelModuleError`).
 */
import { ErrorCode } from '../errors/codes.js';
import { type AnyKernelDefinition, enterKernelWorker, findKernel } from '../kernel/kernel-definition.js';

/** How the message of a kernel-module failure starts when it crosses to the host. @internal */
export const KERNEL_MODULE_FAILED = 'kernel module failed: ';

/**
 * A TypeScript kernel module that a worker cannot import: the program ran under a loader (tsx, ts-node) that
 * the worker threads do not have. What to do, exactly.
 */
const TYPESCRIPT_IN_WORKERS =
  "Node cannot import this TypeScript module in ringkernel's worker threads: the TypeScript loader your program runs under (tsx, ts-node) is not active in them. Either start Node with the loader as a flag, which worker threads inherit — node --import tsx main.ts (tsx 4), or node --loader ts-node/esm main.ts — or compile the kernel modules to JavaScript (tsc) and run the compiled program";

/** Imports the kernel's module in this worker and returns its definition. @internal */
export async function loadKernel(kernelId: string, moduleUrl: string): Promise<AnyKernelDefinition> {
  enterKernelWorker();
  try {
    await import(moduleUrl);
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === ErrorCode.KernelModule) throw new Error(`${KERNEL_MODULE_FAILED}${(error as Error).message}`);
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?tsx?$/.test(new URL(moduleUrl).pathname)) {
      throw new Error(`${KERNEL_MODULE_FAILED}${TYPESCRIPT_IN_WORKERS}`);
    }
    throw error;
  }
  const definition = findKernel(kernelId);
  if (definition.moduleUrl !== moduleUrl) {
    throw new TypeError(`kernel '${kernelId}' is defined in ${definition.moduleUrl}, not ${moduleUrl}`);
  }
  return definition;
}
