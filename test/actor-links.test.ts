/**
 * Kernels spawned as actors, linked declaratively: `fromKernel(K, { connectTo })` connects the kernel's outputs
 * into another kernel once both are launched, in whichever order they launch.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assign, createActor, sendTo, setup, toPromise } from 'xstate';
import { fromKernel, type KernelEventsOf, RingKernelRuntime, RuntimeShutDownError } from '../src/index.js';
import { AddOne, Double } from './fixtures/kernels.js';

describe('kernels spawned as actors, linked with connectTo', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 2 }).build();
  });
  after(() => runtime.shutdown());

  for (const order of ['producer first', 'consumer first'] as const) {
    it(`links the producer's outputs into the consumer (${order})`, async () => {
      const producer = { id: 'addOne', src: 'addOne', input: { name: `add-${order}` } } as const;
      const consumer = { id: 'double', src: 'double', input: { name: `double-${order}` } } as const;
      const machine = setup({
        types: { context: {} as { values: number[] }, events: {} as KernelEventsOf<typeof Double> },
        actors: {
          addOne: fromKernel(AddOne, { runtime, connectTo: [`double-${order}`] }),
          double: fromKernel(Double, { runtime }),
        },
      }).createMachine({
        context: { values: [] },
        initial: 'working',
        states: {
          working: {
            invoke: order === 'producer first' ? [producer, consumer] : [consumer, producer],
            entry: [1, 2, 3].map((value) =>
              sendTo('addOne', { type: 'kernel.send', message: { sender: 0, seq: value, value } }),
            ),
            on: {
              'kernel.output': {
                actions: assign({ values: ({ context, event }) => [...context.values, event.output.value] }),
              },
            },
            always: { guard: ({ context }) => context.values.length === 3, target: 'done' },
          },
          done: { type: 'final' },
        },
        output: ({ context }) => context.values,
      });
      // (value + 1) × 2: every value went through both kernels, the second reached over the link.
      assert.deepEqual(await toPromise(createActor(machine).start()), [4, 6, 8]);
    });
  }

  it('whenLaunched waits for a kernel by name, and rejects when the runtime shuts down first', async () => {
    const other = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
    const waiting = other.whenLaunched('later');
    const launched = await other.launch(AddOne, { autoActivate: false, name: 'later' });
    assert.equal(await waiting, launched);
    const never = assert.rejects(other.whenLaunched('never'), RuntimeShutDownError);
    await other.shutdown();
    await never;
  });
});
