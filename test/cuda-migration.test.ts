/**
 * Migrating a CUDA kernel between devices with its device state and its queue (issue 9's "the same code drives
 * GPUs"): the migrator's protocol (prepare a dormant instance on the target, quiesce, checkpoint, transfer,
 * restore, swap, resume) on the CUDA device thread. The state is copied device → host → device through the pause
 * handshake; the rings are the host's own (`mapped`, pinned for every device), so the queue is carried in place.
 * On two emulated devices (CPU threads stand in for the GPUs: there are none on these machines), under a stream of
 * messages, in a process of its own (the emulator's device count is read once).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PlacementError, RingKernelRuntime } from '../src/index.js';
import { DeviceTotal } from './fixtures/cuda-kernels.js';
import { Random, TEST_SEED } from './support/random.js';

const EMULATOR = fileURLToPath(new URL('../../native/build/libcuda-emu.so', import.meta.url));
process.env.RINGKERNEL_EMU_DEVICES = '2';

describe('migrating a CUDA kernel between devices (two emulated devices)', () => {
  it('moves the device state and carries the queue: every message once, in order, while senders keep sending', async (t) => {
    if (!existsSync(EMULATOR)) return t.skip('skipped: the CUDA emulator library was not built (needs cc)');
    process.env.RINGKERNEL_LIBCUDA = EMULATOR;
    try {
      await using runtime = await RingKernelRuntime.builder().backend('cuda').config({ workers: 1 }).build();
      assert.equal(runtime.gpuTopology().devices.length, 2);
      const kernel = await runtime.launch(DeviceTotal, 1, 1, {
        name: 'moving-total',
        device: 0,
        autoActivate: true,
        queueCapacity: 256,
      });
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
      await kernel.terminate();
    } finally {
      delete process.env.RINGKERNEL_LIBCUDA;
    }
  });

  it('refuses a CUDA kernel on dma: its rings live in the source device memory', async (t) => {
    if (!existsSync(EMULATOR)) return t.skip('skipped: the CUDA emulator library was not built (needs cc)');
    process.env.RINGKERNEL_LIBCUDA = EMULATOR;
    try {
      await using runtime = await RingKernelRuntime.builder().backend('cuda').config({ workers: 1 }).build();
      const kernel = await runtime.launch(DeviceTotal, 1, 1, { name: 'dma-total', device: 0, transferStrategy: 'dma' });
      await assert.rejects(
        runtime.kernelMigrator().migrateKernel(kernel, 0, 1),
        (error: unknown) => error instanceof PlacementError && /only 'mapped' CUDA kernels migrate/.test(error.message),
      );
      await kernel.terminate();
    } finally {
      delete process.env.RINGKERNEL_LIBCUDA;
    }
  });
});
