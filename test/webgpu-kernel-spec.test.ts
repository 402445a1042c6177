import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { resolveWebGpuKernelSpec } from '../src/kernel/webgpu-kernel-spec.js';

describe("a kernel's webgpu part", () => {
  it('is validated with messages naming the field', () => {
    const cases: [unknown, string | RegExp][] = [
      [null, "kernel 'k': webgpu must be an object ({ file } or { source })"],
      [{}, "kernel 'k': webgpu needs exactly one of file and source"],
      [{ source: 'x', file: '/a.wgsl' }, "kernel 'k': webgpu needs exactly one of file and source"],
      [{ source: '  ' }, "kernel 'k': webgpu.source must be the handler's WGSL text"],
      [
        { source: 'x', entry: 'rk_main' },
        /webgpu.entry must be a WGSL identifier not starting with rk_, got "rk_main"/,
      ],
      [{ source: 'x', entry: '1x' }, /webgpu.entry must be a WGSL identifier/],
      [{ source: 'x', stateBytes: 6 }, "kernel 'k': webgpu.stateBytes must be a multiple of 4, got 6"],
      [{ source: 'x', stateBytes: 1.5 }, "kernel 'k': webgpu.stateBytes must be an integer, got 1.5"],
      [{ source: 'x', workgroupSize: 0 }, "kernel 'k': webgpu.workgroupSize must be between 1 and 1024, got 0"],
      [{ source: 'x', maxBatch: 70_000 }, "kernel 'k': webgpu.maxBatch must be between 1 and 65536, got 70000"],
      [{ file: 'relative.wgsl' }, /webgpu.file must be a file: URL or an absolute path, got "relative.wgsl"/],
      [{ file: '/nonexistent/handler.wgsl' }, /webgpu.file \/nonexistent\/handler.wgsl cannot be read/],
    ];
    for (const [spec, message] of cases) {
      assert.throws(() => resolveWebGpuKernelSpec('k', spec), { message }, JSON.stringify(spec));
    }
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
