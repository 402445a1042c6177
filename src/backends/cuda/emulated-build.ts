/**
 * The emulated-device compile target: builds the CUDA persistent-kernel template (native/cuda/persistent_kernel.cu)
 * with a handler as a host shared object that ringkernel's CUDA driver emulator (native/build/libcuda-emu.so) loads
 * and runs on CPU threads — the same source the PTX build compiles for a real GPU, so the tests that cannot have a
 * GPU still run the real kernel code. The contract with the emulator is native/cuda/emu/include/rk_emu_abi.h.
 */
import { spawnSync } from 'node:child_process';
import { isAbsolute } from 'node:path';
import { ArgumentTypeError } from '../../errors/argument-errors.js';
import { nativePath } from '../package-root.js';

/**
 * The prefix of an emulated-device module image: `cuModuleLoadData` on the emulator takes
 * `RKEMU-SO:<absolute path of the shared object>` (rk_emu_abi.h RK_EMU_IMAGE_PREFIX).
 *
 * @example
 * const image = `${EMULATED_IMAGE_PREFIX}/tmp/kernel.so`;
 */
export const EMULATED_IMAGE_PREFIX = 'RKEMU-SO:';

/** What to build: the handler source (pre-included, like nvcc's `--pre-include`), where the .so goes, more `-I`s. */
export interface EmulatedBuildOptions {
  /** The handler .cu file (it defines `rk_handle` and `RK_HANDLER_DEFINED`), e.g. native/cuda/examples/add_one.cu. */
  readonly handlerPath: string;
  /** The shared object to write; absolute (the image names it, and the emulator dlopens exactly that path). */
  readonly outputPath: string;
  /** Further include directories for the handler (its message structs, for example). */
  readonly includeDirs?: readonly string[];
}

/** The build's outcome: the image to pass to `CudaDriver.moduleLoadData`, or the compiler's diagnostics. */
export type EmulatedBuild =
  | { readonly ok: true; readonly image: string }
  | { readonly ok: false; readonly stderr: string };

const nativeDir = (relative: string) => nativePath(relative);

/**
 * Compiles the persistent-kernel template with `handlerPath` for the emulated device:
 * `g++ -std=c++20 -O2 -shared -fPIC -DRK_EMULATED_DEVICE -include rk_emu_device.h -include <handler>
 * persistent_kernel.cu` (`CXX` overrides g++). Never throws for a compile error or a missing compiler: the result
 * says what went wrong.
 *
 * @example
 * const build = buildEmulatedKernel({ handlerPath: 'native/cuda/examples/add_one.cu', outputPath: '/tmp/add_one.so' });
 * if (build.ok) driver.moduleLoadData(build.image); // on the emulator (driver.emulated)
 */
export function buildEmulatedKernel(options: EmulatedBuildOptions): EmulatedBuild {
  const { handlerPath, outputPath, includeDirs = [] } = options ?? ({} as EmulatedBuildOptions);
  if (typeof handlerPath !== 'string' || handlerPath === '') {
    throw new ArgumentTypeError('options.handlerPath', 'options.handlerPath must be a non-empty string');
  }
  if (typeof outputPath !== 'string' || !isAbsolute(outputPath)) {
    throw new ArgumentTypeError('options.outputPath', 'options.outputPath must be an absolute path');
  }
  if (!Array.isArray(includeDirs) || includeDirs.some((dir) => typeof dir !== 'string' || dir === '')) {
    throw new ArgumentTypeError('options.includeDirs', 'options.includeDirs must be an array of non-empty strings');
  }
  const compiler = process.env.CXX !== undefined && process.env.CXX !== '' ? process.env.CXX : 'g++';
  const args = [
    '-std=c++20',
    '-O2',
    '-shared',
    '-fPIC',
    // Only the rk_emu_kernel_* entries and the ABI version are exported (they say so themselves).
    '-fvisibility=hidden',
    // Device code reinterprets ring bytes as words freely (as CUDA allows); keep the host compiler from assuming
    // otherwise.
    '-fno-strict-aliasing',
    '-Wall',
    '-Wextra',
    '-DRK_EMULATED_DEVICE',
    '-I',
    nativeDir('cuda/emu/include'),
    '-I',
    nativeDir('include'),
    '-I',
    nativeDir('cuda'),
    ...includeDirs.flatMap((dir) => ['-I', dir]),
    '-include',
    'rk_emu_device.h',
    '-include',
    handlerPath,
    '-x',
    'c++',
    nativeDir('cuda/persistent_kernel.cu'),
    '-o',
    outputPath,
  ];
  const result = spawnSync(compiler, args, { encoding: 'utf8' });
  if (result.error !== undefined) return { ok: false, stderr: `${compiler} could not run: ${result.error.message}` };
  if (result.status !== 0) return { ok: false, stderr: `${result.stdout}${result.stderr}` };
  return { ok: true, image: `${EMULATED_IMAGE_PREFIX}${outputPath}` };
}
