/**
 * The exporter thread's entry point: a {@link TelemetryExporter} that drains the runtime's telemetry rings (shared
 * memory, so no record crosses a port) and exports OTLP/HTTP (or console) spans, so that building, encoding and
 * sending spans never takes the time of the thread that sends messages.
 */
import { readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { ConsoleSpanExporter } from '@opentelemetry/sdk-trace-base';
import type { ExporterThreadInit, ExporterThreadReport, ExporterThreadRequest } from './exporter-thread-protocol.js';
import { LoopbackReceiver, warmUpExport } from './exporter-warm-up.js';
import { OtlpRecordEncoder } from './otlp-record-encoder.js';
import {
  type EncodedSpans,
  type EncodedSpansTransport,
  TelemetryExporter,
  type TelemetrySink,
} from './telemetry-exporter.js';

const port = parentPort;
if (port === null) throw new Error('the exporter thread must run in a worker thread');
const init = workerData as ExporterThreadInit;
const timeout = init.exportTimeoutMs;
const resource = defaultResource().merge(resourceFromAttributes({ 'service.name': init.serviceName }));

/**
 * The OTLP exporter's own HTTP transport to `url` (so headers, timeout, retries, compression and TLS follow the same
 * OTEL_* variables), sending requests the encoder has already made.
 */
function otlpTransport(url: string): EncodedSpansTransport {
  const passThrough = {
    serializeRequest: (batch: EncodedSpans): Uint8Array => batch.body,
    deserializeResponse: (): Record<string, never> => ({}),
  };
  const delegate = createOtlpHttpExportDelegate(
    convertLegacyHttpOptions(
      { url, ...(timeout === undefined ? {} : { timeoutMillis: timeout }) },
      'TRACES',
      'v1/traces',
      { 'Content-Type': 'application/x-protobuf' },
    ),
    passThrough,
    'otlp_http_span_exporter',
    { name: 'span', countItems: (batch: EncodedSpans) => batch.spans },
    undefined,
  );
  return new OTLPExporterBase<EncodedSpans>(delegate);
}

/** The OTLP path: records are encoded straight into the protobuf request, then sent with {@link otlpTransport}. */
function otlpSink(): TelemetrySink {
  const encoder = new OtlpRecordEncoder(resource.attributes, (instance) => exporter.kernelNames(instance), '0.1.0');
  return { encoder, transport: otlpTransport(init.endpoint) };
}

const exporter: TelemetryExporter = new TelemetryExporter({
  sink: init.exporter === 'console' ? { exporter: new ConsoleSpanExporter() } : otlpSink(),
  resource,
  exportIntervalMs: init.exportIntervalMs,
  maxExportBatchSize: init.maxExportBatchSize,
  counters: new BigInt64Array(init.counters),
  ...(init.exporter === 'otlp' ? { reachable: () => collectorReachable(init.endpoint) } : {}),
  overBudget: cpuBudget(init.maxCpuShare),
  onFirstFailure: (error) => report({ type: 'firstFailure', message: error?.message ?? 'export failed' }),
});

/**
 * The thread's CPU budget: `share` of one core, as event-loop utilization over windows of a second (this thread
 * does nothing but export, so its busy time is the exporter's cost). Returns whether this window's share is spent.
 * Bounding the share by design keeps the exporter from taking the data path's cores on a small, busy machine.
 */
function cpuBudget(share: number): () => boolean {
  let windowStart = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const window = performance.eventLoopUtilization(now, windowStart);
    const elapsed = window.idle + window.active;
    const spent = window.active > share * Math.max(elapsed, 100);
    if (elapsed >= 1000) windowStart = now;
    return spent;
  };
}

/** Whether a TCP connection to the endpoint's host and port opens (within a second). */
function collectorReachable(endpoint: string): Promise<boolean> {
  const url = new URL(endpoint);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 1000 });
    const done = (yes: boolean): void => {
      socket.destroy();
      resolve(yes);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/**
 * Puts this thread at the lowest scheduling priority (nice 19), alone among the process's threads: where the data
 * path keeps every core busy the scheduler gives the exporter what is left (a nice-19 thread weighs 15 against a
 * normal thread's 1024), and on an idle core it runs at full speed. The exporter then falls behind rather than
 * taking the data path's time, and its backlog is shed at the origin, whole and counted. Linux names the thread
 * by its id in /proc/thread-self; elsewhere the thread keeps the process's priority.
 */
function yieldToDataPath(): void {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(threadId) && threadId > 0) setPriority(threadId, 19);
  } catch {
    // No /proc (not Linux), or a sandbox that refuses: the budget below still bounds the thread's share.
  }
}

yieldToDataPath();

function report(message: ExporterThreadReport): void {
  port?.postMessage(message);
}

/** Records the export path is run over before the thread is ready: three full batches (see warmUpExport). */
const WARM_UP_RECORDS = 3 * 4096;

/**
 * Compiles the export path before the first real record: for OTLP, through the same HTTP transport to a receiver
 * of our own on the loopback interface (which only reads and answers), so the HTTP client is compiled too. Never
 * holds the thread's start for long: a warm-up that cannot finish within five seconds is left behind.
 */
async function warmUp(): Promise<number> {
  const run = async (): Promise<number> => {
    const receiver = init.exporter === 'otlp' ? await LoopbackReceiver.start().catch(() => undefined) : undefined;
    if (receiver === undefined) return warmUpExport(WARM_UP_RECORDS);
    try {
      return await warmUpExport(WARM_UP_RECORDS, otlpTransport(receiver.url));
    } finally {
      await receiver.close();
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<number>((resolve) => {
    timer = setTimeout(() => resolve(0), 5000).unref();
  });
  const warmed = await Promise.race([run().catch(() => 0), late]);
  clearTimeout(timer);
  return warmed;
}

const warmedUp = await warmUp();

// Loaded, compiled and listening: the runtime starts taking work only now, so this thread's start-up (loading the
// OTLP exporter's modules, compiling its export path) never competes with the data path.
report({ type: 'ready', warmedUp });

port.on('message', (request: ExporterThreadRequest) => {
  switch (request.type) {
    case 'addRing':
      exporter.addRing(request.ring);
      return;
    case 'retireRing':
      exporter.retireRing(request.ring);
      return;
    case 'nameKernel':
      exporter.nameKernel(request.instance, request.names);
      return;
    case 'flush':
      void exporter.flush().finally(() => report({ type: 'done', seq: request.seq }));
      return;
    case 'shutdown':
      void exporter.shutdown(request.timeoutMs).finally(() => report({ type: 'done', seq: request.seq }));
      return;
  }
});
