import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ArgumentTypeError } from '../../errors/argument-errors.js';
import { CudaCompileError } from '../../errors/cuda-errors.js';
import type { AnyKernelDefinition } from '../../kernel/kernel-definition.js';
import type { MessageSchema } from '../../wire/message-schema.js';
import { renderMessagesHeader } from '../c-header.js';
import { nativePath } from '../package-root.js';
import { buildEmulatedKernel, EMULATED_IMAGE_PREFIX } from './emulated-build.js';
import { loadNvrtc } from './nvrtc.js';

/** What to compile for: PTX for a GPU architecture (`sm_90`), or a host build for the emulated device. */
export type CudaCompileTarget = { readonly kind: 'ptx'; readonly arch: string } | { readonly kind: 'emulated' };

/** How a kernel image was obtained. */
export type CudaCompiler = 'nvrtc' | 'nvcc' | 'shipped' | 'g++';

/** A compiled CUDA kernel: the image `cuModuleLoadData` takes, and where it came from. */
export interface CompiledCudaKernel {
  /** PTX text, or (emulated device) `RKEMU-SO:` and the host build's path. */
  readonly image: string;
  /** Which compiler made it (for a cache hit: the one that made the cached file). */
  readonly compiler: CudaCompiler;
  /** Whether it came from the cache. */
  readonly cached: boolean;
  /** The cache key: a hash of every input of the build (template, headers, handler, messages, target). */
  readonly key: string;
}

/** Where the package's native sources are. */
const NATIVE = nativePath();
const TEMPLATE = join(NATIVE, 'cuda', 'persistent_kernel.cu');
/** The name the handler includes to get its message structs. */
export const KERNEL_MESSAGES_HEADER = 'rk_kernel_messages.h';
/** Bumped when the compile commands change, so old cache entries are not reused. */
const PIPELINE_VERSION = 'rk-cuda-compile-1';

/**
 * Where compiled kernels are cached: `RINGKERNEL_CACHE_DIR`, else `$XDG_CACHE_HOME/ringkernel/kernels`, else
 * `~/.cache/ringkernel/kernels`. Entries are named by their key and never go stale (the key hashes every input);
 * deleting the folder is always safe.
 *
 * @example
 * rmSync(kernelCacheDir(), { recursive: true, force: true }); // the next launches compile again
 */
export function kernelCacheDir(): string {
  const override = process.env.RINGKERNEL_CACHE_DIR;
  if (override !== undefined && override !== '') return override;
  const base = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(base, 'ringkernel', 'kernels');
}

function isSchema(codec: unknown): codec is MessageSchema {
  return typeof (codec as { toCStruct?: unknown }).toCStruct === 'function';
}

/**
 * The C structs of a kernel's message schemas (raw-bytes codecs have none): the `rk_kernel_messages.h` its CUDA
 * handler includes, generated from the same tables the host encodes with.
 *
 * @example
 * console.log(kernelMessagesHeader(MyKernel)); // typedef struct rk_msg_sensors_Reading { … } …
 */
export function kernelMessagesHeader(definition: AnyKernelDefinition): string {
  const seen = new Set<number>();
  const schemas: MessageSchema[] = [];
  for (const codec of [definition.input, definition.output, ...(definition.emits ?? [])]) {
    if (isSchema(codec) && !seen.has(codec.typeId)) {
      seen.add(codec.typeId);
      schemas.push(codec);
    }
  }
  return renderMessagesHeader('RK_KERNEL_MESSAGES_H', schemas);
}

/**
 * The template calls `rk_handle`; a kernel whose handler has another name (`cuda.entry`) gets a forwarding
 * `rk_handle` appended to its source, so every compiler (NVRTC, nvcc, the emulated build) sees one unit.
 */
function entryShim(entry: string): string {
  return [
    '',
    `/* ringkernel: cuda.entry = ${entry} */`,
    '#include "rk_handler.cuh"',
    '#ifndef RK_HANDLER_DEFINED',
    '#define RK_HANDLER_DEFINED',
    '#endif',
    '__device__ uint32_t rk_handle(const rk_frame_header *header, const uint8_t *payload, rk_handler_output *out,',
    '                              void *user_state) {',
    `  return ${entry}(header, payload, out, user_state);`,
    '}',
    '',
  ].join('\n');
}

function handlerSource(definition: AnyKernelDefinition): string {
  const spec = definition.cuda;
  if (spec === undefined) throw new ArgumentTypeError('definition.cuda', `kernel '${definition.id}' has no cuda part`);
  let text: string;
  if (spec.source !== undefined) {
    text = spec.source;
  } else {
    try {
      text = readFileSync(spec.file as string, 'utf8');
    } catch (error) {
      throw new CudaCompileError(definition.id, 'none', `cannot read cuda.file: ${(error as Error).message}`);
    }
  }
  return spec.entry === undefined ? text : `${text}\n${entryShim(spec.entry)}`;
}

/** The emulated device's headers, in a stable order (part of an emulated build's cache key). */
function emulatorHeaders(): string[] {
  const dir = join(NATIVE, 'cuda', 'emu', 'include');
  const files = [
    'rk_emu_abi.h',
    'rk_emu_device.h',
    'rk_emu_entries.inc',
    'cooperative_groups.h',
    join('cuda', 'atomic'),
  ];
  return files.map((file) => (existsSync(join(dir, file)) ? readFileSync(join(dir, file), 'utf8') : ''));
}

function nvccRuns(): boolean {
  const result = spawnSync(process.env.NVCC ?? 'nvcc', ['--version'], { encoding: 'utf8' });
  return result.error === undefined && result.status === 0;
}

/**
 * The include directories NVRTC needs for `<cooperative_groups.h>` and libcu++ (`<cuda/atomic>`,
 * `<cuda/std/cstdint>`): `RINGKERNEL_NVRTC_INCLUDE` (a path list, for a toolkit spread over several packages,
 * like the `nvidia-*` Python wheels), then the toolkit's (`CUDA_HOME`, `CUDA_PATH` or `/usr/local/cuda`).
 */
function toolkitIncludes(): string[] {
  const extra = (process.env.RINGKERNEL_NVRTC_INCLUDE ?? '').split(delimiter).filter((dir) => dir !== '');
  const home = process.env.CUDA_HOME ?? process.env.CUDA_PATH ?? '/usr/local/cuda';
  return [...extra, join(home, 'include'), join(home, 'include', 'cccl')].filter((dir) => existsSync(dir));
}

/**
 * Compiles a kernel's CUDA handler into the persistent-kernel template, or takes it from the cache. For a GPU:
 * NVRTC when `libnvrtc` loads, else `nvcc -ptx`, else the PTX the kernel ships (`cuda.ptx`). For the emulated
 * device: a host shared object built with g++ from the same sources. Synchronous (a compile takes seconds; a
 * cache hit reads one file); the CUDA device host runs it in its own thread. When NVRTC fails and nvcc is
 * installed, nvcc gets its turn.
 *
 * @throws {CudaCompileError} with the compiler's log, or when no compiler is found and no PTX is shipped.
 * @example
 * const { image, compiler } = compileCudaKernel(AddOne, { kind: 'ptx', arch: 'sm_90' });
 * const module = driver.moduleLoadData(image);
 */
export function compileCudaKernel(definition: AnyKernelDefinition, target: CudaCompileTarget): CompiledCudaKernel {
  const source = handlerSource(definition);
  const messages = kernelMessagesHeader(definition);
  const nvrtc = target.kind === 'ptx' ? loadNvrtc() : null;
  const compilerId = target.kind === 'emulated' ? 'g++' : nvrtc !== null ? 'nvrtc' : 'nvcc';
  const hash = createHash('sha256');
  for (const part of [
    PIPELINE_VERSION,
    JSON.stringify(target),
    compilerId,
    readFileSync(TEMPLATE, 'utf8'),
    readFileSync(join(NATIVE, 'cuda', 'rk_handler.cuh'), 'utf8'),
    readFileSync(join(NATIVE, 'include', 'ringkernel_layout.h'), 'utf8'),
    messages,
    source,
    // The emulated device's build also depends on its ABI and device headers (a module of another ABI version is
    // refused at load).
    ...(target.kind === 'emulated' ? emulatorHeaders() : []),
  ]) {
    hash.update(part).update('\0');
  }
  const key = hash.digest('hex').slice(0, 32);
  const dir = kernelCacheDir();
  const extension = target.kind === 'emulated' ? 'so' : 'ptx';
  const cachedPath = join(dir, `${key}.${extension}`);
  const imageOf = (path: string): string =>
    target.kind === 'emulated' ? `${EMULATED_IMAGE_PREFIX}${path}` : readFileSync(path, 'utf8');
  if (existsSync(cachedPath)) {
    const compiler = (
      existsSync(`${cachedPath}.by`) ? readFileSync(`${cachedPath}.by`, 'utf8') : compilerId
    ) as CudaCompiler;
    return { image: imageOf(cachedPath), compiler, cached: true, key };
  }
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(dir, `.build-${key}-`));
  try {
    const handlerPath = join(work, 'handler.cu');
    writeFileSync(handlerPath, source);
    writeFileSync(join(work, KERNEL_MESSAGES_HEADER), messages);
    const built = join(work, `kernel.${extension}`);
    let compiler: CudaCompiler;
    if (target.kind === 'emulated') {
      compiler = 'g++';
      const result = buildEmulatedKernel({ handlerPath, outputPath: built, includeDirs: [work] });
      if (!result.ok) throw new CudaCompileError(definition.id, compiler, result.stderr);
    } else if (nvrtc !== null || nvccRuns()) {
      // NVRTC first; if it fails (a toolkit without the C headers NVRTC needs, say) and nvcc is here, nvcc. A
      // handler that is simply wrong fails both: the error carries both logs.
      const failures: string[] = [];
      let made: CudaCompiler | undefined;
      if (nvrtc !== null) {
        const includes = [join(NATIVE, 'include'), join(NATIVE, 'cuda'), work, ...toolkitIncludes()];
        const unit = `#include "handler.cu"\n#include "persistent_kernel.cu"\n`;
        const result = nvrtc.compile(unit, `${definition.id}.cu`, [
          `--gpu-architecture=${target.arch.replace(/^sm_/, 'compute_')}`,
          '-std=c++17',
          ...includes.map((dir) => `--include-path=${dir}`),
        ]);
        if (result.ok) {
          writeFileSync(built, result.ptx);
          made = 'nvrtc';
        } else {
          failures.push(`nvrtc (${nvrtc.path}):\n${result.log}`);
        }
      }
      if (made === undefined && nvccRuns()) {
        const args = ['-std=c++17', '-ptx', `-arch=${target.arch}`, '-I', join(NATIVE, 'include')];
        args.push('-I', join(NATIVE, 'cuda'), '-I', work, '--pre-include', handlerPath, TEMPLATE, '-o', built);
        const result = spawnSync(process.env.NVCC ?? 'nvcc', args, { encoding: 'utf8' });
        if (result.status === 0) made = 'nvcc';
        else failures.push(`nvcc:\n${result.stdout ?? ''}${result.stderr ?? ''}`);
      }
      if (made === undefined) {
        throw new CudaCompileError(definition.id, nvrtc !== null ? 'nvrtc' : 'nvcc', failures.join('\n'));
      }
      compiler = made;
    } else if (definition.cuda?.ptx !== undefined) {
      // Shipped PTX is not cached: it is already a file, and its hash is not this build's key.
      return { image: readFileSync(definition.cuda.ptx, 'utf8'), compiler: 'shipped', cached: false, key };
    } else {
      throw new CudaCompileError(
        definition.id,
        'none',
        'neither libnvrtc nor nvcc was found on this machine, and the kernel ships no PTX (cuda.ptx)',
      );
    }
    // Publish atomically: a concurrent build of the same key (another process) renames over an identical file.
    writeFileSync(`${cachedPath}.by`, compiler);
    renameSync(built, cachedPath);
    return { image: imageOf(cachedPath), compiler, cached: false, key };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
