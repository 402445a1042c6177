import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { ConsoleSpanExporter } from '@opentelemetry/sdk-trace-base';
import { ExporterThread } from './exporter-thread.js';
import { HostSpanWriter } from './host-span-writer.js';
import type { KernelTelemetry } from './kernel-span-writer.js';
import { OriginSampler } from './origin-sampler.js';
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

  /** @internal — made by the runtime builder. */
  constructor(options: ResolvedTracingOptions) {
    this.options = options;
    this.#epochUnixMs = TelemetryClock.epochNow();
    const hostRing = createTelemetryRing(options.hostRingCapacity, this.#epochUnixMs);
    this.#hostRing = hostRing;
    const sampler = new OriginSampler(options.sampler, options.samplerRatio);
    this.host = new HostSpanWriter(new SpanRecorder(hostRing), new TelemetryClock(this.#epochUnixMs), sampler);
    const onFirstFailure = (message: string): void => {
      const where = options.spanProcessor === undefined && options.exporter === 'otlp' ? ` to ${options.endpoint}` : '';
      process.emitWarning(
        `ringkernel: traces could not be delivered${where} (${message}); further failures are only counted (runtime.tracing.stats())`,
        'RingKernelWarning',
      );
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

  /** Accounts the telemetry rings' memory in `ledger` from now on (the host's ring, and each kernel's). @internal */
  trackMemory(ledger: TelemetryMemoryLedger): void {
    this.#ledger = ledger;
    ledger.record(this.#hostRing, [{ kind: 'telemetry', owner: 'host', bytes: this.#hostRing.byteLength }]);
  }

  /** A telemetry ring for a kernel being launched, drained from now on. @internal */
  attachKernel(instance: number, name: string, kernelId: string): KernelTelemetry {
    const ring = createTelemetryRing(this.options.ringCapacity, this.#epochUnixMs);
    this.#kernelRings.set(instance, ring);
    this.#ledger?.record(ring, [{ kind: 'telemetry', owner: name, bytes: ring.byteLength }]);
    this.#exporter.nameKernel(instance, { name, kernelId });
    this.#exporter.addRing(ring);
    return { ring };
  }

  /** The kernel has left its worker: drain its ring once more, then forget it. @internal */
  detachKernel(instance: number): void {
    const ring = this.#kernelRings.get(instance);
    if (ring === undefined) return;
    this.#kernelRings.delete(instance);
    this.#ledger?.release(ring);
    this.#exporter.retireRing(ring);
  }

  /** Exports every span recorded so far and waits until it is delivered or has failed. */
  flush(): Promise<void> {
    return this.#exporter.flush();
  }

  /** Spans exported and failed, records dropped and pending. */
  stats(): TelemetryStats {
    return this.#exporter.stats();
  }

  /** Flushes (up to `shutdownTimeoutMs`) and stops exporting. Called by the runtime's shutdown. @internal */
  shutdown(): Promise<void> {
    return this.#exporter.shutdown(this.options.shutdownTimeoutMs);
  }
}

function sinkOf(options: ResolvedTracingOptions): TelemetrySink {
  if (options.spanProcessor !== undefined) return { processor: options.spanProcessor };
  const exporter = options.exporter;
  if (exporter === 'console') return { exporter: new ConsoleSpanExporter() };
  if (exporter === 'otlp') {
    const timeout = options.exportTimeoutMs;
    return {
      exporter: new OTLPTraceExporter({
        url: options.endpoint,
        ...(timeout === undefined ? {} : { timeoutMillis: timeout }),
      }),
    };
  }
  if (exporter === 'none') throw new TypeError('tracing is off: exporter none');
  return { exporter, borrowed: true };
}
