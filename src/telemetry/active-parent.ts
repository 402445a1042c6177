import { context, type SpanContext, trace } from '@opentelemetry/api';

/**
 * Where @opentelemetry/api 1.x registers its globals (`api/src/internal/global-utils.ts`: `Symbol.for(
 * 'opentelemetry.js.api.1')`, an object with `version` and one field per registered global, `context` among them).
 */
const API_GLOBALS = Symbol.for('opentelemetry.js.api.1');

/**
 * Makes the API's global slot an own property of the global object — `undefined`, which the API reads as "nothing
 * registered yet" (its `registerGlobal` fills the slot with `slot ?? { version }`, its `getGlobal` returns nothing
 * for a falsy slot) — unless something is there already. V8 caches the read of a property that exists on the global
 * object, but looks up a missing one afresh on every read (~13 ns: the largest part of what tracing costs an
 * unsampled send, read once per message by {@link activeParent}). Called when a traced runtime is built.
 */
export function defineApiGlobalSlot(): void {
  const global = globalThis as { [API_GLOBALS]?: unknown };
  if (!(API_GLOBALS in global)) global[API_GLOBALS] = undefined;
}

/** A parent set for the synchronous extent of {@link withParent}, winning over the context manager's. */
let explicitParent: SpanContext | undefined;

/**
 * Runs `body` with `parent` as the active parent of the spans the runtime begins synchronously inside it (a send,
 * the start of a call): how a message that arrived from another process continues that process's trace without a
 * context manager being registered here.
 */
export function withParent<T>(parent: SpanContext, body: () => T): T {
  const previous = explicitParent;
  explicitParent = parent;
  try {
    return body();
  } finally {
    explicitParent = previous;
  }
}

/**
 * The caller's active span context, or undefined. While no context manager is registered every context is the root
 * context, which holds no span: then this costs one property read instead of the API's lookup (`context.active()`
 * resolves the global and checks its version on every call, ~40–70 ns, a sixth of a message's cost on the send path).
 * With one registered it is the public API's answer.
 */
export function activeParent(): SpanContext | undefined {
  if (explicitParent !== undefined) return explicitParent;
  const globals = (globalThis as { [API_GLOBALS]?: { context?: unknown } })[API_GLOBALS];
  if (globals?.context === undefined) return undefined;
  const parent = trace.getSpanContext(context.active());
  return parent !== undefined && trace.isSpanContextValid(parent) ? parent : undefined;
}
