/**
 * Whole traces or none under overload: every message sampled (`always_on`), sent as fast as the rings take them,
 * through telemetry rings too small for the load, exported to a real OTLP receiver. Spans are left out only
 * whole-trace-wise (at the origin) or from a point downstream on (truncated, counted), never leaving a child whose
 * parent is missing; with the collector down the rings keep draining.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { describe, it } from 'node:test';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { OriginSampler, RingKernelRuntime } from '../src/internal.js';
import { HostSpanWriter } from '../src/telemetry/host-span-writer.js';
import { SpanRecorder } from '../src/telemetry/span-recorder.js';
import { TelemetryClock } from '../src/telemetry/telemetry-clock.js';
import { createTelemetryRing, SpanRecordReader } from '../src/telemetry/telemetry-ring.js';
import { Accumulator, AddOne, Double, Sink } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';
import { OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver.js';

/** Sends `count` messages to `handle` at full rate: trySend until the ring is full, then yield once. */
async function flood(handle: { trySend(message: unknown): boolean }, count: number): Promise<void> {
  let seq = 0;
  while (seq < count) {
    while (seq < count && handle.trySend({ sender: 0, seq, value: seq })) seq++;
    if (seq < count) await yieldToLoop();
  }
}

function orphans(spans: readonly ReceivedSpan[]): { nonRoot: number; orphaned: ReceivedSpan[] } {
  const ids = new Set(spans.map((s) => s.spanId));
  const nonRoot = spans.filter((s) => s.parentSpanId !== '');
  return { nonRoot: nonRoot.length, orphaned: nonRoot.filter((s) => !ids.has(s.parentSpanId)) };
}

describe('tracing under overload', () => {
  it('always_on at full rate through small rings: ≥ 99 % of non-root spans find their parent; counters account for the rest', async () => {
    const receiver = await OtlpReceiver.start();
    const runtime = await RingKernelRuntime.builder()
      .config({ workers: 2 })
      .tracing({
        endpoint: receiver.url,
        sampler: 'always_on',
        maxTracesPerSecond: Number.POSITIVE_INFINITY,
        ringCapacity: 128,
        hostRingCapacity: 512,
        exportIntervalMs: 5,
        // The exporter may take half a core: enough traces get out to judge them on a loaded machine.
        exporterCpuShare: 0.5,
      })
      .build();
    const FLOOD = 20_000;
    const MAX_FLOODS = 10;
    const CALLS = 500;
    try {
      const first = await runtime.launch(AddOne, 1, 1, { name: 'first', autoActivate: true, queueCapacity: 1024 });
      const second = await runtime.launch(Double, 1, 1, { name: 'second', autoActivate: true });
      const last = await runtime.launch(Sink, 1, 1, { name: 'last', autoActivate: true });
      const answering = await runtime.launch(Accumulator, 1, 1, { name: 'answering', autoActivate: true });
      await runtime.connect(first, second, { queueCapacity: 1024 });
      await runtime.connect(second, last, { queueCapacity: 1024 });
      const calls = Promise.all(
        Array.from({ length: CALLS }, (_, seq) => answering.call({ sender: 1, seq, value: 1 }, { timeout: 60_000 })),
      );
      // The exporter thread runs at the lowest priority: on a machine loaded by other processes one flood may get
      // too few traces out to judge. Flooded again until enough have (at most MAX_FLOODS times); everything below
      // is judged over all the floods.
      const traced = (): ReceivedSpan[] =>
        receiver.spans.filter((s) => s.attributes['messaging.operation'] !== undefined);
      let messages = 0;
      do {
        await flood(first, FLOOD);
        messages += FLOOD;
        await eventually(() => assert.equal(last.counters().processed, messages), 60_000);
        await runtime.tracing?.flush();
      } while (orphans(traced()).nonRoot <= 500 && messages < MAX_FLOODS * FLOOD);
      await calls;
      await runtime.tracing?.flush();
      const stats = runtime.tracing?.stats();
      assert.ok(stats !== undefined);
      const spans = traced();
      const { nonRoot, orphaned } = orphans(spans);
      const found = nonRoot - orphaned.length;
      const report = JSON.stringify({ stats, spans: spans.length, nonRoot, orphaned: orphaned.length });
      // The load was more than the rings hold: something was shed or truncated, or the test proves nothing.
      assert.ok(
        stats.tracesShedForRoom + stats.tracesShedForExport + stats.recordsDropped > 0,
        `no overload happened: ${report}`,
      );
      assert.ok(nonRoot > 500, `enough traced hops to judge: ${report}`);
      assert.ok(found / nonRoot >= 0.99, `parents found for ${found} of ${nonRoot}: ${report}`);
      // Nothing failed on the way to the receiver: an orphan could only come from a span the counters name.
      assert.equal(stats.spansFailed, 0, report);
      assert.equal(receiver.spans.length, stats.spansExported, report);
      assert.ok(orphaned.length <= stats.spansFailed + stats.recordsDropped, report);
      // Every message was decided once at its origin: traced (its send span) or counted as shed.
      const sends = spans.filter((s) => s.name === 'send first').length;
      assert.ok(
        sends + stats.tracesShedForRoom + stats.tracesShedForRate + stats.tracesShedForExport >= messages,
        report,
      );
      // Each stage's processing spans hang off the stage before: a dropped stage ends the trace there.
      const byId = new Map(spans.map((s) => [s.spanId, s]));
      for (const span of spans.filter((s) => s.name === 'process second')) {
        assert.equal(byId.get(span.parentSpanId)?.name, 'process first');
      }
      // A call whose kernel could not record its span says so on the call's span.
      const truncatedCalls = spans.filter(
        (s) => s.name === 'call answering' && s.attributes['ringkernel.trace.truncated'] === true,
      );
      const answeredCalls = spans.filter((s) => s.name === 'call answering');
      const processed = spans.filter((s) => s.name === 'process answering').length;
      assert.equal(answeredCalls.length - truncatedCalls.length, processed, report);
    } finally {
      await runtime.shutdown();
      await receiver.close();
    }
  });

  it('an exporter behind its budget: the backlog is shed at the origin as whole traces, no trace cut short', async () => {
    const receiver = await OtlpReceiver.start();
    const runtime = await RingKernelRuntime.builder()
      .config({ workers: 1 })
      .tracing({
        endpoint: receiver.url,
        sampler: 'always_on',
        maxTracesPerSecond: Number.POSITIVE_INFINITY,
        // A hundredth of a core: far less than every message's spans need, on any machine.
        exporterCpuShare: 0.01,
      })
      .build();
    const MESSAGES = 200_000;
    try {
      // At most a queue's worth of traced messages is on its way to the kernel when the origin sees its ring half
      // full: 1024 more records fit in the other half of its 8192, so none has to be dropped there.
      const sink = await runtime.launch(Sink, 1, 1, { name: 'sink', autoActivate: true, queueCapacity: 1024 });
      await flood(sink, MESSAGES);
      await eventually(() => assert.equal(sink.counters().processed, MESSAGES), 60_000);
      await runtime.tracing?.flush();
      const stats = runtime.tracing?.stats();
      assert.ok(stats !== undefined);
      const spans = receiver.spans.filter((s) => s.attributes['messaging.operation'] !== undefined);
      const { nonRoot, orphaned } = orphans(spans);
      const report = JSON.stringify({ stats, spans: spans.length, nonRoot, orphaned: orphaned.length });
      assert.ok(stats.tracesShedForExport > 0, `the exporter never fell behind: ${report}`);
      assert.equal(stats.recordsDropped, 0, `traces were cut short at the kernel: ${report}`);
      assert.equal(orphaned.length, 0, report);
      const sends = spans.filter((s) => s.name === 'send sink').length;
      assert.equal(spans.filter((s) => s.name === 'process sink').length, sends, report);
      assert.equal(sends + stats.tracesShedForRoom + stats.tracesShedForRate + stats.tracesShedForExport, MESSAGES);
    } finally {
      await runtime.shutdown();
      await receiver.close();
    }
  });

  it('the exporter thread yields to the data path: it alone runs at the lowest priority (nice 19)', async (t) => {
    if (!existsSync('/proc/thread-self')) {
      t.skip('thread priorities are read from /proc (Linux)');
      return;
    }
    /** The nice value of each of this process's threads, from /proc/self/task/<tid>/stat (field 19). */
    const niceValues = (): number[] =>
      readdirSync('/proc/self/task').map((tid) => {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      });
    const before = niceValues().filter((nice) => nice === 19).length;
    const receiver = await OtlpReceiver.start();
    const runtime = await RingKernelRuntime.builder()
      .config({ workers: 1 })
      .tracing({ endpoint: receiver.url, sampler: 'always_on' })
      .build();
    try {
      const sink = await runtime.launch(Sink, 1, 1, { name: 'sink', autoActivate: true });
      await flood(sink, 1000);
      await runtime.tracing?.flush();
      assert.ok(receiver.spans.length > 0, 'the exporter thread exported');
      assert.equal(niceValues().filter((nice) => nice === 19).length, before + 1, `nice values ${niceValues()}`);
      assert.equal(os.getPriority(), 0, 'the process itself keeps its priority');
    } finally {
      await runtime.shutdown();
      await receiver.close();
    }
  });

  it('the rate cap: past maxTracesPerSecond messages leave untraced, whole, and are counted', () => {
    const epoch = TelemetryClock.epochNow();
    const ring = createTelemetryRing(1 << 16, epoch);
    const reader = new SpanRecordReader(ring);
    const writer = new HostSpanWriter(
      new SpanRecorder(ring),
      new TelemetryClock(epoch),
      new OriginSampler('always_on'),
      1000,
    );
    const envelope = { messageId: 0, destination: 1, flags: 0 };
    let traced = 0;
    let untraced = 0;
    const started = performance.now();
    for (let i = 0; i < 50_000 || performance.now() - started < 200; i++) {
      envelope.messageId = i;
      const startNs = writer.beginMessage(envelope);
      if (startNs >= 0) {
        traced++;
        writer.endSend(startNs, i, 1, 7, 64);
      } else {
        untraced++;
        assert.equal((envelope as { traceFlags?: number }).traceFlags, 0, 'an untraced message leaves unsampled');
      }
      if ((i & 0xfff) === 0) reader.drain(() => {});
    }
    const seconds = (performance.now() - started) / 1000;
    // A burst of a tenth of a second's worth, then 1000 a second.
    assert.ok(traced >= 100 && traced <= 100 + Math.ceil(1000 * seconds) + 1, `${traced} traced in ${seconds} s`);
    assert.equal(writer.counts().shedForRate, untraced);
    assert.equal(writer.counts().shedForRoom, 0);
  });

  it('with the collector down, the rings keep draining: records are discarded as export failures, none dropped', async () => {
    const down = await OtlpReceiver.start();
    const url = down.url;
    await down.close();
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning.message);
    };
    process.on('warning', onWarning);
    const runtime = await RingKernelRuntime.builder()
      .config({ workers: 1, logLevel: 'silent' })
      .tracing({
        endpoint: url,
        sampler: 'always_on',
        maxTracesPerSecond: Number.POSITIVE_INFINITY,
        // Room for a second of records at full rate: what fills it is an exporter that stops draining.
        ringCapacity: 32_768,
        exportIntervalMs: 5,
        shutdownTimeoutMs: 200,
      })
      .build();
    const MESSAGES = 100_000;
    try {
      const sink = await runtime.launch(Sink, 1, 1, { name: 'sink', autoActivate: true, queueCapacity: 1024 });
      // In bursts with pauses between: the exporter thread yields its core to a flood, so a flood alone would only
      // show it shedding at the origin; the pauses give it the time it needs to show that it keeps draining.
      for (let sent = 0; sent < MESSAGES; sent += 2000) {
        await flood(sink, 2000);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await eventually(() => assert.equal(sink.counters().processed, MESSAGES), 60_000);
      // The exporter catches up with what was written (discarding it); shutdown counts the export still being
      // retried as failed.
      await eventually(() => assert.equal(runtime.tracing?.stats().recordsPending, 0), 10_000);
      await runtime.shutdown();
      const stats = runtime.tracing?.stats();
      assert.ok(stats !== undefined);
      const report = JSON.stringify(stats);
      assert.equal(stats.spansExported, 0, report);
      assert.equal(stats.recordsDropped, 0, report);
      // The rings kept draining (all of it discarded above, none dropped): neither ring ever filled (no cap; nothing
      // shed for want of room in the host's ring). Every message was traced — its send span and its processing
      // span, both failed — or, where the exporter thread (which yields its core to other work) was behind, left
      // untraced whole at the origin.
      assert.equal(stats.tracesShedForRoom + stats.tracesShedForRate, 0, report);
      assert.ok(stats.spansFailed >= 2 * (MESSAGES - stats.tracesShedForExport), report);
      // The warning went to the runtime's logger (silent here), not to process warnings.
      assert.deepEqual(
        warnings.filter((w) => w.includes('traces could not be delivered')),
        [],
      );
    } finally {
      await runtime.shutdown();
      process.off('warning', onWarning);
    }
  });
});
