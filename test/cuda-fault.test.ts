/**
 * A supervised CUDA kernel that fails on its handler's error (`onHandlerError: 'fail'`) is relaunched with its
 * queue, on the emulated device (CPU threads stand in for the GPU: no GPU on these machines). A fault on the
 * device (`__trap()`), which loses the device, is test/cuda-device-lost.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADD_ONE_POISON, AddOneWords } from './fixtures/cuda-kernels.js';
import { onEmulatedDevice } from './support/emulated-cuda.js';
import { eventually } from './support/eventually.js';
import { Random, TEST_SEED } from './support/random.js';

const words = (...values: number[]): Uint8Array => new Uint8Array(new Uint32Array(values).buffer);

describe('a supervised CUDA kernel (emulated device: CPU threads stand in for the GPU)', () => {
  for (const strategy of ['mapped', 'dma'] as const)
    it(`fails on a handler error (onHandlerError: fail) and is relaunched with its queue (${strategy}): every message once`, (t) =>
      onEmulatedDevice(t, async (runtime, letters) => {
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
      }));
});
