import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { WebGpuAdapterOptions } from '../src/backends/webgpu/webgpu-adapter.js';
import {
  ArgumentTypeError,
  BytesMessage,
  defineKernel,
  InvalidArgumentError,
  RingKernelError,
  RingKernelRuntime,
} from '../src/index.js';
import { resolveWebGpuKernelSpec } from '../src/kernel/webgpu-kernel-spec.js';
import { probeWebGpu } from '../src/webgpu.js';

describe("a kernel's webgpu part", () => {
  it('is validated up front with typed errors naming the field and the valid values', () => {
    type Case = [
      spec: unknown,
      error: typeof ArgumentTypeError | typeof InvalidArgumentError,
      field: string,
      message: string | RegExp,
    ];
    const cases: Case[] = [
      [
        null,
        ArgumentTypeError,
        'spec.webgpu',
        "kernel 'k': webgpu must be an object ({ file } or { source }), got null",
      ],
      [{}, ArgumentTypeError, 'spec.webgpu', "kernel 'k': webgpu needs exactly one of file and source, got neither"],
      [{ source: 'x', file: '/a.wgsl' }, ArgumentTypeError, 'spec.webgpu', /exactly one of file and source, got both/],
      [
        { source: 'x', workgroupsize: 8 },
        ArgumentTypeError,
        'spec.webgpu.workgroupsize',
        /webgpu.workgroupsize is not a field of the webgpu part \(the fields are file, source, entry, workgroupSize, stateBytes, stateType, outputBytes, maxBatch\)/,
      ],
      [
        { source: '  ' },
        InvalidArgumentError,
        'spec.webgpu.source',
        `kernel 'k': webgpu.source must be the handler's WGSL text, got "  "`,
      ],
      [
        { source: 42 },
        ArgumentTypeError,
        'spec.webgpu.source',
        "kernel 'k': webgpu.source must be the handler's WGSL text, got 42",
      ],
      [
        { source: 'x', entry: 'rk_main' },
        InvalidArgumentError,
        'spec.webgpu.entry',
        /webgpu.entry must be a WGSL identifier not starting with rk_, got "rk_main"/,
      ],
      [
        { source: 'x', entry: '1x' },
        InvalidArgumentError,
        'spec.webgpu.entry',
        /webgpu.entry must be a WGSL identifier/,
      ],
      [
        { source: 'x', entry: 7 },
        ArgumentTypeError,
        'spec.webgpu.entry',
        /webgpu.entry must be a WGSL identifier not starting with rk_, got 7/,
      ],
      [
        { source: 'x', stateType: {} },
        ArgumentTypeError,
        'spec.webgpu.stateType',
        "kernel 'k': webgpu.stateType must be a WGSL type name, got an object",
      ],
      [
        { source: 'x', stateBytes: 6 },
        InvalidArgumentError,
        'spec.webgpu.stateBytes',
        "kernel 'k': webgpu.stateBytes must be a multiple of 4 between 0 and 16777216, got 6",
      ],
      [
        { source: 'x', stateBytes: 1.5 },
        InvalidArgumentError,
        'spec.webgpu.stateBytes',
        "kernel 'k': webgpu.stateBytes must be an integer between 0 and 16777216, got 1.5",
      ],
      [
        { source: 'x', stateBytes: '8' },
        ArgumentTypeError,
        'spec.webgpu.stateBytes',
        `kernel 'k': webgpu.stateBytes must be an integer between 0 and 16777216, got "8"`,
      ],
      [
        { source: 'x', workgroupSize: 0 },
        InvalidArgumentError,
        'spec.webgpu.workgroupSize',
        "kernel 'k': webgpu.workgroupSize must be an integer between 1 and 1024, got 0",
      ],
      [
        { source: 'x', workgroupSize: 2048 },
        InvalidArgumentError,
        'spec.webgpu.workgroupSize',
        "kernel 'k': webgpu.workgroupSize must be an integer between 1 and 1024, got 2048",
      ],
      [
        { source: 'x', maxBatch: 70_000 },
        InvalidArgumentError,
        'spec.webgpu.maxBatch',
        "kernel 'k': webgpu.maxBatch must be an integer between 1 and 65536, got 70000",
      ],
      [
        { source: 'x', maxBatch: Number.NaN },
        InvalidArgumentError,
        'spec.webgpu.maxBatch',
        "kernel 'k': webgpu.maxBatch must be an integer between 1 and 65536, got NaN",
      ],
      [
        { source: 'x', outputBytes: -4 },
        InvalidArgumentError,
        'spec.webgpu.outputBytes',
        "kernel 'k': webgpu.outputBytes must be an integer between 0 and 16777216, got -4",
      ],
      [
        { file: 'relative.wgsl' },
        InvalidArgumentError,
        'spec.webgpu.file',
        /webgpu.file must be a file: URL or an absolute path, got "relative.wgsl"/,
      ],
      [
        { file: new URL('https://example.com/a.wgsl') },
        InvalidArgumentError,
        'spec.webgpu.file',
        /webgpu.file must be a file: URL or an absolute path, got a https: URL/,
      ],
      [
        { file: 3 },
        ArgumentTypeError,
        'spec.webgpu.file',
        /webgpu.file must be a file: URL or an absolute path, got 3/,
      ],
      [
        { file: '/nonexistent/handler.wgsl' },
        InvalidArgumentError,
        'spec.webgpu.file',
        /webgpu.file \/nonexistent\/handler.wgsl cannot be read/,
      ],
    ];
    for (const [spec, type, field, message] of cases) {
      assert.throws(
        () => resolveWebGpuKernelSpec('k', spec),
        (error: unknown) => {
          assert.ok(error instanceof type, `${JSON.stringify(spec)}: ${String(error)} is not a ${type.name}`);
          assert.ok(error instanceof RingKernelError, 'a RingKernelError too');
          assert.equal(error.code, 'RK_INVALID_ARGUMENT');
          assert.equal(error.argument, field);
          if (typeof message === 'string') assert.equal(error.message, message);
          else assert.match(error.message, message);
          return true;
        },
      );
    }
  });

  it('is checked by defineKernel, with the same typed errors', () => {
    assert.throws(
      () =>
        defineKernel({
          id: 'test.webgpu.badWorkgroup',
          module: import.meta.url,
          input: BytesMessage,
          output: BytesMessage,
          webgpu: { source: 'fn handle(i: u32) -> u32 { return RK_E_NONE; }', workgroupSize: 4096 },
        }),
      (error: unknown) =>
        error instanceof InvalidArgumentError &&
        error.code === 'RK_INVALID_ARGUMENT' &&
        error.argument === 'spec.webgpu.workgroupSize' &&
        /between 1 and 1024, got 4096/.test(error.message),
    );
  });

  it('reads a file: URL and applies the defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rk-wgsl-'));
    const file = join(dir, 'handler.wgsl');
    writeFileSync(file, 'fn handle(i: u32) -> u32 { return RK_E_NONE; }');
    const spec = resolveWebGpuKernelSpec('k', { file: pathToFileURL(file) });
    assert.deepEqual(spec, {
      source: 'fn handle(i: u32) -> u32 { return RK_E_NONE; }',
      origin: file,
      entry: 'handle',
      workgroupSize: 64,
      stateBytes: 0,
      stateType: undefined,
      outputBytes: undefined,
      maxBatch: 4096,
    });
  });
});

describe('WebGPU adapter options', () => {
  it('are validated up front by builder.backend and probeWebGpu, naming the field and the valid values', async () => {
    type Case = [
      options: unknown,
      error: typeof ArgumentTypeError | typeof InvalidArgumentError,
      field: string,
      message: string,
    ];
    const cases: Case[] = [
      ['yes', ArgumentTypeError, '', ' must be an object ({ allowFallback, nativeBackend }), got "yes"'],
      [
        { allowFallback: 'yes' },
        ArgumentTypeError,
        '.allowFallback',
        '.allowFallback must be true or false, got "yes"',
      ],
      [
        { nativeBackend: 'metal' },
        InvalidArgumentError,
        '.nativeBackend',
        `.nativeBackend must be 'default' or 'opengles', got "metal"`,
      ],
      [
        { nativeBackend: 1 },
        ArgumentTypeError,
        '.nativeBackend',
        `.nativeBackend must be 'default' or 'opengles', got 1`,
      ],
      [
        { fallback: true },
        ArgumentTypeError,
        '.fallback',
        '.fallback is not a WebGPU adapter option (the options are allowFallback, nativeBackend, deviceBackends)',
      ],
      [
        { deviceBackends: 'opengles' },
        ArgumentTypeError,
        '.deviceBackends',
        `.deviceBackends must be a non-empty array of 'default' or 'opengles', one per device, got "opengles"`,
      ],
      [
        { deviceBackends: [] },
        ArgumentTypeError,
        '.deviceBackends',
        `.deviceBackends must be a non-empty array of 'default' or 'opengles', one per device, got an empty array`,
      ],
      [
        { deviceBackends: ['default', 'gl'] },
        InvalidArgumentError,
        '.deviceBackends[1]',
        `.deviceBackends[1] must be 'default' or 'opengles', got "gl"`,
      ],
    ];
    const check = (argument: string, type: Case[1], field: string, message: string) => (error: unknown) => {
      assert.ok(error instanceof type, `${String(error)} is not a ${type.name}`);
      assert.equal(error.code, 'RK_INVALID_ARGUMENT');
      assert.equal(error.argument, `${argument}${field}`);
      assert.equal(error.message, `${argument}${message}`);
      return true;
    };
    for (const [options, type, field, message] of cases) {
      assert.throws(
        () => RingKernelRuntime.builder().backend('webgpu', options as WebGpuAdapterOptions),
        check('backend options', type, field, message),
      );
      await assert.rejects(probeWebGpu(options as WebGpuAdapterOptions), check('options', type, field, message));
    }
  });
});
