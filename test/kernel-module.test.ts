import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  defineKernel,
  defineMessage,
  ErrorCode,
  KernelFailedError,
  KernelModuleError,
  RingKernelRuntime,
} from '../src/index.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** Runs a fixture as a program of its own; a runaway one (workers spawning workers) is killed after 30 s. */
function runFixture(name: string) {
  return spawnSync(process.execPath, [fixture(name)], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
}

describe("a kernel's module, as the workers load it", () => {
  it("refuses to launch a kernel defined in the program's entry module, saying to move it", () => {
    const ran = runFixture('kernel-in-entry.js');
    assert.equal(ran.signal, null, 'the program ended on its own');
    assert.equal(ran.status, 0, ran.stderr);
    assert.match(
      ran.stdout,
      /^RK_KERNEL_MODULE: kernel 'entry\.pinger' \(module file:\/\/\S+\/kernel-in-entry\.js\): it is the program's entry module\. .*Move the kernel into a module of its own/m,
    );
    assert.doesNotMatch(ran.stdout, /launched/);
  });

  it('refuses a runtime built inside a kernel worker (a kernel module that builds one when imported)', () => {
    const ran = runFixture('kernel-with-runtime-main.js');
    assert.equal(ran.signal, null, 'the program ended on its own');
    assert.equal(ran.status, 0, ran.stderr);
    assert.match(
      ran.stdout,
      /^RK_KERNEL_MODULE: kernel 'sideEffect\.pinger' \(module file:\/\/\S+\/kernel-with-runtime\.js\): a runtime is being built inside one of ringkernel's kernel workers.*Define kernels in modules of their own/m,
    );
    assert.equal(ran.stdout.match(/RK_KERNEL_MODULE/g)?.length, 1, 'one refusal, in the program itself');
  });

  it('a TypeScript kernel module the workers cannot import (no loader there) fails the launch saying what to do', async () => {
    // What a program run by tsx or ts-node hands the workers: a kernel whose module is a .ts file. Node 20 cannot
    // import it in a worker without the loader, as it cannot here.
    const folder = mkdtempSync(join(tmpdir(), 'ringkernel-ts-kernel-'));
    const source = join(folder, 'pinger.ts');
    writeFileSync(source, 'export const typed: number = 1;\n');
    const Ping = defineMessage('typescript.Ping', { value: 'u32' });
    const Pinger = defineKernel({
      id: 'typescript.pinger',
      input: Ping,
      output: Ping,
      cpu: (ping) => ({ value: ping.value }),
      module: pathToFileURL(source),
    });
    const runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
    try {
      await assert.rejects(runtime.launch(Pinger, 1, 1, { autoActivate: false }), (error: unknown) => {
        assert.ok(error instanceof KernelModuleError);
        assert.equal(error.code, ErrorCode.KernelModule);
        assert.match(
          error.message,
          /^kernel 'typescript\.pinger' \(module file:\/\/\S+\/pinger\.ts\): Node cannot import this TypeScript module in ringkernel's worker threads.*node --import tsx main\.ts.*compile the kernel modules to JavaScript/,
        );
        return true;
      });
    } finally {
      await runtime.shutdown();
      rmSync(folder, { recursive: true, force: true });
    }
  });
  it('imports a module once for a wave of launches, and again after an import that failed', async () => {
    // Workers import a kernel's module once and reuse it for every launch; an import that failed is not
    // remembered: once the module is there, the next launch finds it.
    const folder = mkdtempSync(join(tmpdir(), 'ringkernel-late-kernel-'));
    const source = join(folder, 'late.mjs');
    const library = new URL('../src/index.js', import.meta.url).href;
    const Ping = defineMessage('late.Ping', { value: 'u32' });
    const Late = defineKernel({
      id: 'late.echo',
      input: Ping,
      output: Ping,
      cpu: (ping) => ({ value: ping.value + 1 }),
      module: pathToFileURL(source),
    });
    const runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
    try {
      await assert.rejects(runtime.launch(Late, { name: 'late-0' }), KernelFailedError);
      writeFileSync(
        source,
        [
          `import { defineKernel, defineMessage } from ${JSON.stringify(library)};`,
          "const Ping = defineMessage('late.Ping', { value: 'u32' });",
          'export const Late = defineKernel({',
          "  id: 'late.echo', input: Ping, output: Ping, cpu: (ping) => ({ value: ping.value + 1 }),",
          '  module: import.meta.url,',
          '});',
          '',
        ].join('\n'),
      );
      const handles = await Promise.all(
        Array.from({ length: 20 }, (_, i) => runtime.launch(Late, { name: `late-${i + 1}` })),
      );
      const answers = await Promise.all(handles.map((handle, i) => handle.call({ value: i })));
      assert.deepEqual(
        answers.map((answer) => answer.value),
        handles.map((_, i) => i + 1),
      );
    } finally {
      await runtime.shutdown();
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it("a module that throws on import fails the launch with its own error, whatever the error's words", async () => {
    // The failure crosses from the worker typed: a module's own error is never taken for one of ringkernel's
    // kernel-module refusals, not even when its message reads like one.
    const folder = mkdtempSync(join(tmpdir(), 'ringkernel-throwing-kernel-'));
    const source = join(folder, 'throwing.mjs');
    writeFileSync(source, "throw new Error('kernel module failed: the database is not reachable');\n");
    const Ping = defineMessage('throwing.Ping', { value: 'u32' });
    const Throwing = defineKernel({
      id: 'throwing.pinger',
      input: Ping,
      output: Ping,
      cpu: (ping) => ({ value: ping.value }),
      module: pathToFileURL(source),
    });
    const runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
    try {
      await assert.rejects(runtime.launch(Throwing, 1, 1), (error: unknown) => {
        assert.ok(error instanceof KernelFailedError, String(error));
        assert.equal(error instanceof KernelModuleError, false);
        assert.match(
          error.message,
          /^kernel 'throwing\.pinger' failed: its worker could not launch it: kernel module failed: the database is not reachable$/,
        );
        return true;
      });
    } finally {
      await runtime.shutdown();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
