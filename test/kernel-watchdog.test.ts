import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RingKernelRuntime, type StaleKernel } from '../src/index.js';
import { Accumulator, Slow } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('KernelWatchdog', () => {
  it('finds a kernel stuck in its handler, and not an idle or a busy healthy one', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    try {
      const stuck = await runtime.launch(Slow, 1, 1, { name: 'stuck', autoActivate: true });
      const idle = await runtime.launch(Accumulator, 1, 1, { name: 'idle', autoActivate: true });
      const busy = await runtime.launch(Accumulator, 1, 1, { name: 'busy', autoActivate: true });
      const watchdog = runtime.kernelWatchdog();
      assert.equal(runtime.kernelWatchdog(), watchdog);
      assert.throws(() => watchdog.setHeartbeatTimeout(0), /positive number of ms, got 0/);
      watchdog.setHeartbeatTimeout(150);
      const events: StaleKernel[] = [];
      watchdog.on('stale', (stale) => events.push(stale));
      await idle.call({ sender: 0, seq: 0, value: 1 });
      stuck.trySend({ sender: 0, seq: 0, value: 1_500 }); // one handler call busy for 1.5 s
      const feeding = (async () => {
        for (let seq = 0; seq < 60; seq++) {
          await busy.send({ sender: 0, seq, value: 1 });
          await sleep(10);
        }
      })();
      await sleep(50);
      assert.deepEqual(watchdog.scanStaleKernels(), [], 'first sight is not enough');
      await sleep(250);
      const stale = watchdog.scanStaleKernels();
      // A stuck handler stalls its whole worker: a busy kernel that shares it is stuck too, and found as such.
      const sameWorker = busy.metrics().workerThreadId === stuck.metrics().workerThreadId;
      assert.deepEqual(stale.map((s) => s.handle.name).sort(), sameWorker ? ['busy', 'stuck'] : ['stuck']);
      assert.ok(stale.every((s) => s.stalledMs >= 150));
      assert.equal(stale.find((s) => s.handle === stuck)?.pending, 1, 'the message in hand is still pending');
      assert.equal(events.length, stale.length);
      await feeding;
      await stuck.call({ sender: 0, seq: 1, value: 0 }, { timeout: 5_000 }); // the handler came back
      // Once the handler returns, the worker's kernels catch up and beat again.
      await eventually(() => assert.deepEqual(watchdog.scanStaleKernels(), [], 'no longer stale once they beat again'));
    } finally {
      await runtime.shutdown();
    }
  });
});
