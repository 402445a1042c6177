import { RuntimeShutDownError } from '../errors/runtime-errors.js';

/**
 * Who waits for a kernel to be launched under a name (`runtime.whenLaunched`): kernels spawned as actors launch
 * in no set order, so one may wait for another by name. Each wait settles: with the kernel when it is launched,
 * or with {@link RuntimeShutDownError} when the runtime shuts down first.
 */
export class LaunchWaiters<K> {
  readonly #waiting = new Map<
    string,
    { readonly resolve: (kernel: K) => void; readonly reject: (error: Error) => void }[]
  >();

  /** Waits for the next kernel launched under `name`. */
  wait(name: string): Promise<K> {
    return new Promise<K>((resolve, reject) => {
      const waiters = this.#waiting.get(name) ?? [];
      waiters.push({ resolve, reject });
      this.#waiting.set(name, waiters);
    });
  }

  /** `kernel` was launched under `name`: whoever waits for it has it now. */
  launched(name: string, kernel: K): void {
    const waiters = this.#waiting.get(name);
    this.#waiting.delete(name);
    for (const waiter of waiters ?? []) waiter.resolve(kernel);
  }

  /** Nothing more will launch: every wait rejects with {@link RuntimeShutDownError}. */
  shutDown(): void {
    for (const [name, waiters] of this.#waiting) {
      for (const waiter of waiters) waiter.reject(new RuntimeShutDownError(`wait for kernel '${name}'`));
    }
    this.#waiting.clear();
  }
}
