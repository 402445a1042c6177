import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ExportResultCode } from '@opentelemetry/core';
import { emptyResource } from '@opentelemetry/resources';
import { OtlpRecordEncoder } from './otlp-record-encoder.js';
import type { KernelNames } from './record-to-span.js';
import { SpanRecordKind } from './span-record.js';
import { SpanRecorder } from './span-recorder.js';
import { TelemetryClock } from './telemetry-clock.js';
import { type EncodedSpansTransport, TelemetryExporter } from './telemetry-exporter.js';
import { createTelemetryRing } from './telemetry-ring.js';

/** Records per round of the warm-up: one full export batch at the default batch size. */
const ROUND = 4096;
const NAMES: KernelNames = { name: 'warm-up', kernelId: 'warm-up' };

/** A transport that takes every request and sends it nowhere. */
const DISCARD: EncodedSpansTransport = {
  export: (_batch, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: async () => {},
};

/**
 * Runs the exporter's own path — records drained from a telemetry ring by a {@link TelemetryExporter}, encoded
 * into OTLP requests and handed to `transport` (by default one that discards them) — over `records` synthetic
 * span records. The exporter thread does this before it says it is ready, so that V8 has compiled that path (and collected
 * what compiling it left behind) before the runtime takes any work: otherwise the thread's first exports run cold,
 * at several times the steady cost, and that burst of CPU — much of it on V8's own compiler and GC threads, which
 * the exporter thread's low priority does not cover — falls on the data path's first moments.
 * Returns how many records were exported.
 */
export async function warmUpExport(records: number, transport: EncodedSpansTransport = DISCARD): Promise<number> {
  const clock = new TelemetryClock(TelemetryClock.epochNow());
  const ring = createTelemetryRing(ROUND, clock.epochUnixMs);
  const recorder = new SpanRecorder(ring);
  const encoder = new OtlpRecordEncoder({ 'service.name': 'warm-up' }, () => NAMES, '0');
  const exporter = new TelemetryExporter({
    sink: { encoder, transport },
    resource: emptyResource(),
    exportIntervalMs: 60_000,
    maxExportBatchSize: ROUND,
  });
  exporter.addRing(ring);
  const traceId = new Uint8Array(16).fill(1);
  const spanId = new Uint8Array(8).fill(2);
  const kinds = [SpanRecordKind.SEND, SpanRecordKind.PROCESS, SpanRecordKind.RECEIVE, SpanRecordKind.CALL];
  for (let written = 0; written < records; ) {
    const round = Math.min(ROUND, records - written);
    for (let i = 0; i < round; i++, written++) {
      const start = clock.nowNs();
      recorder.record(
        traceId,
        0,
        spanId,
        0,
        i % 4 === 0 ? undefined : spanId,
        0,
        start,
        start + 1000,
        written,
        1,
        1,
        64,
        0,
        kinds[i % kinds.length] as number,
        0,
        i % 8 === 1 ? 1 : 0,
      );
    }
    await exporter.flush();
  }
  const exported = exporter.stats().spansExported;
  await exporter.shutdown(1000);
  return exported;
}

/**
 * An OTLP/HTTP receiver on the loopback interface that reads each request and answers 200 with an empty body: what
 * the warm-up sends its requests to, so the HTTP client's path is compiled without touching the real collector.
 */
export class LoopbackReceiver {
  readonly #server: Server;
  /** Where to POST: `http://127.0.0.1:<port>/v1/traces`. */
  readonly url: string;

  private constructor(server: Server) {
    this.#server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  }

  /** Listens on a free loopback port; rejects where listening is refused. */
  static start(): Promise<LoopbackReceiver> {
    const server = createServer((request, response) => {
      request.resume();
      request.on('end', () => response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve(new LoopbackReceiver(server)));
    });
  }

  /** Stops listening and closes the connections the warm-up's client kept alive. */
  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
