/**
 * Compiles the persistent-kernel template with a handler to PTX through `nvcc` (test support; the runtime's own
 * compile step — NVRTC, then nvcc, then shipped PTX, cached by hash — is not built yet).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
