import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { nativePath } from '../backends/package-root.js';

/** The koffi module's surface this file uses (koffi is loaded lazily: a missing koffi is a fallback, not a crash). */
type Koffi = typeof import('koffi');
type KoffiFunction = ReturnType<ReturnType<Koffi['load']>['func']>;

/** The C functions of native/src/mirror.c, bound with koffi. Pointers are BigInt; ring memory goes as TypedArrays. */
export interface MirrorLibrary {
  readonly path: string;
  /**
   * Whether this thread's teardown stops its mirrors (the library's Node-API cleanup hook, loaded with
   * `process.dlopen`): what keeps a worker thread terminated from outside from freeing memory under the mirror.
   */
  readonly teardownHook: boolean;
  readonly koffi: Koffi;
  /** The `rk_wake_fn *` callback type, for `koffi.register`. */
  readonly wakeCallbackType: ReturnType<Koffi['pointer']>;
  readonly create: KoffiFunction;
  /** `rk_mirror_create_cuda`: a mirror whose replicas are CUDA device memory. */
  readonly createCuda: KoffiFunction;
  readonly attach: KoffiFunction;
  /** `rk_mirror_attach` with the device replica given as a device pointer (a CUDA mirror's rings). */
  readonly attachDevicePointer: KoffiFunction;
  /** Driver copies the CUDA mirrors could not make, process-wide. */
  readonly cudaCopyFailures: KoffiFunction;
  readonly detach: KoffiFunction;
  readonly kick: KoffiFunction;
  /** `rk_mirror_serve`: steps up to two channels on the calling thread. */
  readonly serve: KoffiFunction;
  readonly stop: KoffiFunction;
  readonly wakerExited: KoffiFunction;
  readonly destroy: KoffiFunction;
  /** Mirrors not yet destroyed in this process (their threads not yet joined). */
  readonly liveCount: KoffiFunction;
}

/** The library, or why it cannot be used. */
export type MirrorLibraryLoad =
  | { readonly available: true; readonly library: MirrorLibrary }
  | { readonly available: false; readonly reason: string };

/** The ABI this TypeScript speaks (RK_MIRROR_ABI_VERSION in native/include/ringkernel_mirror.h). */
const ABI_VERSION = 2;

/**
 * Where the library is: `RINGKERNEL_NATIVE_LIB` when set (tests point it elsewhere to exercise the fallback),
 * else `native/build/libringkernel.so` in the package, which `npm install` builds.
 */
export function mirrorLibraryPath(): string {
  const override = process.env.RINGKERNEL_NATIVE_LIB;
  if (override !== undefined && override !== '') return override;
  return nativePath('build', 'libringkernel.so');
}

let loaded: MirrorLibraryLoad | undefined;

/** Loads (once per thread) the native mirror library, or says why it cannot. Never throws. */
export function loadMirrorLibrary(): MirrorLibraryLoad {
  loaded ??= tryLoad();
  return loaded;
}

function tryLoad(): MirrorLibraryLoad {
  const path = mirrorLibraryPath();
  if (!existsSync(path)) {
    return {
      available: false,
      reason: `${path} does not exist (build it with \`npx ringkernel-build-native\`, or \`npm run build:native\` in a clone; it needs a C compiler, cc)`,
    };
  }
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (error) {
    return { available: false, reason: `koffi could not be loaded: ${(error as Error).message}` };
  }
  try {
    const lib = koffi.load(path);
    const version = lib.func('uint32_t rk_mirror_abi_version(void)')() as number;
    if (version !== ABI_VERSION) {
      return {
        available: false,
        reason: `${path} speaks mirror ABI ${version}, this ringkernel speaks ${ABI_VERSION}`,
      };
    }
    const wakeProto = koffi.proto('void rk_wake_fn(void)');
    let teardownHook = true;
    try {
      // The same file as a Node-API addon: it registers an env cleanup hook for this thread (native/src/node_hook.c).
      process.dlopen({ exports: {} }, path);
      // And koffi's own addon stays mapped after this thread is gone: the waker thread may still be in its code.
      const pin = lib.func('int32_t rk_pin_loaded_library(const char *path)');
      for (const addon of loadedKoffiAddons()) if (pin(addon) !== 1) teardownHook = false;
    } catch {
      teardownHook = false;
    }
    return {
      available: true,
      library: {
        path,
        teardownHook,
        koffi,
        wakeCallbackType: koffi.pointer(wakeProto),
        create: lib.func(
          'void *rk_mirror_create(const char *device, uint32_t poll_us, uint32_t spin_us, rk_wake_fn *wake, void *state)',
        ),
        createCuda: lib.func(
          'void *rk_mirror_create_cuda(const char *libcuda, uint64_t context, uint32_t poll_us, uint32_t spin_us, rk_wake_fn *wake, void *state)',
        ),
        attach: lib.func(
          'int32_t rk_mirror_attach(void *mirror, uint32_t direction, void *host_ring, void *device_ring, uint32_t storage_size, void *host_signal, void *device_signal, void *channel)',
        ),
        // The same entry point, bound again with the device ring as an integer: a CUDA device pointer is not
        // memory koffi could take from a JS object.
        attachDevicePointer: lib.func(
          'int32_t rk_mirror_attach(void *mirror, uint32_t direction, void *host_ring, uint64_t device_ring, uint32_t storage_size, void *host_signal, void *device_signal, void *channel)',
        ),
        cudaCopyFailures: lib.func('uint32_t rk_mirror_cuda_copy_failures(void)'),
        detach: lib.func('int64_t rk_mirror_detach(void *mirror, int32_t channel)'),
        kick: lib.func('void rk_mirror_kick(void *mirror)'),
        serve: lib.func('int32_t rk_mirror_serve(void *mirror, int32_t first, int32_t second)'),
        stop: lib.func('void rk_mirror_stop(void *mirror)'),
        wakerExited: lib.func('int32_t rk_mirror_waker_exited(void *mirror)'),
        destroy: lib.func('void rk_mirror_destroy(void *mirror)'),
        liveCount: lib.func('int32_t rk_mirror_live_count(void)'),
      },
    };
  } catch (error) {
    return { available: false, reason: `${path} could not be loaded: ${(error as Error).message}` };
  }
}

/** The paths of koffi's native addon(s) mapped into this process (Linux: /proc/self/maps). */
function loadedKoffiAddons(): string[] {
  const paths = new Set<string>();
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const path = line.slice(line.indexOf('/'));
    if (line.includes('/') && /koffi[^/]*\.node$/.test(path)) paths.add(path);
  }
  return [...paths];
}
