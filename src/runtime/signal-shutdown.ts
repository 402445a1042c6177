import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';
import type { RuntimeLifecycleState } from './runtime-lifecycle.js';
import type { ShutdownReport } from './runtime-statistics.js';

/** What a graceful stop on signals needs from the runtime. */
export interface SignalStoppedRuntime {
  state(): { readonly value: RuntimeLifecycleState };
  drain(timeoutMs: number): Promise<unknown>;
  completeShutdown(): Promise<ShutdownReport>;
}

/** Options of `runtime.shutdownOnSignals()`. */
export interface SignalShutdownOptions {
  readonly signals?: readonly NodeJS.Signals[];
  readonly drainTimeoutMs?: number;
  readonly onReport?: (report: ShutdownReport) => void;
}

/**
 * The runtime's opt-in graceful stop on process signals: at most one set of handlers at a time (installing
 * replaces the last), removed by the first signal, by {@link SignalShutdown.remove} or by the function
 * {@link SignalShutdown.install} returns.
 */
export class SignalShutdown {
  readonly #runtime: SignalStoppedRuntime;
  #remove: (() => void) | undefined;

  constructor(runtime: SignalStoppedRuntime) {
    this.#runtime = runtime;
  }

  /**
   * Checks `options` up front, then on the first signal drains (up to `drainTimeoutMs`, default 10 s), completes
   * the shutdown and hands the report to `onReport`. Returns a function that removes the handlers.
   */
  install(options: SignalShutdownOptions): () => void {
    const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
    const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
    if (!Array.isArray(signals) || signals.length === 0)
      throw new ArgumentTypeError('options.signals', 'options.signals must be a non-empty array');
    if (typeof drainTimeoutMs !== 'number' || !(drainTimeoutMs >= 0)) {
      throw new InvalidArgumentError(
        'options.drainTimeoutMs',
        `options.drainTimeoutMs must be a non-negative number, got ${drainTimeoutMs}`,
      );
    }
    this.remove();
    const runtime = this.#runtime;
    const onSignal = (): void => {
      remove();
      void (async () => {
        const state = runtime.state().value;
        if (state === 'Running' || state === 'Draining') await runtime.drain(drainTimeoutMs);
        const report = await runtime.completeShutdown();
        options.onReport?.(report);
      })();
    };
    const remove = (): void => {
      for (const signal of signals) process.off(signal, onSignal);
      if (this.#remove === remove) this.#remove = undefined;
    };
    for (const signal of signals) process.on(signal, onSignal);
    this.#remove = remove;
    return remove;
  }

  /** Removes the handlers installed last, if any. */
  remove(): void {
    this.#remove?.();
  }
}
