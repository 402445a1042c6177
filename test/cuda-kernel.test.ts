/**
 * The CUDA persistent-kernel template (native/cuda/persistent_kernel.cu) compiles, with the example handler and the
 * generated layout header, to PTX for sm_90 under `nvcc -Werror all-warnings`; its entry point takes the parameters
 * the host packs; its shared words use system-scope acquire/release (mapped host memory); it reads %globaltimer
 * for heartbeats and span times. Running it needs a GPU: test/cuda-gpu.test.ts. Skips where nvcc is not installed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import {
  addOneHandlerPath,
  assemblePersistentKernel,
  compilePersistentKernel,
  hasNvcc,
  type PtxBuild,
  templatePath,
} from './support/cuda-ptx.js';

const NVCC_MISSING = 'skipped: nvcc not installed';

/** The entry's parameter list, from the PTX. */
function entryParams(ptx: string, entry: string): string[] {
  const start = ptx.indexOf(`.entry ${entry}(`);
  assert.ok(start >= 0, `no .entry ${entry} in the PTX`);
  const list = ptx.slice(start, ptx.indexOf(')', start));
  return [...list.matchAll(/\.param\s+\.(\w+)\s+(?:\.ptr\s+\.global\s+\.align\s+\d+\s+)?(\w+)/g)].map(
    (m) => `${m[1]} ${m[2]}`,
  );
}

describe('CUDA persistent kernel template', () => {
  let build: PtxBuild | undefined;
  before(() => {
    if (hasNvcc) build = compilePersistentKernel(addOneHandlerPath);
  });

  it('compiles with the add-one handler to sm_90 PTX with the rk_persistent_kernel entry', (t) => {
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    assert.ok(build?.ok, build?.ok === false ? build.stderr : 'no build');
    const ptx = (build as { ptx: string }).ptx;
    assert.match(ptx, /^\.target sm_90$/m);
    assert.match(ptx, /\.visible \.entry rk_persistent_kernel\(/);
    // control, input, input_storage, output, output_storage, telemetry, scratch, max_frame_length, batch_max,
    // to_unix_ns, to_epoch_ns, user_state, links, routes: each at most 8 bytes, as CudaDriver.launchKernel packs them.
    assert.deepEqual(
      entryParams(ptx, 'rk_persistent_kernel').map((p) => p.split(' ')[0]),
      ['u64', 'u64', 'u32', 'u64', 'u32', 'u64', 'u64', 'u32', 'u32', 'u64', 'u64', 'u64', 'u64', 'u64'],
    );
  });

  it('has the per-message entry rk_single_frame_kernel(frame_in, frame_out, max_frame_length, user_state)', (t) => {
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    const ptx = (build as { ptx: string }).ptx;
    assert.match(ptx, /\.visible \.entry rk_single_frame_kernel\(/);
    // For the benchmark's launch-per-message comparison: the same handler, one frame per launch.
    assert.deepEqual(
      entryParams(ptx, 'rk_single_frame_kernel').map((p) => p.split(' ')[0]),
      ['u64', 'u64', 'u32', 'u64'],
    );
  });

  it('orders shared words with system-scope acquire loads and release stores, and reads %globaltimer', (t) => {
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    const ptx = (build as { ptx: string }).ptx;
    assert.match(ptx, /ld\.acquire\.sys\.(?:b32|u32)/, 'acquire loads of the producer index and control words');
    assert.match(ptx, /st\.release\.sys\.(?:b32|u32)/, 'release stores of ring indices');
    assert.match(ptx, /st\.release\.sys\.(?:b64|u64)/, 'release stores of 64-bit counters');
    assert.match(ptx, /%globaltimer/);
    assert.match(ptx, /nanosleep/, 'idle back-off instead of a hot spin');
  });

  it('assembles with ptxas for sm_90 without register spills', (t) => {
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    const cubin = assemblePersistentKernel(addOneHandlerPath);
    assert.ok(cubin.ok, cubin.ok ? '' : cubin.stderr);
    const report = cubin.ptx;
    assert.match(report, /Compiling entry function 'rk_persistent_kernel' for 'sm_90'/);
    assert.match(report, /0 bytes spill stores, 0 bytes spill loads/);
    const registers = Number(/Used (\d+) registers/.exec(report)?.[1]);
    // 128 threads per block, one block per SM for the cooperative launch: 65 536 registers per SM allow 512.
    assert.ok(registers > 0 && registers <= 255, `${registers} registers`);
  });

  it('refuses to compile without a handler, saying how to provide one', (t) => {
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    const alone = compilePersistentKernel(undefined);
    assert.equal(alone.ok, false);
    assert.match(
      (alone as { stderr: string }).stderr,
      /persistent_kernel\.cu needs a handler: compile with --pre-include <handler\.cu>/,
    );
  });

  it('compiles for the oldest architecture nvcc 13 targets too (sm_75)', (t) => {
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    const old = compilePersistentKernel(addOneHandlerPath, 'sm_75');
    assert.ok(old.ok, old.ok ? '' : old.stderr);
    assert.match(old.ptx, /^\.target sm_75$/m);
  });

  it('is written against the generated layout header and the handler API, not private copies of them', () => {
    const template = readFileSync(templatePath, 'utf8');
    assert.match(template, /#include "ringkernel_layout\.h"/);
    assert.match(template, /#include "rk_handler\.cuh"/);
    assert.doesNotMatch(template, /typedef struct rk_(?:frame_header|control_block|ring_header|span_record)\b/);
    const handler = readFileSync(addOneHandlerPath, 'utf8');
    assert.match(handler, /#define RK_HANDLER_DEFINED 1/);
    assert.match(handler, /__device__ uint32_t rk_handle\(/);
  });
});
