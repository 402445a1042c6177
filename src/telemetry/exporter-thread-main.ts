/**
 * The exporter thread's entry point: a {@link TelemetryExporter} that drains the runtime's telemetry rings (shared
 * memory, so no record crosses a port) and exports OTLP/HTTP (or console) spans, so that building, encoding and
 * sending spans never takes the time of the thread that sends messages.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { ConsoleSpanExporter } from '@opentelemetry/sdk-trace-base';
import type { ExporterThreadInit, ExporterThreadReport, ExporterThreadRequest } from './exporter-thread-protocol.js';
import { TelemetryExporter } from './telemetry-exporter.js';

const port = parentPort;
if (port === null) throw new Error('the exporter thread must run in a worker thread');
const init = workerData as ExporterThreadInit;
const timeout = init.exportTimeoutMs;
const exporter = new TelemetryExporter({
  sink: {
    exporter:
      init.exporter === 'console'
        ? new ConsoleSpanExporter()
        : new OTLPTraceExporter({ url: init.endpoint, ...(timeout === undefined ? {} : { timeoutMillis: timeout }) }),
  },
  resource: defaultResource().merge(resourceFromAttributes({ 'service.name': init.serviceName })),
  exportIntervalMs: init.exportIntervalMs,
  maxExportBatchSize: init.maxExportBatchSize,
  counters: new BigInt64Array(init.counters),
  onFirstFailure: (error) => report({ type: 'firstFailure', message: error?.message ?? 'export failed' }),
});

function report(message: ExporterThreadReport): void {
  port?.postMessage(message);
}

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
