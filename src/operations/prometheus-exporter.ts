import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { CircuitState } from './circuit-breaker.js';
import type { DegradationLevel } from './degradation-manager.js';

/** A live kernel, as the exporter reads it at scrape time. */
export interface MetricsKernel {
  readonly name: string;
  readonly status: string;
  readonly restarts: number;
  readonly device: number;
  readonly migrations: number;
  counters(): {
    readonly received: number;
    readonly processed: number;
    readonly failed: number;
    readonly dropped: number;
  };
  metrics(): {
    readonly inputQueueDepth: number;
    readonly outputQueueDepth: number;
    readonly latency: { readonly samples: number; readonly p50us: number; readonly p99us: number };
  };
}

/** What the exporter reads from the runtime at scrape time (the runtime implements it). */
export interface MetricsSource {
  kernels(): readonly MetricsKernel[];
  readonly deadLetters: { counts(): Readonly<Partial<Record<string, number>>> };
  circuitBreakers(): readonly { readonly name: string; readonly state: CircuitState }[];
  degradationLevel(): DegradationLevel;
  lostDevices(): readonly { readonly device: number; readonly cudaErrorName: string }[];
  deviceMemory(): readonly { readonly device: number; readonly usedBytes: number; readonly budgetBytes: number }[];
  gpuMemoryDashboard(): { totals(): Readonly<Record<string, number>> };
}

const DEGRADATION_ORDER: readonly DegradationLevel[] = ['Normal', 'Light', 'Moderate', 'Severe', 'Critical'];
const CIRCUIT_LEVEL: Record<CircuitState, number> = { Closed: 0, HalfOpen: 1, Open: 2 };

/**
 * The runtime's metrics in Prometheus text format, read at scrape time from the kernels' ControlBlocks and the
 * runtime's own counters (prom-client writes the format). `gather()` returns the text; `serve()` exposes
 * `/metrics` over HTTP.
 *
 * @example
 * const server = await runtime.prometheusExporter().serve(9464);
 * // curl http://127.0.0.1:9464/metrics
 */
export class PrometheusExporter {
  /** The prom-client registry the metrics live in (add your own to it if you like). */
  readonly registry = new Registry();

  /** @internal — use `runtime.prometheusExporter()`. */
  constructor(runtime: MetricsSource) {
    const registers = [this.registry];
    new Counter({
      name: 'ringkernel_kernel_messages_total',
      help: 'Messages per live kernel: received (taken off its input ring), processed, failed (handler threw), dropped.',
      labelNames: ['kernel', 'outcome'],
      registers,
      collect() {
        this.reset();
        for (const handle of runtime.kernels()) {
          const c = handle.counters();
          this.inc({ kernel: handle.name, outcome: 'received' }, c.received);
          this.inc({ kernel: handle.name, outcome: 'processed' }, c.processed);
          this.inc({ kernel: handle.name, outcome: 'failed' }, c.failed);
          this.inc({ kernel: handle.name, outcome: 'dropped' }, c.dropped);
        }
      },
    });
    new Gauge({
      name: 'ringkernel_kernel_queue_depth',
      help: 'Frames waiting in a live kernel queue (input: not yet taken by the kernel; output: not yet read by the host).',
      labelNames: ['kernel', 'queue'],
      registers,
      collect() {
        this.reset();
        for (const handle of runtime.kernels()) {
          const m = handle.metrics();
          this.set({ kernel: handle.name, queue: 'input' }, m.inputQueueDepth);
          this.set({ kernel: handle.name, queue: 'output' }, m.outputQueueDepth);
        }
      },
    });
    new Gauge({
      name: 'ringkernel_kernel_handler_latency_seconds',
      help: 'Handler latency quantiles per live kernel (sampled one message in eight).',
      labelNames: ['kernel', 'quantile'],
      registers,
      collect() {
        this.reset();
        for (const handle of runtime.kernels()) {
          const { latency } = handle.metrics();
          if (latency.samples === 0) continue;
          this.set({ kernel: handle.name, quantile: '0.5' }, latency.p50us / 1e6);
          this.set({ kernel: handle.name, quantile: '0.99' }, latency.p99us / 1e6);
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
        for (const handle of runtime.kernels()) this.inc({ status: handle.status });
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
    new Gauge({
      name: 'ringkernel_kernel_restarts',
      help: 'Times a supervisor (or the watchdog) restarted each live kernel.',
      labelNames: ['kernel'],
      registers,
      collect() {
        this.reset();
        for (const handle of runtime.kernels()) this.set({ kernel: handle.name }, handle.restarts);
      },
    });
    new Gauge({
      name: 'ringkernel_kernel_device',
      help: 'The (virtual) device hosting each live kernel.',
      labelNames: ['kernel'],
      registers,
      collect() {
        this.reset();
        for (const handle of runtime.kernels()) this.set({ kernel: handle.name }, handle.device);
      },
    });
    new Gauge({
      name: 'ringkernel_kernel_migrations',
      help: 'Times each live kernel was migrated between devices.',
      labelNames: ['kernel'],
      registers,
      collect() {
        this.reset();
        for (const handle of runtime.kernels()) this.set({ kernel: handle.name }, handle.migrations);
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
      help: 'Memory the runtime allocated, by kind (rings, control blocks, telemetry, device buffers).',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const { total: _total, ...byKind } = runtime.gpuMemoryDashboard().totals();
        for (const [kind, bytes] of Object.entries(byKind)) this.set({ kind }, bytes);
      },
    });
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
   * Serves `GET /metrics` on `host:port` (port 0: any free port). Resolves once listening, with the port and a
   * `close()`. The server does not keep the process alive.
   */
  async serve(port = 0, host = '127.0.0.1'): Promise<{ readonly port: number; close(): Promise<void> }> {
    const server: Server = createServer((request, response) => {
      if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      this.gather().then(
        (text) => response.writeHead(200, { 'content-type': this.contentType }).end(text),
        (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    server.unref();
    const address = server.address();
    return {
      port: typeof address === 'object' && address !== null ? address.port : port,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }
}
