import { EventEmitter } from 'node:events';
import type { KernelHandle } from '../runtime/kernel-handle.js';

/** A kernel the watchdog found stuck. */
export interface StaleKernel {
  readonly handle: KernelHandle;
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
 * Not yet: a policy that restarts or fails stale kernels (a stuck CPU handler can only be stopped by replacing
 * its worker).
 *
 * @example
 * const watchdog = runtime.kernelWatchdog();
 * watchdog.setHeartbeatTimeout(5_000);
 * watchdog.on('stale', (stale) => log.error(`${stale.handle.name} stuck for ${stale.stalledMs} ms`));
 * watchdog.start(1_000);
 */
export class KernelWatchdog extends EventEmitter<{ stale: [StaleKernel] }> {
  readonly #kernels: () => readonly KernelHandle[];
  readonly #now: () => number;
  readonly #observations = new WeakMap<KernelHandle, Observation>();
  #timeoutMs = 30_000;
  #timer: NodeJS.Timeout | undefined;

  /** @internal — use `runtime.kernelWatchdog()`. */
  constructor(kernels: () => readonly KernelHandle[], now: () => number = () => performance.now()) {
    super();
    this.#kernels = kernels;
    this.#now = now;
  }

  /** How long input may wait without a heartbeat before a kernel is stale, ms. */
  get heartbeatTimeout(): number {
    return this.#timeoutMs;
  }

  /** Sets the heartbeat timeout. @throws {RangeError} unless a positive number of ms. */
  setHeartbeatTimeout(ms: number): void {
    if (typeof ms !== 'number' || !(ms > 0) || !Number.isFinite(ms)) {
      throw new RangeError(`heartbeat timeout must be a positive number of ms, got ${ms}`);
    }
    this.#timeoutMs = ms;
  }

  /** Looks at every live Active kernel once; returns the stale ones (and emits `stale` for each). */
  scanStaleKernels(): StaleKernel[] {
    const now = this.#now();
    const stale: StaleKernel[] = [];
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
    for (const entry of stale) this.emit('stale', entry);
    return stale;
  }

  /** Scans every `intervalMs` until {@link KernelWatchdog.stop}. The timer does not keep the process alive. */
  start(intervalMs: number): void {
    if (typeof intervalMs !== 'number' || !(intervalMs > 0)) {
      throw new RangeError(`interval must be a positive number of ms, got ${intervalMs}`);
    }
    this.stop();
    this.#timer = setInterval(() => this.scanStaleKernels(), intervalMs).unref();
  }

  /** Stops periodic scans. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
