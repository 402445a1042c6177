/**
 * A fault on the device (`__trap()`: what an illegal address or a failed device assert does) ends the kernel's
 * launch. The CUDA device thread sees the launch's stream fail and the kernel ends Failed, with the driver's error
 * name in the reason; waiting calls are answered with typed errors instead of hanging. On the emulated device
 * (CPU threads stand in for the GPU: no GPU on these machines), where a trap fails the launch's stream; a GPU
 * also poisons the whole context (every kernel of the device), which the emulator does not model. A file of its
 * own: a process whose device faulted is not one to go on testing in.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type DeadLetter, RingKernelRuntime } from '../src/index.js';
import { ADD_ONE_POISON, AddOneWords, TRAP_WORD, TrappingAddOne } from './fixtures/cuda-kernels.js';
import { eventually } from './support/eventually.js';
import { Random, TEST_SEED } from './support/random.js';

const EMULATOR = fileURLToPath(new URL('../../native/build/libcuda-emu.so', import.meta.url));
const words = (...values: number[]): Uint8Array => new Uint8Array(new Uint32Array(values).buffer);

describe('a fault on the device (emulated device: CPU threads stand in for the GPU)', () => {
  it('fails the kernel with the driver error, answers the waiting call, and accounts for the queued messages', async (t) => {
    if (!existsSync(EMULATOR)) return t.skip('skipped: the CUDA emulator library was not built (needs cc)');
    process.env.RINGKERNEL_LIBCUDA = EMULATOR;
    try {
      await using runtime = await RingKernelRuntime.builder().backend('cuda').config({ workers: 1 }).build();
      const letters: DeadLetter[] = [];
      runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
      const kernel = await runtime.launch(TrappingAddOne, 1, 1, { name: 'trapping', autoActivate: true });
      assert.deepEqual([...new Uint32Array((await kernel.call(words(1, 2))).slice().buffer)], [2, 3]);
      // Queued while paused, behind the fault: never handled, so each must come back as a dead letter.
      await kernel.deactivate();
      const doomed = kernel.call(words(TRAP_WORD));
      for (let i = 0; i < 5; i++) await kernel.send(words(100 + i));
      await kernel.activate();
      await assert.rejects(doomed, (error: unknown) => error instanceof Error && /trapping/.test(error.message));
      await kernel.exited;
      assert.equal(kernel.status, 'Failed');
      assert.match(kernel.metrics().lastError?.message ?? '', /CUDA_ERROR_LAUNCH_FAILED/);
      // The trapping frame and the five behind it were never handled: each is a dead letter (the kernel failed
      // mid-batch, so the device never released them), none is lost.
      const lost = letters.filter((letter) => letter.kernel === 'trapping' && letter.reason === 'kernel-failed');
      const values = lost.map((letter) => new Uint32Array(letter.payload.slice().buffer)[0]);
      assert.deepEqual(values, [TRAP_WORD, 100, 101, 102, 103, 104]);
      await assert.rejects(kernel.call(words(1)), (rejected: unknown) => rejected instanceof Error);
    } finally {
      delete process.env.RINGKERNEL_LIBCUDA;
    }
  });
});

describe('a supervised CUDA kernel (emulated device: CPU threads stand in for the GPU)', () => {
  for (const strategy of ['mapped', 'dma'] as const)
    it(`fails on a handler error (onHandlerError: fail) and is relaunched with its queue (${strategy}): every message once`, async (t) => {
      if (!existsSync(EMULATOR)) return t.skip('skipped: the CUDA emulator library was not built (needs cc)');
      process.env.RINGKERNEL_LIBCUDA = EMULATOR;
      try {
        await using runtime = await RingKernelRuntime.builder().backend('cuda').config({ workers: 1 }).build();
        const letters: DeadLetter[] = [];
        runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
        const supervisor = runtime.supervisor({
          name: 'gpu',
          maxRestarts: 100,
          windowMs: 10_000,
          backoff: { initialMs: 0 },
        });
        const kernel = await supervisor.launch(AddOneWords, 1, 1, {
          name: 'supervised-add-one',
          autoActivate: true,
          onHandlerError: 'fail',
          queueCapacity: 64,
          transferStrategy: strategy,
        });
        const random = new Random(TEST_SEED);
        const total = 600;
        const poisoned = new Set<number>();
        const outputs: number[] = [];
        const expected: number[] = [];
        for (let seq = 0; seq < total; seq++) {
          const poison = random.next() < 0.01;
          if (poison) poisoned.add(seq);
          else expected.push(seq + 1);
          await kernel.send(words(poison ? ADD_ONE_POISON : seq));
          for (let out = kernel.tryReceive(); out !== undefined; out = kernel.tryReceive()) {
            outputs.push(new Uint32Array(out.slice().buffer)[0] as number);
          }
        }
        while (outputs.length < expected.length)
          outputs.push(new Uint32Array((await kernel.receive(20_000)).slice().buffer)[0] as number);
        assert.ok(poisoned.size >= 2, `${poisoned.size} poison messages`);
        // Every good message answered once, in order, across the restarts; every poison one a dead letter.
        assert.deepEqual(outputs, expected);
        // The last failures may be seen after the last output is out: wait for the supervisor to settle.
        const failures = () =>
          letters.filter((letter) => letter.kernel === 'supervised-add-one' && letter.reason === 'handler-error');
        await eventually(() => assert.equal(failures().length, poisoned.size));
        // The failed messages come back on the output ring at once; the device thread fails the kernel when it sees
        // the device's failure count move, a moment later: wait for the restarts to have happened and settled.
        await eventually(() => assert.ok(kernel.restarts >= 1, `${kernel.restarts} restarts`));
        await eventually(() => assert.equal(kernel.status, 'Active'));
        for (const letter of failures())
          assert.deepEqual([...new Uint32Array(letter.payload.slice().buffer)], [ADD_ONE_POISON]);
        // The device thread sees a failure after the device's batch is out: a batch with several poison messages
        // fails the kernel once (a CPU kernel fails per message; a GPU kernel per batch).
        assert.ok(kernel.restarts >= 1 && kernel.restarts <= poisoned.size, `${kernel.restarts} restarts`);
        await supervisor.stop();
      } finally {
        delete process.env.RINGKERNEL_LIBCUDA;
      }
    });
});
