/**
 * How a worker finds a kernel: it imports the kernel's module, which defines it. What can go wrong there is the
 * user's to fix, so it is said in their terms (errors cross back to the host by message: the host turns one that
 * starts with {@link KERNEL_MODULE_FAILED} into a `KernelModuleError`).
 */
import { ErrorCode } from '../errors/codes.js';
import { type AnyKernelDefinition, enterKernelWorker, findKernel } from '../kernel/kernel-definition.js';

/** How the message of a kernel-module failure starts when it crosses to the host. @internal */
export const KERNEL_MODULE_FAILED = 'kernel module failed: ';

/** Imports the kernel's module in this worker and returns its definition. @internal */
export async function loadKernel(kernelId: string, moduleUrl: string): Promise<AnyKernelDefinition> {
  enterKernelWorker();
  try {
    await import(moduleUrl);
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === ErrorCode.KernelModule) throw new Error(`${KERNEL_MODULE_FAILED}${(error as Error).message}`);
    throw error;
  }
  const definition = findKernel(kernelId);
  if (definition.moduleUrl !== moduleUrl) {
    throw new TypeError(`kernel '${kernelId}' is defined in ${definition.moduleUrl}, not ${moduleUrl}`);
  }
  return definition;
}
