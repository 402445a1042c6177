import { type Attributes, context, INVALID_SPAN_CONTEXT, type Span, type Tracer, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  type Sampler,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { otlpTraceExporterClass } from './otlp-trace-exporter.js';
import type { ResolvedTracingOptions } from './tracing-options.js';

/**
 * Your own spans around the runtime's: `startSpan(name, attributes?)` returns a span of the runtime's tracer
 * (`end()`, `setAttribute`, `recordException`), exported where the runtime's spans go, with its service name and
 * sampler. Messages sent while a span is active (`withSpan`, `startActiveSpan`) are its children, so a
 * "process_batch" span encloses the send, processing and receive spans it caused. With tracing off every span is
 * a no-op and the functions just run.
 *
 * @example
 * const obs = runtime.observabilityContext();
 * await obs.startActiveSpan('process_batch', { 'batch.size': batch.length }, async (span) => {
 *   for (const item of batch) await scorer.call(item);
 *   span.end();
 * });
 */
export interface ObservabilityContext {
  /** Whether spans are recorded (tracing is on). */
  readonly enabled: boolean;
  /** A span, child of the caller's active span if any; not active by itself (see `withSpan`). */
  startSpan(name: string, attributes?: Attributes): Span;
  /** Runs `fn` with `span` active: messages sent meanwhile (across awaits) are its children. */
  withSpan<T>(span: Span, fn: () => T): T;
  /** `startSpan` + `withSpan`: runs `fn(span)` with the new span active; `fn` ends it. */
  startActiveSpan<T>(name: string, attributes: Attributes | undefined, fn: (span: Span) => T): T;
}

/** With tracing off: spans that record nothing, functions that just run. */
export const NOOP_OBSERVABILITY: ObservabilityContext = {
  enabled: false,
  startSpan: () => trace.wrapSpanContext(INVALID_SPAN_CONTEXT),
  withSpan: (_span, fn) => fn(),
  startActiveSpan: (_name, _attributes, fn) => fn(trace.wrapSpanContext(INVALID_SPAN_CONTEXT)),
};

/** The SDK sampler that decides as the runtime's origin sampler does. */
function samplerOf(options: ResolvedTracingOptions): Sampler {
  const root = options.sampler.replace(/^parentbased_/, '');
  const rootSampler =
    root === 'always_on'
      ? new AlwaysOnSampler()
      : root === 'always_off'
        ? new AlwaysOffSampler()
        : new TraceIdRatioBasedSampler(options.samplerRatio);
  return options.sampler.startsWith('parentbased_') ? new ParentBasedSampler({ root: rootSampler }) : rootSampler;
}

/**
 * The runtime's tracer for user spans: an SDK tracer whose spans go to the user's span processor when tracing was
 * given one (never shut down here), else to a batch processor of our own exporting where the runtime exports.
 * Made on first use; it registers an AsyncLocalStorage context manager when none is registered, since without one
 * no span can be active. @internal
 */
export class RuntimeObservability implements ObservabilityContext {
  readonly enabled = true;
  readonly #provider: BasicTracerProvider;
  readonly #tracer: Tracer;
  /** Ours to shut down (we made it), or the user's (flushed only). */
  readonly #owned: boolean;

  constructor(options: ResolvedTracingOptions) {
    // The application's context manager, when it registered one; else ours (a span can only be active with one).
    const manager = new AsyncLocalStorageContextManager().enable();
    if (!context.setGlobalContextManager(manager)) manager.disable();
    const resource =
      options.resource ?? defaultResource().merge(resourceFromAttributes({ 'service.name': options.serviceName }));
    let processor: SpanProcessor;
    if (options.spanProcessor !== undefined) {
      processor = options.spanProcessor;
      this.#owned = false;
    } else {
      const exporter =
        options.exporter === 'console'
          ? new ConsoleSpanExporter()
          : options.exporter === 'otlp' || options.exporter === 'none'
            ? new (otlpTraceExporterClass())({
                url: options.endpoint,
                ...(options.exportTimeoutMs === undefined ? {} : { timeoutMillis: options.exportTimeoutMs }),
              })
            : options.exporter;
      processor = new BatchSpanProcessor(exporter, { scheduledDelayMillis: options.exportIntervalMs });
      this.#owned = typeof options.exporter === 'string';
    }
    this.#provider = new BasicTracerProvider({ resource, sampler: samplerOf(options), spanProcessors: [processor] });
    this.#tracer = this.#provider.getTracer('ringkernel');
  }

  startSpan(name: string, attributes?: Attributes): Span {
    return this.#tracer.startSpan(name, attributes === undefined ? {} : { attributes });
  }

  withSpan<T>(span: Span, fn: () => T): T {
    return context.with(trace.setSpan(context.active(), span), fn);
  }

  startActiveSpan<T>(name: string, attributes: Attributes | undefined, fn: (span: Span) => T): T {
    const span = this.startSpan(name, attributes);
    return this.withSpan(span, () => fn(span));
  }

  /** Exports what was ended. */
  async flush(): Promise<void> {
    await this.#provider.forceFlush();
  }

  /** Flushes; shuts down only the exporter this made (a user's processor or exporter is theirs). */
  async shutdown(): Promise<void> {
    if (this.#owned) await this.#provider.shutdown();
    else await this.#provider.forceFlush();
  }
}
