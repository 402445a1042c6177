import { type TracerProvider, trace } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';
import { SAMPLER_NAMES, type SamplerName } from './origin-sampler.js';

/**
 * How a runtime traces its messages (`RingKernelRuntime.builder().tracing(options)`). Every field is optional;
 * unset fields come from the standard `OTEL_*` environment variables, then from the defaults. Options given here
 * win over the environment.
 *
 * @example
 * const runtime = await RingKernelRuntime.builder()
 *   .tracing({ serviceName: 'checkout', sampler: 'parentbased_traceidratio', samplerRatio: 0.01 })
 *   .build();
 */
export interface TracingOptions {
  /** Sampler at a message's origin. Env `OTEL_TRACES_SAMPLER`; default `parentbased_always_on`. */
  readonly sampler?: SamplerName;
  /** Ratio for the `*traceidratio` samplers, in [0, 1]. Env `OTEL_TRACES_SAMPLER_ARG`; default 1. */
  readonly samplerRatio?: number;
  /**
   * Where spans go: `'otlp'` (OTLP/HTTP protobuf), `'console'`, `'none'` (tracing off), or your own
   * `SpanExporter`. Env `OTEL_TRACES_EXPORTER`; default `'otlp'`. Ignored when `spanProcessor` or
   * `tracerProvider` is given.
   */
  readonly exporter?: 'otlp' | 'console' | 'none' | SpanExporter;
  /**
   * The OTLP/HTTP traces URL. Env `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), else
   * `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; default `http://localhost:4318/v1/traces` (Jaeger's OTLP port).
   */
  readonly endpoint?: string;
  /** `service.name` of the spans' resource. Env `OTEL_SERVICE_NAME`; default `'ringkernel'`. */
  readonly serviceName?: string;
  /**
   * Hand every span to this processor instead of exporting them ourselves (e.g. the `BatchSpanProcessor` your
   * own TracerProvider uses). Its queue limits are then yours.
   */
  readonly spanProcessor?: SpanProcessor;
  /**
   * Your own SDK TracerProvider (`NodeTracerProvider` / `BasicTracerProvider` of sdk-trace-base 2.x, or the
   * global one they registered): spans go to its span processors, with its resource. When neither this, nor
   * `spanProcessor`, nor `exporter` (nor `OTEL_TRACES_EXPORTER`) is given and the app has registered an SDK
   * TracerProvider globally, that one is used. The runtime flushes your provider or processor at shutdown but never
   * shuts it down: it is yours, and goes on serving your own spans.
   */
  readonly tracerProvider?: TracerProvider;
  /** Span records each kernel's telemetry ring holds (a power of two). Default 8192 (640 KiB). */
  readonly ringCapacity?: number;
  /** Span records the host's telemetry ring (send, call, receive, lifecycle) holds. Default 65536 (5 MiB). */
  readonly hostRingCapacity?: number;
  /** How often the exporter drains the rings, in ms. Default 100. */
  readonly exportIntervalMs?: number;
  /** Most spans per OTLP request. Default 4096. */
  readonly maxExportBatchSize?: number;
  /** How long shutdown waits for spans still being exported, in ms. Default 3000. */
  readonly shutdownTimeoutMs?: number;
  /**
   * How long one OTLP export may take, retries included, in ms. Env `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` /
   * `OTEL_EXPORTER_OTLP_TIMEOUT` (read by the exporter); default 10 000.
   */
  readonly exportTimeoutMs?: number;
  /**
   * Export from a worker thread of its own (default true): spans are built, encoded and sent there, reading the
   * telemetry rings in shared memory, so the thread that sends messages only writes records. Applies to the
   * built-in `'otlp'` and `'console'` exporters; a `SpanExporter`, `spanProcessor` or `tracerProvider` of yours
   * lives on your thread, so their spans are exported from the main thread.
   */
  readonly exportThread?: boolean;
  /**
   * The origin's rate cap, like Jaeger's rate-limiting sampler: messages whose trace begins here, per second at
   * most (on top of the sampler; a burst of a tenth of a second's worth passes at once). Past it, messages leave
   * unsampled and are counted (`stats().tracesShedForRate`), so `always_on` at millions of messages per second
   * yields whole traces at a rate the exporter carries rather than fragments. Default 20 000; `Infinity` for none.
   */
  readonly maxTracesPerSecond?: number;
  /**
   * The exporter thread's share of one core at most, in (0, 1] (its event-loop utilization over each second).
   * Past it, records wait in the telemetry rings; once half of a kernel's ring waits, the origin leaves messages to
   * that kernel untraced, whole (`stats().tracesShedForExport`). The thread also runs at the lowest scheduling
   * priority (nice 19, on Linux), so on a busy machine it takes only what the data path leaves. Tracing's cost to
   * the data path is thus bounded by design, not by how busy the machine happens to be. Default 0.1.
   */
  readonly exporterCpuShare?: number;
}

/** {@link TracingOptions} with the environment and defaults applied: what `runtime.tracing.options` holds. */
export interface ResolvedTracingOptions {
  readonly enabled: boolean;
  readonly sampler: SamplerName;
  readonly samplerRatio: number;
  readonly exporter: 'otlp' | 'console' | 'none' | SpanExporter;
  readonly endpoint: string;
  readonly serviceName: string;
  readonly spanProcessor: SpanProcessor | undefined;
  readonly resource: Resource | undefined;
  readonly ringCapacity: number;
  readonly hostRingCapacity: number;
  readonly exportIntervalMs: number;
  readonly maxExportBatchSize: number;
  readonly shutdownTimeoutMs: number;
  readonly exportTimeoutMs: number | undefined;
  readonly exportThread: boolean;
  readonly maxTracesPerSecond: number;
  readonly exporterCpuShare: number;
}

/** The default OTLP/HTTP traces endpoint: Jaeger v2 (and any OpenTelemetry Collector) receives OTLP here. */
export const DEFAULT_OTLP_TRACES_ENDPOINT = 'http://localhost:4318/v1/traces';

const OPTION_KEYS = new Set([
  'sampler',
  'samplerRatio',
  'exporter',
  'endpoint',
  'serviceName',
  'spanProcessor',
  'tracerProvider',
  'ringCapacity',
  'hostRingCapacity',
  'exportIntervalMs',
  'maxExportBatchSize',
  'shutdownTimeoutMs',
  'exportTimeoutMs',
  'exportThread',
  'maxTracesPerSecond',
  'exporterCpuShare',
]);

function powerOfTwo(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number')
    throw new ArgumentTypeError(`tracing.${name}`, `tracing.${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 2 || value > 1 << 24 || (value & (value - 1)) !== 0) {
    throw new InvalidArgumentError(
      `tracing.${name}`,
      `tracing.${name} must be a power of two in [2, 16777216], got ${value}`,
    );
  }
  return value;
}

function integer(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number')
    throw new ArgumentTypeError(`tracing.${name}`, `tracing.${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      `tracing.${name}`,
      `tracing.${name} must be an integer in [${min}, ${max}], got ${value}`,
    );
  }
  return value;
}

/** The default rate cap of traces begun per second at the origin. */
export const DEFAULT_MAX_TRACES_PER_SECOND = 20_000;

function rate(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number')
    throw new ArgumentTypeError(`tracing.${name}`, `tracing.${name} must be a number, got ${typeof value}`);
  if (!(value > 0))
    throw new InvalidArgumentError(
      `tracing.${name}`,
      `tracing.${name} must be a positive number (or Infinity), got ${value}`,
    );
  return value;
}

function share(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number')
    throw new ArgumentTypeError(`tracing.${name}`, `tracing.${name} must be a number, got ${typeof value}`);
  if (!(value > 0 && value <= 1))
    throw new InvalidArgumentError(`tracing.${name}`, `tracing.${name} must be a number in (0, 1], got ${value}`);
  return value;
}

function boolean(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean')
    throw new ArgumentTypeError(`tracing.${name}`, `tracing.${name} must be a boolean, got ${typeof value}`);
  return value;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

/** The span processor and resource of an SDK TracerProvider (sdk-trace-base 2.x keeps them in these fields). */
function sdkProviderParts(
  provider: TracerProvider,
): { processor: SpanProcessor; resource: Resource | undefined } | undefined {
  const delegate = (provider as { getDelegate?: () => TracerProvider }).getDelegate?.() ?? provider;
  const sdk = delegate as { _activeSpanProcessor?: SpanProcessor; _resource?: Resource };
  const processor = sdk._activeSpanProcessor;
  if (processor === undefined || typeof processor.onEnd !== 'function') return undefined;
  return { processor, resource: sdk._resource };
}

function fromProvider(provider: TracerProvider): { processor: SpanProcessor; resource: Resource | undefined } {
  const parts = sdkProviderParts(provider);
  if (parts === undefined) {
    throw new ArgumentTypeError(
      'tracing.tracerProvider',
      'tracing.tracerProvider must be an OpenTelemetry SDK TracerProvider (sdk-trace-base 2.x); for another provider pass its span processor as tracing.spanProcessor',
    );
  }
  return parts;
}

/**
 * Applies the environment and the defaults to `options`, and validates them.
 * @throws {TypeError | RangeError} naming the option (or variable) on a bad value.
 * @example
 * resolveTracingOptions({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).endpoint;
 * // 'http://collector:4318/v1/traces'
 */
export function resolveTracingOptions(
  options: TracingOptions = {},
  env: Readonly<Record<string, string | undefined>> = process.env,
): ResolvedTracingOptions {
  if (typeof options !== 'object' || options === null)
    throw new ArgumentTypeError('tracing', 'tracing options must be an object');
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw new ArgumentTypeError(`tracing.${key}`, `tracing.${key} is not a tracing option`);
  }
  const samplerName = options.sampler ?? nonEmpty(env.OTEL_TRACES_SAMPLER)?.toLowerCase() ?? 'parentbased_always_on';
  if (!(SAMPLER_NAMES as readonly string[]).includes(samplerName)) {
    throw new ArgumentTypeError(
      'tracing.sampler',
      `tracing.sampler must be one of ${SAMPLER_NAMES.join(', ')}, got ${JSON.stringify(samplerName)}`,
    );
  }
  const envRatio = nonEmpty(env.OTEL_TRACES_SAMPLER_ARG);
  const ratio = options.samplerRatio ?? (envRatio === undefined ? 1 : Number(envRatio));
  if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1)) {
    throw new InvalidArgumentError(
      'tracing.samplerRatio',
      `tracing.samplerRatio must be a number in [0, 1], got ${String(ratio)}`,
    );
  }
  const envExporter = nonEmpty(env.OTEL_TRACES_EXPORTER)?.toLowerCase();
  const exporter = options.exporter ?? envExporter ?? 'otlp';
  if (typeof exporter === 'string' && exporter !== 'otlp' && exporter !== 'console' && exporter !== 'none') {
    throw new ArgumentTypeError(
      'tracing.exporter',
      `tracing.exporter must be 'otlp', 'console', 'none' or a SpanExporter, got ${JSON.stringify(exporter)}`,
    );
  }
  if (typeof exporter === 'object' && (exporter === null || typeof exporter.export !== 'function')) {
    throw new ArgumentTypeError('tracing.exporter', 'tracing.exporter must be a SpanExporter (with an export method)');
  }
  const base = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  const endpoint =
    options.endpoint ??
    nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) ??
    (base === undefined ? undefined : `${base.replace(/\/+$/, '')}/v1/traces`) ??
    DEFAULT_OTLP_TRACES_ENDPOINT;
  try {
    new URL(endpoint);
  } catch {
    throw new ArgumentTypeError('tracing.endpoint', `tracing.endpoint must be a URL, got ${JSON.stringify(endpoint)}`);
  }
  const serviceName = options.serviceName ?? nonEmpty(env.OTEL_SERVICE_NAME) ?? 'ringkernel';
  if (typeof serviceName !== 'string' || serviceName === '') {
    throw new ArgumentTypeError('tracing.serviceName', 'tracing.serviceName must be a non-empty string');
  }
  let spanProcessor = options.spanProcessor;
  let resource: Resource | undefined;
  if (spanProcessor !== undefined && typeof spanProcessor.onEnd !== 'function') {
    throw new ArgumentTypeError(
      'tracing.spanProcessor',
      'tracing.spanProcessor must be a SpanProcessor (with an onEnd method)',
    );
  }
  if (options.tracerProvider !== undefined) {
    if (spanProcessor !== undefined)
      throw new ArgumentTypeError('tracing', 'pass tracing.spanProcessor or tracing.tracerProvider, not both');
    ({ processor: spanProcessor, resource } = fromProvider(options.tracerProvider));
  } else if (spanProcessor === undefined && options.exporter === undefined && envExporter === undefined) {
    // Nothing said where spans go: as instrumentation libraries do, use the app's global TracerProvider if it
    // registered an SDK one (its processors, its resource); else the default exporter.
    const global = sdkProviderParts(trace.getTracerProvider());
    if (global !== undefined) ({ processor: spanProcessor, resource } = global);
  }
  const sdkDisabled = nonEmpty(env.OTEL_SDK_DISABLED)?.toLowerCase() === 'true';
  return {
    enabled: !sdkDisabled && (spanProcessor !== undefined || exporter !== 'none'),
    sampler: samplerName as SamplerName,
    samplerRatio: ratio,
    exporter,
    endpoint,
    serviceName,
    spanProcessor,
    resource,
    ringCapacity: powerOfTwo('ringCapacity', options.ringCapacity, 8192),
    hostRingCapacity: powerOfTwo('hostRingCapacity', options.hostRingCapacity, 65536),
    exportIntervalMs: integer('exportIntervalMs', options.exportIntervalMs, 100, 1, 60_000),
    maxExportBatchSize: integer('maxExportBatchSize', options.maxExportBatchSize, 4096, 1, 1 << 20),
    shutdownTimeoutMs: integer('shutdownTimeoutMs', options.shutdownTimeoutMs, 3000, 0, 600_000),
    exportThread: boolean('exportThread', options.exportThread, true),
    maxTracesPerSecond: rate('maxTracesPerSecond', options.maxTracesPerSecond, DEFAULT_MAX_TRACES_PER_SECOND),
    exporterCpuShare: share('exporterCpuShare', options.exporterCpuShare, 0.1),
    exportTimeoutMs:
      options.exportTimeoutMs === undefined
        ? undefined
        : integer('exportTimeoutMs', options.exportTimeoutMs, 10_000, 1, 600_000),
  };
}
