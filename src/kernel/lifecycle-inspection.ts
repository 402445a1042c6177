import type { InspectionEvent } from 'xstate';

/**
 * One inspection event of a kernel's lifecycle actor, as an executor thread posts it to the host: what XState's
 * `inspect` observer saw, less what cannot cross a thread (actor references, the ControlBlock in the context).
 */
export interface LifecycleInspection {
  readonly type: InspectionEvent['type'];
  /** The actor's session id in its executor thread. */
  readonly sessionId: string;
  /** The event sent or processed (`@xstate.event`, `@xstate.snapshot`, `@xstate.microstep`). */
  readonly event?: { readonly type: string; readonly [key: string]: unknown };
  /** The snapshot after it (`@xstate.snapshot`, `@xstate.microstep`): state value, status, plain context fields. */
  readonly snapshot?: {
    readonly value: unknown;
    readonly status: string;
    readonly context: Readonly<Record<string, unknown>>;
  };
}

/** Keeps the fields a port can carry and a JSON inspector can show: primitives only. */
function plain(record: object | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record ?? {})) {
    if (value === null || ['string', 'number', 'boolean', 'undefined'].includes(typeof value)) out[key] = value;
  }
  return out;
}

/** The record of `event` to post to the host. */
export function lifecycleInspectionOf(event: InspectionEvent): LifecycleInspection {
  const base = { type: event.type, sessionId: event.actorRef.sessionId };
  const carried =
    'event' in event && event.event !== undefined
      ? { event: { ...plain(event.event), type: String(event.event.type) } }
      : {};
  if ('snapshot' in event && event.snapshot !== undefined) {
    const snapshot = event.snapshot as { value?: unknown; status?: string; context?: object };
    return {
      ...base,
      ...carried,
      snapshot: { value: snapshot.value, status: snapshot.status ?? 'active', context: plain(snapshot.context) },
    };
  }
  return { ...base, ...carried };
}
