/**
 * Test support: compiles the persistent-kernel template with a handler to PTX through `nvcc` directly, and
 * assembles PTX to a cubin (ptxas, through nvcc), to check what the runtime's compile pipeline
 * (src/backends/cuda/kernel-compiler.ts) makes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const templatePath = join(repoRoot, 'native/cuda/persistent_kernel.cu');
export const addOneHandlerPath = join(repoRoot, 'native/cuda/examples/add_one.cu');

/** Whether nvcc runs here. */
export const hasNvcc = (() => {
  const result = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
  return result.error === undefined && result.status === 0;
})();

/** The outcome of one nvcc run: PTX text, or the compiler's diagnostics. */
export type PtxBuild = { readonly ok: true; readonly ptx: string } | { readonly ok: false; readonly stderr: string };

/** Runs `nvcc -ptx` on the template with `handler` pre-included (none: the template alone). */
export function compilePersistentKernel(handler: string | undefined, arch = 'sm_90'): PtxBuild {
  const work = mkdtempSync(join(tmpdir(), 'ringkernel-ptx-'));
  try {
    const out = join(work, 'kernel.ptx');
    const args = [
      '-std=c++17',
      '-ptx',
      `-arch=${arch}`,
      '-Werror',
      'all-warnings',
      '-I',
      join(repoRoot, 'native/include'),
      '-I',
      join(repoRoot, 'native/cuda'),
      ...(handler === undefined ? [] : ['--pre-include', handler]),
      templatePath,
      '-o',
      out,
    ];
    const result = spawnSync('nvcc', args, { encoding: 'utf8' });
    if (result.status !== 0) return { ok: false, stderr: `${result.stdout}${result.stderr}` };
    return { ok: true, ptx: readFileSync(out, 'utf8') };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Assembles the template with `handler` to a cubin (ptxas checks the PTX); returns ptxas's `-v` report. */
export function assemblePersistentKernel(handler: string, arch = 'sm_90'): PtxBuild {
  const work = mkdtempSync(join(tmpdir(), 'ringkernel-cubin-'));
  try {
    const args = ['-std=c++17', '-cubin', `-arch=${arch}`, '-Xptxas', '-v', '-I', join(repoRoot, 'native/include')];
    args.push('-I', join(repoRoot, 'native/cuda'), '--pre-include', handler, templatePath, '-o', join(work, 'k.cubin'));
    const result = spawnSync('nvcc', args, { encoding: 'utf8' });
    return result.status === 0
      ? { ok: true, ptx: `${result.stdout}${result.stderr}` }
      : { ok: false, stderr: `${result.stdout}${result.stderr}` };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Assembles PTX text to a cubin for `arch` (nvcc runs ptxas on a .ptx input): the check a driver's JIT makes. */
export function assemblePtx(ptx: string, arch = 'sm_90'): PtxBuild {
  const work = mkdtempSync(join(tmpdir(), 'ringkernel-ptxas-'));
  try {
    writeFileSync(join(work, 'kernel.ptx'), ptx);
    const args = ['-cubin', `-arch=${arch}`, join(work, 'kernel.ptx'), '-o', join(work, 'kernel.cubin')];
    const result = spawnSync('nvcc', args, { encoding: 'utf8' });
    return result.status === 0
      ? { ok: true, ptx }
      : { ok: false, stderr: `${result.stdout ?? ''}${result.stderr ?? ''}` };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
