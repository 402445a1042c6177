import { assign, setup } from 'xstate';
import type { ControlBlock } from '../wire/control-block.js';
import { KernelStatus, type KernelStatusName } from '../wire/kernel-status.js';

/** Events the kernel lifecycle machine accepts. */
export type KernelLifecycleEvent =
  /** The kernel is resident. `activate`: and it is to take input at once (a launch's `autoActivate`). */
  | { type: 'LAUNCHED'; activate?: boolean }
  | { type: 'ACTIVATE' }
  | { type: 'DEACTIVATE' }
  | { type: 'TERMINATE'; drain: boolean }
  | { type: 'DRAINED' }
  | { type: 'FAIL'; reason: string };

/** What the machine is created with: the ControlBlock it mirrors its state into. */
export interface KernelLifecycleInput {
  readonly controlBlock: ControlBlock;
}

interface KernelLifecycleContext {
  readonly controlBlock: ControlBlock;
  /** Whether pending input is processed (true) or dead-lettered (false) on termination. */
  drain: boolean;
  /** Why the kernel failed, once it has. */
  failure: string | undefined;
  /** LAUNCHED asked for activation: Launched passes on to Active in the same macrostep. */
  activateOnLaunch: boolean;
}

/** Every running state ends the same way: Terminating, remembering whether to drain. */
const terminate = {
  target: 'Terminating',
  actions: assign<KernelLifecycleContext, KernelLifecycleEvent, undefined, KernelLifecycleEvent, never>({
    drain: ({ event }) => (event.type === 'TERMINATE' ? event.drain : true),
  }),
} as const;

/**
 * A kernel's lifecycle: Created → Launched → Active ⇄ Deactivated → Terminating → Terminated, and Failed from
 * any state that is not final. The actor runs in the worker that hosts the kernel; every state's entry mirrors
 * the state into the ControlBlock's `status` word (and `is_active`), so the host reads the state without a
 * message. Events a state does not accept are refused by the host with `InvalidStateError` before they are sent,
 * using {@link lifecycleAccepts}, which reads this machine's own definition.
 *
 * @example
 * const actor = createActor(kernelLifecycle, { input: { controlBlock } }).start();
 * actor.send({ type: 'LAUNCHED' });
 * actor.send({ type: 'ACTIVATE' }); // status word is now KernelStatus.Active
 * // or, in one macrostep (Created → Launched → Active): actor.send({ type: 'LAUNCHED', activate: true })
 */
export const kernelLifecycle = setup({
  types: {
    context: {} as KernelLifecycleContext,
    events: {} as KernelLifecycleEvent,
    input: {} as KernelLifecycleInput,
  },
  actions: {
    mirror: ({ context }, status: KernelStatusName) => {
      // is_active first when pausing, last when resuming: a reader that sees Active also sees is_active = 1.
      if (status !== 'Active') context.controlBlock.setActive(false);
      context.controlBlock.setStatus(KernelStatus[status]);
      if (status === 'Active') context.controlBlock.setActive(true);
    },
  },
}).createMachine({
  id: 'kernel',
  initial: 'Created',
  context: ({ input }) => ({
    controlBlock: input.controlBlock,
    drain: true,
    failure: undefined,
    activateOnLaunch: false,
  }),
  on: {
    FAIL: { target: '.Failed', actions: assign({ failure: ({ event }) => event.reason }) },
  },
  states: {
    Created: {
      entry: { type: 'mirror', params: 'Created' },
      on: {
        LAUNCHED: {
          target: 'Launched',
          actions: assign({ activateOnLaunch: ({ event }) => event.activate === true }),
        },
      },
    },
    Launched: {
      entry: { type: 'mirror', params: 'Launched' },
      // A launch with autoActivate: one event (LAUNCHED) takes the kernel through Launched to Active, instead of
      // a second event and macrostep for ACTIVATE. Launched is entered only from Created, so this runs once.
      always: { guard: ({ context }) => context.activateOnLaunch, target: 'Active' },
      on: {
        ACTIVATE: 'Active',
        TERMINATE: terminate,
      },
    },
    Active: {
      entry: { type: 'mirror', params: 'Active' },
      on: {
        DEACTIVATE: 'Deactivated',
        TERMINATE: terminate,
      },
    },
    Deactivated: {
      entry: { type: 'mirror', params: 'Deactivated' },
      on: {
        ACTIVATE: 'Active',
        TERMINATE: terminate,
      },
    },
    Terminating: {
      entry: { type: 'mirror', params: 'Terminating' },
      on: { DRAINED: 'Terminated' },
    },
    Terminated: {
      entry: { type: 'mirror', params: 'Terminated' },
      type: 'final',
    },
    Failed: {
      entry: { type: 'mirror', params: 'Failed' },
      type: 'final',
    },
  },
});

/** The lifecycle events a host can ask for. */
export type LifecycleCommand = 'ACTIVATE' | 'DEACTIVATE' | 'TERMINATE';

/** Where each command leads, for error messages. */
export const COMMAND_TARGET: Readonly<Record<LifecycleCommand, KernelStatusName>> = {
  ACTIVATE: 'Active',
  DEACTIVATE: 'Deactivated',
  TERMINATE: 'Terminating',
};

/**
 * Whether a kernel in `state` accepts `event`, read from the machine definition itself (so the host's checks
 * and the worker's machine can never disagree).
 */
export function lifecycleAccepts(state: KernelStatusName, event: KernelLifecycleEvent['type']): boolean {
  const node = kernelLifecycle.config.states?.[state];
  if (node === undefined || node.type === 'final') return false;
  return event === 'FAIL' || (node.on !== undefined && event in node.on);
}
