import type { ActorLogic, ActorSystem, AnyActorRef, EventObject, Snapshot } from 'xstate';

/** Any actor system (xstate exports the generic, not its `any` form). */
// biome-ignore lint/suspicious/noExplicitAny: matches xstate's own AnyActorSystem, which it does not export.
type AnyActorSystem = ActorSystem<any>;

import type { KernelRef } from '../cluster/cluster-ports.js';
import { ArgumentTypeError } from '../errors/argument-errors.js';
import { InvalidStateError, KernelFailedError } from '../errors/runtime-errors.js';
import type { AnyKernelDefinition, InputOf, KernelDefinition, OutputOf } from '../kernel/kernel-definition.js';
import type { KernelHandle } from '../runtime/kernel-handle.js';
import type { Dim3, KernelMetrics } from '../runtime/kernel-handle-options.js';
import type { LaunchOptions, RingKernelRuntime } from '../runtime/runtime.js';
import type { Supervisor } from '../supervision/supervisor.js';
import type { KernelStatusName } from '../wire/kernel-status.js';

/** Events a kernel actor accepts. */
export type KernelActorEvent<In = unknown> =
  /** Sends a message to the kernel (waits for room in order; rejected sends fail the actor). */
  | { type: 'kernel.send'; message: In }
  /** Sends a request; the response comes back to the parent as `kernel.response` with the same `requestId`. */
  | { type: 'kernel.call'; message: In; requestId: string | number; timeout?: number }
  | { type: 'kernel.activate' }
  | { type: 'kernel.deactivate' }
  | { type: 'kernel.terminate'; drain?: boolean };

/** Events a kernel actor delivers to its parent (and emits, for `actor.on(...)` listeners). */
export type KernelActorOutputEvent<Out = unknown> =
  /** An output the kernel produced that answers no call. */
  | { type: 'kernel.output'; kernel: string; output: Out }
  /** The response to a `kernel.call`. */
  | { type: 'kernel.response'; kernel: string; requestId: string | number; output: Out }
  /** A `kernel.call` that failed (the handler threw, it timed out, the kernel failed). */
  | { type: 'kernel.callFailed'; kernel: string; requestId: string | number; error: Error }
  /** The kernel's lifecycle state changed. */
  | { type: 'kernel.status'; kernel: string; status: KernelStatusName };

/**
 * The events a `fromKernel` actor of kernel `K` sends its parent, for `setup({ types: { events } })`:
 * `KernelEventsOf<typeof Averager>`.
 */
export type KernelEventsOf<K> = KernelActorOutputEvent<OutputOf<K>>;

/** The events a `fromKernel` actor of kernel `K` accepts (`sendTo(id, …)`). */
export type KernelCommandsOf<K> = KernelActorEvent<InputOf<K>>;

/** A kernel actor's snapshot: the kernel's status and metrics ride along. */
export type KernelActorSnapshot<Out = unknown> = Snapshot<undefined> & {
  /** The launch's name. */
  readonly kernel: string;
  readonly kernelStatus: KernelStatusName;
  /** Metrics as of the last transition (outputs, responses and lifecycle changes refresh them). */
  readonly metrics: KernelMetrics | undefined;
  /** The handle, once launched: the data plane, for code that wants it (`trySend` in a tight loop). */
  readonly handle: KernelHandle<unknown, Out> | undefined;
};

/** Options of {@link fromKernel}. */
export interface FromKernelOptions {
  /** The runtime to launch in (or pass `runtime` in the actor's input). */
  readonly runtime?: RingKernelRuntime;
  readonly gridSize?: Dim3;
  readonly blockSize?: Dim3;
  /** Launch options; `autoActivate` defaults to true here (an actor that is started is working). */
  readonly launch?: LaunchOptions;
  /**
   * Launch the kernel under this supervisor: a failure is then restarted (the actor keeps running, its kernel
   * keeps its queue) and becomes the actor's error only once the supervisor gives the kernel up.
   */
  readonly supervisor?: Supervisor;
  /**
   * Kernels (launch names) to link this kernel's outputs into, declaratively: each link is made with
   * `runtime.connect` once both kernels are launched, whichever launches first — the way to wire kernels that
   * are spawned or invoked as actors. A link that cannot be made (mismatched types) is the actor's error.
   */
  readonly connectTo?: readonly string[];
  /** Where outputs go: the parent actor (as events), emitted (`actor.on`), or both (default). */
  readonly deliver?: 'parent' | 'emit' | 'both';
}

/** Input a kernel actor may be given (overrides the options). */
export interface KernelActorInput {
  readonly runtime?: RingKernelRuntime;
  /** The launch's name (default: the kernel id); unique among live kernels. */
  readonly name?: string;
}

type Internal =
  | { type: 'xstate.stop' }
  | { type: 'kernel.$launched'; handle: KernelHandle }
  | { type: 'kernel.$failed'; error: Error }
  | { type: 'kernel.$refresh' };

/**
 * What the actor drives: a handle it launched, or a reference it was given (a kernel on another node of a cluster,
 * whose lifecycle belongs to that node: no activate, deactivate or terminate here, no exit to watch).
 */
type Driven = KernelRef & Partial<Pick<KernelHandle, 'activate' | 'deactivate' | 'terminate' | 'exited'>>;

/** Whether `kernel` is a reference to a running kernel (rather than a definition or a kernel id). */
function isRef(kernel: unknown): kernel is KernelRef {
  return typeof kernel === 'object' && kernel !== null && 'trySend' in kernel && 'call' in kernel;
}

interface Instance {
  handle: Driven | undefined;
  readonly queued: KernelActorEvent[];
  stopped: boolean;
  /** Delivers an output event to the parent and/or emits it, as the logic's `deliver` option says. */
  readonly tell: (event: KernelActorOutputEvent<unknown>) => void;
  /** Whether the declared links (`connectTo`) are made: until then events wait in `queued`. */
  linked: boolean;
  /** Settles the actor's {@link kernelActorExited} promise: its kernel has left its worker, or never launched. */
  readonly ended: () => void;
}

const instances = new WeakMap<AnyActorRef, Instance>();
const endings = new WeakMap<AnyActorRef, Promise<void>>();

/**
 * Resolves once the kernel of a `fromKernel` actor has ended — terminated (as stopping the actor asks), failed,
 * or never launched. Stopping an actor is synchronous in XState while terminating a kernel is not: await this
 * after `actor.stop()` (or after leaving the state that invoked it) to know the kernel is gone. Never rejects.
 *
 * @example
 * actor.stop();
 * await kernelActorExited(actor);
 */
export function kernelActorExited(actor: AnyActorRef): Promise<void> {
  return endings.get(actor) ?? Promise.resolve();
}

/**
 * Actor logic that runs a ringkernel kernel as an XState actor, in the style of `fromPromise` and `fromCallback`:
 * `spawn` or `invoke` it, give it a `systemId` to reach it through `system.get`. Starting the actor launches (and
 * activates) the kernel; events become kernel messages or lifecycle commands; outputs come back to the parent as
 * events (and are emitted); stopping the actor terminates the kernel; a kernel failure is the actor's error
 * (`onError`). Messages sent before the kernel is up are queued, in order. A running kernel actor waits for
 * its kernel's outputs, which keeps the process alive, as a running interval would: stop the actor (or its
 * parent) to let the process exit.
 *
 * @example
 * const machine = setup({ actors: { averager: fromKernel(Averager, { runtime }) } }).createMachine({
 *   invoke: { src: 'averager', systemId: 'averager', onError: '.failed' },
 *   entry: sendTo('averager', { type: 'kernel.call', requestId: 1, message: { sensor: 1, celsius: 20 } }),
 *   on: { 'kernel.response': { actions: ({ event }) => console.log(event.output.mean) } },
 * });
 */
export function fromKernel<InIn, InView, OutIn, OutView, State>(
  kernel: KernelDefinition<InIn, InView, OutIn, OutView, State> | string | KernelRef<InIn, OutView>,
  options: FromKernelOptions = {},
): ActorLogic<
  KernelActorSnapshot<OutView>,
  KernelActorEvent<InIn>,
  KernelActorInput | undefined,
  AnyActorSystem,
  KernelActorOutputEvent<OutView>
> {
  const deliver = options.deliver ?? 'both';
  type Snap = KernelActorSnapshot<OutView>;
  const logic: ActorLogic<
    Snap,
    KernelActorEvent<InIn>,
    KernelActorInput | undefined,
    AnyActorSystem,
    KernelActorOutputEvent<OutView>
  > = {
    config: kernel,
    getInitialSnapshot: (_scope, input) =>
      ({
        status: 'active',
        output: undefined,
        error: undefined,
        kernel: input?.name ?? (typeof kernel === 'string' ? kernel : isRef(kernel) ? kernel.name : kernel.id),
        kernelStatus: 'Created',
        metrics: undefined,
        handle: undefined,
        input,
      }) as Snap,
    start: (snapshot, scope) => {
      if (snapshot.status !== 'active') return;
      const self = scope.self as AnyActorRef;
      const parent = (self as unknown as { _parent?: AnyActorRef })._parent;
      const tell = (event: KernelActorOutputEvent<OutView>): void => {
        if (deliver !== 'emit') parent?.send(event);
        if (deliver !== 'parent') scope.emit(event);
      };
      let ended!: () => void;
      endings.set(
        self,
        new Promise<void>((resolve) => {
          ended = resolve;
        }),
      );
      const instance: Instance = {
        handle: undefined,
        queued: [],
        stopped: false,
        linked: false,
        tell: tell as Instance['tell'],
        ended,
      };
      instances.set(self, instance);
      const input = (snapshot as Snap & { input?: KernelActorInput }).input;
      if (isRef(kernel)) {
        // Nothing launched here, nothing to end: the kernel belongs to its node.
        ended();
        driveRef(kernel as Driven, instance, tell as Instance['tell'], self);
        return;
      }
      const runtime = input?.runtime ?? options.runtime;
      if (runtime === undefined) {
        ended();
        self.send({
          type: 'kernel.$failed',
          error: new ArgumentTypeError(
            'options.runtime',
            'fromKernel needs a runtime (options.runtime or input.runtime)',
          ),
        } as never);
        return;
      }
      const definition = kernel as AnyKernelDefinition | string;
      const launch = { autoActivate: true, ...options.launch, ...(input?.name ? { name: input.name } : {}) };
      const launcher = options.supervisor ?? runtime;
      launcher.launch(definition as AnyKernelDefinition, options.gridSize ?? 1, options.blockSize ?? 1, launch).then(
        (handle) => {
          void handle.exitedUnheld.then(ended);
          if (instance.stopped) {
            void handle.terminate().catch(() => {});
            return;
          }
          instance.handle = handle;
          self.send({ type: 'kernel.$launched', handle } as never);
          // Declared links first: the events queued meanwhile are dispatched once every link is made, so no
          // output meant for a linked kernel reaches the host instead.
          const linked = Promise.all(
            (options.connectTo ?? []).map((target) =>
              runtime.whenLaunched(target).then((consumer) => {
                if (!instance.stopped) return runtime.connect(handle, consumer);
              }),
            ),
          );
          linked.then(
            () => {
              if (instance.stopped) return;
              tell({ type: 'kernel.status', kernel: handle.name, status: handle.status });
              instance.linked = true;
              for (const event of instance.queued.splice(0)) dispatch(handle, event, tell, self);
            },
            (error: Error) => {
              if (!instance.stopped) self.send({ type: 'kernel.$failed', error } as never);
            },
          );
          // Outputs that answer no call, in order, until the kernel is gone.
          void (async () => {
            for (;;) {
              let output: unknown;
              try {
                output = await handle.receive(60_000);
              } catch (error) {
                if ((error as { code?: string }).code === 'RK_TIMEOUT') continue;
                break;
              }
              tell({ type: 'kernel.output', kernel: handle.name, output: output as OutView });
              self.send({ type: 'kernel.$refresh' } as never);
            }
          })();
          void handle.exitedUnheld.then(() => {
            if (instance.stopped) return;
            if (handle.status === 'Failed') {
              self.send({
                type: 'kernel.$failed',
                error: new KernelFailedError(handle.name, handle.metrics().lastError?.message ?? 'failed'),
              } as never);
            } else {
              tell({ type: 'kernel.status', kernel: handle.name, status: handle.status });
              self.send({ type: 'kernel.$refresh' } as never);
            }
          });
        },
        (error: Error) => {
          ended();
          self.send({ type: 'kernel.$failed', error } as never);
        },
      );
    },
    transition: (snapshot, event, scope) => {
      if (snapshot.status !== 'active') return snapshot;
      const self = scope.self as AnyActorRef;
      const instance = instances.get(self);
      const e = event as KernelActorEvent<InIn> | Internal;
      switch (e.type) {
        case 'xstate.stop': {
          if (instance !== undefined) {
            instance.stopped = true;
            const handle = instance.handle;
            // Stopping the actor terminates the kernel it launched (draining, as launched); a reference's kernel
            // belongs to its node and runs on.
            const terminate = handle?.terminate;
            if (terminate !== undefined && handle?.status !== 'Terminated' && handle?.status !== 'Failed') {
              scope.defer(() => void terminate.call(handle).catch(() => {}));
            }
          }
          return { ...snapshot, status: 'stopped' } as Snap;
        }
        case 'kernel.$launched':
          return refresh({ ...snapshot, handle: e.handle as KernelHandle<unknown, OutView> });
        case 'kernel.$refresh':
          return refresh(snapshot);
        case 'kernel.$failed':
          return { ...refresh(snapshot), status: 'error', error: e.error } as Snap;
        default: {
          if (instance === undefined) return snapshot;
          const handle = instance.handle;
          if (handle === undefined || !instance.linked) instance.queued.push(e);
          else scope.defer(() => dispatch(handle, e, instance.tell, self));
          return snapshot;
        }
      }
    },
    getPersistedSnapshot: (snapshot) => ({ ...snapshot, handle: undefined, metrics: undefined }) as Snap,
  };
  return logic;
}

function refresh<S extends KernelActorSnapshot<unknown>>(snapshot: S): S {
  const handle = snapshot.handle as Driven | undefined;
  if (handle === undefined) return snapshot;
  const metrics = handle.metrics();
  // A remote kernel's metrics are a request to its node: the snapshot keeps what it had.
  return { ...snapshot, kernelStatus: handle.status, metrics: metrics instanceof Promise ? snapshot.metrics : metrics };
}

/** Starts driving a given reference: queued events, then its outputs until its kernel is gone from the cluster. */
function driveRef<OutView>(
  ref: Driven,
  instance: Instance,
  tell: (event: KernelActorOutputEvent<OutView>) => void,
  self: AnyActorRef,
): void {
  instance.handle = ref;
  // A reference has no links to make here: its kernel's links belong to its node.
  instance.linked = true;
  self.send({ type: 'kernel.$launched', handle: ref } as never);
  tell({ type: 'kernel.status', kernel: ref.name, status: ref.status });
  for (const event of instance.queued.splice(0)) dispatch(ref, event, tell, self);
  void (async () => {
    for (;;) {
      let output: unknown;
      try {
        output = await ref.receive(60_000);
      } catch (error) {
        if ((error as { code?: string }).code === 'RK_TIMEOUT') continue;
        // Its kernel is gone (its node down, the name unknown): the actor's error.
        if (!instance.stopped) self.send({ type: 'kernel.$failed', error } as never);
        break;
      }
      if (instance.stopped) break;
      tell({ type: 'kernel.output', kernel: ref.name, output: output as OutView });
      self.send({ type: 'kernel.$refresh' } as never);
    }
  })();
}

function dispatch<OutView>(
  handle: Driven,
  event: KernelActorEvent,
  tell: (event: KernelActorOutputEvent<OutView>) => void,
  self: AnyActorRef,
): void {
  const failed = (error: Error): void => self.send({ type: 'kernel.$failed', error } as never);
  const changed = (): void => {
    tell({ type: 'kernel.status', kernel: handle.name, status: handle.status });
    self.send({ type: 'kernel.$refresh' } as never);
  };
  switch (event.type) {
    case 'kernel.send':
      handle.send(event.message).catch(failed);
      return;
    case 'kernel.call':
      handle.call(event.message, event.timeout === undefined ? {} : { timeout: event.timeout }).then(
        (output) => {
          tell({ type: 'kernel.response', kernel: handle.name, requestId: event.requestId, output: output as OutView });
          self.send({ type: 'kernel.$refresh' } as never);
        },
        (error: Error) => tell({ type: 'kernel.callFailed', kernel: handle.name, requestId: event.requestId, error }),
      );
      return;
    case 'kernel.activate':
      (handle.activate?.() ?? notHere(handle, 'activate')).then(changed, failed);
      return;
    case 'kernel.deactivate':
      (handle.deactivate?.() ?? notHere(handle, 'deactivate')).then(changed, failed);
      return;
    case 'kernel.terminate':
      (
        handle.terminate?.(event.drain === undefined ? {} : { drain: event.drain }) ?? notHere(handle, 'terminate')
      ).then(changed, failed);
      return;
  }
}

/** A lifecycle command to a kernel on another node: refused here (its node runs its lifecycle). */
function notHere(handle: Driven, operation: string): Promise<void> {
  return Promise.reject(
    new InvalidStateError(handle.name, `${operation} (from another node)`, handle.status, handle.status),
  );
}

/** Type guard for the events a kernel actor sends its parent. */
export function isKernelActorOutput(event: EventObject): event is KernelActorOutputEvent {
  return event.type.startsWith('kernel.') && 'kernel' in event;
}
