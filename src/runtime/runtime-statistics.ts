import type { DeadLetterReason } from '../executor/protocol.js';
import type { KernelStatusName } from '../wire/kernel-status.js';

/** What {@link RingKernelRuntime.shutdown} (or `completeShutdown`) reports: the runtime's whole life in figures. */
export interface ShutdownReport {
  /** From build to Stopped, ms. */
  readonly uptimeMs: number;
  /** Kernels launched over the runtime's life. */
  readonly kernelsLaunched: number;
  /** Kernels that ended Terminated / Failed. */
  readonly terminated: number;
  readonly failed: number;
  /** Kernel restarts by supervisors (and the watchdog). */
  readonly restarts: number;
  /** Messages the kernels handled without error, whose handler threw, and dropped (malformed, discarded). */
  readonly messagesProcessed: number;
  readonly messagesFailed: number;
  readonly messagesDropped: number;
  /** Every message dead-lettered, and by reason. */
  readonly deadLetters: number;
  readonly deadLettersByReason: Readonly<Partial<Record<DeadLetterReason, number>>>;
  /** Messages refused by load shedding. */
  readonly shedMessages: number;
  /** Times a circuit breaker opened. */
  readonly circuitTrips: number;
  /** Health checks run. */
  readonly healthChecks: number;
  /** Stale kernels the watchdog acted on. */
  readonly watchdogRecoveries: number;
  /** Kernels moved between devices, and checkpoints taken (by `handle.checkpoint()` and by migrations). */
  readonly migratedKernels: number;
  readonly checkpoints: number;
  /** Whether a drain finished with no work left (undefined: no drain was asked for). */
  readonly drained: boolean | undefined;
  /** How long the shutdown itself took, ms. */
  readonly durationMs: number;
}

/** A kernel that has ended, as the statistics count it. */
export interface EndedKernel {
  readonly status: KernelStatusName;
  counters(): { readonly processed: number; readonly failed: number; readonly dropped: number };
}

/** The figures of a shutdown report that other parts of the runtime keep (dead letters, breakers, checks…). */
export type ReportedElsewhere = Pick<
  ShutdownReport,
  | 'deadLetters'
  | 'deadLettersByReason'
  | 'shedMessages'
  | 'circuitTrips'
  | 'healthChecks'
  | 'watchdogRecoveries'
  | 'drained'
>;

/** How many recent failure times are kept for {@link RuntimeStatistics.recentFailures}. */
const FAILURE_TIMES_KEPT = 1000;

/**
 * The runtime's life in figures: kernels launched, ended (and how), restarted, migrated and checkpointed, the
 * message counters of the kernels that have ended, and when kernels failed (for health checks).
 */
export class RuntimeStatistics {
  readonly #builtAt = performance.now();
  #launched = 0;
  #terminated = 0;
  #failed = 0;
  #restarts = 0;
  #migrations = 0;
  #checkpoints = 0;
  /** Counters of kernels that have ended, added up as each one leaves. */
  readonly #ended = { processed: 0, failed: 0, dropped: 0 };
  /** When kernels failed, most recent last. */
  readonly #failureTimes: number[] = [];

  /** A kernel was launched. */
  launched(): void {
    this.#launched++;
  }

  /** A supervisor (or the watchdog) restarted a kernel. */
  restarted(): void {
    this.#restarts++;
  }

  /** A kernel was migrated between devices (a migration takes a checkpoint too). */
  migrated(): void {
    this.#migrations++;
    this.#checkpoints++;
  }

  /** A checkpoint was taken. */
  checkpointed(): void {
    this.#checkpoints++;
  }

  /** A kernel's instance failed now (an ended kernel's failure is counted by {@link RuntimeStatistics.ended}). */
  failedNow(): void {
    this.#failureTimes.push(performance.now());
    if (this.#failureTimes.length > FAILURE_TIMES_KEPT) this.#failureTimes.shift();
  }

  /** A kernel has ended: its counters are added up, and it counts as terminated or failed. */
  ended(kernel: EndedKernel): void {
    const counters = kernel.counters();
    this.#ended.processed += counters.processed;
    this.#ended.failed += counters.failed;
    this.#ended.dropped += counters.dropped;
    if (kernel.status === 'Failed') {
      this.#failed++;
      this.failedNow();
    } else {
      this.#terminated++;
    }
  }

  /** How many kernels failed in the last `ms` milliseconds. */
  recentFailures(ms: number): number {
    const since = performance.now() - ms;
    return this.#failureTimes.filter((at) => at >= since).length;
  }

  /** The shutdown report, with the figures kept elsewhere, for a shutdown that began at `startedAt`. */
  report(elsewhere: ReportedElsewhere, startedAt: number): ShutdownReport {
    const now = performance.now();
    return {
      uptimeMs: Math.round(now - this.#builtAt),
      kernelsLaunched: this.#launched,
      terminated: this.#terminated,
      failed: this.#failed,
      restarts: this.#restarts,
      messagesProcessed: this.#ended.processed,
      messagesFailed: this.#ended.failed,
      messagesDropped: this.#ended.dropped,
      deadLetters: elsewhere.deadLetters,
      deadLettersByReason: elsewhere.deadLettersByReason,
      shedMessages: elsewhere.shedMessages,
      circuitTrips: elsewhere.circuitTrips,
      healthChecks: elsewhere.healthChecks,
      watchdogRecoveries: elsewhere.watchdogRecoveries,
      migratedKernels: this.#migrations,
      checkpoints: this.#checkpoints,
      drained: elsewhere.drained,
      durationMs: Math.round(now - startedAt),
    };
  }
}
