/**
 * The type helpers a TypeScript user needs: a kernel's input and output types, and the `fromKernel` events, all
 * from `typeof Kernel` — no hand-written message shapes. `npm test` type-checks this file; the assertions check
 * that what the types describe is what arrives.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assign, createActor, sendTo, setup, toPromise } from 'xstate';
import {
  fromKernel,
  type InputOf,
  type KernelCommandsOf,
  type KernelEventsOf,
  type OutputOf,
  RingKernelRuntime,
} from '../src/index.js';
import { Accumulator } from './fixtures/kernels.js';

describe('type helpers', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
  });
  after(() => runtime.shutdown());

  it('InputOf and OutputOf are what send/call take and give', async () => {
    const request: InputOf<typeof Accumulator> = { sender: 1, seq: 1, value: 5 };
    // @ts-expect-error: the accumulator's input has no field 'celsius'
    const wrong: InputOf<typeof Accumulator> = { sender: 1, seq: 1, celsius: 5 };
    assert.equal('celsius' in wrong, true);
    const kernel = await runtime.launch(Accumulator, { name: 'typed', autoActivate: true });
    const answer: OutputOf<typeof Accumulator> = await kernel.call(request);
    const total: number = answer.total;
    assert.equal(total, 5);
    await kernel.terminate();
  });

  it('KernelEventsOf and KernelCommandsOf type a machine that invokes the kernel', async () => {
    const machine = setup({
      types: {
        context: {} as { total: number },
        events: {} as KernelEventsOf<typeof Accumulator>,
      },
      actors: { accumulator: fromKernel(Accumulator, { runtime }) },
    }).createMachine({
      context: { total: 0 },
      initial: 'working',
      states: {
        working: {
          invoke: { id: 'acc', src: 'accumulator', input: { name: 'typed-actor' } },
          entry: sendTo('acc', {
            type: 'kernel.call',
            requestId: 1,
            message: { sender: 2, seq: 1, value: 7 },
          } satisfies KernelCommandsOf<typeof Accumulator>),
          on: {
            'kernel.response': { target: 'done', actions: assign({ total: ({ event }) => event.output.total }) },
          },
        },
        done: { type: 'final' },
      },
      output: ({ context }) => context.total,
    });
    assert.equal(await toPromise(createActor(machine).start()), 7);
  });
});
