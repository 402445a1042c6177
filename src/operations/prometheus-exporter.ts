import { createServer, type Server } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import type { TracingStats } from '../telemetry/runtime-tracing.js';
import type { CircuitState } from './circuit-breaker.js';
import type { DegradationLevel } from './degradation-manager.js';
import { registerDeviceBatchMetrics } from './device-batch-series.js';
import type { HealthReport } from './health-checker.js';
import { probeAnswer } from './health-endpoints.js';
import { KernelSeriesBook, type MeteredKernel } from './kernel-series.js';
import { SnapshotHistogram } from './snapshot-histogram.js';

/** What the exporter reads from the runtime at scrape time (the runtime implements it). */
export interface MetricsSource {
  kernels(): readonly MeteredKernel[];
  readonly deadLetters: { counts(): Readonly<Partial<Record<string, number>>> };
  circuitBreakers(): readonly { readonly name: string; readonly state: CircuitState }[];
  degradationLevel(): DegradationLevel;
  lostDevices(): readonly { readonly device: number; readonly cudaErrorName: string }[];
  deviceMemory(): readonly { readonly device: number; readonly usedBytes: number; readonly budgetBytes: number }[];
  gpuMemoryDashboard(): { totals(): Readonly<Record<string, number>> };
  /** `/healthz` and `/readyz` answer from it. */
  healthChecker(): { check(): Promise<HealthReport> };
  /** Tracing's own counts, when tracing is on. */
  readonly tracing?: { stats(): TracingStats } | undefined;
}

const DEGRADATION_ORDER: readonly DegradationLevel[] = ['Normal', 'Light', 'Moderate', 'Severe', 'Critical'];
const CIRCUIT_LEVEL: Record<CircuitState, number> = { Closed: 0, HalfOpen: 1, Open: 2 };

/** Options of `runtime.prometheusExporter()`, taken when the exporter is first made. */
export interface PrometheusExporterOptions {
  /**
   * Register the runtime's metrics into this registry (your application's), beside your own, instead of a
   * registry of the exporter's. The runtime never clears or unregisters anything in it.
   */
  readonly registry?: Registry;
  /**
   * Also collect prom-client's default process metrics (`process_cpu_seconds_total`, resident memory, event-loop
   * lag, GC, heap) into the registry — less the three gauges it names `*_total` (active handles, requests,
   * resources: their per-type gauges stay), which Prometheus's linter rejects. Default false: a registry that has
   * them already would refuse them twice.
   */
  readonly processMetrics?: boolean;
}

/** Where {@link PrometheusExporter.serve} listens. */
export interface ServeOptions {
  /** TCP port; 0 (default) picks a free one. */
  readonly port?: number;
  /**
   * Address to bind. Default `'127.0.0.1'`: only this machine can scrape. Use `'0.0.0.0'` (or `'::'`) where a
   * Prometheus in another container or host scrapes it.
   */
  readonly host?: string;
}

/** A running metrics server. */
export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

const OPTION_KEYS = new Set(['registry', 'processMetrics']);
/** Default process metrics that are gauges named `_total`. */
const TOTAL_NAMED_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** Validates {@link PrometheusExporterOptions}. @throws {ArgumentTypeError} naming the bad field. */
export function checkExporterOptions(options: PrometheusExporterOptions): void {
  if (typeof options !== 'object' || options === null)
    throw new ArgumentTypeError('options', 'prometheusExporter options must be an object');
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key))
      throw new ArgumentTypeError(`options.${key}`, `prometheusExporter.${key} is not an option`);
  }
  const { registry, processMetrics } = options;
  if (registry !== undefined && (typeof registry !== 'object' || typeof registry.registerMetric !== 'function')) {
    throw new ArgumentTypeError('options.registry', 'prometheusExporter.registry must be a prom-client Registry');
  }
  if (processMetrics !== undefined && typeof processMetrics !== 'boolean') {
    throw new ArgumentTypeError(
      'options.processMetrics',
      `prometheusExporter.processMetrics must be a boolean, got ${typeof processMetrics}`,
    );
  }
}

/**
 * The runtime's metrics in Prometheus text format, read at scrape time from the kernels' ControlBlocks and
 * latency histograms and the runtime's own counters (prom-client writes the format). Monotonic counts are
 * counters (`_total`), latencies are histograms in seconds (`_bucket`/`_sum`/`_count`), and a kernel that ends
 * keeps its final series for two more scrapes. `gather()` returns the text; `serve()` exposes `/metrics`,
 * `/healthz` and `/readyz` over HTTP.
 *
 * @example
 * const server = await runtime.prometheusExporter().serve({ port: 9464, host: '0.0.0.0' });
 * // curl http://localhost:9464/metrics ; curl http://localhost:9464/readyz
 */
export class PrometheusExporter {
  /** The prom-client registry the metrics live in (yours, when given; add your own metrics to it if you like). */
  readonly registry: Registry;
  readonly #runtime: MetricsSource;
  readonly #series: KernelSeriesBook;

  /** @internal — use `runtime.prometheusExporter()`. */
  constructor(runtime: MetricsSource, options: PrometheusExporterOptions = {}) {
    checkExporterOptions(options);
    this.#runtime = runtime;
    this.registry = options.registry ?? new Registry();
    const registers = [this.registry];
    const series = new KernelSeriesBook(() => runtime.kernels());
    this.#series = series;
    new Counter({
      name: 'ringkernel_kernel_messages_total',
      help: 'Messages per kernel: received (taken off its input ring), processed, failed (handler threw), dropped. An ended kernel keeps its final counts for two more scrapes.',
      labelNames: ['kernel', 'outcome'],
      registers,
      collect() {
        this.reset();
        for (const row of series.rows()) {
          this.inc({ kernel: row.kernel, outcome: 'received' }, row.received);
          this.inc({ kernel: row.kernel, outcome: 'processed' }, row.processed);
          this.inc({ kernel: row.kernel, outcome: 'failed' }, row.failed);
          this.inc({ kernel: row.kernel, outcome: 'dropped' }, row.dropped);
        }
      },
    });
    new Counter({
      name: 'ringkernel_kernel_restarts_total',
      help: 'Times a supervisor (or the watchdog) restarted each kernel.',
      labelNames: ['kernel'],
      registers,
      collect() {
        this.reset();
        for (const row of series.rows()) this.inc({ kernel: row.kernel }, row.restarts);
      },
    });
    new Counter({
      name: 'ringkernel_kernel_migrations_total',
      help: 'Times each kernel was migrated between devices.',
      labelNames: ['kernel'],
      registers,
      collect() {
        this.reset();
        for (const row of series.rows()) this.inc({ kernel: row.kernel }, row.migrations);
      },
    });
    new SnapshotHistogram({
      name: 'ringkernel_kernel_handler_latency_seconds',
      help: 'Handler latency per kernel, in the kernel (one message in eight is timed).',
      registers,
      read: () => series.rows().map((row) => ({ labels: { kernel: row.kernel }, latency: row.handlerLatency })),
    });
    new SnapshotHistogram({
      name: 'ringkernel_kernel_call_duration_seconds',
      help: 'Round trip of calls answered with a result, per kernel, on the host: request written (or queued) to its response read.',
      registers,
      read: () => series.rows().map((row) => ({ labels: { kernel: row.kernel }, latency: row.callLatency })),
    });
    new SnapshotHistogram({
      name: 'ringkernel_kernel_hop_latency_seconds',
      help: "Kernel-to-kernel hop latency per receiving kernel: from the sending kernel's batch stamping the frame (HLC time, microsecond resolution) to the receiving kernel's batch taking it; one frame in eight.",
      registers,
      read: () => series.rows().map((row) => ({ labels: { kernel: row.kernel }, latency: row.hopLatency })),
    });
    const live = (): MeteredKernel[] => series.rows().flatMap((row) => (row.live === undefined ? [] : [row.live]));
    new Gauge({
      name: 'ringkernel_kernel_queue_depth',
      help: 'Frames waiting in a live kernel queue (input: not yet taken by the kernel; output: not yet read by the host).',
      labelNames: ['kernel', 'queue'],
      registers,
      collect() {
        this.reset();
        for (const kernel of live()) {
          const m = kernel.metrics();
          this.set({ kernel: kernel.name, queue: 'input' }, m.inputQueueDepth);
          this.set({ kernel: kernel.name, queue: 'output' }, m.outputQueueDepth);
        }
      },
    });
    new Gauge({
      name: 'ringkernel_kernels',
      help: 'Live kernels by lifecycle state.',
      labelNames: ['status'],
      registers,
      collect() {
        this.reset();
        for (const kernel of live()) this.inc({ status: kernel.status });
      },
    });
    new Gauge({
      name: 'ringkernel_kernel_device',
      help: 'The (virtual) device hosting each live kernel.',
      labelNames: ['kernel'],
      registers,
      collect() {
        this.reset();
        for (const kernel of live()) this.set({ kernel: kernel.name }, kernel.device);
      },
    });
    new Counter({
      name: 'ringkernel_dead_letters_total',
      help: 'Messages that could not be handled or delivered, by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, count] of Object.entries(runtime.deadLetters.counts())) this.inc({ reason }, count ?? 0);
      },
    });
    new Gauge({
      name: 'ringkernel_circuit_breaker_state',
      help: 'Circuit breakers: 0 closed, 1 half-open, 2 open.',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const breaker of runtime.circuitBreakers()) this.set({ name: breaker.name }, CIRCUIT_LEVEL[breaker.state]);
      },
    });
    new Counter({
      name: 'ringkernel_kernel_send_stalls_total',
      help: 'Times sends to a live kernel were found deadlocked: input full, output full, nothing reading outputs.',
      labelNames: ['kernel'],
      registers,
      collect() {
        this.reset();
        for (const handle of runtime.kernels()) this.inc({ kernel: handle.name }, handle.metrics().sendStalls);
      },
    });
    new Gauge({
      name: 'ringkernel_degradation_level',
      help: 'Degradation level: 0 Normal, 1 Light, 2 Moderate, 3 Severe, 4 Critical.',
      registers,
      collect() {
        this.set(DEGRADATION_ORDER.indexOf(runtime.degradationLevel()));
      },
    });
    new Gauge({
      name: 'ringkernel_cuda_device_lost',
      help: 'CUDA devices lost to a sticky error (a kernel fault): 1 per lost device; the process cannot use them again.',
      labelNames: ['device', 'error'],
      registers,
      collect() {
        this.reset();
        for (const { device, cudaErrorName } of runtime.lostDevices()) {
          this.set({ device: String(device), error: cudaErrorName }, 1);
        }
      },
    });
    new Gauge({
      name: 'ringkernel_device_memory_bytes',
      help: 'Memory per device: used and budget (CPU virtual devices: kernel rings and control blocks against config.deviceMemoryMB; CUDA: cuMemGetInfo, in use by every process against the total).',
      labelNames: ['device', 'kind'],
      registers,
      collect() {
        this.reset();
        for (const { device, usedBytes, budgetBytes } of runtime.deviceMemory()) {
          this.set({ device: String(device), kind: 'used' }, usedBytes);
          this.set({ device: String(device), kind: 'budget' }, budgetBytes);
        }
      },
    });
    new Gauge({
      name: 'ringkernel_memory_bytes',
      help: 'Memory the runtime allocated, by kind (rings, control blocks, telemetry rings, device buffers).',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const { total: _total, ...byKind } = runtime.gpuMemoryDashboard().totals();
        for (const [kind, bytes] of Object.entries(byKind)) this.set({ kind }, bytes);
      },
    });
    registerTracingMetrics(runtime, registers);
    registerDeviceBatchMetrics(series, registers);
    if (options.processMetrics === true) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client names these gauges like counters, which Prometheus's linter rejects; their per-type
      // breakdowns (nodejs_active_handles{type}, …) stay.
      for (const name of TOTAL_NAMED_GAUGES) this.registry.removeSingleMetric(name);
    }
  }

  /** A kernel ended: its final counts stay in the next scrapes. @internal */
  kernelEnded(kernel: MeteredKernel): void {
    this.#series.ended(kernel);
  }

  /** The content type of {@link PrometheusExporter.gather}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric, in Prometheus text format. */
  gather(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Serves over HTTP, on `host:port` (see {@link ServeOptions}; a bare number is the port):
   * - `GET /metrics` — {@link PrometheusExporter.gather};
   * - `GET /healthz` — liveness from the runtime's health checker: 200, or 503 when a liveness check is
   *   Unhealthy; a JSON body with each check's verdict;
   * - `GET /readyz` — readiness: 200, or 503 when any check is not Healthy; the same JSON body.
   *
   * Resolves once listening, with the port and a `close()`. The server does not keep the process alive.
   * @throws {TypeError | RangeError} on a bad port or host.
   */
  async serve(options: ServeOptions | number = {}): Promise<MetricsServer> {
    const { port = 0, host = '127.0.0.1' } = typeof options === 'number' ? { port: options } : options;
    if (!Number.isInteger(port) || port < 0 || port > 65_535) {
      throw new InvalidArgumentError(
        'options.port',
        `serve: port must be an integer in [0, 65535], got ${String(port)}`,
      );
    }
    if (typeof host !== 'string' || host === '')
      throw new ArgumentTypeError('options.host', `serve: host must be a non-empty string, got ${describeValue(host)}`);
    const server: Server = createServer((request, response) => {
      const path = request.url?.split('?')[0];
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('method not allowed\n');
        return;
      }
      if (path === '/metrics') {
        this.gather().then(
          (text) => response.writeHead(200, { 'content-type': this.contentType }).end(text),
          (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
        );
        return;
      }
      if (path === '/healthz' || path === '/readyz') {
        this.#runtime
          .healthChecker()
          .check()
          .then(
            (report) => {
              const answer = probeAnswer(report, path === '/healthz' ? 'liveness' : 'readiness');
              response
                .writeHead(answer.statusCode, { 'content-type': 'application/json' })
                .end(`${JSON.stringify(answer.body)}\n`);
            },
            (error: Error) => response.writeHead(503, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
          );
        return;
      }
      if (path === '/') {
        response
          .writeHead(200, { 'content-type': 'text/plain' })
          .end('ringkernel: /metrics (Prometheus), /healthz (liveness), /readyz (readiness)\n');
        return;
      }
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    server.unref();
    const address = server.address();
    return {
      port: typeof address === 'object' && address !== null ? address.port : port,
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    };
  }
}

/** Tracing's own counts: what was exported, what failed, what was dropped or left out, and why. */
function registerTracingMetrics(runtime: MetricsSource, registers: Registry[]): void {
  const stats = () => runtime.tracing?.stats();
  const counter = (name: string, help: string, read: (s: NonNullable<ReturnType<typeof stats>>) => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        const current = stats();
        if (current !== undefined) this.inc(read(current));
      },
    });
  };
  counter(
    'ringkernel_tracing_spans_exported_total',
    'Spans the trace exporter (or span processor) accepted.',
    (s) => s.spansExported,
  );
  counter(
    'ringkernel_tracing_spans_export_failed_total',
    'Spans in exports that failed (collector down, refused, timed out), or abandoned at shutdown.',
    (s) => s.spansFailed,
  );
  counter(
    'ringkernel_tracing_export_requests_failed_total',
    'Trace export requests that failed.',
    (s) => s.exportsFailed,
  );
  counter(
    'ringkernel_tracing_records_dropped_total',
    'Span records dropped at the source because a telemetry ring was full (the data path never waits for tracing).',
    (s) => s.recordsDropped,
  );
  new Counter({
    name: 'ringkernel_tracing_traces_shed_total',
    help: "Messages the sampler chose but the origin left untraced, whole: over the rate cap (rate), no room in the host's telemetry ring (room), or the exporter behind with the destination kernel's ring half full (export).",
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      const current = stats();
      if (current === undefined) return;
      this.inc({ reason: 'rate' }, current.tracesShedForRate);
      this.inc({ reason: 'room' }, current.tracesShedForRoom);
      this.inc({ reason: 'export' }, current.tracesShedForExport);
    },
  });
  new Gauge({
    name: 'ringkernel_tracing_records_pending',
    help: 'Span records waiting in the telemetry rings for the exporter.',
    registers,
    collect() {
      this.reset();
      const current = stats();
      if (current !== undefined) this.set(current.recordsPending);
    },
  });
}
