import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';

type KoffiFunction = (...args: unknown[]) => unknown;
interface Koffi {
  load(path: string): { func(prototype: string): KoffiFunction };
}

/** The outcome of one NVRTC compile: PTX, or the compile log. */
export type NvrtcResult = { readonly ok: true; readonly ptx: string } | { readonly ok: false; readonly log: string };

/** NVRTC (the CUDA runtime compiler), loaded through koffi: compiles CUDA C++ to PTX in-process, no GPU needed. */
export interface Nvrtc {
  /** The library file that was loaded. */
  readonly path: string;
  /** Compiles `source` (named `name` in diagnostics) with the given options. */
  compile(source: string, name: string, options: readonly string[]): NvrtcResult;
}

/** The library names tried, newest first; `RINGKERNEL_LIBNVRTC` (a path) goes first when set. */
function candidates(): string[] {
  const list: string[] = [];
  const override = process.env.RINGKERNEL_LIBNVRTC;
  if (override !== undefined && override !== '') list.push(override);
  const home = process.env.CUDA_HOME ?? process.env.CUDA_PATH ?? '/usr/local/cuda';
  for (const version of ['.so.13', '.so.12', '.so.11.2', '.so']) {
    list.push(`libnvrtc${version}`, join(home, 'lib64', `libnvrtc${version}`));
  }
  return list;
}

let loaded: Nvrtc | null | undefined;

/**
 * NVRTC when a `libnvrtc` loads here, else `null` (then the compiler tries `nvcc`). Loaded once per thread.
 *
 * @example
 * const nvrtc = loadNvrtc();
 * if (nvrtc) console.log(`compiling with ${nvrtc.path}`);
 */
export function loadNvrtc(): Nvrtc | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch {
    return loaded;
  }
  for (const path of candidates()) {
    try {
      if (isAbsolute(path)) loadBuiltinsBeside(koffi, path);
      const lib = koffi.load(path);
      loaded = bind(path, lib);
      return loaded;
    } catch {
      // Not this one: try the next name.
    }
  }
  return loaded;
}

/**
 * NVRTC opens `libnvrtc-builtins.so.<version>` by name when it first compiles, which finds only what the loader's
 * search path has. A toolkit unpacked anywhere (CUDA_HOME, RINGKERNEL_LIBNVRTC) keeps it beside libnvrtc: load it
 * from there first, so that lookup finds it already loaded (the loader matches by soname).
 */
function loadBuiltinsBeside(koffi: Koffi, libnvrtc: string): void {
  let files: string[];
  try {
    files = readdirSync(dirname(libnvrtc));
  } catch {
    return;
  }
  for (const file of files.filter((name) => /^libnvrtc-builtins\.so\.\d+\.\d+$/.test(name))) {
    try {
      koffi.load(join(dirname(libnvrtc), file));
    } catch {
      // Not loadable here (another architecture): NVRTC reports what it misses when it compiles.
    }
  }
}

function bind(path: string, lib: { func(prototype: string): KoffiFunction }): Nvrtc {
  const create = lib.func(
    'int nvrtcCreateProgram(_Out_ void **program, const char *source, const char *name, int headers, const char **headerSources, const char **headerNames)',
  );
  const compile = lib.func('int nvrtcCompileProgram(void *program, int count, const char **options)');
  const ptxSize = lib.func('int nvrtcGetPTXSize(void *program, _Out_ size_t *size)');
  const getPtx = lib.func('int nvrtcGetPTX(void *program, _Out_ uint8_t *ptx)');
  const logSize = lib.func('int nvrtcGetProgramLogSize(void *program, _Out_ size_t *size)');
  const getLog = lib.func('int nvrtcGetProgramLog(void *program, _Out_ uint8_t *log)');
  const destroy = lib.func('int nvrtcDestroyProgram(_Inout_ void **program)');
  const errorString = lib.func('const char *nvrtcGetErrorString(int result)');
  const decoder = new TextDecoder();
  const text = (bytes: Uint8Array): string => decoder.decode(bytes.subarray(0, Math.max(0, bytes.length - 1)));
  return {
    path,
    compile(source, name, options) {
      const program: unknown[] = [null];
      let result = create(program, source, name, 0, null, null) as number;
      if (result !== 0) return { ok: false, log: `nvrtcCreateProgram: ${String(errorString(result))}` };
      try {
        result = compile(program[0], options.length, [...options]) as number;
        const size: [number | bigint] = [0];
        logSize(program[0], size);
        const log = new Uint8Array(Number(size[0]));
        if (log.length > 0) getLog(program[0], log);
        if (result !== 0) return { ok: false, log: `${String(errorString(result))}\n${text(log)}` };
        ptxSize(program[0], size);
        const ptx = new Uint8Array(Number(size[0]));
        getPtx(program[0], ptx);
        return { ok: true, ptx: text(ptx) };
      } finally {
        destroy(program);
      }
    },
  };
}
