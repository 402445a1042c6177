import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { probeWebGpu } from '../src/backends/webgpu/webgpu-adapter.js';
import { webgpuMissing } from './support/webgpu.js';

describe('WebGPU adapter', () => {
  it('finds a real adapter and says what it is; a software one only when asked for', async (t) => {
    const skip = await webgpuMissing();
    if (skip !== undefined) return t.skip(skip);
    const probe = await probeWebGpu({ allowFallback: true });
    assert.ok(probe.available, probe.reason);
    t.diagnostic(probe.reason);
    assert.ok(probe.adapter.vendor.length > 0);
    if (probe.adapter.isFallback) {
      const strict = await probeWebGpu();
      assert.equal(strict.available, false);
      assert.match(strict.reason, /only a fallback \(software\) adapter is here .*allowFallback/);
    }
  });

  it('keeps the fetched driver loaded through garbage collection (the preloaded libraries are held)', async (t) => {
    const skip = await webgpuMissing();
    if (skip !== undefined) return t.skip(skip);
    if (process.env.RINGKERNEL_WEBGPU_DRIVER_DIR === undefined)
      return t.skip('skipped: no fetched driver folder in use');
    // A fresh process: the driver's libraries are preloaded, then collected garbage must not unload them before
    // Dawn looks for libvulkan.so.1.
    const dawnModule = fileURLToPath(new URL('../src/backends/webgpu/dawn-module.js', import.meta.url));
    const adapterModule = fileURLToPath(new URL('../src/backends/webgpu/webgpu-adapter.js', import.meta.url));
    const script = `
      const { prepareWebGpuDriver } = await import(${JSON.stringify(dawnModule)});
      const { probeWebGpu } = await import(${JSON.stringify(adapterModule)});
      prepareWebGpuDriver();
      for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((resolve) => setTimeout(resolve, 10)); }
      const probe = await probeWebGpu({ allowFallback: true });
      console.log(JSON.stringify({ available: probe.available, reason: probe.reason }));`;
    const child = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(child.status, 0, child.stderr);
    const result = JSON.parse(child.stdout.trim().split('\n').at(-1) as string);
    assert.equal(result.available, true, result.reason);
  });

  it("without the optional 'webgpu' package, says how to add it with a typed error", () => {
    // A child process whose module resolution has no 'webgpu' (a resolve hook refuses it, as a missing package).
    const hook = `export async function resolve(specifier, context, next) {
      if (specifier === 'webgpu') { const e = new Error("Cannot find package 'webgpu'"); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; }
      return next(specifier, context);
    }`;
    const dawnModule = fileURLToPath(new URL('../src/backends/webgpu/dawn-module.js', import.meta.url));
    const script = `
      import { register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
      const { loadDawn } = await import(${JSON.stringify(dawnModule)});
      try { await loadDawn(); console.log('loaded'); }
      catch (error) { console.log(JSON.stringify({ name: error.name, code: error.code, message: error.message })); }`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(child.status, 0, child.stderr);
    const result = JSON.parse(child.stdout.trim());
    assert.equal(result.name, 'BackendUnavailableError');
    assert.equal(result.code, 'RK_BACKEND_UNAVAILABLE');
    assert.match(result.message, /backend 'webgpu' is not available: .*npm install webgpu/);
  });
});
