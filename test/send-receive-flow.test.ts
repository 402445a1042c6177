/**
 * Send everything, then read everything: with bounded queues that deadlocks (the output queue fills, the kernel
 * holds, the input fills, sends wait). The runtime says so — a warning naming the kernel, a counter, a send
 * timeout that says why — and the natural loops (`for await`, `receiveBatch`) read while sending.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, type KernelHandle, RingKernelRuntime, TimeoutError } from '../src/index.js';
import { AddOne } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';

type Numbers = { sender: number; seq: number; value: number };

describe('sending and receiving with bounded queues', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
  });
  after(() => runtime.shutdown());

  it('send-all-then-receive-all is detected: a warning naming the kernel, a counter, a timeout saying why', async () => {
    const warnings: (Error & { code?: string })[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on('warning', onWarning);
    try {
      const kernel = await runtime.launch(AddOne, 1, 1, { name: 'stuck', queueCapacity: 16, autoActivate: true });
      let sent = 0;
      let failure: unknown;
      try {
        for (let seq = 0; seq < 10_000; seq++) {
          await kernel.send({ sender: 0, seq, value: seq }, { timeout: 4000 });
          sent++;
        }
      } catch (error) {
        failure = error;
      }
      assert.ok(failure instanceof TimeoutError, String(failure));
      assert.equal(failure.code, ErrorCode.Timeout);
      assert.match(failure.message, /^send to kernel 'stuck' timed out after 4000 ms: deadlocked/);
      const deadlock = warnings.filter((warning) => warning.code === 'RK_SEND_DEADLOCK');
      assert.equal(deadlock.length, 1);
      assert.match(deadlock[0]?.message ?? '', /^kernel 'stuck': sends are deadlocked/);
      assert.equal(kernel.metrics().sendStalls, 1);
      // Nothing was lost: every message sent comes out, in order, once something reads.
      const seen: number[] = [];
      for await (const output of kernel) {
        seen.push(output.seq);
        if (seen.length === sent) break;
      }
      assert.deepEqual(
        seen,
        Array.from({ length: sent }, (_, seq) => seq),
      );
      await kernel.terminate();
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('for await reads while another task sends: everything arrives in order; it ends when the kernel has', async () => {
    const kernel = await runtime.launch(AddOne, 1, 1, { name: 'flowing', queueCapacity: 16, autoActivate: true });
    const total = 5000;
    const sending = (async () => {
      for (let seq = 0; seq < total; seq++) await kernel.send({ sender: 1, seq, value: seq });
    })();
    const values: number[] = [];
    for await (const output of kernel) {
      values.push(output.value);
      if (values.length === total) break;
    }
    await sending;
    assert.deepEqual(
      values,
      Array.from({ length: total }, (_, seq) => seq + 1),
    );
    assert.equal(kernel.metrics().sendStalls, 0);
    await kernel.terminate();
    const after: unknown[] = [];
    for await (const output of kernel) after.push(output);
    assert.deepEqual(after, [], 'a terminated kernel with nothing left ends the loop at once');
  });

  it('receiveBatch takes what is there, up to max, after waiting for the first', async () => {
    const kernel: KernelHandle<Numbers, Readonly<Numbers>> = await runtime.launch(AddOne, 1, 1, {
      name: 'batched',
      autoActivate: true,
    });
    for (let seq = 0; seq < 10; seq++) kernel.trySend({ sender: 2, seq, value: seq });
    await eventually(() => assert.equal(kernel.metrics().outputQueueDepth, 10));
    assert.deepEqual(
      (await kernel.receiveBatch(4)).map((output) => output.seq),
      [0, 1, 2, 3],
    );
    assert.deepEqual(
      (await kernel.receiveBatch(100)).map((output) => output.seq),
      [4, 5, 6, 7, 8, 9],
    );
    await assert.rejects(kernel.receiveBatch(0), /receiveBatch: max must be a positive integer, got 0/);
    await kernel.terminate();
  });
});
