import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type HealthReport, RingKernelRuntime } from '../src/internal.js';
import { Accumulator, KILL_WORKER, Sink } from './fixtures/kernels.js';

describe('HealthChecker', () => {
  it('is Healthy on a fresh runtime, and reports registered checks, their failures and their timeouts', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      const health = runtime.healthChecker();
      assert.equal(runtime.healthChecker(), health);
      const fresh = await health.check();
      assert.equal(fresh.status, 'Healthy', fresh.reason);
      assert.deepEqual(fresh.checks.map((c) => c.name).sort(), ['devices', 'kernels', 'memory', 'queues', 'runtime']);

      let dbUp = true;
      health.register({ name: 'db', kind: 'readiness', check: () => dbUp });
      health.register({ name: 'slow', kind: 'liveness', timeoutMs: 20, check: () => new Promise(() => {}) });
      const changes: [string, string | undefined][] = [];
      health.on('change', (report: HealthReport, previous) => changes.push([report.status, previous]));
      const slow = await health.check();
      assert.equal(slow.status, 'Unhealthy');
      assert.match(slow.reason ?? '', /slow: timed out after 20 ms/);
      health.unregister('slow');
      dbUp = false;
      assert.match((await health.check()).reason ?? '', /db: check failed/);
      dbUp = true;
      assert.equal((await health.check()).status, 'Healthy');
      assert.deepEqual(changes, [
        ['Unhealthy', 'Healthy'],
        ['Healthy', 'Unhealthy'],
      ]);
      assert.throws(() => health.register({ name: 'db', kind: 'readiness', check: () => true }), /already registered/);
      assert.throws(
        () => health.register({ name: 'x', kind: 'sometimes' as never, check: () => true }),
        /kind must be/,
      );
    } finally {
      await runtime.shutdown();
    }
  });

  it('degrades on real faults: a worker that died, an input queue nearly full', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    try {
      const health = runtime.healthChecker();
      const paused = await runtime.launch(Sink, 1, 1, { autoActivate: false, name: 'paused', queueCapacity: 10 });
      for (let seq = 0; seq < 9; seq++) paused.trySend({ sender: 0, seq, value: 0 });
      const full = await health.check();
      assert.equal(full.status, 'Degraded');
      assert.match(full.reason ?? '', /queues: input queue over 90 % full: paused/);
      await paused.activate();
      await paused.terminate();

      const doomed = await runtime.launch(Accumulator, 1, 1, { name: 'doomed', autoActivate: true });
      await assert.rejects(doomed.call({ sender: 0, seq: 0, value: KILL_WORKER }));
      const afterCrash = await health.check();
      assert.equal(afterCrash.status, 'Degraded');
      assert.match(afterCrash.reason ?? '', /kernels: 1 kernel\(s\) failed in the last 60 s/);
    } finally {
      await runtime.shutdown();
    }
  });
});
