import { setup } from 'xstate';

/** A runtime's lifecycle state. */
export type RuntimeLifecycleState = 'Initializing' | 'Running' | 'Draining' | 'Stopping' | 'Stopped';

/** Events of the runtime lifecycle machine. */
export type RuntimeLifecycleEvent =
  | { readonly type: 'START' }
  | { readonly type: 'DRAIN' }
  | { readonly type: 'STOP' }
  | { readonly type: 'STOPPED' };

/**
 * The runtime's lifecycle (the seed's `LifecycleState`): Initializing → Running → Draining → Stopping → Stopped.
 * Only Running accepts new work; Draining lets existing work complete and refuses new work; Stopping terminates
 * the kernels and the workers. A runtime may stop from any state before Stopped, drained or not.
 *
 * @example
 * const actor = createActor(runtimeLifecycle).start();
 * actor.send({ type: 'START' });
 * actor.getSnapshot().value; // 'Running'
 */
export const runtimeLifecycle = setup({
  types: { events: {} as RuntimeLifecycleEvent },
}).createMachine({
  id: 'runtime',
  initial: 'Initializing',
  states: {
    Initializing: { on: { START: 'Running', DRAIN: 'Draining', STOP: 'Stopping' } },
    Running: { on: { DRAIN: 'Draining', STOP: 'Stopping' } },
    Draining: { on: { STOP: 'Stopping' } },
    Stopping: { on: { STOPPED: 'Stopped' } },
    Stopped: { type: 'final' },
  },
});
