import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assign, createActor, sendTo, setup, toPromise, waitFor } from 'xstate';
import { fromKernel, type KernelActorOutputEvent, KernelFailedError, RingKernelRuntime } from '../src/internal.js';
import { Accumulator, KILL_WORKER, Splitter } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';

describe('fromKernel: kernels as XState actors', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
  });
  after(() => runtime.shutdown());

  it('a machine invokes a kernel, calls it, and reaches a final state from its responses', async () => {
    const machine = setup({
      types: {
        context: {} as { total: number; answers: number },
        events: {} as KernelActorOutputEvent<{ total: number }>,
      },
      actors: { accumulator: fromKernel(Accumulator, { runtime }) },
    }).createMachine({
      context: { total: 0, answers: 0 },
      initial: 'working',
      states: {
        working: {
          invoke: { id: 'acc', src: 'accumulator', systemId: 'accumulator', input: { name: 'actor-acc' } },
          entry: [1, 2, 3, 4].map((value) =>
            sendTo('acc', { type: 'kernel.call', requestId: value, message: { sender: 0, seq: value, value } }),
          ),
          on: {
            'kernel.response': {
              actions: assign(({ context, event }) => ({ total: event.output.total, answers: context.answers + 1 })),
            },
          },
          always: { guard: ({ context }) => context.answers === 4, target: 'done' },
        },
        done: { type: 'final' },
      },
      output: ({ context }) => context.total,
    });
    const actor = createActor(machine).start();
    const found = actor.system.get('accumulator');
    assert.ok(found, 'system.get finds the kernel actor by its systemId');
    assert.equal(await toPromise(actor), 10, 'responses, in order, carried the running total');
    // Leaving the state stopped the invoked actor, which terminates the kernel.
    await eventually(() => assert.throws(() => runtime.kernel('actor-acc')));
  });

  it('carries the kernel status and metrics in its snapshot; outputs that answer no call reach the parent', async () => {
    const outputs: number[] = [];
    const machine = setup({
      actors: { splitter: fromKernel(Splitter, { runtime, deliver: 'both' }) },
    }).createMachine({
      invoke: { id: 'split', src: 'splitter', systemId: 'splitter' },
      on: {
        'kernel.output': {
          actions: ({ event }) => outputs.push((event as unknown as { output: { total: number } }).output.total),
        },
      },
    });
    const actor = createActor(machine).start();
    const child = actor.system.get('splitter');
    const emitted: unknown[] = [];
    child.on('kernel.output', (event: unknown) => emitted.push(event));
    child.send({ type: 'kernel.send', message: { sender: 1, seq: 1, value: 5 } }); // queued until launched
    await eventually(() => assert.deepEqual(outputs, [0, 1, 2, 3, 4]));
    assert.equal(emitted.length, 5, 'also emitted for actor.on listeners');
    // The last output can reach the parent before the worker counts the message as processed, and a snapshot is
    // refreshed only by the actor's own events: ask for a refresh until the count is in (never wait unbounded).
    const snapshot = await eventually(() => {
      child.send({ type: 'kernel.$refresh' });
      const s = child.getSnapshot() as { metrics?: { messagesProcessed: number }; kernelStatus: string };
      assert.ok((s.metrics?.messagesProcessed ?? 0) >= 1, 'the snapshot carries the processed count');
      return s;
    });
    assert.equal(snapshot.kernelStatus, 'Active');
    child.send({ type: 'kernel.deactivate' });
    await waitFor(child, (s: { kernelStatus: string }) => s.kernelStatus === 'Deactivated', { timeout: 10_000 });
    actor.stop();
    await eventually(() => assert.throws(() => runtime.kernel('test.splitter')));
  });

  it('turns a kernel failure into the actor error, handled with onError', async () => {
    const machine = setup({
      actors: { accumulator: fromKernel(Accumulator, { runtime }) },
    }).createMachine({
      initial: 'running',
      states: {
        running: {
          invoke: {
            id: 'acc',
            src: 'accumulator',
            input: { name: 'actor-doomed' },
            onError: { target: 'failed', actions: assign({ error: ({ event }) => event.error }) },
          },
          entry: sendTo('acc', { type: 'kernel.send', message: { sender: 0, seq: 0, value: KILL_WORKER } }),
        },
        failed: { type: 'final' },
      },
      context: { error: undefined as unknown },
    });
    const actor = createActor(machine).start();
    await toPromise(actor);
    const error = actor.getSnapshot().context.error;
    assert.ok(error instanceof KernelFailedError, `got ${String(error)}`);
  });
});
