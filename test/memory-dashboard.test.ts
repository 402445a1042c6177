import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MemoryAlertEvent, RingKernelRuntime } from '../src/internal.js';
import { KERNEL_HISTOGRAMS_BYTES } from '../src/kernel/latency-histogram.js';
import { AddOne, Double } from './fixtures/kernels.js';

describe('GpuMemoryDashboard', () => {
  it('accounts each kernel and link allocation by kind, measures pressure and raises alerts on rising levels', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      const dashboard = runtime.gpuMemoryDashboard();
      assert.equal(runtime.gpuMemoryDashboard(), dashboard);
      assert.equal(dashboard.totals().total, 0);
      const first = await runtime.launch(AddOne, 1, 1, { autoActivate: false, name: 'first', queueCapacity: 64 });
      const second = await runtime.launch(Double, 1, 1, { autoActivate: false, name: 'second', queueCapacity: 64 });
      await runtime.connect(first, second, { queueCapacity: 32 });
      const ring = (memory: { ring: SharedArrayBuffer; signal: SharedArrayBuffer }) =>
        memory.ring.byteLength + memory.signal.byteLength;
      const totals = dashboard.totals();
      assert.equal(
        totals['control-block'],
        2 * (128 + KERNEL_HISTOGRAMS_BYTES),
        'a ControlBlock and its histograms each',
      );
      assert.ok(totals.ring > 2 * ring(first.inputMemory), 'input, output and link rings');
      assert.equal(dashboard.allocations().filter((a) => a.owner === 'first→second').length, 1);
      assert.equal(totals.total, totals.ring + totals['control-block'] + totals.telemetry + totals['device-buffer']);

      const alerts: MemoryAlertEvent[] = [];
      dashboard.on('alert', (alert) => alerts.push(alert));
      assert.throws(() => dashboard.setBudget(0), /positive number of bytes, got 0/);
      assert.throws(() => dashboard.setThresholds([0.9, 0.5, 0.95]), /three increasing numbers/);
      dashboard.setBudget(totals.total / 0.8); // pressure 0.8: Elevated
      assert.ok(Math.abs(dashboard.memoryPressure() - 0.8) < 1e-9);
      assert.equal(dashboard.check(), 'Elevated');
      assert.equal(dashboard.check(), 'Elevated', 'no second alert at the same level');
      dashboard.setBudget(totals.total / 0.96);
      assert.equal(dashboard.check(), 'Critical');
      dashboard.triggerAlert('High', 'by hand');
      assert.deepEqual(
        alerts.map((a) => [a.level, a.message.startsWith('memory pressure') || a.message === 'by hand']),
        [
          ['Elevated', true],
          ['Critical', true],
          ['High', true],
        ],
      );
      assert.equal(dashboard.alertsRaised, 3);
      // A kernel that ends gives its memory back (its link ring goes with its consumer).
      await second.terminate();
      assert.ok(
        dashboard.allocations().every((a) => a.owner === 'first'),
        JSON.stringify(dashboard.allocations()),
      );
      assert.ok(runtime.degradationManager().evaluate() !== undefined);
      assert.ok(runtime.degradationManager().signals().memoryPressure > 0);
    } finally {
      await runtime.shutdown();
    }
  });
});
