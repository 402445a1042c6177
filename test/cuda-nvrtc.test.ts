/**
 * The compile pipeline's NVRTC path with a real NVRTC: the template and each example handler compiled in-process
 * through the koffi binding (src/backends/cuda/nvrtc.ts) to PTX, which ptxas then assembles for sm_90. No CUDA
 * toolkit's libnvrtc is installed on these machines: `scripts/fetch-nvrtc.sh` unpacks CUDA 11.8's NVRTC and the
 * libcu++ headers from Debian into `.nvrtc/` (`.ci/run` calls it). Without it the tests say why they skip. nvcc is
 * switched off here (`NVCC=/bin/false`), so a pass means NVRTC made the PTX. NVRTC is found as on a GPU machine
 * without a toolkit folder: `RINGKERNEL_LIBNVRTC` and `RINGKERNEL_NVRTC_INCLUDE`. Where those already name an
 * NVRTC (scripts/device-check.sh on a GPU machine: CUDA 12 or 13), that one is tested instead.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BytesMessage, CudaCompileError, compileCudaKernel, defineKernel } from '../src/internal.js';
import { AddOneWords, DoubleReading, TripleWords } from './fixtures/cuda-kernels.js';
import { assemblePtx, hasNvcc, repoRoot } from './support/cuda-ptx.js';

const NVRTC_HOME = join(repoRoot, '.nvrtc');
// A GPU machine's NVRTC when scripts/device-check.sh names one (with its headers), else the fetched CUDA 11.8.
const given = process.env.RINGKERNEL_LIBNVRTC;
const external = given !== undefined && existsSync(given);
const installed = external || existsSync(join(NVRTC_HOME, 'lib64', 'libnvrtc.so.11.2'));
const NVRTC_MISSING = 'skipped: NVRTC not installed (scripts/fetch-nvrtc.sh fetches CUDA 11.8 NVRTC from Debian)';
if (installed && !external) {
  // As scripts/device-check.sh points a GPU machine's NVRTC (Python wheels) at it: the library and the headers by
  // path, no toolkit folder.
  process.env.RINGKERNEL_LIBNVRTC = join(NVRTC_HOME, 'lib64', 'libnvrtc.so.11.2');
  process.env.RINGKERNEL_NVRTC_INCLUDE = join(NVRTC_HOME, 'include');
  process.env.CUDA_HOME = join(NVRTC_HOME, 'no-toolkit-here');
}
process.env.NVCC = '/bin/false';
const cache = mkdtempSync(join(tmpdir(), 'ringkernel-nvrtc-cache-'));
process.env.RINGKERNEL_CACHE_DIR = cache;
after(() => rmSync(cache, { recursive: true, force: true }));
const sm90 = { kind: 'ptx', arch: 'sm_90' } as const;

describe(`the CUDA compile pipeline with NVRTC (${external ? given : 'CUDA 11.8, fetched from Debian'})`, () => {
  for (const kernel of [AddOneWords, DoubleReading, TripleWords]) {
    it(`compiles ${kernel.id} into the template to PTX that ptxas assembles for sm_90`, (t) => {
      if (!installed) return t.skip(NVRTC_MISSING);
      const built = compileCudaKernel(kernel, sm90);
      assert.equal(built.compiler, 'nvrtc');
      assert.match(built.image, /^\.target sm_90$/m);
      assert.match(built.image, /\.visible \.entry rk_persistent_kernel\(/);
      assert.match(built.image, /\.visible \.entry rk_single_frame_kernel\(/);
      if (!hasNvcc) return t.skip('PTX not assembled: nvcc (ptxas) not installed');
      const assembled = assemblePtx(built.image);
      assert.ok(assembled.ok, assembled.ok ? '' : assembled.stderr);
    });
  }

  it('fails a handler that does not compile with CudaCompileError carrying NVRTC’s log', (t) => {
    if (!installed) return t.skip(NVRTC_MISSING);
    const broken = defineKernel({
      id: 'test.nvrtc.broken',
      input: BytesMessage,
      output: BytesMessage,
      cuda: { source: '#include "rk_handler.cuh"\n#define RK_HANDLER_DEFINED 1\nthis is not CUDA;\n' },
      module: import.meta.url,
    });
    assert.throws(
      () => compileCudaKernel(broken, sm90),
      (error: unknown) => {
        if (!(error instanceof CudaCompileError)) assert.fail(String(error));
        assert.equal(error.compiler, 'nvrtc');
        assert.match(error.log, /NVRTC_ERROR_COMPILATION/);
        assert.match(error.log, /handler\.cu\(3\): error/);
        return true;
      },
    );
  });
});
