/**
 * Migrating a CUDA kernel between devices with its device state and its queue (issue 9's "the same code drives
 * GPUs"): the migrator's protocol (prepare a dormant instance on the target, quiesce, checkpoint, transfer,
 * restore, swap, resume) on the CUDA device thread. The state is copied device → host → device through the pause
 * handshake. `mapped`: the rings are the host's own (pinned for every device), so the queue is carried in place.
 * `dma`: the rings' replicas are in the source device's memory, so the target gets its own, which its mirror fills
 * from the host rings at the swap (queue included) after the source's mirror has carried the last outputs home.
 * On two emulated devices (CPU threads stand in for the GPUs: there are none on these machines), under a stream of
 * messages, in a process of its own (the emulator's device count is read once).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrationError } from '../src/internal.js';
import { DeviceTotal } from './fixtures/cuda-kernels.js';
import { onEmulatedDevice } from './support/emulated-cuda.js';
import { Random, TEST_SEED } from './support/random.js';

process.env.RINGKERNEL_EMU_DEVICES = '2';

describe('migrating a CUDA kernel between devices (two emulated devices)', () => {
  for (const strategy of ['mapped', 'dma'] as const)
    it(`moves the device state and carries the queue (${strategy}): every message once, in order, while senders keep sending`, (t) =>
      onEmulatedDevice(t, async (runtime) => {
        assert.equal(runtime.gpuTopology().devices.length, 2);
        const kernel = await runtime.launch(DeviceTotal, 1, 1, {
          name: 'moving-total',
          device: 0,
          autoActivate: true,
          queueCapacity: 256,
          transferStrategy: strategy,
        });
        assert.equal(kernel.metrics().transferStrategy, strategy);
        const replicas = [kernel.transfer.devicePointers?.input];
        const random = new Random(TEST_SEED);
        const total = 3_000;
        const values = Array.from({ length: total }, () => random.int(0, 1000) / 8);
        const outputs: { seq: number; count: number; total: number }[] = [];
        const receiving = (async () => {
          while (outputs.length < total) {
            const out = await kernel.receive();
            outputs.push({ seq: out.seq, count: out.count, total: out.total });
          }
        })();
        const reports = [];
        for (let seq = 0; seq < total; seq++) {
          await kernel.send({ sender: 2, seq, value: values[seq] as number });
          // Three migrations while messages flow: 0 → 1 → 0 → 1.
          if (seq % 1_000 === 500) {
            const from = kernel.device;
            reports.push(await runtime.kernelMigrator().migrateKernel(kernel, from, 1 - from));
            assert.equal(kernel.device, 1 - from);
            replicas.push(kernel.transfer.devicePointers?.input);
          }
        }
        await receiving;
        assert.equal(reports.length, 3);
        for (const report of reports) {
          assert.equal(report.stateBytes, 16, 'the device state moved');
          assert.ok(report.pauseMs >= 0);
        }
        t.diagnostic(`pauses: ${reports.map((r) => r.pauseMs.toFixed(2)).join(', ')} ms`);
        // One output per message, in order, and the running count and total never restart: the state moved.
        assert.deepEqual(
          outputs.map((o) => o.seq),
          Array.from({ length: total }, (_, seq) => seq),
        );
        assert.deepEqual(
          outputs.map((o) => o.count),
          Array.from({ length: total }, (_, seq) => seq + 1),
        );
        let sum = 0;
        const sums = values.map((value) => (sum += value));
        assert.deepEqual(
          outputs.map((o) => o.total),
          sums,
        );
        assert.equal(kernel.migrations, 3);
        if (strategy === 'dma') {
          // Each move gave the new instance replicas of its own (allocated before the old ones were freed).
          for (let i = 1; i < replicas.length; i++) assert.notEqual(replicas[i], replicas[i - 1], `move ${i}`);
          assert.ok(replicas.every((pointer) => typeof pointer === 'bigint'));
          const moved = kernel.metrics().transfer;
          assert.ok((moved?.input.frames ?? 0) > 0, "the last device's mirror carried input");
        } else {
          assert.deepEqual(replicas, [undefined, undefined, undefined, undefined]);
        }
        await kernel.terminate();
      }));

  it('rolls a dma migration back when a phase fails: the target replicas go, the kernel runs on where it was', (t) =>
    onEmulatedDevice(t, async (runtime) => {
      const kernel = await runtime.launch(DeviceTotal, 1, 1, {
        name: 'dma-total',
        device: 0,
        transferStrategy: 'dma',
        autoActivate: true,
      });
      const before = kernel.transfer.devicePointers;
      assert.equal((await kernel.call({ sender: 1, seq: 0, value: 2 })).total, 2);
      await assert.rejects(
        runtime.kernelMigrator().migrateKernel(kernel, 0, 1, { failAt: 'restore' }),
        (error: unknown) => error instanceof MigrationError && error.rolledBack,
      );
      assert.equal(kernel.device, 0);
      assert.deepEqual(kernel.transfer.devicePointers, before, 'the source replicas stay in use');
      const answer = await kernel.call({ sender: 1, seq: 1, value: 3 });
      assert.deepEqual([answer.count, answer.total], [2, 5], 'the state was kept');
      // A later migration goes through.
      await runtime.kernelMigrator().migrateKernel(kernel, 0, 1);
      const moved = await kernel.call({ sender: 1, seq: 2, value: 4 });
      assert.deepEqual([kernel.device, moved.count, moved.total], [1, 3, 9]);
      await kernel.terminate();
    }));
});
