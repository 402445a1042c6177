import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import koffi from 'koffi';
import { BackendUnavailableError } from '../../errors/runtime-errors.js';

/** What ringkernel uses of the npm package `webgpu` (Dawn's Node binding). */
export interface DawnModule {
  /** Creates a `GPU` (navigator.gpu) with Dawn's `key=value` options, e.g. `backend=opengles`. */
  create(options: string[]): GPU;
}

/** How to add the optional dependency, said by every error that finds it missing. */
export const WEBGPU_INSTALL_HINT = "the optional package 'webgpu' (Dawn) is not installed: run `npm install webgpu`";

/**
 * The environment variable naming a Vulkan driver folder laid out as `scripts/fetch-webgpu-driver.sh` leaves it:
 * `lib/` (the Vulkan loader and the driver's libraries) and `lvp_icd.json` (the driver's manifest).
 */
export const WEBGPU_DRIVER_DIR_ENV = 'RINGKERNEL_WEBGPU_DRIVER_DIR';

let dawn: Promise<DawnModule> | undefined;
let driverPrepared = false;
/**
 * The driver's libraries, held for the process's life: koffi unloads (dlclose) a library whose handle is
 * garbage-collected, and Dawn's own dlopen then finds no libvulkan.so.1 (seen as an adapter that comes and goes).
 */
const preloaded: unknown[] = [];

/**
 * Makes a driver folder named by {@link WEBGPU_DRIVER_DIR_ENV} usable by Dawn in this process: its libraries are
 * loaded by absolute path (the dynamic linker then satisfies Dawn's `dlopen("libvulkan.so.1")` and the driver's own
 * dependencies by soname from them, with no `LD_LIBRARY_PATH`), and `VK_DRIVER_FILES` names its manifest.
 * `XDG_RUNTIME_DIR` is set where unset (Mesa warns on every device without it), and `EGL_PLATFORM=surfaceless`
 * (the OpenGL ES backend's EGL, with no display). Environment changes reach the
 * process only from the main thread (a worker's `process.env` is a copy), so the main thread calls this before it
 * starts a device thread; libraries loaded from any thread are loaded for the whole process.
 */
export function prepareWebGpuDriver(): void {
  if (driverPrepared) return;
  driverPrepared = true;
  const dir = process.env[WEBGPU_DRIVER_DIR_ENV];
  if (isMainThread && process.env.XDG_RUNTIME_DIR === undefined) process.env.XDG_RUNTIME_DIR = '/tmp';
  // Dawn's OpenGL ES backend opens EGL on no display (a server, a device thread): without this Mesa's EGL looks
  // for X11 or Wayland and fails (`eglInitialize failed with EGL_NOT_INITIALIZED`), so no adapter comes up.
  if (isMainThread && process.env.EGL_PLATFORM === undefined) process.env.EGL_PLATFORM = 'surfaceless';
  if (dir === undefined || dir === '') return;
  const root = resolve(dir);
  if (isMainThread && process.env.VK_DRIVER_FILES === undefined) {
    process.env.VK_DRIVER_FILES = join(root, 'lvp_icd.json');
  }
  let pending = readdirSync(join(root, 'lib')).filter((name) => /\.so(\.|$)/.test(name));
  // A library loads only once its dependencies are loaded or on the system path: retry until no progress.
  while (pending.length > 0) {
    const failed = pending.filter((name) => {
      try {
        preloaded.push(koffi.load(join(root, 'lib', name)));
        return false;
      } catch {
        return true;
      }
    });
    if (failed.length === pending.length) break;
    pending = failed;
  }
}

let vulkanLoader: boolean | undefined;

/**
 * Whether a Vulkan loader (`libvulkan.so.1`) can be loaded here, Linux only (elsewhere Dawn uses Metal or D3D12):
 * asked before Dawn, which otherwise prints a warning on every probe of a machine without one.
 */
export function hasVulkanLoader(): boolean {
  if (process.platform !== 'linux') return true;
  if (vulkanLoader === undefined) {
    prepareWebGpuDriver();
    try {
      preloaded.push(koffi.load('libvulkan.so.1'));
      vulkanLoader = true;
    } catch {
      vulkanLoader = false;
    }
  }
  return vulkanLoader;
}

/**
 * Loads the optional `webgpu` package once, on first use: CPU-only users never pay for it.
 *
 * @throws {BackendUnavailableError} (`RK_BACKEND_UNAVAILABLE`) when the package is not installed or its
 * platform binary does not load, saying how to add it.
 */
export function loadDawn(): Promise<DawnModule> {
  dawn ??= (async () => {
    prepareWebGpuDriver();
    try {
      const module = await import('webgpu');
      return { create: (options: string[]) => module.create(options) };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      const reason =
        code === 'ERR_MODULE_NOT_FOUND'
          ? WEBGPU_INSTALL_HINT
          : `the package 'webgpu' did not load (${(error as Error).message}); reinstall it with \`npm install webgpu\``;
      throw new BackendUnavailableError('webgpu', reason, { cause: error });
    }
  })();
  const pending = dawn;
  // A failed load is retried on the next call (the package may be installed in between).
  pending.catch(() => {
    if (dawn === pending) dawn = undefined;
  });
  return pending;
}
