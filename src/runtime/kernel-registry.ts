import { ArgumentTypeError } from '../errors/argument-errors.js';
import type { KernelHandle } from './kernel-handle.js';

/** A change in a {@link KernelRegistry}. */
export interface RegistryEvent {
  readonly type: 'registered' | 'deregistered';
  readonly name: string;
  readonly handle: KernelHandle;
}

const SEGMENT = /^[A-Za-z0-9_.:-]+$/;

function segments(name: string, what: string, wildcards: boolean): string[] {
  if (typeof name !== 'string' || name.length === 0)
    throw new ArgumentTypeError(what, `${what} must be a non-empty string`);
  const parts = name.split('/');
  for (const part of parts) {
    const ok = SEGMENT.test(part) || (wildcards && (part === '*' || part === '**'));
    if (!ok)
      throw new ArgumentTypeError(
        what,
        `${what} ${JSON.stringify(name)}: segment ${JSON.stringify(part)} is not allowed`,
      );
  }
  return parts;
}

/** Whether `pattern` (`*` = one segment, `**` = any number, including none) matches `name`. */
function matches(pattern: readonly string[], name: readonly string[], p = 0, n = 0): boolean {
  if (p === pattern.length) return n === name.length;
  const part = pattern[p];
  if (part === '**') {
    for (let skip = n; skip <= name.length; skip++) if (matches(pattern, name, p + 1, skip)) return true;
    return false;
  }
  if (n === name.length) return false;
  return (part === '*' || part === name[n]) && matches(pattern, name, p + 1, n + 1);
}

/**
 * Kernels under hierarchical names (`sensors/eu/temperature`), found with wildcards (`sensors/*` one level,
 * `sensors/**` any depth) and watched for arrivals and departures. A kernel leaves the registry by itself when
 * it terminates or fails.
 *
 * @example
 * runtime.registry.register('sensors/eu/temperature', handle);
 * runtime.registry.lookup('sensors/**');              // [{ name, handle }]
 * runtime.registry.watch('sensors/*', (event) => console.log(event.type, event.name));
 */
export class KernelRegistry {
  readonly #entries = new Map<string, KernelHandle>();
  readonly #watchers = new Set<{ pattern: string[]; listener: (event: RegistryEvent) => void }>();

  /**
   * Registers a live kernel under `name`.
   * @throws {TypeError} on a malformed name, or a name already taken by another kernel.
   */
  register(name: string, handle: KernelHandle): void {
    segments(name, 'registry name', false);
    const existing = this.#entries.get(name);
    if (existing === handle) return;
    if (existing !== undefined)
      throw new ArgumentTypeError(
        'name',
        `registry name ${JSON.stringify(name)} is taken by kernel '${existing.name}'`,
      );
    this.#entries.set(name, handle);
    this.#notify({ type: 'registered', name, handle });
    void handle.exitedUnheld.then(() => this.deregister(name, handle));
  }

  /** Removes `name` (only if it still names `handle`, when given). Returns whether it was there. */
  deregister(name: string, handle?: KernelHandle): boolean {
    const existing = this.#entries.get(name);
    if (existing === undefined || (handle !== undefined && existing !== handle)) return false;
    this.#entries.delete(name);
    this.#notify({ type: 'deregistered', name, handle: existing });
    return true;
  }

  /** The kernel registered under exactly `name`, if any. */
  get(name: string): KernelHandle | undefined {
    return this.#entries.get(name);
  }

  /** Every registration matching `pattern`, sorted by name. */
  lookup(pattern: string): { readonly name: string; readonly handle: KernelHandle }[] {
    const parts = segments(pattern, 'registry pattern', true);
    return [...this.#entries]
      .filter(([name]) => matches(parts, name.split('/')))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, handle]) => ({ name, handle }));
  }

  /** Calls `listener` on every registration and deregistration matching `pattern`. Returns an unsubscribe. */
  watch(pattern: string, listener: (event: RegistryEvent) => void): () => void {
    const watcher = { pattern: segments(pattern, 'registry pattern', true), listener };
    this.#watchers.add(watcher);
    return () => {
      this.#watchers.delete(watcher);
    };
  }

  #notify(event: RegistryEvent): void {
    const name = event.name.split('/');
    for (const watcher of this.#watchers) if (matches(watcher.pattern, name)) watcher.listener(event);
  }
}
