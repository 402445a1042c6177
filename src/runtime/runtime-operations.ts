import { ArgumentTypeError } from '../errors/argument-errors.js';
import { CircuitBreaker, type CircuitBreakerOptions } from '../operations/circuit-breaker.js';
import {
  type DegradationHost,
  type DegradationLevel,
  DegradationManager,
  type DegradationOptions,
} from '../operations/degradation-manager.js';
import { HealthChecker, type HealthSource } from '../operations/health-checker.js';
import { KernelWatchdog, type StaleRecovery } from '../operations/kernel-watchdog.js';
import {
  type MetricsSource,
  PrometheusExporter,
  type PrometheusExporterOptions,
} from '../operations/prometheus-exporter.js';
import type { KernelHandle } from './kernel-handle.js';
import type { RuntimeLogger } from './logger.js';

/** What the runtime's operations tools need of the runtime. */
export interface OperationsHost {
  /** The runtime, as the health checker and the Prometheus exporter read it. */
  readonly runtime: HealthSource & MetricsSource;
  readonly log: RuntimeLogger;
  kernels(): KernelHandle[];
  /** What the degradation manager measures and how it sheds, given the breakers it counts. */
  degradation(breakers: () => readonly CircuitBreaker[]): DegradationHost;
  /** Replaces the worker of a kernel the watchdog found stuck. */
  readonly recoverStale: StaleRecovery<KernelHandle>;
}

/**
 * The runtime's operations tools, each made on first use and one per runtime: its circuit breakers by name, the
 * degradation manager, the health checker, the Prometheus exporter and the kernel watchdog; stopped together when
 * the runtime shuts down, and counted in its report.
 */
export class RuntimeOperations {
  readonly #host: OperationsHost;
  readonly #breakers = new Map<string, CircuitBreaker>();
  #watchdog: KernelWatchdog<KernelHandle> | undefined;
  #health: HealthChecker | undefined;
  #prometheus: PrometheusExporter | undefined;
  #degradation: DegradationManager | undefined;

  constructor(host: OperationsHost) {
    this.#host = host;
  }

  /** See `RingKernelRuntime.circuitBreaker`. */
  circuitBreaker(name: string, options: Omit<CircuitBreakerOptions, 'name'>): CircuitBreaker {
    let breaker = this.#breakers.get(name);
    if (breaker === undefined) {
      breaker = new CircuitBreaker({ ...options, name });
      this.#breakers.set(name, breaker);
    }
    return breaker;
  }

  /** Every circuit breaker made so far. */
  circuitBreakers(): CircuitBreaker[] {
    return [...this.#breakers.values()];
  }

  /** See `RingKernelRuntime.degradationManager`. */
  degradationManager(options: DegradationOptions): DegradationManager {
    this.#degradation ??= new DegradationManager(
      this.#host.degradation(() => this.circuitBreakers()),
      options,
    );
    this.#degradation.on('change', ({ from, to }) => this.#host.log.warn(`degradation ${from} → ${to}`));
    return this.#degradation;
  }

  /** The degradation level: the manager's, or Normal when there is none. */
  degradationLevel(): DegradationLevel {
    return this.#degradation?.level() ?? 'Normal';
  }

  /** See `RingKernelRuntime.healthChecker`. */
  healthChecker(): HealthChecker {
    this.#health ??= new HealthChecker(this.#host.runtime);
    return this.#health;
  }

  /** See `RingKernelRuntime.prometheusExporter`. */
  prometheusExporter(options: PrometheusExporterOptions | undefined): PrometheusExporter {
    if (options !== undefined && this.#prometheus !== undefined) {
      throw new ArgumentTypeError(
        'options',
        'prometheusExporter options apply when it is first made; it exists already',
      );
    }
    this.#prometheus ??= new PrometheusExporter(this.#host.runtime, options);
    return this.#prometheus;
  }

  /** A kernel has ended: the exporter keeps its last counts. */
  kernelEnded(handle: KernelHandle): void {
    this.#prometheus?.kernelEnded(handle);
  }

  /** See `RingKernelRuntime.kernelWatchdog`. */
  kernelWatchdog(): KernelWatchdog<KernelHandle> {
    const host = this.#host;
    this.#watchdog ??= new KernelWatchdog<KernelHandle>(() => host.kernels(), undefined, host.recoverStale);
    this.#watchdog.on('recovered', (r) =>
      host.log.warn(
        `watchdog replaced worker ${r.threadId}: '${r.kernel}' (${r.policy}); moved ${r.moved.length} kernels`,
      ),
    );
    return this.#watchdog;
  }

  /** The runtime shuts down: the watchdog, health checks and degradation manager stop. */
  stop(): void {
    this.#watchdog?.stop();
    this.#health?.stop();
    this.#degradation?.stop();
  }

  /** The tools' counts for the shutdown report. */
  counts(): { readonly circuitTrips: number; readonly healthChecks: number; readonly watchdogRecoveries: number } {
    return {
      circuitTrips: this.circuitBreakers().reduce((sum, breaker) => sum + breaker.stats().trips, 0),
      healthChecks: this.#health?.checksRun ?? 0,
      watchdogRecoveries: this.#watchdog?.recoveries ?? 0,
    };
  }
}
