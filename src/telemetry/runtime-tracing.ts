import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { ConsoleSpanExporter } from '@opentelemetry/sdk-trace-base';
import { defineApiGlobalSlot } from './active-parent.js';
import { ExporterThread } from './exporter-thread.js';
import { HostSpanWriter } from './host-span-writer.js';
import type { KernelTelemetry } from './kernel-span-writer.js';
import { RuntimeObservability } from './observability-context.js';
import { OriginSampler } from './origin-sampler.js';
import { otlpTraceExporterClass } from './otlp-trace-exporter.js';
import { SpanRecorder } from './span-recorder.js';
import { TelemetryClock } from './telemetry-clock.js';
import { TelemetryExporter, type TelemetrySink, type TelemetryStats } from './telemetry-exporter.js';
import { createTelemetryRing } from './telemetry-ring.js';
import { type ResolvedTracingOptions, resolveTracingOptions, type TracingOptions } from './tracing-options.js';

/** Where the telemetry rings' memory is accounted (the runtime's memory dashboard). */
export interface TelemetryMemoryLedger {
  record(owner: object, allocations: readonly { kind: 'telemetry'; owner: string; bytes: number }[]): void;
  release(owner: object): void;
}

/** Where tracing says what went wrong (the runtime's logger). */
export interface TracingLog {
  warn(message: string): void;
}

/**
 * {@link TelemetryStats} and what the origin left out. Every message the sampler chose is either traced whole or
 * counted here: `tracesShedForRate` (over the origin's rate cap), `tracesShedForRoom` (the host's telemetry ring
 * had no room for its record), `tracesShedForExport` (the exporter was behind: half the destination kernel's ring
 * still waited for it); and every trace cut short downstream counts one record in `recordsDropped`.
 */
export interface TracingStats extends TelemetryStats {
  readonly tracesShedForRate: number;
  readonly tracesShedForRoom: number;
  readonly tracesShedForExport: number;
}

/**
 * A runtime's tracing: the host's span writer and telemetry ring, a telemetry ring per kernel, and the exporter
 * that drains them all on the main thread. Exists only when tracing is on; with tracing off the runtime holds
 * `undefined` and the hot paths test that once.
 *
 * @example
 * const runtime = await RingKernelRuntime.builder().tracing({ serviceName: 'demo' }).build();
 * // … send, call …
 * await runtime.tracing?.flush();
 * console.log(runtime.tracing?.stats());
 */
export class RuntimeTracing {
  /** The options in force, environment applied. */
  readonly options: ResolvedTracingOptions;
  /** Where send/call/receive/lifecycle spans begin. @internal */
  readonly host: HostSpanWriter;
  /** In a thread of its own for the built-in exporters; on this thread for a user's exporter or processor. */
  readonly #exporter: TelemetryExporter | ExporterThread;
  readonly #epochUnixMs: number;
  readonly #kernelRings = new Map<number, SharedArrayBuffer>();
  readonly #hostRing: SharedArrayBuffer;
  #ledger: TelemetryMemoryLedger | undefined;
  #log: TracingLog | undefined;
  #observability: RuntimeObservability | undefined;

  /** @internal — made by the runtime builder. */
  constructor(options: ResolvedTracingOptions) {
    this.options = options;
    defineApiGlobalSlot();
    this.#epochUnixMs = TelemetryClock.epochNow();
    const hostRing = createTelemetryRing(options.hostRingCapacity, this.#epochUnixMs);
    this.#hostRing = hostRing;
    const sampler = new OriginSampler(options.sampler, options.samplerRatio);
    this.host = new HostSpanWriter(
      new SpanRecorder(hostRing),
      new TelemetryClock(this.#epochUnixMs),
      sampler,
      options.maxTracesPerSecond,
    );
    const onFirstFailure = (message: string): void => {
      const where = options.spanProcessor === undefined && options.exporter === 'otlp' ? ` to ${options.endpoint}` : '';
      const text = `traces could not be delivered${where} (${message}); further failures are only counted (runtime.tracing.stats())`;
      if (this.#log !== undefined) this.#log.warn(text);
      else process.emitWarning(`ringkernel: ${text}`, 'RingKernelWarning');
    };
    const exporter = options.exporter;
    if (
      options.spanProcessor === undefined &&
      (exporter === 'otlp' || exporter === 'console') &&
      options.exportThread
    ) {
      this.#exporter = new ExporterThread(
        {
          exporter,
          endpoint: options.endpoint,
          serviceName: options.serviceName,
          exportIntervalMs: options.exportIntervalMs,
          maxExportBatchSize: options.maxExportBatchSize,
          exportTimeoutMs: options.exportTimeoutMs,
          maxCpuShare: options.exporterCpuShare,
        },
        onFirstFailure,
      );
    } else {
      const resource =
        options.resource ?? defaultResource().merge(resourceFromAttributes({ 'service.name': options.serviceName }));
      this.#exporter = new TelemetryExporter({
        sink: sinkOf(options),
        resource,
        exportIntervalMs: options.exportIntervalMs,
        maxExportBatchSize: options.maxExportBatchSize,
        onFirstFailure: (error) => onFirstFailure(error?.message ?? 'export failed'),
      });
    }
    this.#exporter.addRing(hostRing);
  }

  /**
   * Tracing for a runtime from `options` and the `OTEL_*` environment, or undefined when it resolves to off
   * (`exporter: 'none'`, `OTEL_TRACES_EXPORTER=none`, `OTEL_SDK_DISABLED=true`). @internal
   */
  static create(
    options: TracingOptions | undefined,
    env: Readonly<Record<string, string | undefined>> = process.env,
  ): RuntimeTracing | undefined {
    const resolved = resolveTracingOptions(options, env);
    return resolved.enabled ? new RuntimeTracing(resolved) : undefined;
  }

  /**
   * Joins the runtime: the telemetry rings' memory is accounted in `ledger` from now on (the host's ring, and each
   * kernel's), and warnings go to `log`. @internal
   */
  joinRuntime(ledger: TelemetryMemoryLedger, log: TracingLog): void {
    this.#ledger = ledger;
    this.#log = log;
    ledger.record(this.#hostRing, [{ kind: 'telemetry', owner: 'host', bytes: this.#hostRing.byteLength }]);
  }

  /** A telemetry ring for a kernel being launched, drained from now on. @internal */
  attachKernel(instance: number, name: string, kernelId: string): KernelTelemetry {
    const ring = createTelemetryRing(this.options.ringCapacity, this.#epochUnixMs);
    this.#kernelRings.set(instance, ring);
    this.#ledger?.record(ring, [{ kind: 'telemetry', owner: name, bytes: ring.byteLength }]);
    this.#exporter.nameKernel(instance, { name, kernelId });
    this.#exporter.addRing(ring);
    this.host.watchKernel(instance, ring);
    return { ring };
  }

  /** The kernel has left its worker: drain its ring once more, then forget it. @internal */
  detachKernel(instance: number): void {
    const ring = this.#kernelRings.get(instance);
    if (ring === undefined) return;
    this.#kernelRings.delete(instance);
    this.host.unwatchKernel(instance);
    this.#ledger?.release(ring);
    this.#exporter.retireRing(ring);
  }

  /** Settles when the exporter is ready (its thread loaded), so its start-up does not compete with the data path. */
  ready(): Promise<void> {
    return this.#exporter instanceof ExporterThread ? this.#exporter.ready : Promise.resolve();
  }

  /** The tracer for the application's own spans (`runtime.observabilityContext()`), made on first use. @internal */
  observability(): RuntimeObservability {
    this.#observability ??= new RuntimeObservability(this.options);
    return this.#observability;
  }

  /** Exports every span recorded so far and waits until it is delivered or has failed. */
  async flush(): Promise<void> {
    await this.#observability?.flush();
    await this.#exporter.flush();
  }

  /** Spans exported and failed, records dropped and pending, traces the origin left out. */
  stats(): TracingStats {
    const exported = this.#exporter.stats();
    const origin = this.host.counts();
    return {
      ...exported,
      recordsDropped: exported.recordsDropped + origin.dropped,
      tracesShedForRate: origin.shedForRate,
      tracesShedForRoom: origin.shedForRoom,
      tracesShedForExport: origin.shedForExport,
    };
  }

  /** Flushes (up to `shutdownTimeoutMs`) and stops exporting. Called by the runtime's shutdown. @internal */
  async shutdown(): Promise<void> {
    await this.#observability?.shutdown();
    await this.#exporter.shutdown(this.options.shutdownTimeoutMs);
  }
}

function sinkOf(options: ResolvedTracingOptions): TelemetrySink {
  if (options.spanProcessor !== undefined) return { processor: options.spanProcessor };
  const exporter = options.exporter;
  if (exporter === 'console') return { exporter: new ConsoleSpanExporter() };
  if (exporter === 'otlp') {
    const timeout = options.exportTimeoutMs;
    return {
      exporter: new (otlpTraceExporterClass())({
        url: options.endpoint,
        ...(timeout === undefined ? {} : { timeoutMillis: timeout }),
      }),
    };
  }
  if (exporter === 'none') throw new TypeError('tracing is off: exporter none');
  return { exporter, borrowed: true };
}
