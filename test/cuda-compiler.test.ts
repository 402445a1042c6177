/**
 * The CUDA compile pipeline (src/backends/cuda/kernel-compiler.ts) without a GPU: handlers compiled into the
 * persistent-kernel template to PTX with nvcc (skipped where nvcc is not installed), the message structs generated
 * from the schemas, the content-hash cache, shipped PTX when no compiler is found, and typed compile errors.
 * NVRTC is not installed on these machines (scripts/device-check.sh runs it on the GPU machine).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  BytesMessage,
  CudaCompileError,
  compileCudaKernel,
  defineKernel,
  kernelMessagesHeader,
} from '../src/internal.js';
import { AddOneWords, AddTenWords, DoubleReading, TripleWords } from './fixtures/cuda-kernels.js';
import { assemblePtx, hasNvcc } from './support/cuda-ptx.js';

const cache = mkdtempSync(join(tmpdir(), 'ringkernel-compiler-cache-'));
process.env.RINGKERNEL_CACHE_DIR = cache;
// No NVRTC here; make sure a stray one is not picked up either, so the test knows which compiler ran.
process.env.RINGKERNEL_LIBNVRTC = '/nonexistent/libnvrtc.so';
after(() => rmSync(cache, { recursive: true, force: true }));
const NVCC_MISSING = 'skipped: nvcc not installed';
const sm90 = { kind: 'ptx', arch: 'sm_90' } as const;

const shippedPtx = join(cache, 'shipped.ptx');
writeFileSync(shippedPtx, '// shipped\n.version 8.0\n.target sm_90\n.visible .entry rk_persistent_kernel()\n{\n}\n');
const Shipped = defineKernel({
  id: 'test.cuda.shipped',
  input: BytesMessage,
  output: BytesMessage,
  cuda: { source: '#define RK_HANDLER_DEFINED 1\n', ptx: shippedPtx },
  module: import.meta.url,
});

describe('the CUDA compile pipeline', () => {
  it('compiles a handler file into the template to PTX with nvcc, then serves it from the cache', (t) => {
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    const first = compileCudaKernel(AddOneWords, sm90);
    assert.equal(first.compiler, 'nvcc');
    assert.equal(first.cached, false);
    assert.match(first.image, /^\.target sm_90$/m);
    assert.match(first.image, /\.visible \.entry rk_persistent_kernel\(/);
    assert.match(first.image, /\.visible \.entry rk_single_frame_kernel\(/);
    const assembled = assemblePtx(first.image);
    assert.ok(assembled.ok, assembled.ok ? '' : assembled.stderr);
    const second = compileCudaKernel(AddOneWords, sm90);
    assert.deepEqual({ ...second, image: second.image.length }, { ...first, cached: true, image: first.image.length });
    assert.ok(readdirSync(cache).includes(`${first.key}.ptx`));
    // Another architecture is another build.
    assert.notEqual(compileCudaKernel(AddOneWords, { kind: 'ptx', arch: 'sm_75' }).key, first.key);
  });

  it('gives the handler C structs of its message schemas that match the TypeScript layout', (t) => {
    const header = kernelMessagesHeader(DoubleReading);
    assert.match(header, /typedef struct rk_msg_test_Numbers \{/);
    assert.match(header, /typedef struct rk_msg_test_Total \{/);
    assert.match(header, /RK_STATIC_ASSERT\(sizeof\(rk_msg_test_Total\) == \d+/);
    assert.doesNotMatch(kernelMessagesHeader(AddOneWords), /typedef struct/, 'raw bytes have no struct');
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    // The handler uses the structs; nvcc checks every static assert of their offsets.
    const built = compileCudaKernel(DoubleReading, sm90);
    assert.match(built.image, /\.entry rk_persistent_kernel\(/);
  });

  it('keys the cache on the handler: a changed handler is rebuilt', (t) => {
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    const variant = defineKernel({
      id: 'test.cuda.add-one-variant',
      input: BytesMessage,
      output: BytesMessage,
      cuda: {
        source: `${'#include "rk_handler.cuh"\n#define RK_HANDLER_DEFINED 1\n'}__device__ uint32_t rk_handle(const rk_frame_header *h, const uint8_t *p, rk_handler_output *o, void *s) { (void)h; (void)p; (void)s; o->emit = 0; return RK_E_NONE; }\n`,
      },
      module: import.meta.url,
    });
    const built = compileCudaKernel(variant, sm90);
    assert.equal(built.cached, false);
    assert.notEqual(built.key, compileCudaKernel(AddOneWords, sm90).key);
  });

  it('fails a handler that does not compile with CudaCompileError carrying the compiler log', (t) => {
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    const broken = defineKernel({
      id: 'test.cuda.broken-ptx',
      input: BytesMessage,
      output: BytesMessage,
      cuda: { source: '#include "rk_handler.cuh"\n#define RK_HANDLER_DEFINED 1\nnot CUDA at all;\n' },
      module: import.meta.url,
    });
    assert.throws(
      () => compileCudaKernel(broken, sm90),
      (error: unknown) =>
        error instanceof CudaCompileError &&
        error.code === 'RK_CUDA_COMPILE_FAILED' &&
        error.compiler === 'nvcc' &&
        /error/.test(error.log) &&
        error.message.startsWith("kernel 'test.cuda.broken-ptx': the CUDA handler did not compile (nvcc)"),
    );
  });

  it('uses the shipped PTX when neither NVRTC nor nvcc is found, and says so when there is none', () => {
    const nvcc = process.env.NVCC;
    process.env.NVCC = '/nonexistent/nvcc';
    try {
      const shipped = compileCudaKernel(Shipped, sm90);
      assert.equal(shipped.compiler, 'shipped');
      assert.match(shipped.image, /^\/\/ shipped/);
      // (A kernel built before is served from the cache, compiler or not: take one never built.)
      const neverBuilt = defineKernel({
        id: 'test.cuda.never-built',
        input: BytesMessage,
        output: BytesMessage,
        cuda: { source: '#define RK_HANDLER_DEFINED 1\n// never built\n' },
        module: import.meta.url,
      });
      assert.throws(
        () => compileCudaKernel(neverBuilt, sm90),
        (error: unknown) =>
          error instanceof CudaCompileError &&
          error.compiler === 'none' &&
          /neither libnvrtc nor nvcc was found on this machine, and the kernel ships no PTX \(cuda\.ptx\)/.test(
            error.message,
          ),
      );
    } finally {
      if (nvcc === undefined) delete process.env.NVCC;
      else process.env.NVCC = nvcc;
    }
  });

  it('compiles a handler named by cuda.entry; one source gives two builds; a missing entry is a compile error', (t) => {
    if (!hasNvcc) return t.skip(NVCC_MISSING);
    const triple = compileCudaKernel(TripleWords, sm90);
    const addTen = compileCudaKernel(AddTenWords, sm90);
    assert.notEqual(triple.key, addTen.key, 'the entry is part of the key');
    // nvcc inlines the forwarding rk_handle, so the two builds' code differs (what each computes is checked on
    // the emulated device and a GPU by test/cuda-runtime.test.ts).
    assert.notEqual(triple.image, addTen.image);
    assert.match(triple.image, /\.visible \.entry rk_persistent_kernel\(/);
    const missing = defineKernel({
      id: 'test.cuda.missing-entry',
      input: BytesMessage,
      output: BytesMessage,
      cuda: { source: '#include "rk_handler.cuh"\n', entry: 'no_such_handler' },
      module: import.meta.url,
    });
    assert.throws(
      () => compileCudaKernel(missing, sm90),
      (error: unknown) => error instanceof CudaCompileError && /no_such_handler/.test(error.log),
    );
  });

  it('validates the cuda part at defineKernel with exact messages', () => {
    const base = { input: BytesMessage, output: BytesMessage, module: import.meta.url };
    assert.throws(() => defineKernel({ ...base, id: 'v1', cuda: {} }), {
      name: 'TypeError',
      message: "kernel 'v1': cuda needs exactly one of file and source",
    });
    assert.throws(() => defineKernel({ ...base, id: 'v2', cuda: { file: 'relative.cu' } }), {
      name: 'TypeError',
      message: 'kernel \'v2\': cuda.file must be a file: URL or an absolute path, got "relative.cu"',
    });
    assert.throws(() => defineKernel({ ...base, id: 'v3', cuda: { source: 'x', blockSize: 2048 } }), {
      name: 'RangeError',
      message: "kernel 'v3': cuda.blockSize must be between 1 and 1024, got 2048",
    });
    assert.throws(() => defineKernel({ ...base, id: 'v5', cuda: { source: 'x', entry: 'not an identifier' } }), {
      name: 'TypeError',
      message: 'kernel \'v5\': cuda.entry must be a C identifier, got "not an identifier"',
    });
    assert.throws(() => defineKernel({ ...base, id: 'v4' } as never), {
      name: 'TypeError',
      message: "kernel 'v4': cpu must be a handler function (it may be left out only with a cuda or webgpu part)",
    });
  });
});
