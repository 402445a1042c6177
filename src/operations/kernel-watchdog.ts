import { EventEmitter } from 'node:events';
import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import { PeriodicTask } from './periodic-task.js';

/**
 * What the watchdog does with a stale kernel. `'report'`: emit `stale`, nothing more. `'restart'`: replace the
 * kernel's worker thread (a handler that never returns can be stopped no other way) and restart the kernel on a
 * live worker with fresh state; its stuck message is dead-lettered, the rest of its queue kept. `'fail'`: the
 * same, but the stale kernel stays Failed (its queue dead-lettered). Under both, the worker's other kernels did
 * nothing wrong: they are moved — restarted on another worker, queues kept.
 */
export type WatchdogPolicy = 'report' | 'restart' | 'fail';

/** What the watchdog did about a stale kernel. */
export interface WatchdogRecovery {
  readonly kernel: string;
  readonly policy: Exclude<WatchdogPolicy, 'report'>;
  /** The worker thread that was replaced. */
  readonly threadId: number;
  /** The other kernels of that worker, restarted elsewhere. */
  readonly moved: readonly string[];
}

/** What the watchdog reads of a kernel (a `K` implements it). */
export interface WatchedKernel {
  readonly name: string;
  /** The kernel's last heartbeat (ControlBlock `heartbeat_us`). */
  readonly heartbeatUs: number;
  metrics(): { readonly inputQueueDepth: number; readonly status: string };
}

/** Replaces a stale kernel's worker under a policy (the runtime provides it). */
export type StaleRecovery<K extends WatchedKernel = WatchedKernel> = (
  stale: StaleKernel<K>,
  policy: Exclude<WatchdogPolicy, 'report'>,
) => Promise<WatchdogRecovery | undefined>;

/** A kernel the watchdog found stuck. */
export interface StaleKernel<K extends WatchedKernel = WatchedKernel> {
  readonly handle: K;
  /** How long it has had input waiting without a heartbeat, ms. */
  readonly stalledMs: number;
  /** Frames waiting in its input ring (a stuck handler's message in hand counts). */
  readonly pending: number;
}

interface Observation {
  readonly heartbeatUs: number;
  readonly since: number;
}

/**
 * Finds stuck kernels. A kernel beats (ControlBlock `heartbeat_us`) as it finishes batches; an idle kernel does
 * not beat, and is not stuck. So a kernel is stale when it has had input waiting — including the message its
 * handler is stuck in, whose batch never publishes — and its heartbeat has not moved, for `heartbeatTimeout` ms
 * of continuous observation. Scan periodically (`start`), or call {@link KernelWatchdog.scanStaleKernels} yourself:
 * a kernel must be seen stalled on two scans at least `heartbeatTimeout` apart.
 *
 * With a {@link WatchdogPolicy} other than `'report'` it also acts: see {@link KernelWatchdog.setPolicy}.
 *
 * @example
 * const watchdog = runtime.kernelWatchdog();
 * watchdog.setHeartbeatTimeout(5_000);
 * watchdog.setPolicy('restart');
 * watchdog.on('stale', (stale) => log.error(`${stale.handle.name} stuck for ${stale.stalledMs} ms`));
 * watchdog.on('recovered', (r) => log.warn(`replaced worker ${r.threadId}; moved ${r.moved.join(', ')}`));
 * watchdog.start(1_000);
 */
export class KernelWatchdog<K extends WatchedKernel = WatchedKernel> extends EventEmitter<{
  stale: [StaleKernel<K>];
  recovered: [WatchdogRecovery];
  recoveryFailed: [StaleKernel<K>, Error];
}> {
  readonly #kernels: () => readonly K[];
  readonly #now: () => number;
  readonly #recover: StaleRecovery<K> | undefined;
  readonly #observations = new WeakMap<K, Observation>();
  /** Kernels whose recovery is under way: not acted on twice. */
  readonly #recovering = new WeakSet<K>();
  #timeoutMs = 30_000;
  #policy: WatchdogPolicy = 'report';
  readonly #periodic = new PeriodicTask(() => this.scanStaleKernels());
  #recoveries = 0;

  /** @internal — use `runtime.kernelWatchdog()`. */
  constructor(kernels: () => readonly K[], now: () => number = () => performance.now(), recover?: StaleRecovery<K>) {
    super();
    this.#kernels = kernels;
    this.#now = now;
    this.#recover = recover;
  }

  /** What the watchdog does with stale kernels. Default `'report'`. */
  get policy(): WatchdogPolicy {
    return this.#policy;
  }

  /** How many stale kernels the policy has acted on. */
  get recoveries(): number {
    return this.#recoveries;
  }

  /**
   * Sets the policy for stale kernels (see {@link WatchdogPolicy}).
   * @throws {TypeError} for an unknown policy, or one that acts on a watchdog without a runtime.
   */
  setPolicy(policy: WatchdogPolicy): void {
    if (policy !== 'report' && policy !== 'restart' && policy !== 'fail') {
      throw new ArgumentTypeError(
        'policy',
        `setPolicy: policy must be 'report', 'restart' or 'fail', got ${JSON.stringify(policy)}`,
      );
    }
    if (policy !== 'report' && this.#recover === undefined) {
      throw new ArgumentTypeError(
        'policy',
        `setPolicy: watchdog policy '${policy}' needs a runtime: use runtime.kernelWatchdog()`,
      );
    }
    this.#policy = policy;
  }

  /** How long input may wait without a heartbeat before a kernel is stale, ms. */
  get heartbeatTimeout(): number {
    return this.#timeoutMs;
  }

  /** Sets the heartbeat timeout. @throws {RangeError} unless a positive number of ms. */
  setHeartbeatTimeout(ms: number): void {
    if (typeof ms !== 'number' || !(ms > 0) || !Number.isFinite(ms)) {
      throw new InvalidArgumentError(
        'ms',
        `setHeartbeatTimeout: ms must be a positive number of ms, got ${describeValue(ms)}`,
      );
    }
    this.#timeoutMs = ms;
  }

  /** Looks at every live Active kernel once; returns the stale ones (and emits `stale` for each). */
  scanStaleKernels(): StaleKernel<K>[] {
    const now = this.#now();
    const stale: StaleKernel<K>[] = [];
    for (const handle of this.#kernels()) {
      const metrics = handle.metrics();
      if (metrics.status !== 'Active' || metrics.inputQueueDepth === 0) {
        this.#observations.delete(handle);
        continue;
      }
      const heartbeatUs = handle.heartbeatUs;
      const seen = this.#observations.get(handle);
      if (seen === undefined || seen.heartbeatUs !== heartbeatUs) {
        this.#observations.set(handle, { heartbeatUs, since: now });
        continue;
      }
      const stalledMs = now - seen.since;
      if (stalledMs >= this.#timeoutMs) stale.push({ handle, stalledMs, pending: metrics.inputQueueDepth });
    }
    for (const entry of stale) {
      this.emit('stale', entry);
      this.#act(entry);
    }
    return stale;
  }

  #act(stale: StaleKernel<K>): void {
    const policy = this.#policy;
    const recover = this.#recover;
    if (policy === 'report' || recover === undefined || this.#recovering.has(stale.handle)) return;
    this.#recovering.add(stale.handle);
    this.#observations.delete(stale.handle);
    recover(stale, policy).then(
      (recovery) => {
        this.#recovering.delete(stale.handle);
        if (recovery === undefined) return;
        this.#recoveries++;
        this.emit('recovered', recovery);
      },
      (error: Error) => {
        this.#recovering.delete(stale.handle);
        this.emit('recoveryFailed', stale, error);
      },
    );
  }

  /** The interval it scans on, ms, while started; undefined when stopped. */
  get intervalMs(): number | undefined {
    return this.#periodic.intervalMs;
  }

  /** Scans every `intervalMs` until {@link KernelWatchdog.stop}. The timer does not keep the process alive. */
  start(intervalMs: number): void {
    this.#periodic.start(intervalMs);
  }

  /** Stops periodic scans. */
  stop(): void {
    this.#periodic.stop();
  }
}
