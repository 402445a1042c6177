import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RingKernelRuntime } from '../src/internal.js';
import { Accumulator } from './fixtures/kernels.js';

describe('runtime at scale and at exit', () => {
  it('launches 1000 kernels, each answers a call, then shuts them all down', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    const count = 1000;
    const handles = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        runtime.launch(Accumulator, 1, 1, { name: `many-${i}`, autoActivate: true }),
      ),
    );
    assert.equal(runtime.kernels().length, count);
    const threads = new Map<number, number>();
    for (const handle of handles) {
      const thread = handle.metrics().workerThreadId;
      threads.set(thread, (threads.get(thread) ?? 0) + 1);
    }
    assert.equal(threads.size, 2, 'spread over both workers');
    for (const hosted of threads.values()) assert.ok(hosted >= 400, `balanced: ${[...threads.values()]}`);
    const answers = await Promise.all(handles.map((handle, i) => handle.call({ sender: i, seq: 0, value: i })));
    answers.forEach((answer, i) => {
      assert.equal(answer.sender, i);
      assert.equal(answer.total, i);
    });
    const report = await runtime.shutdown();
    assert.equal(report.terminated, count);
    assert.equal(report.failed, 0);
    assert.ok(handles.every((handle) => handle.status === 'Terminated'));
  });

  for (const mode of ['shutdown', 'forgotten'] as const) {
    it(`lets node exit promptly when the runtime is ${mode === 'shutdown' ? 'shut down' : 'forgotten without a shutdown'}`, () => {
      const script = fileURLToPath(new URL('./fixtures/forgotten-runtime.js', import.meta.url));
      const started = performance.now();
      const result = spawnSync(process.execPath, [script, mode], { encoding: 'utf8', timeout: 20_000 });
      const seconds = (performance.now() - started) / 1000;
      assert.equal(result.signal, null, `killed after ${seconds.toFixed(1)} s: the process did not exit by itself`);
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, mode === 'shutdown' ? /shutdown \{.*"terminated":4,"failed":0/ : /forgotten/);
      assert.ok(seconds < 10, `exited after ${seconds.toFixed(1)} s`);
    });
  }

  it('keeps node running while `await handle.exited` waits for a kernel that fails later on its worker', () => {
    // Nothing else holds the event loop in this script: before `exited` held it, node ended with exit code 13
    // (an unsettled top-level await) instead of reporting the failure.
    const script = fileURLToPath(new URL('./fixtures/awaited-exit.js', import.meta.url));
    const result = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(result.signal, null, 'killed: the process did not exit by itself after the kernel exited');
    assert.equal(result.status, 0, `exit code ${result.status}: ${result.stderr}`);
    assert.match(result.stdout, /^exited Failed$/m);
    // The runtime's log names the kernel's failure once, not once per layer that wrapped it.
    assert.match(result.stderr, /kernel 'doomed' failed: .*negative value -1/);
    assert.doesNotMatch(result.stderr, /failed: kernel 'doomed' failed/);
  });
});
