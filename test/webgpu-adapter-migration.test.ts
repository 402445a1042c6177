/**
 * Migrating a WebGPU kernel between two different adapters of one machine: device 0 on Dawn's Vulkan backend (Mesa's
 * software lavapipe where the machine has no GPU) and device 1 on Dawn's OpenGL ES backend (the system's Mesa EGL,
 * llvmpipe), under one runtime (`deviceBackends: ['default', 'opengles']`). The kernel's pipeline is compiled
 * again for the other API, its state buffer is read back on one adapter and written on the other, and its queue
 * is carried in the rings while senders keep sending.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { probeWebGpu } from '../src/backends/webgpu/webgpu-adapter.js';
import { type MigrationReport, RingKernelRuntime } from '../src/index.js';
import { WgslTaggedTotal } from './fixtures/webgpu-kernels.js';
import { Random, TEST_SEED } from './support/random.js';
import { webgpuMissing } from './support/webgpu.js';

/** Why there is no OpenGL ES adapter here (Dawn's OpenGL ES backend needs Mesa's EGL), or undefined. */
async function openGlEsMissing(): Promise<string | undefined> {
  const probe = await probeWebGpu({ allowFallback: true, nativeBackend: 'opengles' });
  return probe.available ? undefined : `skipped: no OpenGL ES adapter (${probe.reason})`;
}

describe('migrating a WebGPU kernel between two adapters, Vulkan and OpenGL ES (real adapters)', () => {
  it('moves state and queue 0 → 1 → 0 → 1 while senders send: every answer once, in order, the sum exact', async (t) => {
    const skip = (await webgpuMissing()) ?? (await openGlEsMissing());
    if (skip !== undefined) return t.skip(skip);
    const runtime = await RingKernelRuntime.builder()
      .backend('webgpu', { allowFallback: true, deviceBackends: ['default', 'opengles'] })
      .config({ workers: 2, devices: 2 })
      .build();
    try {
      const kernel = await runtime.launch(WgslTaggedTotal, 1, 1, {
        name: 'tagged-totals',
        device: 0,
        autoActivate: true,
        queueCapacity: 256,
      });
      const seed = TEST_SEED ^ 0x0a0b;
      t.diagnostic(`seed ${seed}`);
      const random = new Random(seed);
      const total = 8000;
      const values = Array.from({ length: total }, () => random.int(0, 1000));
      // Three moves at seeded points, each started while the sender keeps sending (it is not awaited there); a
      // move still running at the next point (a loaded machine) delays the next one, it does not skip it.
      const movesAt = [random.int(1000, 2500), random.int(3500, 5000), random.int(6000, 7000)];
      const answers: { seq: number; count: number; total: number }[] = [];
      const receiving = (async () => {
        while (answers.length < total) answers.push((await kernel.receive(30_000)).toObject());
      })();
      const reports: MigrationReport[] = [];
      let moving: Promise<void> | undefined;
      for (let seq = 0; seq < total; seq++) {
        await kernel.send({ seq, value: values[seq] as number });
        if (moving === undefined && seq >= (movesAt[reports.length] ?? total)) {
          const from = kernel.device;
          moving = runtime
            .kernelMigrator()
            .migrateKernel(kernel, from, 1 - from)
            .then((report) => {
              reports.push(report);
              moving = undefined;
            });
        }
      }
      await moving;
      await receiving;
      t.diagnostic(
        reports
          .map((r) => `${r.from}→${r.to}: carried ${r.messagesCarried}, pause ${r.pauseMs.toFixed(1)} ms`)
          .join('; '),
      );

      // The two devices are two adapters: different native APIs, different drivers.
      const [vulkan, gles] = runtime.gpuTopology().devices.map((device) => device.webgpuAdapter);
      t.diagnostic(`device 0: ${vulkan?.description}; device 1: ${gles?.description}`);
      assert.equal(vulkan?.nativeBackend, 'default');
      assert.equal(gles?.nativeBackend, 'opengles');
      assert.match(gles?.description ?? '', /OpenGL ES/);
      assert.doesNotMatch(vulkan?.description ?? '', /OpenGL/);

      assert.deepEqual(
        reports.map((r) => [r.from, r.to, r.stateBytes]),
        [
          [0, 1, 8],
          [1, 0, 8],
          [0, 1, 8],
        ],
      );
      assert.equal(kernel.device, 1);
      assert.equal(kernel.migrations, 3);
      assert.ok(
        reports.some((r) => r.messagesCarried > 0),
        'some messages were queued at a swap and carried to the other adapter',
      );
      // Every input answered once, in the order sent, across both adapters.
      assert.deepEqual(
        answers.map((a) => a.seq),
        Array.from({ length: total }, (_, seq) => seq),
      );
      // The state went with every move: each message got its own running count, and the last count the whole sum.
      assert.deepEqual(
        answers.map((a) => a.count).sort((a, b) => a - b),
        Array.from({ length: total }, (_, i) => i + 1),
      );
      const sum = values.reduce((a, b) => a + b, 0);
      assert.equal(answers.find((a) => a.count === total)?.total, sum);
      // And it goes on exactly on the OpenGL ES adapter.
      assert.deepEqual((await kernel.call({ seq: total, value: 7 })).toObject(), {
        seq: total,
        count: total + 1,
        total: sum + 7,
      });
    } finally {
      await runtime.shutdown();
    }
  });
});
