import { describeValue, InvalidArgumentError } from '../errors/argument-errors.js';

/**
 * A task run every `intervalMs` on a timer that does not keep the process alive: what the health checker, the
 * watchdog and the degradation manager each start and stop. One concept, so the three validate, restart and
 * report their interval the same way.
 *
 * @example
 * const scans = new PeriodicTask(() => watchdog.scanStaleKernels());
 * scans.start(1_000);
 * scans.intervalMs; // 1000
 * scans.stop();
 */
export class PeriodicTask {
  readonly #run: () => unknown;
  #timer: NodeJS.Timeout | undefined;
  #intervalMs: number | undefined;

  constructor(run: () => unknown) {
    this.#run = run;
  }

  /** The interval, ms, while started; undefined when stopped. */
  get intervalMs(): number | undefined {
    return this.#intervalMs;
  }

  /** Runs the task every `intervalMs` (replacing any earlier interval). @throws {RangeError} unless positive. */
  start(intervalMs: number): void {
    if (typeof intervalMs !== 'number' || !(intervalMs > 0)) {
      throw new InvalidArgumentError(
        'intervalMs',
        `start: intervalMs must be a positive number of ms, got ${describeValue(intervalMs)}`,
      );
    }
    this.stop();
    this.#intervalMs = intervalMs;
    this.#timer = setInterval(() => void this.#run(), intervalMs).unref();
  }

  /** Stops running it. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#intervalMs = undefined;
  }
}
