/**
 * The tracing benchmark cases, run by bench/run.ts in the same run as `kernel.send.64`:
 * - `tracing.off.64`, `tracing.ratio01.64` (1 % sampled), `tracing.all.64` (every message sampled): msg/s of the
 *   `kernel.send.64` loop (one way into a sink kernel, counted when the kernel has processed them) with tracing off,
 *   at 1 %, and on for every message, exporting over OTLP/HTTP protobuf to a local sink in another thread. Records
 *   may queue for export (or, past the rings' capacity, be dropped and counted): this measures the data path.
 * - `tracing.host.ratio01.ns` / `tracing.host.all.ns`: what tracing adds to one send on the sending thread, in ns
 *   — the origin's sampling decision and envelope context, plus the send span's record when sampled — timed in a
 *   single-thread loop (no ring, no worker), so scheduling noise on a shared machine does not blur it.
 * - `tracing.export`: the exporter's own rate, spans/s — records already in the rings turned into OTLP spans,
 *   encoded and POSTed to the sink until all are delivered.
 * Modes alternate over two rounds and each keeps its best, so a noisy moment hurts no mode alone.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { OriginSampler, RingKernelRuntime, type TracingOptions } from '../src/internal.js';
import { HostSpanWriter } from '../src/telemetry/host-span-writer.js';
import { SpanRecorder } from '../src/telemetry/span-recorder.js';
import { TelemetryClock } from '../src/telemetry/telemetry-clock.js';
import { createTelemetryRing, SpanRecordReader } from '../src/telemetry/telemetry-ring.js';
import { BenchSink } from './bench-kernels.js';
import type { CaseResult } from './case-result.js';
import { sinkSendRate, yieldTurn } from './sink-rate.js';

/** One result row, as bench/run.ts prints and stores it. */
export type TracingCaseResult = CaseResult;

/** Sends `n` 64-byte messages into a sink kernel; msg/s after the warm-up fifth, as in `kernel.send.64`. */
async function sendRate(
  tracing: TracingOptions | undefined,
  n: number,
): Promise<{ rate: number; dropped: number; shed: number }> {
  const builder = RingKernelRuntime.builder().backend('cpu');
  if (tracing !== undefined) builder.tracing(tracing);
  const runtime = await builder.build();
  try {
    const sink = await runtime.launch(BenchSink, 1, 1, { autoActivate: true });
    const sample = { seq: 0, flags: 0, ts: 0, data: new Float64Array(6) };
    const rate = await sinkSendRate(sink, sample, n);
    const stats = runtime.tracing?.stats();
    return {
      rate,
      dropped: stats?.recordsDropped ?? 0,
      shed: (stats?.tracesShedForRate ?? 0) + (stats?.tracesShedForRoom ?? 0),
    };
  } finally {
    await runtime.shutdown();
  }
}

/** Fills the rings with `n` sampled messages' spans (no export meanwhile), then times exporting all of them. */
async function exportRate(url: string, n: number): Promise<number> {
  const runtime = await RingKernelRuntime.builder()
    .backend('cpu')
    .tracing({
      endpoint: url,
      sampler: 'always_on',
      exportIntervalMs: 60_000,
      maxTracesPerSecond: Number.POSITIVE_INFINITY,
      ringCapacity: 1 << 18,
      hostRingCapacity: 1 << 18,
    })
    .build();
  try {
    const sink = await runtime.launch(BenchSink, 1, 1, { autoActivate: true });
    const sample = { seq: 0, flags: 0, ts: 0, data: new Float64Array(6) };
    for (let i = 0; i < n; i++) {
      sample.seq = i;
      if (!sink.trySend(sample)) await sink.send(sample);
    }
    while (sink.counters().processed < n) await yieldTurn();
    const tracing = runtime.tracing;
    if (tracing === undefined) throw new Error('tracing is off: OTEL_TRACES_EXPORTER or OTEL_SDK_DISABLED set?');
    const before = tracing.stats().spansExported;
    const start = performance.now();
    await tracing.flush();
    const seconds = (performance.now() - start) / 1000;
    const stats = tracing.stats();
    if (stats.spansFailed > 0) throw new Error(`the local OTLP sink refused ${stats.spansFailed} spans`);
    return (stats.spansExported - before) / seconds;
  } finally {
    await runtime.shutdown();
  }
}

/** ns per message that tracing adds on the sending thread, at `ratio`: decide, set the envelope, record if sampled. */
function hostCostNs(ratio: number, n: number): number {
  const epoch = TelemetryClock.epochNow();
  const ring = createTelemetryRing(1 << 16, epoch);
  const reader = new SpanRecordReader(ring);
  const writer = new HostSpanWriter(
    new SpanRecorder(ring),
    new TelemetryClock(epoch),
    new OriginSampler('parentbased_traceidratio', ratio),
  );
  const envelope = { messageId: 0, destination: 1, flags: 0 };
  const discard = (): void => {};
  let best = Number.POSITIVE_INFINITY;
  // Round 0 warms the JIT up and is not counted.
  for (let round = 0; round < 4; round++) {
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      envelope.messageId = i;
      const startNs = writer.beginMessage(envelope);
      if (startNs >= 0) writer.endSend(startNs, i, 1, 7, 64);
      // Keep the ring from filling (a full ring would measure the cheaper drop path).
      if ((i & 0x3fff) === 0) reader.drain(discard);
    }
    if (round > 0) best = Math.min(best, ((performance.now() - start) * 1e6) / n);
  }
  return Math.round(best * 10) / 10;
}

/** Runs the tracing cases with `n` messages per send case. */
export async function tracingCases(n: number, quick: boolean): Promise<TracingCaseResult[]> {
  const otlpSink = new Worker(new URL('./otlp-sink-worker.js', import.meta.url));
  const [{ url }] = (await once(otlpSink, 'message')) as [{ url: string }];
  try {
    const modes: [string, TracingOptions | undefined][] = [
      ['tracing.off.64', undefined],
      ['tracing.ratio01.64', { endpoint: url, sampler: 'parentbased_traceidratio', samplerRatio: 0.01 }],
      ['tracing.all.64', { endpoint: url, sampler: 'always_on' }],
    ];
    const best = new Map<string, number>();
    let droppedAll = 0;
    let shedAll = 0;
    for (let round = 0; round < 2; round++) {
      for (const [name, options] of modes) {
        const { rate, dropped, shed } = await sendRate(options, n);
        best.set(name, Math.max(best.get(name) ?? 0, rate));
        if (name === 'tracing.all.64') {
          droppedAll = Math.max(droppedAll, dropped);
          shedAll = Math.max(shedAll, shed);
        }
      }
    }
    const results: TracingCaseResult[] = modes.map(([name]) => ({
      name,
      msgsPerSec: Math.round(best.get(name) ?? 0),
      p50us: 0,
      p99us: 0,
    }));
    results.push({
      name: 'tracing.all.droppedRecords',
      msgsPerSec: 0,
      p50us: 0,
      p99us: 0,
      value: droppedAll,
      unit: `records of ${2 * n} (a kernel's ring full: its traces truncated there, counted)`,
    });
    results.push({
      name: 'tracing.all.shedTraces',
      msgsPerSec: 0,
      p50us: 0,
      p99us: 0,
      value: shedAll,
      unit: `messages of ${n} left untraced at the origin, whole (rate cap or no room), counted`,
    });
    for (const [name, ratio] of [
      ['tracing.host.ratio01.ns', 0.01],
      ['tracing.host.all.ns', 1],
    ] as const) {
      results.push({
        name,
        msgsPerSec: 0,
        p50us: 0,
        p99us: 0,
        value: hostCostNs(ratio, 1_000_000),
        unit: 'ns added per send on the sending thread',
      });
    }
    const spansPerSec = await exportRate(url, quick ? 50_000 : 200_000);
    results.push({
      name: 'tracing.export',
      msgsPerSec: 0,
      p50us: 0,
      p99us: 0,
      value: Math.round(spansPerSec),
      unit: 'spans/s (records → OTLP/HTTP protobuf, delivered)',
    });
    return results;
  } finally {
    await otlpSink.terminate();
  }
}
