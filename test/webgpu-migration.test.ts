/**
 * Migrating a WebGPU kernel between two devices of one adapter (real adapter: Mesa's software Vulkan where the
 * machine has no GPU). Each of the runtime's devices is a `GPUDevice` of its own on the device thread, so the move
 * is real: the new instance compiles its pipeline and makes its state buffer on the other `GPUDevice`, takes the
 * state the old one left (read back between batches) and the kernel's rings with what is queued in them.
 *
 * That the two are different `GPUDevice`s is shown for real too: the first device is destroyed (through the device
 * thread's test hook, as a driver reset would) and only the kernel left there fails.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { MigrationReport } from '../src/index.js';
import { WebGpuError } from '../src/webgpu.js';
import { WgslAddOne, WgslTotal } from './fixtures/webgpu-kernels.js';
import { eventually } from './support/eventually.js';
import { Random, TEST_SEED } from './support/random.js';
import { startWebGpuRuntime, webgpuMissing } from './support/webgpu.js';

process.env.RINGKERNEL_WEBGPU_TEST_HOOKS = '1';
after(() => {
  delete process.env.RINGKERNEL_WEBGPU_TEST_HOOKS;
});

/** Destroys the device thread's device `index`; resolves once its `lost` promise has resolved (10 s at most). */
async function loseDevice(index: number): Promise<void> {
  const channel = new BroadcastChannel('ringkernel.webgpu.test-hook');
  let timer: NodeJS.Timeout | undefined;
  try {
    const lost = new Promise<void>((resolve, reject) => {
      channel.onmessage = (event) => {
        if ((event as MessageEvent).data === 'device-lost') resolve();
      };
      timer = setTimeout(() => reject(new Error('the device thread did not answer the test hook in 10 s')), 10_000);
    });
    channel.postMessage(`lose-device:${index}`);
    await lost;
  } finally {
    clearTimeout(timer);
    channel.close();
  }
}

describe('migrating a WebGPU kernel between two devices of one adapter (real adapter)', () => {
  it('moves state and queue 0 → 1 → 0 → 1 under a seeded stream: every message once, the running sum exact', async (t) => {
    const skip = await webgpuMissing();
    if (skip !== undefined) return t.skip(skip);
    const { runtime } = await startWebGpuRuntime({ config: { workers: 2, devices: 2 } });
    try {
      const kernel = await runtime.launch(WgslTotal, 1, 1, {
        name: 'totals',
        device: 0,
        autoActivate: true,
        queueCapacity: 1024,
      });
      const bystander = await runtime.launch(WgslAddOne, 1, 1, { name: 'bystander', device: 0, autoActivate: true });
      const random = new Random(TEST_SEED ^ 0x316);
      const total = 6000;
      let sum = 0;
      const counts: number[] = [];
      let last = { count: 0, total: 0 };
      const take = (out: { count: number; total: number }): void => {
        counts.push(out.count);
        if (out.count > last.count) last = out;
      };
      const reports: MigrationReport[] = [];
      let from = 0;
      for (let seq = 0; seq < total; seq++) {
        const value = random.int(0, 1000);
        sum += value;
        await kernel.send({ value });
        for (let out = kernel.tryReceive(); out !== undefined; out = kernel.tryReceive()) take(out.toObject());
        // Three moves while messages flow, each with some of them still queued.
        if (seq === 1500 || seq === 3000 || seq === 4500) {
          reports.push(await runtime.kernelMigrator().migrateKernel(kernel, from, 1 - from));
          from = 1 - from;
        }
      }
      while (counts.length < total) take((await kernel.receive(20_000)).toObject());
      t.diagnostic(
        reports.map((r) => `${r.from}→${r.to}: ${r.stateBytes} B state, pause ${r.pauseMs.toFixed(1)} ms`).join('; '),
      );
      assert.equal(kernel.device, 1);
      assert.equal(kernel.migrations, 3);
      assert.deepEqual(
        reports.map((r) => [r.from, r.to, r.stateBytes]),
        [
          [0, 1, 8],
          [1, 0, 8],
          [0, 1, 8],
        ],
      );
      // The state went with every move: each message got its own running count, the last one the whole.
      assert.deepEqual(
        [...counts].sort((a, b) => a - b),
        Array.from({ length: total }, (_, i) => i + 1),
      );
      assert.deepEqual(last, { count: total, total: sum });
      assert.deepEqual((await kernel.call({ value: 5 })).toObject(), { count: total + 1, total: sum + 5 });

      // Two GPUDevices: the one the kernel left can go without it.
      await loseDevice(0);
      // Polled: its port does not hold the event loop, so a bare wait on `exited` could outlive everything else.
      await eventually(() => assert.match(bystander.metrics().lastError?.message ?? '', /WebGPU device lost/), 20_000);
      assert.equal(bystander.status, 'Failed');
      assert.deepEqual((await kernel.call({ value: 1 })).toObject(), { count: total + 2, total: sum + 6 });
      assert.equal(kernel.status, 'Active');
      await assert.rejects(bystander.call({ value: 1 }), (error: unknown) => error instanceof WebGpuError);
    } finally {
      await runtime.shutdown();
    }
  });
});
