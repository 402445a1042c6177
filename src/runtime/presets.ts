import { availableParallelism } from 'node:os';
import type { WatchdogPolicy } from '../operations/kernel-watchdog.js';
import type { TracingOptions } from '../telemetry/tracing-options.js';
import type { RuntimeConfig } from './config.js';

/** A preset's name, as the builder method that applies it. */
export type PresetName = 'development' | 'production' | 'highPerformance';

/**
 * Exactly what a builder preset sets: runtime settings (explicit `.config()` settings override them), and which
 * operations the runtime starts at build.
 */
export interface PresetSettings {
  readonly name: PresetName;
  readonly config: Partial<RuntimeConfig>;
  /** Run the health checks on this interval, ms. */
  readonly healthCheckIntervalMs?: number;
  /** Scan for stale kernels, and what to do with them. */
  readonly watchdog?: {
    readonly intervalMs: number;
    readonly heartbeatTimeoutMs: number;
    readonly policy: WatchdogPolicy;
  };
  /** Evaluate the degradation level (and shed by priority) on this interval, ms. */
  readonly degradationIntervalMs?: number;
  /** Drain and shut down gracefully on SIGINT / SIGTERM, with this drain timeout, ms. */
  readonly gracefulShutdownDrainMs?: number;
  /**
   * Tracing, as `builder.tracing(options)` would turn it on (an explicit `.tracing()` replaces it; the
   * `OTEL_TRACES_SAMPLER*` variables, when set, choose the sampler). Absent: tracing off.
   */
  readonly tracing?: TracingOptions;
}

/**
 * The presets (the seed's `RuntimeBuilder::development()`, `production()`, `high_performance()`), each the exact
 * settings it applies.
 *
 * - **development**: fast start and verbose logs — two workers, `logLevel: 'debug'` (launches, failures,
 *   restarts, degradation, every dead letter), a short 2 s termination timeout, handler latency sampled, every
 *   message traced where that is affordable (`parentbased_always_on`, OTLP to the default endpoint): up to the
 *   rate cap of 20 000 traces/s, while the telemetry rings have room and while the exporter thread (lowest
 *   priority, a tenth of a core at most) keeps up; at higher rates the messages past it leave untraced — whole
 *   traces, never fragments — and are counted (`runtime.tracing.stats()`), and the
 *   watchdog reports stale kernels after 5 s (report only: a developer wants to see the stuck handler, not have it
 *   replaced).
 * - **production**: `logLevel: 'info'`; 10 % of messages traced (`parentbased_traceidratio`, 0.1); health checks
 *   every 5 s; the watchdog every second, restarting kernels stale for 30 s (`'restart'`); the degradation
 *   manager every second, shedding by priority; a graceful drain of up to 30 s on SIGINT / SIGTERM; termination
 *   timeout 10 s.
 * - **highPerformance**: maximum throughput, minimal overhead — tracing off, handler latency not sampled
 *   (`enableTelemetry: false`), deeper queues (16 384 frames), `logLevel: 'error'`, no periodic monitors.
 */
export const PRESETS: Readonly<Record<PresetName, PresetSettings>> = Object.freeze({
  development: {
    name: 'development',
    config: {
      workers: Math.min(2, availableParallelism()),
      logLevel: 'debug',
      terminationTimeout: 2_000,
      enableTelemetry: true,
    },
    watchdog: { intervalMs: 1_000, heartbeatTimeoutMs: 5_000, policy: 'report' },
    tracing: { sampler: 'parentbased_always_on', shutdownTimeoutMs: 1_000 },
  },
  production: {
    name: 'production',
    config: { logLevel: 'info', terminationTimeout: 10_000, enableTelemetry: true },
    healthCheckIntervalMs: 5_000,
    watchdog: { intervalMs: 1_000, heartbeatTimeoutMs: 30_000, policy: 'restart' },
    degradationIntervalMs: 1_000,
    gracefulShutdownDrainMs: 30_000,
    tracing: { sampler: 'parentbased_traceidratio', samplerRatio: 0.1 },
  },
  highPerformance: {
    name: 'highPerformance',
    config: { logLevel: 'error', enableTelemetry: false, defaultQueueCapacity: 16_384 },
  },
});
