import { deserialize, serialize } from 'node:v8';
import { ArgumentTypeError } from '../errors/argument-errors.js';
import type { AnyKernelDefinition } from './kernel-definition.js';

/**
 * A kernel's state as bytes, in its worker: the definition's `snapshot` hook, or v8 structured serialization
 * (what `structuredClone` and `postMessage` use). Always a fresh buffer of its own, so it can be transferred.
 * @throws whatever the hook throws; a `DataCloneError` for state v8 cannot serialize (a function, say); a
 * `TypeError` when the hook returns something other than a Uint8Array.
 *
 */
export function snapshotState(definition: AnyKernelDefinition, state: unknown): Uint8Array {
  const bytes: unknown = definition.snapshot === undefined ? serialize(state) : definition.snapshot(state);
  if (!(bytes instanceof Uint8Array)) {
    throw new ArgumentTypeError(
      'spec.snapshot',
      `the snapshot hook of kernel '${definition.id}' must return a Uint8Array`,
    );
  }
  return new Uint8Array(bytes); // a copy: v8's Buffer may share a pool, a hook may keep its own
}

/**
 * Rebuilds a kernel's state from checkpoint bytes, in the new instance's worker: the `restore` hook, or
 * `v8.deserialize`. @throws whatever the hook or v8 throws (the executor shell reports it as a `restore` failure).
 *
 */
export function restoreState(definition: AnyKernelDefinition, bytes: Uint8Array): unknown {
  return definition.restore === undefined ? deserialize(bytes) : definition.restore(bytes);
}
