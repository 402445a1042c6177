import type { InspectionEvent } from 'xstate';
import { ArgumentTypeError } from '../errors/argument-errors.js';
import type { LifecycleInspection } from '../kernel/lifecycle-inspection.js';

/**
 * Where a runtime's `inspect` option sends the kernels' lifecycle inspection events: an XState inspection observer,
 * as `createActor(machine, { inspect })` takes (`@statelyai/inspect`'s `inspector.inspect`, or a function).
 */
export type InspectionObserver =
  | ((event: InspectionEvent) => void)
  | { readonly next?: (event: InspectionEvent) => void };

/** The stand-in actor reference an inspector sees for a kernel whose lifecycle actor runs in another thread. */
interface RemoteActorRef {
  readonly id: string;
  readonly systemId: string;
  readonly sessionId: string;
  readonly src: string;
  readonly _parent: undefined;
  snapshot: unknown;
  getSnapshot(): unknown;
  getPersistedSnapshot(): unknown;
  send(): void;
  subscribe(): { unsubscribe(): void };
  readonly system: { get(systemId: string): RemoteActorRef | undefined };
}

/**
 * Relays the inspection events of the kernels' lifecycle actors — which run in worker threads, out of reach of an
 * inspector on the main thread — to the user's observer, as if the actors were local: each kernel appears as an
 * actor named (id and systemId) after the kernel, with its snapshots (state value, status, plain context) and the
 * events it received. A restart or migration is a new instance: a new actor under the same name.
 * Made by the runtime for its `inspect` option; not part of the public API.
 */
export class LifecycleInspector {
  readonly #next: (event: InspectionEvent) => void;
  /** Stand-ins by remote session id. */
  readonly #actors = new Map<string, RemoteActorRef>();
  readonly #bySystemId = new Map<string, RemoteActorRef>();

  constructor(observer: InspectionObserver) {
    if (typeof observer === 'function') this.#next = observer;
    else if (typeof observer?.next === 'function') this.#next = (event) => observer.next?.(event);
    else
      throw new ArgumentTypeError(
        'observer',
        'inspect must be an XState inspection observer: a function or an object with next()',
      );
  }

  /** One event of the lifecycle actor of kernel `name`'s instance `instanceId`. */
  forward(name: string, instanceId: number, record: LifecycleInspection): void {
    const key = `${instanceId}:${record.sessionId}`;
    let actor = this.#actors.get(key);
    if (actor === undefined) {
      const system = { get: (systemId: string) => this.#bySystemId.get(systemId) };
      const made: RemoteActorRef = {
        id: name,
        systemId: name,
        sessionId: `ringkernel:${name}:${instanceId}:${record.sessionId}`,
        src: 'ringkernel.kernelLifecycle',
        _parent: undefined,
        snapshot: undefined,
        getSnapshot: () => made.snapshot,
        getPersistedSnapshot: () => made.snapshot,
        send: () => {},
        subscribe: () => ({ unsubscribe: () => {} }),
        system,
      };
      actor = made;
      this.#actors.set(key, actor);
      this.#bySystemId.set(name, actor);
    }
    if (record.snapshot !== undefined) actor.snapshot = record.snapshot;
    const event = {
      type: record.type,
      actorRef: actor,
      rootId: actor.sessionId,
      ...(record.event === undefined ? {} : { event: record.event }),
      ...(record.snapshot === undefined ? {} : { snapshot: record.snapshot }),
      ...(record.type === '@xstate.event' ? { sourceRef: undefined } : {}),
    } as unknown as InspectionEvent;
    this.#next(event);
    if (record.snapshot?.status === 'done' || record.snapshot?.status === 'stopped') {
      this.#actors.delete(key);
      if (this.#bySystemId.get(name) === actor) this.#bySystemId.delete(name);
    }
  }
}
