/**
 * How a worker finds a kernel: it imports the kernel's module, which defines it. What can go wrong there is the
 * user's to fix, so it is said in their terms: a {@link KernelModuleProblem}, which crosses back to the host typed
 * (the attach failure's `kernelModule`) and becomes a `KernelModuleError` there.
 */
import { ErrorCode } from '../errors/codes.js';
import { type AnyKernelDefinition, enterKernelWorker, findKernel } from '../kernel/kernel-definition.js';

/**
 * The kernel's module cannot be used, for a reason the user must fix, said in their terms (the message). Raised in
 * the worker; the host rebuilds it as a `KernelModuleError` naming the kernel and its module. @internal
 */
export class KernelModuleProblem extends Error {
  override readonly name = 'KernelModuleProblem';
}

/** The typed part of an attach failure that a {@link KernelModuleProblem} makes (nothing for other errors). @internal */
export function kernelModuleDetail(error: unknown): { readonly kernelModule?: string } {
  return error instanceof KernelModuleProblem ? { kernelModule: error.message } : {};
}

/**
 * A TypeScript kernel module that a worker cannot import: the program ran under a loader (tsx, ts-node) that
 * the worker threads do not have. What to do, exactly.
 */
const TYPESCRIPT_IN_WORKERS =
  "Node cannot import this TypeScript module in ringkernel's worker threads: the TypeScript loader your program runs under (tsx, ts-node) is not active in them. Either start Node with the loader as a flag, which worker threads inherit — node --import tsx main.ts (tsx 4), or node --loader ts-node/esm main.ts — or compile the kernel modules to JavaScript (tsc) and run the compiled program";

/**
 * The kernel modules this thread has imported (or is importing), by URL. A module is evaluated once whatever,
 * but each `import()` still resolves its URL (file system calls, package.json reads): a wave of launches of one
 * kernel waits on one import instead. A failed import is forgotten, so the next launch tries again.
 */
const imports = new Map<string, Promise<unknown>>();

/** Imports `moduleUrl` once for every launch of its kernels on this thread. */
function importOnce(moduleUrl: string): Promise<unknown> {
  let imported = imports.get(moduleUrl);
  if (imported === undefined) {
    imported = import(moduleUrl);
    imports.set(moduleUrl, imported);
    imported.catch(() => imports.delete(moduleUrl));
  }
  return imported;
}

/** Imports the kernel's module in this worker and returns its definition. @internal */
export async function loadKernel(kernelId: string, moduleUrl: string): Promise<AnyKernelDefinition> {
  enterKernelWorker();
  try {
    await importOnce(moduleUrl);
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === ErrorCode.KernelModule) throw new KernelModuleProblem((error as Error).message);
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?tsx?$/.test(new URL(moduleUrl).pathname)) {
      throw new KernelModuleProblem(TYPESCRIPT_IN_WORKERS);
    }
    throw error;
  }
  const definition = findKernel(kernelId);
  if (definition.moduleUrl !== moduleUrl) {
    throw new TypeError(`kernel '${kernelId}' is defined in ${definition.moduleUrl}, not ${moduleUrl}`);
  }
  return definition;
}
