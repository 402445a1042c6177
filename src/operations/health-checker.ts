import { EventEmitter } from 'node:events';
import { freemem, totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import { PeriodicTask } from './periodic-task.js';

/** What the health checker's built-in checks read from the runtime (the runtime implements it). */
export interface HealthSource {
  /** Kernel failures within the last `withinMs`. */
  recentFailures(withinMs: number): number;
  /** The runtime's lifecycle state (`Initializing`, `Running`, `Draining`, `Stopping`, `Stopped`). */
  state(): { readonly value: string };
  kernels(): readonly {
    readonly name: string;
    metrics(): { readonly inputQueueDepth: number; readonly inputQueueCapacity: number };
  }[];
  lostDevices(): readonly { readonly device: number; readonly cudaErrorName: string }[];
  deviceMemory(): readonly { readonly kind: string }[];
}

/** How healthy something is. */
export type HealthLevel = 'Healthy' | 'Degraded' | 'Unhealthy';

/** One check's verdict. */
export type HealthStatus =
  | { readonly status: 'Healthy' }
  | { readonly status: 'Degraded'; readonly reason: string }
  | { readonly status: 'Unhealthy'; readonly reason: string };

/** A check to run: liveness (is it alive at all) or readiness (can it take work now). */
export interface HealthCheck {
  readonly name: string;
  readonly kind: 'liveness' | 'readiness';
  /** A check that takes longer is Unhealthy ("timed out"). Default 1000 ms. */
  readonly timeoutMs?: number;
  /** Returns a verdict; `true` = Healthy, `false` = Unhealthy; throwing = Unhealthy with the error's message. */
  readonly check: () => HealthStatus | boolean | Promise<HealthStatus | boolean>;
}

/** The result of {@link HealthChecker.check}: the worst verdict, and every check's own. */
export interface HealthReport {
  readonly status: HealthLevel;
  /** Why, when not Healthy: the reasons of the checks that are not. */
  readonly reason?: string;
  readonly checks: readonly {
    readonly name: string;
    readonly kind: 'liveness' | 'readiness';
    readonly status: HealthLevel;
    readonly reason?: string;
    readonly durationMs: number;
  }[];
  readonly at: Date;
}

const RANK: Record<HealthLevel, number> = { Healthy: 0, Degraded: 1, Unhealthy: 2 };

/** Kernels failing within this window degrade health. */
const RECENT_FAILURE_MS = 60_000;

/**
 * The runtime's health: registered liveness and readiness checks (each with a timeout) plus built-in ones — the
 * runtime's own lifecycle (Degraded while starting or draining, Unhealthy once stopping), recent kernel failures (workers dying, handlers stuck), queue pressure, memory pressure, lost CUDA devices
 * (Degraded while some GPU is left, Unhealthy when none is: only a new process can use them). `check()` runs them
 * all and reports the worst; `start(interval)` runs them periodically and emits `change` when the level moves.
 *
 * @example
 * const health = runtime.healthChecker();
 * health.register({ name: 'db', kind: 'readiness', check: async () => (await db.ping()) === 'PONG' });
 * const report = await health.check(); // { status: 'Healthy', checks: [...] }
 */
export class HealthChecker extends EventEmitter<{ change: [HealthReport, HealthLevel | undefined] }> {
  readonly #checks = new Map<string, HealthCheck>();
  #runs = 0;
  readonly #periodic = new PeriodicTask(() => this.check());
  #last: HealthReport | undefined;

  /** @internal — use `runtime.healthChecker()`. */
  constructor(runtime: HealthSource) {
    super();
    this.register({
      name: 'kernels',
      kind: 'liveness',
      check: () => {
        const failed = runtime.recentFailures(RECENT_FAILURE_MS);
        return failed === 0
          ? true
          : { status: 'Degraded', reason: `${failed} kernel(s) failed in the last ${RECENT_FAILURE_MS / 1000} s` };
      },
    });
    this.register({
      name: 'runtime',
      kind: 'liveness',
      check: () => {
        const state = runtime.state().value;
        if (state === 'Running') return true;
        // Starting or draining: alive, not taking work. Stopping or stopped: only a new runtime takes work again.
        const level = state === 'Initializing' || state === 'Draining' ? 'Degraded' : 'Unhealthy';
        return { status: level, reason: `runtime is ${state}` };
      },
    });
    this.register({
      name: 'queues',
      kind: 'readiness',
      check: () => {
        const full = runtime.kernels().filter((handle) => {
          const m = handle.metrics();
          return m.inputQueueDepth >= 0.9 * m.inputQueueCapacity;
        });
        return full.length === 0
          ? true
          : { status: 'Degraded', reason: `input queue over 90 % full: ${full.map((h) => h.name).join(', ')}` };
      },
    });
    this.register({
      name: 'devices',
      kind: 'liveness',
      check: () => {
        const lost = runtime.lostDevices();
        if (lost.length === 0) return true;
        const detail = `CUDA device(s) lost to a sticky error: ${lost.map((d) => `${d.device} (${d.cudaErrorName})`).join(', ')}`;
        // Some GPUs left: the runtime works on, with less. None: only a new process can run CUDA kernels again.
        const gpus = runtime.deviceMemory().filter((device) => device.kind === 'cuda').length;
        return { status: lost.length >= gpus ? 'Unhealthy' : 'Degraded', reason: detail };
      },
    });
    this.register({
      name: 'memory',
      kind: 'liveness',
      check: () => {
        const heap = getHeapStatistics();
        const heapUse = heap.used_heap_size / heap.heap_size_limit;
        const systemUse = 1 - freemem() / totalmem();
        const worst = Math.max(heapUse, systemUse);
        const detail = `heap ${(heapUse * 100).toFixed(0)} % of its limit, system memory ${(systemUse * 100).toFixed(0)} % used`;
        if (worst >= 0.98) return { status: 'Unhealthy', reason: detail };
        if (worst >= 0.9) return { status: 'Degraded', reason: detail };
        return true;
      },
    });
  }

  /**
   * Adds a check.
   * @throws {ArgumentTypeError} on a malformed check, {InvalidArgumentError} on a name already registered.
   */
  register(check: HealthCheck): void {
    if (typeof check?.name !== 'string' || check.name.length === 0)
      throw new ArgumentTypeError(
        'check.name',
        `a health check needs a name: check.name must be a non-empty string, got ${describeValue(check?.name)}`,
      );
    if (check.kind !== 'liveness' && check.kind !== 'readiness') {
      throw new ArgumentTypeError(
        'check.kind',
        `health check '${check.name}': check.kind must be 'liveness' or 'readiness', got ${describeValue(check.kind)}`,
      );
    }
    if (typeof check.check !== 'function')
      throw new ArgumentTypeError('check.check', `health check '${check.name}': check.check must be a function`);
    if (this.#checks.has(check.name))
      throw new InvalidArgumentError(
        'check.name',
        `health check '${check.name}' is already registered: check.name must be unique`,
      );
    this.#checks.set(check.name, check);
  }

  /** Removes a check; returns whether it was there. */
  unregister(name: string): boolean {
    return this.#checks.delete(name);
  }

  /** The last report, if any check has run. */
  get last(): HealthReport | undefined {
    return this.#last;
  }

  /** How many times {@link HealthChecker.check} has run (periodic checks included). */
  get checksRun(): number {
    return this.#runs;
  }

  /** Runs every check (concurrently, each under its timeout) and reports the worst. */
  async check(): Promise<HealthReport> {
    this.#runs++;
    const results = await Promise.all(
      [...this.#checks.values()].map(async (check) => {
        const started = performance.now();
        const verdict = await runCheck(check);
        return {
          name: check.name,
          kind: check.kind,
          status: verdict.status,
          ...(verdict.status === 'Healthy' ? {} : { reason: verdict.reason }),
          durationMs: Math.round((performance.now() - started) * 1000) / 1000,
        };
      }),
    );
    const status = results.reduce<HealthLevel>(
      (worst, r) => (RANK[r.status] > RANK[worst] ? r.status : worst),
      'Healthy',
    );
    const reasons = results.filter((r) => r.status !== 'Healthy').map((r) => `${r.name}: ${r.reason}`);
    const report: HealthReport = {
      status,
      ...(reasons.length > 0 ? { reason: reasons.join('; ') } : {}),
      checks: results,
      at: new Date(),
    };
    const previous = this.#last?.status;
    this.#last = report;
    if (previous !== status) this.emit('change', report, previous);
    return report;
  }

  /** The interval it runs its checks on, ms, while started; undefined when stopped. */
  get intervalMs(): number | undefined {
    return this.#periodic.intervalMs;
  }

  /** Checks every `intervalMs` until {@link HealthChecker.stop}; the timer does not keep the process alive. */
  start(intervalMs: number): void {
    this.#periodic.start(intervalMs);
  }

  /** Stops periodic checks. */
  stop(): void {
    this.#periodic.stop();
  }
}

async function runCheck(check: HealthCheck): Promise<HealthStatus> {
  const timeoutMs = check.timeoutMs ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<HealthStatus>((resolve) => {
    timer = setTimeout(() => resolve({ status: 'Unhealthy', reason: `timed out after ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    const verdict = await Promise.race([
      (async (): Promise<HealthStatus> => {
        const result = await check.check();
        if (result === true) return { status: 'Healthy' };
        if (result === false) return { status: 'Unhealthy', reason: 'check failed' };
        return result;
      })(),
      timedOut,
    ]);
    return verdict;
  } catch (error) {
    return { status: 'Unhealthy', reason: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}
