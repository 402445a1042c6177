/**
 * The runtime's `inspect` option: the lifecycle actors of kernels run in worker threads, yet an XState inspection
 * observer on the main thread sees them (actors, events, snapshots) beside the application's own machines.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createActor, createMachine, type InspectionEvent } from 'xstate';
import { RingKernelRuntime } from '../src/index.js';
import { Accumulator } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';

type Seen = { type: string; id: string; sessionId: string; value?: unknown; event?: string };

describe('runtime inspect option', () => {
  it("forwards every kernel's lifecycle inspection events from its worker to the user's inspector", async () => {
    const seen: Seen[] = [];
    const refs = new Map<string, InspectionEvent['actorRef']>();
    const inspect = (event: InspectionEvent): void => {
      const snapshot = 'snapshot' in event ? (event.snapshot as { value?: unknown }) : undefined;
      refs.set(event.actorRef.sessionId, event.actorRef);
      // What an inspector does with it: serialize.
      JSON.stringify({ snapshot, event: 'event' in event ? event.event : undefined });
      seen.push({
        type: event.type,
        id: (event.actorRef as { id?: string }).id ?? '',
        sessionId: event.actorRef.sessionId,
        ...(snapshot === undefined ? {} : { value: snapshot.value }),
        ...('event' in event && event.event !== undefined ? { event: event.event.type as string } : {}),
      });
    };
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).inspect(inspect).build();
    // The application's own machine, inspected by the same observer.
    const toggle = createActor(
      createMachine({ id: 'toggle', initial: 'off', states: { off: { on: { FLIP: 'on' } }, on: {} } }),
      {
        inspect,
      },
    ).start();
    try {
      const handle = await runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: 'watched' });
      await handle.activate();
      await handle.deactivate();
      await handle.activate();
      toggle.send({ type: 'FLIP' });
      await handle.terminate();
      await eventually(() => {
        const values = seen.filter((s) => s.id === 'watched' && s.type === '@xstate.snapshot').map((s) => s.value);
        assert.deepEqual(values.slice(-1), ['Terminated']);
      });
      const kernel = seen.filter((s) => s.id === 'watched');
      assert.ok(
        kernel.some((s) => s.type === '@xstate.actor'),
        'the kernel appears as an actor',
      );
      const received = kernel.filter((s) => s.type === '@xstate.event').map((s) => s.event);
      for (const type of ['LAUNCHED', 'ACTIVATE', 'DEACTIVATE', 'TERMINATE']) {
        assert.ok(received.includes(type), `${type} in ${received.join(', ')}`);
      }
      const values = kernel.filter((s) => s.type === '@xstate.snapshot').map((s) => s.value);
      const order = ['Launched', 'Active', 'Deactivated', 'Active', 'Terminated'];
      let at = 0;
      for (const value of values) if (value === order[at]) at++;
      assert.equal(at, order.length, `snapshots ${values.join(' → ')}`);
      // One actor per kernel instance, named after the kernel, as system.get would find it.
      const sessions = new Set(kernel.map((s) => s.sessionId));
      assert.equal(sessions.size, 1);
      const ref = refs.get([...sessions][0] as string);
      assert.equal((ref as { id?: string } | undefined)?.id, 'watched');
      // Beside the application's own machine.
      assert.ok(
        seen.some((s) => s.sessionId === toggle.sessionId && s.type === '@xstate.snapshot' && s.value === 'on'),
      );
    } finally {
      toggle.stop();
      await runtime.shutdown();
    }
  });

  it('refuses an inspector that is not an observer, naming the option', () => {
    assert.throws(
      () => RingKernelRuntime.builder().inspect(42 as never),
      /inspect must be an XState inspection observer/,
    );
  });
});
