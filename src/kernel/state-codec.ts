import { deserialize, serialize } from 'node:v8';
import type { AnyKernelDefinition } from './kernel-definition.js';

/**
 * A kernel's state as bytes, in its worker: the definition's `snapshot` hook, or v8 structured serialization
 * (what `structuredClone` and `postMessage` use). Always a fresh buffer of its own, so it can be transferred.
 * @throws whatever the hook throws; a `DataCloneError` for state v8 cannot serialize (a function, say); a
 * `TypeError` when the hook returns something other than a Uint8Array.
 * @internal
 */
export function snapshotState(definition: AnyKernelDefinition, state: unknown): Uint8Array {
  const bytes: unknown = definition.snapshot === undefined ? serialize(state) : definition.snapshot(state);
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`the snapshot hook of kernel '${definition.id}' must return a Uint8Array`);
  }
  return new Uint8Array(bytes); // a copy: v8's Buffer may share a pool, a hook may keep its own
}

/** Marks an attach failure that came from restoring the state (errors cross the worker boundary by message). */
export const RESTORE_FAILED = 'state restore failed: ';

/**
 * Rebuilds a kernel's state from checkpoint bytes, in the new instance's worker: the `restore` hook, or
 * `v8.deserialize`. @throws an Error whose message starts with {@link RESTORE_FAILED}. @internal
 */
export function restoreState(definition: AnyKernelDefinition, bytes: Uint8Array): unknown {
  try {
    return definition.restore === undefined ? deserialize(bytes) : definition.restore(bytes);
  } catch (error) {
    throw new Error(RESTORE_FAILED + (error instanceof Error ? error.message : String(error)));
  }
}
