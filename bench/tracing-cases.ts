/**
 * The tracing benchmark cases, run by bench/run.ts in the same run as `kernel.send.64`:
 * - `tracing.off.64`, `tracing.ratio01.64` (1 % sampled), `tracing.all.64` (every message sampled): msg/s of the
 *   `kernel.send.64` loop (one way into a sink kernel, counted when the kernel has processed them) with tracing off,
 *   at 1 %, and on for every message, exporting over OTLP/HTTP protobuf to a local sink in another thread, with the
 *   default tracing options (the origin's rate cap, the exporter's CPU share). Each figure is the median of its
 *   rounds (at least 10⁶ messages a run, so every run spans several of the exporter's 100 ms drains).
 * - `tracing.ratio01.pairedRatio`: what 1 % sampling costs, as the median over 15 rounds (quick runs too, only
 *   shorter) of ratio01 / off measured back to back in the same round, which goes first alternating. The same three
 *   runtimes serve every round, built and warmed up (a few of the exporter's drains) before the first, so no round
 *   pays for a thread's start-up or the first compilation of its code — the ratio is the steady cost, the same
 *   work on both sides. A traced run's time includes whatever its exporter did meanwhile; what the run left in the
 *   rings (at most half a kernel's ring: past it the origin sheds) is exported after it, untimed, so it falls on no
 *   other run. On two cores shared with other work a single run's rate can halve or double with what the
 *   neighbours do, and `off` against `off` alone varies that much: pairing and the median keep one noisy moment
 *   from deciding the ratio. The goal line of bench/run.ts reads this row.
 * - `tracing.all.droppedRecords`, `tracing.all.shedTraces`, `tracing.ratio01.droppedRecords`: what was left out,
 *   counted (the most in one run): traces cut short at a kernel whose ring was full, and messages left
 *   untraced, whole, at the origin (rate cap, no room, or the exporter behind).
 * - `tracing.host.ratio01.ns` / `tracing.host.all.ns`: what tracing adds to one send on the sending thread, in ns
 *   — the origin's sampling decision and envelope context, plus the send span's record when sampled — timed in a
 *   single-thread loop (no ring, no worker), so scheduling noise on a shared machine does not blur it.
 * - `tracing.export`: the exporter's own rate, spans/s — records already in the rings turned into OTLP spans,
 *   encoded and POSTed to the sink until all are delivered.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { type KernelHandle, OriginSampler, RingKernelRuntime, type TracingOptions } from '../src/internal.js';
import { defineApiGlobalSlot } from '../src/telemetry/active-parent.js';
import { HostSpanWriter } from '../src/telemetry/host-span-writer.js';
import { SpanRecorder } from '../src/telemetry/span-recorder.js';
import { TelemetryClock } from '../src/telemetry/telemetry-clock.js';
import { createTelemetryRing, SpanRecordReader } from '../src/telemetry/telemetry-ring.js';
import { BenchSink } from './bench-kernels.js';
import { type CaseResult, median } from './case-result.js';
import { sinkSendRate, yieldTurn } from './sink-rate.js';

/** One result row, as bench/run.ts prints and stores it. */
export type TracingCaseResult = CaseResult;

interface SendRun {
  readonly rate: number;
  /** Records dropped (traces cut short at a kernel) and traces shed whole at the origin, during this run. */
  readonly dropped: number;
  readonly shed: number;
}

/** How long each runtime is warmed up before the rounds: several of the exporter's 100 ms drains. */
const WARM_UP_MS = 400;

const SAMPLE = { seq: 0, flags: 0, ts: 0, data: new Float64Array(6) };

/**
 * A runtime with a sink kernel launched and warmed up, timed again and again by {@link SinkRuntime.sendRate}:
 * the same runtimes serve every round, so no round pays for a thread's start-up or its code's first compilation
 * (which fall on V8's compiler and GC threads, on the same two cores) — a round measures the steady cost.
 */
class SinkRuntime {
  private constructor(
    readonly runtime: RingKernelRuntime,
    readonly sink: KernelHandle<typeof SAMPLE>,
  ) {}

  static async start(tracing: TracingOptions | undefined): Promise<SinkRuntime> {
    const builder = RingKernelRuntime.builder().backend('cpu');
    if (tracing !== undefined) builder.tracing(tracing);
    const runtime = await builder.build();
    try {
      const sink = await runtime.launch(BenchSink, 1, 1, { autoActivate: true });
      return new SinkRuntime(runtime, sink as KernelHandle<typeof SAMPLE>);
    } catch (error) {
      await runtime.shutdown();
      throw error;
    }
  }

  /** Sends to the sink for `ms` (a traced runtime exporting meanwhile, as in a round), then settles as after one. */
  async warmUp(ms: number): Promise<void> {
    const until = performance.now() + ms;
    while (performance.now() < until) await sinkSendRate(this.sink, SAMPLE, 200_000);
    await this.runtime.tracing?.flush();
  }

  #counts(): { dropped: number; shed: number } {
    const stats = this.runtime.tracing?.stats();
    return {
      dropped: stats?.recordsDropped ?? 0,
      shed: (stats?.tracesShedForRate ?? 0) + (stats?.tracesShedForRoom ?? 0) + (stats?.tracesShedForExport ?? 0),
    };
  }

  /**
   * Sends `n` 64-byte messages into the sink; msg/s after the warm-up fifth, as in `kernel.send.64`. Whatever the
   * exporter did meanwhile is in that time; what the run left in the rings (at most half a kernel's ring: past it
   * the origin sheds) is exported after it, untimed, so that it falls on no other run.
   */
  async sendRate(n: number): Promise<SendRun> {
    const before = this.#counts();
    const rate = await sinkSendRate(this.sink, SAMPLE, n);
    await this.runtime.tracing?.flush();
    const after = this.#counts();
    return { rate, dropped: after.dropped - before.dropped, shed: after.shed - before.shed };
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
  defineApiGlobalSlot(); // as a traced runtime leaves it
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
  const runtimes: SinkRuntime[] = [];
  try {
    const ratio01: TracingOptions = { endpoint: url, sampler: 'parentbased_traceidratio', samplerRatio: 0.01 };
    const all: TracingOptions = { endpoint: url, sampler: 'always_on' };
    const perRun = Math.max(n, 1_000_000);
    // As many rounds in a quick run as in a full one (only shorter): the median of a few pairs is what one noisy
    // moment can move.
    const rounds = 15;
    for (const mode of [undefined, ratio01, all]) runtimes.push(await SinkRuntime.start(mode));
    const [untraced, sampledRuntime, allRuntime] = runtimes as [SinkRuntime, SinkRuntime, SinkRuntime];
    for (const runtime of runtimes) await runtime.warmUp(WARM_UP_MS);
    const off: number[] = [];
    const sampled: number[] = [];
    const paired: number[] = [];
    const everything: number[] = [];
    let droppedRatio01 = 0;
    let droppedAll = 0;
    let shedAll = 0;
    for (let round = 0; round < rounds; round++) {
      // Back to back, which goes first alternating: a pair sees the same neighbours, and neither is always first.
      const offFirst = round % 2 === 0;
      const first = await (offFirst ? untraced : sampledRuntime).sendRate(perRun);
      const second = await (offFirst ? sampledRuntime : untraced).sendRate(perRun);
      const [plain, traced] = offFirst ? [first, second] : [second, first];
      off.push(plain.rate);
      sampled.push(traced.rate);
      paired.push(traced.rate / plain.rate);
      droppedRatio01 = Math.max(droppedRatio01, traced.dropped);
      const allRun = await allRuntime.sendRate(perRun);
      everything.push(allRun.rate);
      droppedAll = Math.max(droppedAll, allRun.dropped);
      shedAll = Math.max(shedAll, allRun.shed);
    }
    const row = (name: string, value: number, unit: string): TracingCaseResult => ({
      name,
      msgsPerSec: 0,
      p50us: 0,
      p99us: 0,
      value,
      unit,
    });
    const range = (values: readonly number[]): string =>
      `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}`;
    const results: TracingCaseResult[] = [
      ['tracing.off.64', off],
      ['tracing.ratio01.64', sampled],
      ['tracing.all.64', everything],
    ].map(([name, rates]) => ({
      name: name as string,
      msgsPerSec: Math.round(median(rates as number[])),
      p50us: 0,
      p99us: 0,
    }));
    results.push(
      row(
        'tracing.ratio01.pairedRatio',
        Math.round(median(paired) * 100) / 100,
        `ratio01 / off, median of ${rounds} back-to-back pairs (each pair ${range(paired)})`,
      ),
      row(
        'tracing.ratio01.droppedRecords',
        droppedRatio01,
        `records of ${(2 * perRun) / 100} expected (a kernel's ring full: its traces truncated there, counted)`,
      ),
      row(
        'tracing.all.droppedRecords',
        droppedAll,
        `records of ${2 * perRun} (a kernel's ring full: its traces truncated there, counted)`,
      ),
      row(
        'tracing.all.shedTraces',
        shedAll,
        `messages of ${perRun} left untraced at the origin, whole (rate cap, no room, exporter behind), counted`,
      ),
    );
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
    for (const { runtime } of runtimes) await runtime.shutdown();
    await otlpSink.terminate();
  }
}
